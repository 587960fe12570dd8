import Foundation

/// The fuzzer's input as `Data` (copied: the buffer is only valid during the call).
public func fuzzInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Data {
    Data(bytes: data, count: size)
}

/// A private directory for targets that need the file system, made once per process.
public let fuzzScratch: String = {
    let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
    var template = Array("\(base)/ferry-fuzz.XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress) }
    guard made != nil else {
        perror("mkdtemp")
        exit(2)
    }
    return String(cString: template)
}()
