import FerryCore
import FerryInstall
import FerryLog
import Foundation
import FuzzSupport

/// A remote blessed with two fixed ed25519 keys (threshold 2) and a log, as a client starts reading its log. The
/// seeds in Fuzz/corpus/fuzz-logentry/ were written by `ferry sign`, `ferry key` and `ferry recall` with these keys
/// (and a third they add), so the fuzzer starts from entries that apply.
let remote: Remote = {
    var remote = Remote(name: try! RemoteName("fuzz"), url: "https://example.com/apps", ed25519Keys: [
        "RWSiZeTQKElYcUxOcnPzXyoraEo2DBJIgAWviEzTxv8J7u/kbKBdHkzs",
        "RWQ8tOoQBdWAz8iYuyBaU/fZScWMa9W+H2OyvS2OK42p/QNOK/JJcLCj",
    ])
    remote.logKey = "example.com/apps/log+115f4e9f+ASByi7OuqL0Nk44EfDLhiDCHLJD5cH5yArBB2eTxLYQ+"
    remote.keyThreshold = 2
    return remote
}()

/// Log entries as a client reads them (DESIGN.md, "Transparency log" and "Trust operations"): the input is one
/// entry (release, key event or recall, parsed strictly), and also a staged `log/entries` file whose entries a
/// ledger reads in order, applying key events and recalls by its rules (signatures checked with the two keys).
/// Whatever the input, the ledger's answers must stay consistent: its current keys are at least the threshold.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    if case .keyEvent(let event)? = try? LogEntry(parsing: input), let signed = event.signed {
        // What parses serializes, and parses back to the same event.
        guard let again = try? LogEntry(parsing: try signed.serialized()), again == .keyEvent(event) else {
            fatalError("a key event does not survive serializing")
        }
    }
    guard let (from, entries) = try? StagedEntries.decode(input), from == 0 else { return 0 }
    guard var ledger = try? TrustLedger(remote: remote, origin: "example.com/apps/log") else {
        fatalError("fuzz harness: the remote's keys do not parse")
    }
    for (index, entry) in entries.enumerated() { ledger.read(entry, at: UInt64(index)) }
    guard ledger.currentKeys.count >= 2 else { fatalError("a key event left fewer current keys than the threshold") }
    _ = try? ledger.trustedKeys(forReleaseAt: UInt64(entries.count / 2), gpg: [])
    _ = try? ledger.keysForInstalled(gpg: [])
    return 0
}

/// The entry point SwiftPM's link step names `main` (see Package.swift).
@_cdecl("fuzz_logentry_main")
public func fuzzMain_logentry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
