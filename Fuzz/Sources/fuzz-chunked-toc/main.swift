import FerryArchive
import FerryCore
import Foundation
import FuzzSupport

/// The zstd:chunked TOC (DESIGN.md, "Chunked layers and the object store"): the input as the TOC's JSON (ranges
/// bounded by a TOC at 1 GiB in a 2 GiB blob), and as its compressed bytes with a matching checksum (the zstd frame
/// reader, which must stop at the announced size). What parses must keep its promises: files in order, before the
/// TOC, chunks covering each file exactly.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    if let toc = try? ChunkedTOC(json: input, tocOffset: 1 << 30, blobSize: 1 << 31) {
        var end: UInt64 = 0
        for file in toc.files {
            guard file.range.lowerBound >= end, file.range.upperBound <= 1 << 30,
                file.chunks.first?.offset == 0,
                zip(file.chunks, file.chunks.dropFirst()).allSatisfy({ $0.offset + $0.size == $1.offset }),
                let last = file.chunks.last, last.offset + last.size == file.size
            else { fatalError("a TOC that parsed breaks its own rules: \(file)") }
            end = file.range.upperBound
        }
    }
    let position = ChunkedTOC.Position(offset: 1 << 20, length: UInt64(input.count), uncompressedLength: 1 << 16)
    _ = try? ChunkedTOC(compressed: input, position: position, checksum: Digest.of(input), blobSize: 1 << 31)
    return 0
}

/// The entry point SwiftPM's link step names `main` (see Package.swift).
@_cdecl("fuzz_chunked_toc_main")
public func fuzzMain_chunkedTOC(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
