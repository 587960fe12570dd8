import CLibFuzzer
import Foundation

/// Runs libFuzzer with `callback` as `LLVMFuzzerTestOneInput`; what each target's `<module>_main` returns.
public func runFuzzer(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, callback)
}

/// The fuzzer's input as `Data` (copied: the buffer is only valid during the call).
public func fuzzInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Data {
    Data(bytes: data, count: size)
}

/// A private directory for targets that need the file system, made once per process (removed beforehand if a
/// process with the same id left one behind).
public let fuzzScratch: String = {
    let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
    let path = "\(base)/ferry-fuzz.\(getpid())"
    try? FileManager.default.removeItem(atPath: path)
    guard mkdir(path, 0o700) == 0 else {
        perror("mkdir \(path)")
        exit(2)
    }
    return path
}()
