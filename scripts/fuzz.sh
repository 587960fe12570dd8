#!/bin/sh
# Builds Ferry's libFuzzer targets (Fuzz/) with -sanitize=fuzzer,address and runs each for SECONDS (default 60).
#
#     scripts/fuzz.sh [SECONDS] [TARGET...]      (default: every target below)
#
# Seeds come from Fuzz/corpus/<target>/ (committed, never written); what the fuzzer finds goes to
# .build-fuzz/corpus/<target>/, crashing inputs to .build-fuzz/artifacts/<target>/. Prints the executions per target
# (libFuzzer's stat::number_of_executed_units) and exits non-zero when any target crashed.
# FUZZ_CONFIG=debug builds faster; FUZZ_SKIP_BUILD=1 reuses the last build; FUZZ_JOBS is passed as -jobs/-workers.
set -eu
# A fatalError in a target is a crash for libFuzzer; the Swift backtracer only gets in ASan's way.
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}
cd "$(dirname "$0")/.."
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-fuzz-oci fuzz-claim fuzz-minisign fuzz-tuf fuzz-layer fuzz-note fuzz-checkpoint fuzz-tile fuzz-witness \
    fuzz-ferryrepo fuzz-logentry fuzz-chunked-toc}
config=${FUZZ_CONFIG:-release}
scratch=$PWD/.build-fuzz

if [ "${FUZZ_SKIP_BUILD:-0}" != 1 ]; then
    # Target by target: the whole package would also link Ferry's own executables with -sanitize=fuzzer, which
    # has no LLVMFuzzerTestOneInput to give them.
    for target in $targets; do
        nice -n 10 swift build --package-path Fuzz -c "$config" -Xswiftc -sanitize=fuzzer,address \
            --scratch-path "$scratch" --product "$target"
    done
fi
bin=$(swift build --package-path Fuzz -c "$config" --scratch-path "$scratch" --show-bin-path)

failed=""
summary=""
for target in $targets; do
    work=$scratch/corpus/$target
    artifacts=$scratch/artifacts/$target/
    log=$scratch/logs/$target.log
    mkdir -p "$work" "$artifacts" "$(dirname "$log")"
    echo "== $target: ${seconds}s (log: $log)"
    status=0
    rm -rf "$scratch/tmp" && mkdir -p "$scratch/tmp"   # the targets' scratch files (TMPDIR), removed afterwards
    TMPDIR=$scratch/tmp "$bin/$target" "$work" "Fuzz/corpus/$target" -max_total_time="$seconds" -print_final_stats=1 \
        -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$artifacts" >"$log" 2>&1 || status=$?
    rm -rf "$scratch/tmp"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
    line="$target: ${execs:-?} executions, $cov, exit $status"
    echo "$line"
    summary="$summary$line
"
    if [ "$status" != 0 ]; then
        failed="$failed $target"
        grep -E 'ERROR|SUMMARY|Fatal error|Test unit written' "$log" | head -n 20 || true
    fi
done
echo "== summary (${seconds}s per target)"
printf '%s' "$summary"
if [ -n "$failed" ]; then
    echo "crashed:$failed (inputs in $scratch/artifacts/)"
    exit 1
fi
