#!/usr/bin/env bash
# `blurgate stream` at its defaults on a live 1280×720, 25 fps source: ffmpeg plays a 20 s clip
# (the set-up 1080p pan clip, scaled and looped into .cache/bench/stream720.mp4) in real time
# into a local TCP socket; blurgate reads it and records the redacted stream to a file. Prints
# the stream's counters (--stats: planned K, frames in/out/blanked/dropped, latency p95 against
# its stated bound) and the leaking frames of the recording (examples/video_leaks.rs --against).
#
#   bash scripts/bench_stream.sh                   # defaults
#   bash scripts/bench_stream.sh --speed fast      # arguments go to blurgate stream
#
# A benchmark for people, never run by CI: it needs an otherwise idle machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -f models/manifest.json && -f fixtures/generated/videos/pan_1080p.mp4 ]] || { echo "bench_stream: run bash scripts/setup.sh first" >&2; exit 1; }
cargo build --release --quiet --bin blurgate --example video_leaks
WORK=.cache/bench
mkdir -p "$WORK"
CLIP=$WORK/stream720.mp4
if [[ ! -f $CLIP ]]; then
  ffmpeg -nostdin -v error -y -stream_loop 4 -i fixtures/generated/videos/pan_1080p.mp4 -vf scale=1280:720 -r 25 \
    -c:v libx264 -crf 20 -preset veryfast -c:a aac "$CLIP"
fi
OUT=$WORK/stream720-out.ts
STATS=$WORK/stream720-stats.json
rm -f "$OUT" "$STATS"
PORT=$((20000 + RANDOM % 20000))
ffmpeg -nostdin -v error -re -i "$CLIP" -c copy -f mpegts "tcp://127.0.0.1:$PORT?listen=1&listen_timeout=60000" &
SENDER=$!
/usr/bin/time -f "bench-stream: cpu user %U s sys %S s wall %e s" target/release/blurgate stream "tcp://127.0.0.1:$PORT" "$OUT" --reconnect 6 --stats "$STATS" "$@"
wait "$SENDER"
python3 - "$STATS" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
keys = ["width", "height", "fps", "planned_detect_every", "detect_every_peak", "detect_ms", "frames_in", "frames_out",
        "frames_detected", "frames_blanked", "frames_dropped", "latency_bound_ms"]
for k in keys:
    print(f"bench-stream: {k} = {s.get(k)}")
print(f"bench-stream: latency_ms = {s['latency_ms']}")
PY
target/release/examples/video_leaks --against "$OUT" "$CLIP"
