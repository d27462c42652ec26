#!/usr/bin/env bash
# Peak resident memory of `blurgate redact` (default settings) on 100 and on 2,000 files: hard
# links (copies across file systems) of the fixture photos in .cache/bench/mem-N/. Peak RSS
# should not grow with the number of files (the pipeline streams them; only the per-file report
# entries accumulate).
#
#   bash scripts/bench_memory.sh                 # 100 and 2000 files
#   MEM_COUNTS="100 500" bash scripts/bench_memory.sh
#
# Expects target/release/blurgate and fixtures/photos/ (bash scripts/setup.sh; scripts/bench.sh
# runs this script after building). A benchmark for people, never run by CI. Idempotent.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WORK=.cache/bench
BLURGATE=target/release/blurgate
PYTHON=${PYTHON:-python3}
MEM_COUNTS=${MEM_COUNTS:-100 2000}

say() { printf 'bench-memory: %s\n' "$*"; }
die() { printf 'bench-memory: error: %s\n' "$*" >&2; exit 1; }

[[ -x $BLURGATE ]] || die "$BLURGATE is missing: run bash scripts/setup.sh (or cargo build --release)"
shopt -s nullglob
sources=(fixtures/photos/*.jpg fixtures/photos/*.jpeg fixtures/photos/*.png)
shopt -u nullglob
((${#sources[@]} > 0)) || die "no photos in fixtures/photos: run bash scripts/setup.sh"
mkdir -p "$WORK"

# fill DIR N: DIR holds exactly N links to the fixture photos, named NNNNN-<name>.
fill() {
  local dir=$1 n=$2 i name
  if [[ -d $dir ]] && (($(find "$dir" -maxdepth 1 -type f | wc -l) == n)); then
    return
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  for ((i = 0; i < n; i++)); do
    local src=${sources[i % ${#sources[@]}]}
    name=$(printf '%05d-%s' "$i" "$(basename "$src")")
    ln "$src" "$dir/$name" 2>/dev/null || cp "$src" "$dir/$name"
  done
}

say "blurgate redact, default settings, on links to the ${#sources[@]} fixture photos: ${sources[*]##*/}"
printf '%8s %10s %10s %14s\n' files wall_s images/s peak_rss_mib
for n in $MEM_COUNTS; do
  dir=$WORK/mem-$n
  out=$WORK/mem-$n-out
  fill "$dir" "$n"
  rm -rf "$out" "$WORK/.mem-$n-out.blurgate"
  line=$("$PYTHON" scripts/bench_measure.py "$WORK/mem-$n.log" -- \
    "$BLURGATE" redact "$dir" --out "$out" --fresh -q --report "$WORK/mem-$n-report.json") \
    || die "blurgate failed on $n files (see $WORK/mem-$n.log)"
  written=$(find "$out" -type f | wc -l)
  ((written == n)) || die "blurgate wrote $written of $n files (see $WORK/mem-$n.log)"
  wall=${line#wall_s=}; wall=${wall%% *}
  rss=${line##*peak_rss_mib=}
  awk -v n="$n" -v w="$wall" -v r="$rss" 'BEGIN { printf "%8d %10.2f %10.2f %14.1f\n", n, w, n / w, r }'
  # The outputs take as much room as the inputs; the links cost nothing.
  rm -rf "$out" "$WORK/.mem-$n-out.blurgate"
done
