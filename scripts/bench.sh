#!/usr/bin/env bash
# blurgate against deface 1.5.0, in one run, on the same photos and the same machine.
#
#   bash scripts/bench.sh              # 3 rounds
#   ROUNDS=5 bash scripts/bench.sh
#   COPIES=8 bash scripts/bench.sh     # steady state on the set 8 times over (default 4)
#
# 1. Sets up deface 1.5.0 in .cache/bench-venv (every package pinned with == and by sha256 in
#    scripts/bench-requirements.txt, installed from PyPI with --no-deps).
# 2. Image set (.cache/bench/set): the fixture photos plus a 12-megapixel Lanczos upscale of each
#    (scripts/bench_images.py), the size of an event photo.
# 3. ROUNDS rounds, alternating the tools (and which goes first): each tool processes the whole
#    set in one process per round, at its default settings, writing every output file:
#      deface DIR                    (thresh 0.2, mask-scale 1.3, blur, full resolution; writes
#                                     NAME_anonymized.EXT beside each input, in a linked copy)
#      blurgate redact DIR --out OUT --fresh -q --report R.json
#    Wall time and peak RSS come from scripts/bench_measure.py (getrusage of the child).
#    Prints images/s and peak RSS of each, and the ratio blurgate / deface (medians).
#    blurgate also runs on the set COPIES times over (default 4; each photo under COPIES names)
#    in each round: the extra time is what the other (COPIES - 1) x N photos cost once start-up,
#    model loading and the sessions' first inferences (ONNX Runtime's memory arena growing to
#    the largest input) are paid, its steady-state rate. (With the set only twice over, that
#    difference was about a second and one hiccup of the machine moved a round by 30 points.)
# 4. Inference-only rate (examples/inference_rate.rs): ONNX Runtime alone on the network input
#    shapes blurgate runs for the same photos, with the pipeline's threads, after a warm-up
#    (first inference per shape) that is not timed, the median of 3 passes over the set,
#    measured in every round beside the
#    pipeline's runs (this machine's speed drifts between minutes); pipeline efficiency =
#    pipeline rate / inference-only rate of the same round, median of rounds, printed for the
#    whole run (start-up and warm-up included) and for the steady state. Also a per-stage
#    breakdown by photo size.
# 5. Recall on the hand-labelled set in shared/fixtures/annotated/dlib_pascal_faces (when
#    present; ANNOTATED=DIR to point elsewhere): blurgate defaults vs deface defaults
#    (scripts/deface_boxes.py), scored by scripts/recall.py.
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
COPIES=${COPIES:-4}
MEGAPIXELS=${MEGAPIXELS:-12}
PYTHON=${PYTHON:-python3}
WORK=.cache/bench
BLURGATE=target/release/blurgate
INFERENCE=target/release/examples/inference_rate

say() { printf 'bench: %s\n' "$*"; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
section() { printf '\n== %s ==\n' "$*"; }

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number (got '$ROUNDS')"
[[ $COPIES =~ ^[0-9]+$ ]] && ((COPIES >= 2)) || die "COPIES must be a number of at least 2 (got '$COPIES')"

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

# --- image set -----------------------------------------------------------------------------------

section "image set"
shopt -s nullglob
sources=(fixtures/photos/*.jpg fixtures/photos/*.jpeg fixtures/photos/*.png)
shopt -u nullglob
((${#sources[@]} > 0)) || die "no photos in fixtures/photos: run bash scripts/setup.sh"
mkdir -p "$WORK"
SET=$WORK/set
"$VPY" scripts/bench_images.py "$SET" "${sources[@]}" --megapixels "$MEGAPIXELS"
N=$(find "$SET" -maxdepth 1 -type f | wc -l)
say "$N images: ${#sources[@]} fixture photos + ${#sources[@]} renditions of ${MEGAPIXELS} MP"

# deface writes NAME_anonymized.EXT beside its inputs (its -o names one output file, not a
# folder), so it reads a linked copy of the set.
DEFACE_IN=$WORK/deface-in
rm -rf "$DEFACE_IN"
mkdir -p "$DEFACE_IN"
for f in "$SET"/*; do
  ln "$f" "$DEFACE_IN/" 2>/dev/null || cp "$f" "$DEFACE_IN/"
done
BLURGATE_OUT=$WORK/blurgate-out
# The set COPIES times over, for blurgate's steady-state rate.
REPEATED=$WORK/set-repeated
rm -rf "$REPEATED"
mkdir -p "$REPEATED"
for f in "$SET"/*; do
  for ((copy = 1; copy <= COPIES; copy++)); do
    ln "$f" "$REPEATED/${copy}_${f##*/}" 2>/dev/null || cp "$f" "$REPEATED/${copy}_${f##*/}"
  done
done

run_deface() {
  find "$DEFACE_IN" -name '*_anonymized.*' -delete
  "$PYTHON" scripts/bench_measure.py "$WORK/deface.log" -- "$VENV/bin/deface" "$DEFACE_IN" \
    || die "deface failed (see $WORK/deface.log)"
  local written
  written=$(find "$DEFACE_IN" -name '*_anonymized.*' | wc -l)
  ((written == N)) || die "deface wrote $written of $N files (see $WORK/deface.log)"
}

# run_blurgate [DIR COUNT]: the set, or DIR holding COUNT photos.
run_blurgate() {
  local dir=${1:-$SET} count=${2:-$N}
  rm -rf "$BLURGATE_OUT" "$WORK/.blurgate-out.blurgate"
  "$PYTHON" scripts/bench_measure.py "$WORK/blurgate.log" -- \
    "$BLURGATE" redact "$dir" --out "$BLURGATE_OUT" --fresh -q --report "$WORK/blurgate-report.json" \
    || die "blurgate failed (see $WORK/blurgate.log)"
  local written
  written=$(find "$BLURGATE_OUT" -type f | wc -l)
  ((written == count)) || die "blurgate wrote $written of $count files (see $WORK/blurgate.log)"
}

# --- rounds --------------------------------------------------------------------------------------

section "pipeline: $ROUNDS rounds, $N images, one process per tool per round (x$COPIES: blurgate on the set $COPIES times over)"
: >"$WORK/deface.log"
: >"$WORK/blurgate.log"
RESULTS=$WORK/results.tsv
: >"$RESULTS"
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then order=(deface blurgate); else order=(blurgate deface); fi
  for tool in "${order[@]}" "x$COPIES"; do
    if [[ $tool == "x$COPIES" ]]; then
      line=$(run_blurgate "$REPEATED" $((COPIES * N)))
      n=$((COPIES * N))
    else
      line=$("run_$tool")
      n=$N
    fi
    wall=${line#wall_s=}
    wall=${wall%% *}
    rss=${line##*peak_rss_mib=}
    printf '%s\t%s\t%s\t%s\n' "$r" "$tool" "$wall" "$rss" >>"$RESULTS"
    awk -v r="$r" -v t="$tool" -v n="$n" -v w="$wall" -v m="$rss" \
      'BEGIN { printf "round %d  %-8s  %7.2f s  %7.3f images/s  peak RSS %7.1f MiB  (%d images)\n", r, t, w, n / w, m, n }'
  done
  # The inference-only rate in the same round: this machine's speed drifts by 10-20% between
  # minutes, so efficiency is taken round by round, against the pipeline's runs beside it.
  "$INFERENCE" --rounds 3 "$SET" >"$WORK/inference-round.txt"
  rate=$(sed -n 's/^inference-only rate: median \([0-9.]*\) images.*/\1/p' "$WORK/inference-round.txt")
  [[ -n $rate ]] || die "no rate in the output of $INFERENCE (see $WORK/inference-round.txt)"
  printf '%s\t%s\t%s\t%s\n' "$r" infer "$(awk -v n="$N" -v x="$rate" 'BEGIN { print n / x }')" 0 >>"$RESULTS"
  printf 'round %d  %-8s  %7.2f s  %7.3f images/s  (ONNX Runtime alone, warmed up)\n' "$r" infer "$(awk -v n="$N" -v x="$rate" 'BEGIN { print n / x }')" "$rate"
done

# --- stages --------------------------------------------------------------------------------------

section "inference only: network inputs and a per-stage breakdown"
"$INFERENCE" --rounds 1 --stages "$SET" | tee "$WORK/inference.txt"

section "summary ($N images, $ROUNDS rounds, medians)"
"$PYTHON" - "$RESULTS" "$N" "$WORK/blurgate-report.json" "$COPIES" <<'EOF'
import json
import statistics
import sys

results, n, report, k = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
many = f"x{k}"
rows = [line.split("\t") for line in open(results).read().splitlines()]
rate, rss = {}, {}
for tool in ("deface", "blurgate"):
    walls = [float(w) for _, t, w, _ in rows if t == tool]
    rate[tool] = n / statistics.median(walls)
    rss[tool] = max(float(m) for _, t, _, m in rows if t == tool)
    spread = (max(walls) - min(walls)) / statistics.median(walls)
    print(f"{tool:9s} {rate[tool]:7.3f} images/s  (rounds: {', '.join(f'{n / w:.3f}' for w in walls)};"
          f" spread {spread:.0%})  peak RSS {rss[tool]:7.1f} MiB")
print(f"ratio blurgate / deface: {rate['blurgate'] / rate['deface']:.2f}x images/s,"
      f" {rss['blurgate'] / rss['deface']:.2f}x peak RSS")
walls = {(rd, t): float(w) for rd, t, w, _ in rows}
rounds = sorted({rd for rd, _ in walls})
infer = [n / walls[(rd, "infer")] for rd in rounds]
print(f"blurgate inference-only: {statistics.median(infer):.3f} images/s"
      f" (rounds: {', '.join(f'{x:.3f}' for x in infer)})")
# Efficiency round by round (pipeline rate / inference-only rate of the same round), then the
# median: the steady state is the photos of the repeated set beyond its first N. With a run's
# time t(m) = fixed + m / steady for m photos: fixed = (k t(N) - t(kN)) / (k - 1).
whole = [n / walls[(rd, "blurgate")] / x for rd, x in zip(rounds, infer)]
steady = [(k - 1) * n / (walls[(rd, many)] - walls[(rd, "blurgate")]) for rd in rounds]
fixed = statistics.median((k * walls[(rd, "blurgate")] - walls[(rd, many)]) / (k - 1) for rd in rounds)
print(f"pipeline efficiency, whole run: {statistics.median(whole):.0%}"
      f" (rounds: {', '.join(f'{e:.0%}' for e in whole)}; pipeline rate / inference-only rate)")
print(f"pipeline efficiency, steady state: {statistics.median(s / x for s, x in zip(steady, infer)):.0%}"
      f" (rounds: {', '.join(f'{s / x:.0%}' for s, x in zip(steady, infer))});"
      f" steady rate {statistics.median(steady):.3f} images/s ((k - 1) N / (time for kN - time for N), k = {k})")
print(f"fixed cost per run {fixed:.2f} s (start-up, model loading, the sessions' first inferences:"
      " ONNX Runtime's memory arena growing to the largest input)")
# blurgate's own per-file timing (last round, the repeated set): time in the workers vs the rest.
r = json.load(open(report))
files = r["files"]
last_wall = walls[(rounds[-1], many)]
by_class = {}
for f in files:
    big = (f.get("width") or 0) * (f.get("height") or 0) > 8_000_000
    by_class.setdefault("over 8 MP" if big else "up to 8 MP", []).append(f["seconds"])
print("blurgate last round: " + "; ".join(
    f"{k} {1000 * statistics.mean(v):.0f} ms per photo per worker ({len(v)} photos)" for k, v in sorted(by_class.items())))
print(f"blurgate last round: run {r['summary']['seconds']:.2f} s of {last_wall:.2f} s wall"
      f" (outside it: process start, report writing, exit: {last_wall - r['summary']['seconds']:.2f} s)")
EOF

# --- recall --------------------------------------------------------------------------------------

ANNOTATED=${ANNOTATED:-}
if [[ -z $ANNOTATED ]]; then
  for d in "$ROOT/../shared" "$ROOT/shared" /work/shared; do
    if [[ -f $d/fixtures/annotated/dlib_pascal_faces/annotations.json ]]; then
      ANNOTATED=$d/fixtures/annotated/dlib_pascal_faces
      break
    fi
  done
fi
if [[ -n $ANNOTATED && -f $ANNOTATED/annotations.json ]]; then
  section "recall on $ANNOTATED (hand-labelled faces)"
  rm -rf "$WORK/recall-out" "$WORK/.recall-out.blurgate"
  "$BLURGATE" redact "$ANNOTATED" --out "$WORK/recall-out" --fresh -q --report "$WORK/recall-blurgate.json"
  "$VPY" scripts/deface_boxes.py "$WORK/recall-deface.json" "$ANNOTATED" >/dev/null
  echo "-- blurgate (defaults: threshold 0.3, max-side 1280, tiles auto)"
  "$PYTHON" scripts/recall.py "$ANNOTATED/annotations.json" "$WORK/recall-blurgate.json"
  echo "-- deface (defaults: threshold 0.2, full resolution)"
  "$PYTHON" scripts/recall.py "$ANNOTATED/annotations.json" "$WORK/recall-deface.json"
else
  section "recall: skipped (no shared/fixtures/annotated/dlib_pascal_faces; set ANNOTATED=DIR)"
fi

# --- memory --------------------------------------------------------------------------------------

if [[ ${BENCH_MEMORY:-1} != 0 ]]; then
  section "memory: blurgate peak RSS by number of files"
  bash scripts/bench_memory.sh
fi
