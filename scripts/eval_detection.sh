#!/usr/bin/env bash
# Detection recall of blurgate and deface 1.5.0 on the same annotated photos, in one run.
#
#   bash scripts/eval_detection.sh                       # blurgate at its defaults
#   bash scripts/eval_detection.sh --speed fast          # extra arguments go to blurgate redact
#   EVAL_DEFACE=0 bash scripts/eval_detection.sh ...     # skip deface (its numbers do not change)
#
# 1. WIDER FACE dev set (shared/fixtures/annotated/wider_dev: 55 crowd photos, official ground
#    truth): `blurgate redact` at the given settings and deface's own CenterFace at its
#    defaults (scripts/deface_boxes.py) over the same photos, timed; both reports scored by
#    scripts/eval_detection.py: recall easy / medium / hard at IoU 0.5, hard recall by face
#    height, false positives per photo and coverage (faces >= 10 px at least 90% inside the
#    redaction masks).
# 2. dlib_pascal_faces (43 hand-labelled faces): found and unmatched, by scripts/recall.py.
#
# A development tool, never run by CI: it needs ../shared (or SHARED=DIR) and says so and exits 0
# when it is absent. Builds blurgate unless EVAL_SKIP_BUILD=1; sets up deface in .cache/bench-venv
# (as scripts/bench.sh does). Everything it writes is under .cache/eval-detection/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON=${PYTHON:-python3}
BLURGATE=target/release/blurgate
WORK=.cache/eval-detection

say() { printf 'eval: %s\n' "$*"; }
die() { printf 'eval: error: %s\n' "$*" >&2; exit 1; }

SHARED=${SHARED:-}
if [[ -z $SHARED ]]; then
  for d in "$ROOT/../shared" /work/shared; do
    [[ -d $d/fixtures/annotated/wider_dev ]] && { SHARED=$d; break; }
  done
fi
WIDER=$SHARED/fixtures/annotated/wider_dev
DLIB=$SHARED/fixtures/annotated/dlib_pascal_faces
if [[ -z $SHARED || ! -f $WIDER/annotations.json ]]; then
  say "skipped: no shared/fixtures/annotated/wider_dev beside the project (set SHARED=DIR)"
  exit 0
fi

[[ -f models/manifest.json ]] || die "models/ missing: run bash scripts/setup.sh"
if [[ ${EVAL_SKIP_BUILD:-0} != 1 ]]; then
  cargo build --release --quiet --bin blurgate
fi
# shellcheck source=scripts/deface_venv.sh
source scripts/deface_venv.sh
mkdir -p "$WORK"

# run_blurgate NAME DIR ARGS...: redacts DIR into $WORK/NAME-out, report $WORK/NAME.json.
run_blurgate() {
  local name=$1 dir=$2
  shift 2
  rm -rf "$WORK/$name-out" "$WORK/.$name-out.blurgate"
  local start=$SECONDS
  "$BLURGATE" redact "$dir" --out "$WORK/$name-out" --fresh -q --report "$WORK/$name.json" "$@" \
    || [[ $? == 1 ]] || die "blurgate failed on $dir"
  echo $((SECONDS - start))
}

photos=$(find "$WIDER/images" -type f | wc -l)
say "blurgate redact ${*:-(defaults)} on $photos photos of $WIDER"
secs=$(run_blurgate wider "$WIDER/images" "$@")
say "blurgate: $secs s ($(awk -v n="$photos" -v s="$secs" 'BEGIN { printf "%.2f", n / (s > 0 ? s : 1) }') photos/s)"
tools=("blurgate ${*:-defaults}=$WORK/wider.json")
if [[ ${EVAL_DEFACE:-1} != 0 ]]; then
  start=$SECONDS
  "$VPY" scripts/deface_boxes.py "$WORK/wider-deface.json" "$WIDER/images" >/dev/null
  say "deface 1.5.0 (threshold 0.2, boxes only, no blur or write): $((SECONDS - start)) s"
  tools+=("deface 1.5.0 defaults=$WORK/wider-deface.json")
fi
echo
"$VPY" scripts/eval_detection.py "$WIDER/annotations.json" "${tools[@]}"

if [[ -f $DLIB/annotations.json ]]; then
  echo
  secs=$(run_blurgate dlib "$DLIB" "$@")
  printf '%-28s %s\n' "dlib_pascal_faces blurgate" "$("$PYTHON" scripts/recall.py "$DLIB/annotations.json" "$WORK/dlib.json" | tail -1)"
  if [[ ${EVAL_DEFACE:-1} != 0 ]]; then
    "$VPY" scripts/deface_boxes.py "$WORK/dlib-deface.json" "$DLIB" >/dev/null
    printf '%-28s %s\n' "dlib_pascal_faces deface" "$("$PYTHON" scripts/recall.py "$DLIB/annotations.json" "$WORK/dlib-deface.json" | tail -1)"
  fi
fi
