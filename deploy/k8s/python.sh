#!/usr/bin/env bash
# Runs a Python script of deploy/k8s with the pinned Kubernetes client, e.g.
#
#   bash deploy/k8s/python.sh deploy/k8s/validate.py deploy/k8s/*.yaml
#   bash deploy/k8s/python.sh deploy/k8s/local_job.py --help
#
# The venv (.cache/k8s-venv) is made once from deploy/k8s/requirements.txt (wheels from PyPI,
# every one checked by sha256) and made again when that file changes. Needs python3 3.11 with
# venv (as scripts/setup.sh does); PYTHON chooses another interpreter.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV=$ROOT/.cache/k8s-venv
REQUIREMENTS=$ROOT/deploy/k8s/requirements.txt
PYTHON=${PYTHON:-python3}

say() { printf 'k8s-venv: %s\n' "$*" >&2; }

want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
mkdir -p "$ROOT/.cache"
# One maker at a time (tests run side by side); the others wait, then find it made.
exec 9>"$ROOT/.cache/k8s-venv.lock"
flock 9
if [[ ! -x $VENV/bin/python || ! -f $VENV/.requirements-sha256 || $(<"$VENV/.requirements-sha256") != "$want" ]]; then
  say "making $VENV from deploy/k8s/requirements.txt"
  rm -rf -- "$VENV"
  "$PYTHON" -m venv "$VENV" || { say "$PYTHON -m venv failed (Debian: apt-get install python3-venv)"; exit 1; }
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 "$VENV/bin/python" -m pip install --quiet \
    --require-hashes --no-deps --only-binary :all: -r "$REQUIREMENTS" >&2 \
    || { rm -rf -- "$VENV"; say "pip could not install deploy/k8s/requirements.txt"; exit 1; }
  printf '%s' "$want" >"$VENV/.requirements-sha256"
fi
flock -u 9
exec 9>&-
exec "$VENV/bin/python" "$@"
