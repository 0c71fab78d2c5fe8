#!/usr/bin/env bash
# Runs spool's fuzzing targets (fuzz/fuzz_targets/) with cargo-fuzz
# (libFuzzer), each for a bounded time, and prints what each did. Not part
# of CI: people run it, and record the hours and the crashes in
# docs/testing.md.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]
#
# SECONDS_PER_TARGET defaults to 600; the targets to all four:
# record_batch, produce_validation, kafka_request, segment_recovery. Needs
# a nightly toolchain (installed with rustup when missing) and cargo-fuzz
# (installed when missing). Corpora grow under fuzz/corpus/<target>/ and
# carry over between runs; a crash leaves its input under
# fuzz/artifacts/<target>/ and stops that target (the script goes on with
# the next one and exits non-zero at the end). Each crash fixed is kept as
# a regression test in the crate it was found in.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh

seconds=${1:-600}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(record_batch produce_validation kafka_request segment_recovery)

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

failed=()
mkdir -p fuzz/logs
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    echo "== $target: $seconds s" >&2
    # No sanitizer: the code under test is safe Rust, whose faults are
    # panics (overflow checks stay on), and ASan would halve the runs.
    start=$(date +%s)
    if ! (cd fuzz && cargo +nightly fuzz run -s none "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1 \
        >"logs/$target.log" 2>&1); then
        failed+=("$target")
    fi
    end=$(date +%s)
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/logs/$target.log" | grep -o '[0-9]*$' || echo "?")
    corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
    echo "$target: $((end - start)) s, $runs runs, corpus $corpus inputs, log fuzz/logs/$target.log" >&2
done
if ((${#failed[@]})); then
    echo "crashed: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
