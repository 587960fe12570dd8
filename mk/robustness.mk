# Robustness (docs/robustness.md): the long crash loop. The same tests run with a few kills inside `make test`.
#   make stress                  60 helper kills during deploys (every fifth aimed at a step of the commit with
#                                strace) + agent kills during downloads (as root)
#   make stress STRESS_KILLS=200
STRESS_KILLS ?= 60

.PHONY: stress

stress: build
	$(SWIFT) build -c $(CONFIG) $(SWIFTFLAGS) --build-tests
	FERRY_STRESS_KILLS=$(STRESS_KILLS) FERRY_BUILD_DIR=$(CURDIR)/$(BUILD_DIR) \
		$(SWIFT) test -c $(CONFIG) $(SWIFTFLAGS) --skip-build --filter CrashConsistencyTests
