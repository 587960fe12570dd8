import FerryCore
import FuzzSupport

/// The signed claim (parsed before and after its signature is checked).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = try? Claim(parsing: fuzzInput(data, size))
    return 0
}

/// The entry point SwiftPM's link step names `main` (see Package.swift).
@_cdecl("fuzz_claim_main")
public func fuzzMain_claim(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
