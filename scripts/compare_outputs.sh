#!/usr/bin/env bash
# Behaviour check for refactors: runs `redact` from two builds over the fixture photos with
# several option sets and compares every output file byte for byte and every report field
# (the new report may only add fields; timings are ignored).
#
#   bash scripts/compare_outputs.sh BEFORE [AFTER]
#
# BEFORE and AFTER are blurgate executables or git revisions (a revision is built once into
# target/compare/<rev>). AFTER defaults to target/release/blurgate. Exit 0 when identical.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

binary() {
  if [[ -x "$1" && -f "$1" ]]; then echo "$1"; return; fi
  local rev dir
  rev=$(git rev-parse --short "$1")
  dir="$ROOT/target/compare/$rev"
  if [[ ! -x "$dir/bin/blurgate" ]]; then
    rm -rf "$dir/src" && mkdir -p "$dir"
    git worktree add --detach "$dir/src" "$rev" >&2
    ln -s "$ROOT/models" "$dir/src/models"
    (cd "$dir/src" && CARGO_TARGET_DIR="$ROOT/target/compare/target" cargo build --release --quiet >&2)
    mkdir -p "$dir/bin" && cp "$ROOT/target/compare/target/release/blurgate" "$dir/bin/"
    git worktree remove --force "$dir/src" >&2
  fi
  echo "$dir/bin/blurgate"
}

BEFORE=$(binary "$1")
AFTER=$(binary "${2:-target/release/blurgate}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export BLURGATE_MODELS="$ROOT/models" BLURGATE_REGISTER_KEY=$(printf '%064d' 7)
INPUTS=(fixtures/photos fixtures/metadata)

# A register with one person, made once by BEFORE and used by both.
"$BEFORE" enroll --register "$WORK/reg.bgr" --id P-1 fixtures/photos/obama.jpg >/dev/null

SETS=(
  "defaults|"
  "pixelate-boxes-metadata|--style pixelate --boxes --keep-metadata"
  "fill-quality|--style fill --jpeg-quality 85 --mask-scale 1.5"
  "fast-int8|--speed fast --precision int8"
  "register|--register $WORK/reg.bgr"
  "register-consented-only|--register $WORK/reg.bgr --policy consented-only"
)
status=0
for set in "${SETS[@]}"; do
  name=${set%%|*}
  args=${set#*|}
  for which in before after; do
    bin=$BEFORE; [[ $which == after ]] && bin=$AFTER
    # shellcheck disable=SC2086
    # Same output path for both runs (the report names it); the run state goes with it.
    "$bin" -q redact "${INPUTS[@]}" --out "$WORK/out" --report "$WORK/$name-$which.json" $args || true
    mv "$WORK/out" "$WORK/$name-$which" && rm -rf "$WORK/.out.blurgate"
  done
  if diff <(cd "$WORK/$name-before" && find . -type f ! -name .blurgate-manifest.json -exec sha256sum {} + | sort -k2) \
          <(cd "$WORK/$name-after" && find . -type f ! -name .blurgate-manifest.json -exec sha256sum {} + | sort -k2) >"$WORK/diff"; then
    files=$(find "$WORK/$name-before" -type f | wc -l)
    echo "$name: $files output files identical"
  else
    echo "$name: OUTPUTS DIFFER"; cat "$WORK/diff"; status=1
  fi
  python3 - "$WORK/$name-before.json" "$WORK/$name-after.json" <<'PY' || status=1
import json, sys
before, after = (json.load(open(p)) for p in sys.argv[1:3])
IGNORED = {"seconds"}
problems = []
def walk(a, b, path):
    if isinstance(a, dict):
        if not isinstance(b, dict):
            problems.append(f"{path}: was an object"); return
        for k, v in a.items():
            if k in IGNORED: continue
            if k not in b: problems.append(f"{path}.{k}: field removed")
            else: walk(v, b[k], f"{path}.{k}")
    elif isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            problems.append(f"{path}: list changed"); return
        for i, (x, y) in enumerate(zip(a, b)): walk(x, y, f"{path}[{i}]")
    elif a != b:
        problems.append(f"{path}: {a!r} -> {b!r}")
walk(before, after, "report")
for p in problems[:20]: print("  report:", p)
if problems: print(f"  report: {len(problems)} difference(s)"); sys.exit(1)
print("  report: same fields and values (new fields allowed)")
PY
done
exit $status
