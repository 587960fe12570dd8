import Foundation
import FerryCore
import FerryTrust
import FuzzSupport

/// Never fetches: the fuzz target only loads a trusted root.
struct NoFetcher: TUFFetcher {
    func fetch(_ url: String, maxLength: Int) async throws -> Data? { nil }
}

/// TUF metadata: the canonical-JSON parser and serializer, key parsing, and root loading and self-verification
/// (`TUFUpdater.init`, which reads `root.json` from its metadata directory).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    if let json = try? TUFJSON.parse(input) {
        if let canonical = try? json.canonicalBytes() {
            // Canonical form writes control characters raw (as securesystemslib does), which strict JSON
            // refuses; when it does parse again it must be a fixed point of parse + canonicalize.
            if let again = try? TUFJSON.parse(canonical), (try? again.canonicalBytes()) != canonical {
                fatalError("canonical JSON does not round-trip")
            }
        }
        _ = try? TUFKey(json: json)
    }
    let directory = fuzzScratch + "/tuf"
    do {
        try TUFUpdater.initialize(metadataDirectory: directory, trustedRoot: input)
        _ = try TUFUpdater(metadataDirectory: directory, metadataBaseURL: "http://127.0.0.1:9/", fetcher: NoFetcher(),
                           now: Date(timeIntervalSince1970: 1_700_000_000))
    } catch {}
    return 0
}

/// The entry point SwiftPM's link step names `main` (see Package.swift).
@_cdecl("fuzz_tuf_main")
public func fuzzMain_tuf(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
