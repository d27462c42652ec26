# Sourced by scripts/bench.sh and scripts/eval_detection.sh: deface 1.5.0 in .cache/bench-venv,
# every package pinned with == and by sha256 in scripts/bench-requirements.txt, installed from
# PyPI with --no-deps (so that list is the whole venv); rebuilt whenever the list changes.
# Needs PYTHON (CPython 3.11) and a die function; sets VENV and VPY.
VENV=.cache/bench-venv
REQUIREMENTS=scripts/bench-requirements.txt
if [[ ! -x $VENV/bin/deface ]] || ! cmp -s "$REQUIREMENTS" "$VENV/requirements.txt"; then
  printf 'setting up deface 1.5.0 in %s\n' "$VENV" >&2
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || die "the pinned wheels are for CPython 3.11; set PYTHON=python3.11"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  # PyPI only: no local wheel folders or extra indexes from the environment.
  env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
    "$VENV/bin/python" -m pip install --quiet --no-deps --only-binary :all: --require-hashes -r "$REQUIREMENTS" \
    || die "pip could not install $REQUIREMENTS"
  cp "$REQUIREMENTS" "$VENV/requirements.txt"
fi
VPY=$VENV/bin/python
[[ $("$VENV/bin/deface" --version) == 1.5.0 ]] || die "$VENV/bin/deface is not version 1.5.0"
