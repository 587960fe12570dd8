// Declarations only (see include/CLibFuzzer.h); the definitions come from libFuzzer (-sanitize=fuzzer).
#include "CLibFuzzer.h"
