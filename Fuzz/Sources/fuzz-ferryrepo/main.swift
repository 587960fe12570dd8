import FerryCore
import FerryLog
import FerryTrust
import Foundation
import FuzzSupport

/// LeakSanitizer's built-in suppressions (the runtime calls this weak hook when it first checks for leaks). TOMLKit
/// never frees some of what it allocates for a parse or an encode (`RemoteStore` in FerryCore says so, and caches
/// parsed files for it): every input would otherwise end as a leak there. Only stacks that pass through TOMLKit (its
/// Swift module or its C++ `CTOML` under `checkouts/TOMLKit`) are suppressed; a leak in Ferry's own code still stops
/// the run.
@_cdecl("__lsan_default_suppressions")
public func leakSuppressions() -> UnsafePointer<CChar>? {
    UnsafePointer(suppressions)
}

/// Made once and never written: a C string that lives as long as the process.
nonisolated(unsafe) private let suppressions = strdup("leak:TOMLKit\n")

/// The name every input is parsed and stored under.
let name: RemoteName? = try? RemoteName("fuzz")
/// A user-scope `remotes.d` in the target's scratch directory.
let store = RemoteStore(directory: fuzzScratch + "/remotes.d", scope: .user)

/// A `.ferryrepo` file (DESIGN.md, "Trust operations"), which `ferry remote-add --from FILE|URL` may have fetched
/// over the network: the TOML parser, the key and grammar checks (`RemoteFile`, `Remote.validate`), then what the
/// command reads before it shows a single key (each ed25519 key as a minisign public key, the log policy). A file
/// that parses is stored as `remote-add` stores it and loaded again (`RemoteStore`); it must come back exactly as it
/// was parsed, since what is stored must be what the user was shown and accepted.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let name else { fatalError("fuzz harness: the remote name does not parse") }
    guard let remote = try? RemoteFile(name: name, parsing: fuzzInput(data, size), source: "fuzz.ferryrepo").remote
    else { return 0 }
    for key in remote.ed25519Keys { _ = try? MinisignPublicKey(parsing: key) }
    _ = try? LogPolicy.of(remote)
    let loaded: Remote?
    do {
        try store.save(remote)
        loaded = try store.load(name)
    } catch {
        fatalError("a remote parsed from a .ferryrepo cannot be stored and loaded again: \(error)")
    }
    guard loaded == remote else {
        fatalError("a remote parsed from a .ferryrepo loads differently once stored:\n\(remote)\n"
            + String(describing: loaded))
    }
    return 0
}

/// The entry point SwiftPM's link step names `main` (see Package.swift).
@_cdecl("fuzz_ferryrepo_main")
public func fuzzMain_ferryrepo(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
