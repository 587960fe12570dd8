# libFuzzer targets (Fuzz/, docs/fuzzing.md): builds with -sanitize=fuzzer,address into .build-fuzz and runs each
# target for FUZZ_SECONDS.
FUZZ_SECONDS ?= 300

.PHONY: fuzz
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)
