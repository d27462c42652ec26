#!/usr/bin/env bash
# Ablation of the detector's passes and levers on the WIDER FACE dev photos: what each adds to
# recall (per level and per face height), false positives and coverage, and what it costs
# (detection time with the pipeline's thread budget, network input pixels, inference time).
# It decides the default plan (see README "Detection").
#
#   bash scripts/ablation.sh                 # every variant below
#   bash scripts/ablation.sh NAME...         # only these variants
#
# Detection alone is timed (photos decoded beforehand, best of 2 rounds after a warm-up, by
# examples/detect_ablation.rs); scripts/bench.sh times the whole pipeline against deface.
# A development tool, never run by CI: it needs ../shared (or SHARED=DIR) and says so and
# exits 0 when it is absent. Writes under .cache/ablation/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON=${PYTHON:-python3}
WORK=.cache/ablation
say() { printf 'ablation: %s\n' "$*"; }
die() { printf 'ablation: error: %s\n' "$*" >&2; exit 1; }

SHARED=${SHARED:-}
if [[ -z $SHARED ]]; then
  for d in "$ROOT/../shared" /work/shared; do
    [[ -d $d/fixtures/annotated/wider_dev ]] && { SHARED=$d; break; }
  done
fi
WIDER=${SHARED:+$SHARED/fixtures/annotated/wider_dev}
if [[ -z $WIDER || ! -f $WIDER/annotations.json ]]; then
  say "skipped: no shared/fixtures/annotated/wider_dev beside the project (set SHARED=DIR)"
  exit 0
fi
[[ -f models/manifest.json ]] || die "models/ missing: run bash scripts/setup.sh"
cargo build --release --quiet --example detect_ablation
# shellcheck source=scripts/deface_venv.sh
source scripts/deface_venv.sh

# name|arguments
VARIANTS=(
  "fast|--speed fast"
  "balanced (default)|"
  "balanced, zoomed tiles|--zoom tiles"
  "balanced, no mirror|--no-mirror"
  "balanced, no half|--no-half"
  "balanced, no x2|--no-zoom2"
  "balanced, no x3|--no-zoom3"
  "balanced, fp32|--precision fp32"
  "balanced, int8|--precision int8"
  "thorough|--speed thorough"
)
mkdir -p "$WORK"
scored=()
for v in "${VARIANTS[@]}"; do
  name=${v%%|*}
  args=${v#*|}
  if (($#)); then
    wanted=0
    for w in "$@"; do [[ $name == "$w" ]] && wanted=1; done
    ((wanted)) || continue
  fi
  file=$WORK/$(printf '%s' "$name" | tr -c 'A-Za-z0-9' '_').json
  # shellcheck disable=SC2086 # the variant's arguments are words
  line=$(target/release/examples/detect_ablation $args --report "$file" "$WIDER/images")
  say "$name: ${line#detect_ablation: }"
  scored+=("$name=$file")
done
echo
"$VPY" scripts/eval_detection.py "$WIDER/annotations.json" "${scored[@]}"
