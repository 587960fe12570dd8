#!/bin/bash
# Runs the whole test suite once under AddressSanitizer, as `make test` does but with every target,
# the helper and the agent built with -sanitize=address into .build-asan. The helper and the agents the tests
# start get the same options (FerryTestSupport's `Sanitizer`), and each process writes its report to
# $ASAN_LOGS/asan.PID. Fails on any AddressSanitizer error and on any leak that scripts/lsan.supp does not explain.
# Run as root, like `make test`. Usage: scripts/asan.sh [swift test arguments, e.g. --filter X]
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=.build-asan
logs=${ASAN_LOGS:-/tmp/ferry-asan}
flags=(-Xswiftc -sanitize=address --scratch-path "$scratch")

swift build "${flags[@]}" --product ferry
swift build "${flags[@]}" --product ferry-helper
swift build "${flags[@]}" --build-tests

rm -rf "$logs"
mkdir -p "$logs"
chmod 1777 "$logs"   # the agents run as unprivileged users and write their reports here too
status=0
ASAN_OPTIONS="detect_leaks=1:log_path=$logs/asan" \
LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0" \
FERRY_BUILD_DIR="$PWD/$scratch/debug" \
    swift test "${flags[@]}" --skip-build "$@" || status=$?

reports=$(grep -l -E "ERROR: (AddressSanitizer|LeakSanitizer)" "$logs"/asan.* 2>/dev/null || true)
if [ -n "$reports" ]; then
    for report in $reports; do
        echo "== $report"
        head -c 20000 "$report"
    done
    echo "asan: $(echo "$reports" | wc -l) process(es) reported errors or leaks (logs in $logs)" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "asan: the tests failed (exit $status)" >&2
    exit "$status"
fi
echo "asan: the suite passed; no AddressSanitizer error and no unexplained leak in any process"
