import FerryArchive
import FerryCore
import FerryInstall
import FerryLog
import FerryTestSupport
import FerryTrust
import Foundation
import XCTest

/// The short version of `make fuzz` inside `make test`: every committed seed of `Fuzz/corpus/` (the inputs that
/// once crashed a parser included) goes through the parsers its target feeds, in an ordinary build. A seed that
/// crashes fails the suite; the inputs that aborted toml++ must be refused with a clean error.
final class FuzzCorpusReplayTests: XCTestCase {
    func seeds(_ target: String) throws -> [(String, Data)] {
        let directory = Testbed.repositoryRoot() + "/Fuzz/corpus/" + target
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        XCTAssertFalse(names.isEmpty, target)
        return try names.map { ($0, try Data(contentsOf: URL(fileURLWithPath: directory + "/" + $0))) }
    }

    func testEveryParserSeedParsesOrIsRefused() throws {
        for (_, input) in try seeds("fuzz-oci") {
            _ = try? Manifest.parse(input)
            _ = try? ImageIndex.parse(input)
            _ = try? ImageConfig.parse(input)
        }
        for (_, input) in try seeds("fuzz-claim") { _ = try? Claim(parsing: input) }
        for (_, input) in try seeds("fuzz-minisign") {
            _ = try? MinisignSignature(parsing: input)
            _ = try? MinisignPublicKey(parsing: String(decoding: input, as: UTF8.self))
        }
        for (_, input) in try seeds("fuzz-tuf") { _ = try? TUFJSON.parse(input) }
        for (name, input) in try seeds("fuzz-chunked-toc") where name.hasSuffix(".json") {
            XCTAssertNoThrow(try ChunkedTOC(json: input, tocOffset: 1 << 30, blobSize: 1 << 31), name)
        }
        for target in ["fuzz-note", "fuzz-checkpoint", "fuzz-tile", "fuzz-witness"] {
            for (_, input) in try seeds(target) {
                _ = try? SignedNote(input)
                _ = try? Checkpoint(text: String(decoding: input, as: UTF8.self))
                _ = try? Witness.parse(input)
                _ = try? ReleaseProof(parsing: input)
                _ = try? LogEntry(parsing: Data(input.dropFirst()))
            }
        }
    }

    func testFerryrepoSeedsAndTheInputsThatAbortedTomlPlusPlus() throws {
        var parsed = 0
        for (name, input) in try seeds("fuzz-ferryrepo") {
            do {
                _ = try RemoteFile(name: try RemoteName("fuzz"), parsing: input, source: name)
                parsed += 1
            } catch let error as FerryError {
                XCTAssertFalse(name.hasPrefix("crash-") && !error.message.contains("not a .ferryrepo: line 1"),
                               "\(name): \(error.message)")
            }
        }
        XCTAssertGreaterThanOrEqual(parsed, 3)
    }

    /// The staged seeds are what `ferry sign`, `ferry key` and `ferry recall` wrote for the fuzz target's remote:
    /// read by a ledger, the key-add and the recall apply, and the replayed key-add is refused.
    func testLogEntrySeedsApplyAsTheFuzzTargetsRemoteReadsThem() throws {
        var remote = Remote(name: try RemoteName("fuzz"), url: "https://example.com/apps", ed25519Keys: [
            "RWSiZeTQKElYcUxOcnPzXyoraEo2DBJIgAWviEzTxv8J7u/kbKBdHkzs",
            "RWQ8tOoQBdWAz8iYuyBaU/fZScWMa9W+H2OyvS2OK42p/QNOK/JJcLCj",
        ])
        remote.logKey = "example.com/apps/log+115f4e9f+ASByi7OuqL0Nk44EfDLhiDCHLJD5cH5yArBB2eTxLYQ+"
        remote.keyThreshold = 2
        let seeds = Dictionary(uniqueKeysWithValues: try seeds("fuzz-logentry"))
        for name in ["release.json", "key-add.json", "recall.json", "key-revoke.json"] {
            XCTAssertNoThrow(try LogEntry(parsing: try XCTUnwrap(seeds[name])), name)
        }
        let (_, entries) = try StagedEntries.decode(try XCTUnwrap(seeds["staged-release-add-recall-revoke"]))
        var ledger = try TrustLedger(remote: remote, origin: "example.com/apps/log")
        for (index, entry) in entries.enumerated() { ledger.read(entry, at: UInt64(index)) }
        XCTAssertEqual(ledger.refused, [])
        XCTAssertEqual(ledger.keys.count, 3)
        XCTAssertEqual(ledger.recalls.count, 1)
        XCTAssertEqual(ledger.keys.filter { $0.revokedSince != nil }.count, 1)

        let (_, replayed) = try StagedEntries.decode(try XCTUnwrap(seeds["staged-replayed-add"]))
        var again = try TrustLedger(remote: remote, origin: "example.com/apps/log")
        for (index, entry) in replayed.enumerated() { again.read(entry, at: UInt64(index)) }
        XCTAssertEqual(again.refused.map(\.index), [1, 3])
        XCTAssertTrue(again.refused.allSatisfy { $0.reason.hasSuffix("already applied (the same event appended again)") })
    }
}
