import FerryLog
import Foundation
import FuzzSupport

/// Tiles and entries (c2sp.org/tlog-tiles): tile paths, hash tiles, entry bundles and release entries. The first
/// input byte picks a width, so bundles and tiles of every width are tried.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    guard let first = input.first else { return 0 }
    let rest = input.dropFirst()
    let width = Int(first) + 1
    _ = try? Tile(path: String(decoding: rest, as: UTF8.self))
    if let tile = try? Tile(level: Int(first % 4), index: 0, width: width) { _ = try? tile.decodeHashes(Data(rest)) }
    if let bundle = try? EntryBundle.decode(Data(rest), count: width, what: "fuzz") {
        for entry in bundle { _ = try? LogEntry(parsing: entry) }
    }
    _ = try? LogEntry(parsing: Data(rest))
    return 0
}

/// The entry point SwiftPM's link step names `main` (see Package.swift).
@_cdecl("fuzz_tile_main")
public func fuzzMain_tile(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
