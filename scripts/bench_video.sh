#!/usr/bin/env bash
# frames/s of `blurgate redact` on the set-up clips (854x480 and 1080p, 100 frames each) at its
# defaults (whole-frame search every 16th frame, zoomed looks around the tracks between) and,
# for comparison, searching every frame whole (--detect-every 1) and with --speed fast, beside
# `deface --keep-audio` on the same clips when deface is installed (DEFACE, default the
# benchmark venv's .cache/bench-venv/bin/deface, which scripts/bench.sh sets up). Peak RSS from
# /usr/bin/time. Leaks are counted by scripts/video_leaks.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
V=fixtures/generated/videos
DEFACE=${DEFACE:-.cache/bench-venv/bin/deface}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
rate() { python3 -c "print(f'{$1/$2:.2f}')"; }
for clip in pan.mp4 pan_1080p.mp4; do
  frames=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$V/$clip")
  for args in "" "--detect-every 1" "--speed fast"; do
    # shellcheck disable=SC2086 # the arguments are words
    /usr/bin/time -f "%e %M" -o "$T/t" target/release/blurgate -q redact "$V/$clip" --out "$T/out" $args --fresh
    read -r s m <"$T/t"
    echo "blurgate $clip ${args:-(defaults)}: $frames frames in $s s = $(rate "$frames" "$s") frames/s, peak RSS $((m / 1024)) MiB"
  done
  if [[ -x $DEFACE ]]; then
    /usr/bin/time -f "%e %M" -o "$T/t" "$DEFACE" --keep-audio --execution-provider CPUExecutionProvider \
      -o "$T/deface.mp4" "$V/$clip" >/dev/null 2>&1
    read -r s m <"$T/t"
    echo "deface --keep-audio $clip: $frames frames in $s s = $(rate "$frames" "$s") frames/s, peak RSS $((m / 1024)) MiB"
  fi
done
