import Foundation
import FerryArchive
import FerryCore
import FuzzSupport

let limits = ExtractionLimits(maxEntrySize: 1 << 20, maxTotalSize: 4 << 20, maxEntries: 256, maxPathLength: 1024)
let anyDiffID: Digest? = try? Digest(parsing: "sha256:" + String(repeating: "0", count: 64))

/// Layer extraction: the input is a layer blob (gzip when it starts with the gzip magic, plain tar otherwise),
/// extracted as the current user into a fresh directory with small limits, then removed.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let anyDiffID else { fatalError("diff id does not parse") }
    let blobPath = fuzzScratch + "/layer"
    let rootPath = fuzzScratch + "/root"
    let compression: LayerCompression = size >= 2 && data[0] == 0x1f && data[1] == 0x8b ? .gzip : .none
    guard FileManager.default.createFile(atPath: blobPath, contents: fuzzInput(data, size)) else {
        fatalError("cannot write \(blobPath)")
    }
    let fd = open(blobPath, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { fatalError("cannot open \(blobPath)") }
    defer { close(fd) }
    do {
        try LayerExtractor.removeTree(rootPath)
        guard mkdir(rootPath, 0o755) == 0 else { fatalError("cannot create \(rootPath)") }
        let target = try DirectoryHandle(path: rootPath)
        let extractor = LayerExtractor(target: target, limits: limits, ownership: .currentUser)
        // The diff id never matches, so every input ends in an error, but only after the whole stream
        // has been extracted.
        _ = try? extractor.apply(layerFD: fd, compression: compression, diffID: anyDiffID)
        try LayerExtractor.removeTree(rootPath)
    } catch {
        fatalError("fuzz harness: \(error)")
    }
    return 0
}

/// The entry point SwiftPM's link step names `main` (see Package.swift).
@_cdecl("fuzz_layer_main")
public func fuzzMain_layer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
