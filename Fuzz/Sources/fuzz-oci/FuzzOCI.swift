import FerryCore
import FuzzSupport

/// OCI JSON: manifest, index and config parsers (everything a remote or an image layout serves).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    _ = try? Manifest.parse(input)
    _ = try? ImageIndex.parse(input)
    _ = try? ImageConfig.parse(input)
    return 0
}

/// The entry point SwiftPM's link step names `main` (see Package.swift).
@_cdecl("fuzz_oci_main")
public func fuzzMain_oci(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
