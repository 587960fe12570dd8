import FerryCLI

#if canImport(Glibc)
    import Glibc
#endif

exit(await Ferry.runMain())
