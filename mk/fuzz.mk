# libFuzzer targets (Fuzz/, docs/fuzzing.md): builds with -sanitize=fuzzer,address into .build-fuzz and runs each
# target for FUZZ_SECONDS (every target unless FUZZ_TARGETS names some: `make fuzz FUZZ_TARGETS=fuzz-ferryrepo`).
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?=

.PHONY: fuzz
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)
