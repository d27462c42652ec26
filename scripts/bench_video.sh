#!/usr/bin/env bash
# frames/s of `blurgate redact` on the set-up clips (854x480 and 1080p, 100 frames each) with
# the default (balanced) and fast presets, detecting every frame and every 3rd, beside
# `deface --keep-audio` on the same clips when deface is installed (DEFACE, default
# .cache/deface-venv/bin/deface: `python3 -m venv .cache/deface-venv && .cache/deface-venv/bin/pip
# install .cache/downloads/deface-1.5.0-py3-none-any.whl`). Peak RSS from /usr/bin/time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
V=fixtures/generated/videos
DEFACE=${DEFACE:-.cache/deface-venv/bin/deface}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
rate() { python3 -c "print(f'{$1/$2:.2f}')"; }
for clip in pan.mp4 pan_1080p.mp4; do
  frames=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$V/$clip")
  for speed in balanced fast; do
    for k in 1 3; do
      /usr/bin/time -f "%e %M" -o "$T/t" target/release/blurgate -q redact "$V/$clip" --out "$T/out-$speed-$k" \
        --speed "$speed" --detect-every "$k" --fresh
      read -r s m <"$T/t"
      echo "blurgate $clip --speed $speed --detect-every $k: $frames frames in $s s = $(rate "$frames" "$s") frames/s, peak RSS $((m / 1024)) MiB"
    done
  done
  if [[ -x $DEFACE ]]; then
    /usr/bin/time -f "%e %M" -o "$T/t" "$DEFACE" --keep-audio --execution-provider CPUExecutionProvider \
      -o "$T/deface.mp4" "$V/$clip" >/dev/null 2>&1
    read -r s m <"$T/t"
    echo "deface --keep-audio $clip: $frames frames in $s s = $(rate "$frames" "$s") frames/s, peak RSS $((m / 1024)) MiB"
  fi
done
