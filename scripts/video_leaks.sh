#!/usr/bin/env bash
# Frames that still show a face after `blurgate redact`, on the set-up clips and, when
# ../shared is there, its real clips (examples/video_leaks.rs: the detector at the photo
# defaults on every input and output frame, faces of score >= 0.5 matched by place).
#
#   bash scripts/video_leaks.sh                      # redact at its defaults
#   bash scripts/video_leaks.sh --detect-every 3     # arguments go to blurgate redact
#   SCORE=0.3 bash scripts/video_leaks.sh            # count weaker faces too
#
# Prints per clip: frames, faces in the input, leaking frames (leaking faces), redact's
# frames/s. A development tool, never run by CI; slow (two photo-default detections a frame).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -f models/manifest.json && -d fixtures/generated/videos ]] || { echo "video_leaks: run bash scripts/setup.sh first" >&2; exit 1; }
cargo build --release --quiet --bin blurgate --example video_leaks
clips=(fixtures/generated/videos/pan.mp4 fixtures/generated/videos/pan_1080p.mp4
  fixtures/generated/videos/rotated.mp4 fixtures/generated/videos/vfr.mkv)
SHARED=${SHARED:-$ROOT/../shared}
if [[ -d $SHARED/fixtures/videos/known_licence ]]; then
  for f in "$SHARED"/fixtures/videos/known_licence/*.{mp4,mkv} "$SHARED"/fixtures/videos/known_licence/codec_variants/*; do
    [[ -f $f ]] && clips+=("$f")
  done
else
  echo "video_leaks: no ../shared/fixtures/videos (set SHARED=DIR): the set-up clips only"
fi
target/release/examples/video_leaks --score "${SCORE:-0.5}" "${clips[@]}" -- "$@"
