# Benchmark: Ferry against skopeo + umoci and a bare curl | tar (see scripts/bench.py, docs/performance.md).
#   make bench          release build, 1 GiB / 20,000-file images, 5 repetitions (as root)
#   make bench-quick    release build, 64 MiB / 2,000-file images, 3 repetitions
#   make bench-log      release build, only the transparency-log rows (a log of 1,000,000 entries)
# Not part of `make test`: the release build alone is a full rebuild of the dependencies.
BENCH_SCRATCH ?= .build-bench

.PHONY: bench bench-quick bench-log bench-build

bench-build:
	nice -n 10 $(SWIFT) build -c release --scratch-path $(BENCH_SCRATCH) $(SWIFTFLAGS) --product ferry
	nice -n 10 $(SWIFT) build -c release --scratch-path $(BENCH_SCRATCH) $(SWIFTFLAGS) --product ferry-helper

bench: bench-build
	/usr/bin/python3 scripts/bench.py --build $(BENCH_SCRATCH)/release

bench-quick: bench-build
	BENCH_QUICK=1 /usr/bin/python3 scripts/bench.py --build $(BENCH_SCRATCH)/release

bench-log: bench-build
	/usr/bin/python3 scripts/bench.py --build $(BENCH_SCRATCH)/release --log-only
