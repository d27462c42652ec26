#!/usr/bin/env bash
# blurgate against deface 1.5.0, in one run, on the same photos and the same machine, with the
# recall each reached beside its speed (a speed figure counts only at the recall it was measured at).
#
#   bash scripts/bench.sh                        # 3 rounds, blurgate at its defaults
#   ROUNDS=5 bash scripts/bench.sh
#   bash scripts/bench.sh --speed fast           # extra arguments go to blurgate redact
#   STAGES=1 bash scripts/bench.sh               # also inference-only rate and stage breakdown
#
# 1. Sets up deface 1.5.0 in .cache/bench-venv (scripts/deface_venv.sh: every package pinned
#    with == and by sha256 in scripts/bench-requirements.txt, installed from PyPI with --no-deps).
# 2. Two image sets (scripts/bench_images.py):
#    web   - the fixture photos and, when ../shared is there, the 55 annotated crowd photos of
#            shared/fixtures/annotated/wider_dev (photos as published on the web, <= 1280 px);
#    large - a 12-megapixel Lanczos upscale of each fixture photo, and two 12 MP composites of
#            a speaker's close-up in front of a small, distant audience (faces annotated).
# 3. Per set, ROUNDS rounds alternating the tools (and which goes first): each tool processes
#    the whole set in one process per round, at its default settings, writing every output:
#      deface DIR                    (thresh 0.2, mask-scale 1.3, blur, full resolution; writes
#                                     NAME_anonymized.EXT beside each input, in a linked copy)
#      blurgate redact DIR --out OUT --fresh -q --report R.json [ARGS]
#    Wall time and peak RSS come from scripts/bench_measure.py (getrusage of the child). Prints
#    images/s and peak RSS of each, the ratio blurgate / deface (medians), and the share of
#    blurgate's core time spent in inference (its report's per-file detection.inference_ms).
# 4. Recall on the annotated part: the web set's WIDER FACE photos and the large set's
#    composites, scored by scripts/eval_detection.py (blurgate's last report; deface's own
#    detections at its defaults from scripts/deface_boxes.py on the same photos).
# 5. STAGES=1: ONNX Runtime alone on the network inputs blurgate runs for the large set
#    (examples/inference_rate.rs, after a warm-up) and a per-stage breakdown by photo size.
# 6. Peak RSS on 100 vs 2,000 files (scripts/bench_memory.sh; BENCH_MEMORY=0 skips it).
#
# Needs: bash scripts/setup.sh done (models/, fixtures/photos/), python3.11 with venv, cargo,
# network access to PyPI the first time. Idempotent; everything it writes is under .cache/.
# BENCH_SKIP_BUILD=1 uses the binaries already built. A benchmark for people: never run by CI.
# Timings on a shared 2-core machine are noisy: compare tools within one run, not across runs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ROUNDS=${ROUNDS:-3}
MEGAPIXELS=${MEGAPIXELS:-12}
PYTHON=${PYTHON:-python3}
WORK=.cache/bench
BLURGATE=target/release/blurgate
INFERENCE=target/release/examples/inference_rate
ARGS=("$@")

say() { printf 'bench: %s\n' "$*"; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
section() { printf '\n== %s ==\n' "$*"; }

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number (got '$ROUNDS')"

# --- prerequisites -------------------------------------------------------------------------------

if [[ ! -f models/manifest.json || ! -d fixtures/photos ]]; then
  say "models/ or fixtures/photos/ missing: running scripts/setup.sh"
  BLURGATE_SKIP_BUILD=1 bash scripts/setup.sh
fi
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  say "building blurgate and examples/inference_rate (release)"
  cargo build --release --quiet --bin blurgate --example inference_rate
fi
[[ -x $BLURGATE && -x $INFERENCE ]] || die "$BLURGATE or $INFERENCE missing (run without BENCH_SKIP_BUILD)"
# shellcheck source=scripts/deface_venv.sh
source scripts/deface_venv.sh

SHARED=${SHARED:-}
if [[ -z $SHARED ]]; then
  for d in "$ROOT/../shared" /work/shared; do
    [[ -d $d/fixtures/annotated ]] && { SHARED=$d; break; }
  done
fi
WIDER=${SHARED:+$SHARED/fixtures/annotated/wider_dev}

# --- image sets ----------------------------------------------------------------------------------

section "image sets"
shopt -s nullglob
sources=(fixtures/photos/*.jpg fixtures/photos/*.jpeg fixtures/photos/*.png)
shopt -u nullglob
((${#sources[@]} > 0)) || die "no photos in fixtures/photos: run bash scripts/setup.sh"
mkdir -p "$WORK"
extra=()
if [[ -n $WIDER && -d $WIDER/images ]]; then
  extra=(--extra "$WIDER/images")
else
  say "no shared/fixtures/annotated/wider_dev: the web set is the fixture photos only, recall is not measured on it"
fi
"$VPY" scripts/bench_images.py "$WORK/web" "$WORK/large" "${sources[@]}" --megapixels "$MEGAPIXELS" "${extra[@]}"

# --- rounds --------------------------------------------------------------------------------------

# deface writes NAME_anonymized.EXT beside its inputs (its -o names one output file, not a
# folder), so it reads a linked copy of the set.
linked_copy() {
  rm -rf "$2"
  mkdir -p "$2"
  for f in "$1"/*; do
    ln "$f" "$2/" 2>/dev/null || cp "$f" "$2/"
  done
}

run_deface() {
  local set=$1 n=$2 in=$WORK/deface-in-$1
  find "$in" -name '*_anonymized.*' -delete
  "$PYTHON" scripts/bench_measure.py "$WORK/deface.log" -- "$VENV/bin/deface" "$in" \
    || die "deface failed (see $WORK/deface.log)"
  local written
  written=$(find "$in" -name '*_anonymized.*' | wc -l)
  ((written == n)) || die "deface wrote $written of $n files (see $WORK/deface.log)"
}

run_blurgate() {
  local set=$1 n=$2 out=$WORK/blurgate-out-$1
  rm -rf "$out" "$WORK/.blurgate-out-$1.blurgate"
  "$PYTHON" scripts/bench_measure.py "$WORK/blurgate.log" -- \
    "$BLURGATE" redact "$WORK/$set" --out "$out" --fresh -q --report "$WORK/blurgate-$set.json" "${ARGS[@]}" \
    || die "blurgate failed (see $WORK/blurgate.log)"
  local written
  written=$(find "$out" -type f ! -name ".blurgate-manifest*" | wc -l)
  ((written == n)) || die "blurgate wrote $written of $n files (see $WORK/blurgate.log)"
}

RESULTS=$WORK/results.tsv
: >"$RESULTS"
: >"$WORK/deface.log"
: >"$WORK/blurgate.log"
for set in web large; do
  n=$(find "$WORK/$set" -maxdepth 1 -type f | wc -l)
  linked_copy "$WORK/$set" "$WORK/deface-in-$set"
  section "$set set: $ROUNDS rounds, $n images, one process per tool per round"
  for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then order=(deface blurgate); else order=(blurgate deface); fi
    for tool in "${order[@]}"; do
      line=$("run_$tool" "$set" "$n")
      wall=${line#wall_s=}
      wall=${wall%% *}
      rss=${line##*peak_rss_mib=}
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$set" "$r" "$tool" "$wall" "$rss" "$n" >>"$RESULTS"
      awk -v r="$r" -v t="$tool" -v n="$n" -v w="$wall" -v m="$rss" \
        'BEGIN { printf "round %d  %-8s  %7.2f s  %7.3f images/s  peak RSS %7.1f MiB\n", r, t, w, n / w, m }'
    done
  done
done

# --- recall --------------------------------------------------------------------------------------

section "recall on the annotated photos (IoU 0.5; coverage: faces >= 10 px at least 90% inside the masks)"
if [[ -n $WIDER && -f $WIDER/annotations.json ]]; then
  "$VPY" scripts/deface_boxes.py "$WORK/deface-wider.json" "$WIDER/images" >/dev/null
  echo "-- web set: WIDER FACE dev photos"
  "$VPY" scripts/eval_detection.py "$WIDER/annotations.json" \
    "blurgate ${ARGS[*]:-defaults}=$WORK/blurgate-web.json" "deface 1.5.0 defaults=$WORK/deface-wider.json"
fi
if [[ -s $WORK/large-annotations.json ]]; then
  composites=()
  for name in $("$VPY" -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))))' "$WORK/large-annotations.json"); do
    composites+=("$WORK/large/$name")
  done
  "$VPY" scripts/deface_boxes.py "$WORK/deface-large.json" "${composites[@]}" >/dev/null
  echo "-- large set: speaker-and-audience composites"
  "$VPY" scripts/eval_detection.py "$WORK/large-annotations.json" \
    "blurgate ${ARGS[*]:-defaults}=$WORK/blurgate-large.json" "deface 1.5.0 defaults=$WORK/deface-large.json"
fi

# --- summary -------------------------------------------------------------------------------------

section "summary ($ROUNDS rounds, medians)"
"$PYTHON" - "$RESULTS" "$WORK" <<'EOF'
import json
import os
import statistics
import sys

rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
for s in ("web", "large"):
    rate, rss = {}, {}
    for tool in ("deface", "blurgate"):
        mine = [r for r in rows if r[0] == s and r[2] == tool]
        n = int(mine[0][5])
        walls = [float(r[3]) for r in mine]
        rate[tool] = n / statistics.median(walls)
        rss[tool] = max(float(r[4]) for r in mine)
        print(f"{s:5s} {tool:9s} {rate[tool]:7.3f} images/s  (rounds: {', '.join(f'{n / w:.3f}' for w in walls)})"
              f"  peak RSS {rss[tool]:7.1f} MiB  ({n} images)")
    print(f"{s:5s} ratio blurgate / deface: {rate['blurgate'] / rate['deface']:.2f}x images/s,"
          f" {rss['blurgate'] / rss['deface']:.2f}x peak RSS")
    # Where blurgate's time went in its last round: inference (the report's per-file
    # detection.inference_ms, summed over the workers) against the whole pipeline's core time.
    report = json.load(open(f"{sys.argv[2]}/blurgate-{s}.json"))
    files = [f for f in report["files"] if f.get("detection")]
    infer = sum(f["detection"]["inference_ms"] for f in files) / 1000
    pixels = sum(f["detection"]["network_pixels"] for f in files) / max(len(files), 1) / 1e6
    wall = [float(r[3]) for r in rows if r[0] == s and r[2] == "blurgate"][-1]
    cores = os.cpu_count() or 1
    print(f"{s:5s} blurgate inference {infer:.1f} s of {wall:.1f} s x {cores} cores = {infer / (wall * cores):.0%} of the"
          f" pipeline's time ({infer / max(len(files), 1) * 1000:.0f} ms, {pixels:.2f} network Mpx a photo)")
EOF

# --- stages --------------------------------------------------------------------------------------

if [[ ${STAGES:-0} == 1 ]]; then
  section "large set: inference only (ONNX Runtime alone on blurgate's network inputs) and stages"
  "$INFERENCE" --rounds 3 --stages "$WORK/large"
fi

# --- memory --------------------------------------------------------------------------------------

if [[ ${BENCH_MEMORY:-1} != 0 ]]; then
  section "memory: blurgate peak RSS by number of files"
  bash scripts/bench_memory.sh
fi
