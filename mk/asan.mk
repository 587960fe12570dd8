# AddressSanitizer (docs/robustness.md): the whole suite once with -sanitize=address into .build-asan;
# fails on any ASan error or on a leak scripts/lsan.supp does not explain. As root; a clean build takes ~10 min.
.PHONY: asan
asan: deps
	scripts/asan.sh
