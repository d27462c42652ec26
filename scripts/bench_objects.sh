#!/usr/bin/env bash
# objects/s of `blurgate check` over an S3 bucket (a local s3s-fs), cold and warm cache.
#
#   bash scripts/bench_objects.sh [PHOTO_DIR...]   # default: fixtures/photos
#
# Uploads the photos (by copying them into the server's folder), runs `check` once with an
# empty cache (cold: every object downloaded, decoded and searched) and once more (warm: the
# cache knows each object by ETag and size), and prints both rates. Needs scripts/setup.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK=$(mktemp -d)
trap 'S3_ROOT=$WORK/s3 S3_PORT=$PORT bash scripts/s3_server.sh stop 2>/dev/null; rm -rf "$WORK"' EXIT
PORT=${S3_PORT:-8015}
mkdir -p "$WORK/s3/bench/photos"
for dir in "${@:-fixtures/photos}"; do
  find "$dir" -type f \( -iname '*.jpg' -o -iname '*.png' -o -iname '*.jpeg' \) -exec cp {} "$WORK/s3/bench/photos/" \;
done
n=$(find "$WORK/s3/bench/photos" -type f | wc -l)
eval "$(S3_ROOT=$WORK/s3 S3_PORT=$PORT S3_BUCKETS=bench bash scripts/s3_server.sh start)"
export BLURGATE_CACHE_DIR=$WORK/cache
for pass in cold warm; do
  start=$(date +%s.%N)
  target/release/blurgate -q check s3://bench/photos --report "$WORK/$pass.json" >/dev/null || true
  end=$(date +%s.%N)
  python3 - "$WORK/$pass.json" "$pass" "$n" "$start" "$end" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
wall = float(sys.argv[5]) - float(sys.argv[4])
print(f"{sys.argv[2]}: {s['files']} objects in {wall:.2f} s wall = {s['files']/wall:.1f} objects/s "
      f"(cached {s['cached']}, violations {s['violations']}, failed {s['failed']})")
PY
done
