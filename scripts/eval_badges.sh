#!/usr/bin/env bash
# Badges on redacted people, measured (scripts/eval_badges.py does the work):
#
#   bash scripts/eval_badges.sh              # the dev photos below
#   bash scripts/eval_badges.sh PHOTO...     # other photos
#
# Dev photos: fixtures/photos and, when ../shared is there, its group and street photos and the
# 55 annotated crowd photos of shared/fixtures/annotated/wider_dev. On each, a name card (white,
# DejaVu Sans Bold, letters 8 to 40 px) is drawn on a lanyard line below every face that has
# room for one; blurgate redacts it with --policy all; Tesseract (Debian's tesseract-ocr, an
# independent reader) reads every card before and after. Then again with a register holding
# Barack Obama (enrolled from fixtures/photos/obama.jpg): his cards must change, every
# stranger's card must keep every pixel. Prints, per photo and in all: names read before, names
# still read after (target 0), cards changed, strangers' cards untouched, and the text
# detector's inference time against the face detector's on the same photo (target <= 15%).
# Writes $EVAL_OUT/summary.json (default .cache/eval_badges).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT=${EVAL_OUT:-.cache/eval_badges}
PYTHON=.cache/venv/bin/python # Pillow for drawing the cards (scripts/setup.sh installs it)

command -v tesseract >/dev/null || { echo "eval_badges: tesseract missing (apt-get install tesseract-ocr)" >&2; exit 2; }
[[ -x $PYTHON ]] || { echo "eval_badges: run scripts/setup.sh first ($PYTHON)" >&2; exit 2; }
[[ -x target/release/blurgate ]] || cargo build --release

photos=("$@")
if (( ${#photos[@]} == 0 )); then
  photos=(fixtures/photos/*.jpg fixtures/photos/*.png)
  shared=../shared/fixtures
  if [[ -d $shared ]]; then
    photos+=("$shared"/photos/known_licence/*.jpg "$shared"/photos/known_licence/*.png)
    photos+=("$shared"/annotated/wider_dev/images/*.jpg)
  fi
fi

rm -rf -- "$OUT"
mkdir -p "$OUT/register"
# The register's key lives apart from it, in a key store of this evaluation's own.
export BLURGATE_KEY_DIR=$OUT/keys
register=$OUT/register/optouts.reg
target/release/blurgate enroll --register "$register" --id P-1 -q fixtures/photos/obama.jpg
"$PYTHON" -W ignore scripts/eval_badges.py "$OUT/run" "${photos[@]}" --register "$register"
