import FerryCore
import FuzzSupport

/// The signed claim (parsed before and after its signature is checked).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = try? Claim(parsing: fuzzInput(data, size))
    return 0
}
