#!/usr/bin/env bash
# Bounded fuzzing of blurgate's untrusted-input paths (not run by CI).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]        (default 300)
#
# Targets (fuzz/fuzz_targets/):
#   decode_preprocess  bytes -> media::decode (4096 px, 64 MiB limits) -> detect::to_chw,
#                      plus media::jpeg::markers::is_complete (a custom mutator re-computes PNG chunk
#                      CRCs so mutated PNGs get past the CRC check)
#   register_open      bytes -> register::store::open with a fixed key; or, first byte odd,
#                      plaintext register JSON -> seal -> open round trip
#   jpeg_rewrite       bytes -> media::jpeg::preview (libjpeg-turbo reduced decode) ->
#                      media::jpeg::rewrite with a face over the middle -> decode again
#                      (seeded from decode_preprocess's seeds)
#
# Environment:
#   FUZZ_TARGETS   targets to run, space-separated (default: all three)
#   FUZZ_PARALLEL  1: run the targets at the same time, one worker each (default: one after
#                  the other)
#   FUZZ_KEEP_GOING 1: do not stop at the first finding (libFuzzer -fork=1 with
#                  -ignore_crashes/-ignore_timeouts/-ignore_ooms); for long runs
#   FUZZ_ARGS      extra libFuzzer flags, e.g. "-max_len=65536"
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++ compiler. On a stable
# toolchain RUSTC_BOOTSTRAP=1 is set so that cargo-fuzz's -Z flags are accepted.
# Builds with AddressSanitizer, debug assertions and overflow checks (cargo fuzz defaults).
# Inputs grow in fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET); crashes, timeouts and
# out-of-memory inputs land in fuzz/artifacts/TARGET; logs in fuzz/logs/TARGET.log. Minimise
# a finding with `cargo fuzz tmin TARGET fuzz/artifacts/TARGET/FILE`, copy it into
# tests/fuzz_inputs/TARGET/ and `cargo test --test fuzz_regressions` keeps it fixed.
# Exits 1 when any target left a finding.
set -euo pipefail

secs="${1:-300}"
case "$secs" in '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2 ;; esac
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
targets=(${FUZZ_TARGETS:-decode_preprocess register_open jpeg_rewrite})
extra=(${FUZZ_ARGS:-})
keep_going=()
if [ "${FUZZ_KEEP_GOING:-0}" = 1 ]; then
    # One child process at a time; a crash, timeout or OOM is saved and fuzzing goes on.
    keep_going=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
    exit 2
fi
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

echo "== building fuzz targets (ASan, debug assertions)"
cargo fuzz build

mkdir -p fuzz/logs
run_one() {
    local t="$1"
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    local seeds="fuzz/seeds/$t"
    [ -d "$seeds" ] || seeds=fuzz/seeds/decode_preprocess
    local start end
    start=$(date +%s)
    # -timeout: one input taking longer is a finding; -rss_limit_mb: so is a process over 2 GiB.
    cargo fuzz run "$t" "fuzz/corpus/$t" "$seeds" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
        "${keep_going[@]}" "${extra[@]}" >"fuzz/logs/$t.log" 2>&1 || true
    end=$(date +%s)
    echo "$((end - start))" >"fuzz/logs/$t.wall"
}

before=$(mktemp)
trap 'rm -f "$before"' EXIT
for t in "${targets[@]}"; do ls "fuzz/artifacts/$t" 2>/dev/null | sed "s|^|$t/|"; done >"$before" || true

if [ "${FUZZ_PARALLEL:-0}" = 1 ]; then
    echo "== fuzzing ${targets[*]} for ${secs}s each, in parallel"
    pids=()
    for t in "${targets[@]}"; do run_one "$t" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p"; done
else
    for t in "${targets[@]}"; do
        echo "== fuzzing $t for ${secs}s"
        run_one "$t"
    done
fi

echo
echo "== summary"
printf '%-18s %12s %8s %8s %8s %8s %7s  %s\n' target executions exec/s cov ft corpus wall_s findings
found=0
for t in "${targets[@]}"; do
    log="fuzz/logs/$t.log"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
    wall=$(cat "fuzz/logs/$t.wall")
    # -fork mode prints no final stats: executions from its last status line.
    [ -n "$speed" ] || { [ -n "$runs" ] && [ "$wall" -gt 0 ] && speed=$((runs / wall)); } || true
    new=$(ls "fuzz/artifacts/$t" 2>/dev/null | sed "s|^|$t/|" | grep -vxF -f "$before" || true)
    n=$(grep -c . <<<"$new" || true)
    printf '%-18s %12s %8s %8s %8s %8s %7s  %s\n' "$t" "${runs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" \
        "${corp:-?}" "$wall" "$n"
    if [ "$n" -gt 0 ]; then
        found=1
        sed 's|^|    fuzz/artifacts/|' <<<"$new"
        grep -m1 -E '^==[0-9]+== ?ERROR|panicked at|^SUMMARY' "$log" | sed 's/^/    /' || true
    fi
done
if [ "$found" = 1 ]; then
    echo "findings above: see fuzz/logs/TARGET.log for the stack"
    exit 1
fi
echo "no crash, timeout or out-of-memory input found"
