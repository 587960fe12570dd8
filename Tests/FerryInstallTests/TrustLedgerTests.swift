import FerryCore
import FerryInstall
import FerryLog
import FerryTrust
import Foundation
import XCTest

/// The rules of DESIGN.md, "Trust operations", as the ledger applies them entry by entry: threshold, order, origin,
/// retired signers, lock-out, recalls; and which keys a release at a given index may be signed with.
final class TrustLedgerTests: XCTestCase {
    let origin = "example.com/apps/log"
    var a: MinisignSecretKey!
    var b: MinisignSecretKey!
    var c: MinisignSecretKey!

    override func setUpWithError() throws {
        (a, b, c) = (try .generate(), try .generate(), try .generate())
    }

    func remote(_ keys: [MinisignSecretKey], threshold: Int? = nil) throws -> Remote {
        var remote = Remote(name: try RemoteName("demo"), url: "https://example.com/apps",
                            ed25519Keys: keys.map(\.publicKey.fileText))
        remote.logKey = "example.com/apps/log+01234567+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        remote.keyThreshold = threshold
        return remote
    }

    func event(_ change: KeyChange, _ key: MinisignSecretKey, at timestamp: Int64 = 1_700_000_000,
               signers: [MinisignSecretKey], origin: String? = nil, since: Int64? = nil) throws -> Data {
        let statement = try KeyEvent(change: change, origin: origin ?? self.origin, key: key.publicKey.base64,
                                     timestamp: timestamp, since: since).statement()
        return try signed(change.rawValue, statement, signers)
    }

    func recall(_ digest: Digest, signers: [MinisignSecretKey]) throws -> Data {
        let statement = try RecallEntry(origin: origin, ref: try Ref("org.example.App/x86_64/stable"), digest: digest,
                                        reason: "broken", timestamp: 1_700_000_500).statement()
        return try signed(RecallEntry.kind, statement, signers)
    }

    func signed(_ kind: String, _ statement: Data, _ signers: [MinisignSecretKey]) throws -> Data {
        try SignedStatement(kind: kind, statement: statement,
                            signatures: try signers.map { Data(try $0.sign(statement, trustedComment: "t").utf8) })
            .serialized()
    }

    /// Reads `entries` in order; returns the ledger and the reasons of the entries it refused, by index.
    func read(_ entries: [Data], remote: Remote) throws -> (TrustLedger, [UInt64: String]) {
        var ledger = try TrustLedger(remote: remote, origin: origin)
        for (index, entry) in entries.enumerated() { ledger.read(entry, at: UInt64(index)) }
        return (ledger, Dictionary(uniqueKeysWithValues: ledger.refused.map { ($0.index, $0.reason) }))
    }

    func testKeyEventsNeedTheThresholdTheirTurnAndThisLog() throws {
        let remote = try remote([a, b], threshold: 2)
        let add = try event(.add, c, signers: [a, b])
        let (ledger, refused) = try read([
            try event(.add, c, signers: [a]),  // 0: below the threshold
            try event(.add, c, signers: [a, a]),  // 1: one key twice is one key
            try event(.add, c, signers: [a, b], origin: "other.example/log"),  // 2: another log
            add,  // 3: applied
            add,  // 4: replayed
            try event(.remove, a, at: 1_700_000_100, signers: [b, c]),  // 5: applied
            try event(.remove, b, at: 1_700_000_200, signers: [a, c]),  // 6: signed by a removed key
            try event(.remove, b, at: 1_700_000_200, signers: [b, c]),  // 7: would leave one key with threshold 2
            try event(.add, a, at: 1_700_000_050, signers: [b, c]),  // 8: signed before the last event applied
        ], remote: remote)
        let (aID, cID) = (a.publicKey.keyID, c.publicKey.keyID)
        XCTAssertEqual(refused[0], "key-add of \(cID): signed by 1 of the 2 current keys required")
        XCTAssertEqual(refused[1], "key-add of \(cID): signed by 1 of the 2 current keys required")
        XCTAssertEqual(refused[2], "key-add of \(cID): it is for the log other.example/log, not \(origin)")
        XCTAssertNil(refused[3])
        XCTAssertEqual(refused[4], "key-add of \(cID): already applied (the same event appended again)")
        XCTAssertNil(refused[5])
        XCTAssertTrue(refused[6]?.hasPrefix("key-remove of \(b.publicKey.keyID): signed by 1 of the 2 current keys "
            + "required (signed by \(aID), which is removed at log entry 5 on ") ?? false, refused[6] ?? "")
        XCTAssertEqual(refused[7], "key-remove of \(b.publicKey.keyID): it would leave fewer current keys than the "
            + "threshold (2)")
        XCTAssertEqual(refused[8], "key-add of \(aID): out of order: signed at 2023-11-14T22:14:10Z (1700000050), "
            + "before the last key event applied (2023-11-14T22:15:00Z (1700000100))")
        XCTAssertEqual(ledger.appliedEvents.count, 2)
        XCTAssertEqual(ledger.currentKeys.map(\.id), [b.publicKey.keyID, cID])

        // A release logged at 4 may be signed by a (removed at 5) and not by c (added at 3)... the other way round.
        let at4 = try ledger.trustedKeys(forReleaseAt: 4, gpg: [])
        XCTAssertEqual(Set(at4.ed25519.map(\.keyID)), [aID, b.publicKey.keyID, cID])
        let at2 = try ledger.trustedKeys(forReleaseAt: 2, gpg: [])
        XCTAssertEqual(Set(at2.ed25519.map(\.keyID)), [aID, b.publicKey.keyID])
        XCTAssertTrue(at2.retired[cID]?.hasPrefix("the remote added only at log entry 3") ?? false)
        let at9 = try ledger.trustedKeys(forReleaseAt: 9, gpg: [])
        XCTAssertEqual(Set(at9.ed25519.map(\.keyID)), [b.publicKey.keyID, cID])
        XCTAssertTrue(at9.retired[aID]?.contains("the release is logged after that (entry 9)") ?? false)
    }

    func testARevocationLimitsClaimsByTimeAndRecallsNeedACurrentKey() throws {
        let remote = try remote([a])
        let bad = Digest.of(Data("bad".utf8))
        let (ledger, refused) = try read([
            try event(.add, b, signers: [a]),
            try event(.revoke, a, signers: [b], since: 1_699_999_000),
            try recall(bad, signers: [a]),  // 2: a is revoked
            try recall(bad, signers: [b]),  // 3: applied
            Data("{\"kind\":\"recall\"}".utf8),  // 4: malformed
            Data("{\"kind\":\"attestation\"}".utf8),  // 5: unknown kinds are nobody's business
        ], remote: remote)
        XCTAssertTrue(refused[2]?.contains("signed by \(a.publicKey.keyID), which is revoked at log entry 1") ?? false)
        XCTAssertNil(refused[3])
        XCTAssertEqual(refused[4], "malformed entry: malformed signed log entry")
        XCTAssertNil(refused[5])
        XCTAssertEqual(ledger.recall(ref: try Ref("org.example.App/x86_64/stable"), digest: bad)?.index, 3)
        // Before the revocation's entry, a's claims older than `since` count; newer ones never.
        let keys = try ledger.trustedKeys(forReleaseAt: 0, gpg: [])
        XCTAssertEqual(keys.notAfter[a.publicKey.keyID], 1_699_999_000)
        let installed = try ledger.keysForInstalled(gpg: [])
        XCTAssertEqual(installed.notAfter[a.publicKey.keyID], 1_699_999_000)
        XCTAssertEqual(Set(installed.ed25519.map(\.keyID)), [a.publicKey.keyID, b.publicKey.keyID])
    }

    func testEntriesSinceLastTimeMustLeadToTheCheckpoint() throws {
        let remote = try remote([a])
        let entries = [try event(.add, b, signers: [a]), Data("release-ish".utf8),
                       try recall(Digest.of(Data("x".utf8)), signers: [b])]
        var tree = MerkleFrontier()
        for entry in entries { tree.append(entry: entry) }
        let checkpoint = try Checkpoint(origin: origin, size: 3, rootHash: tree.root)
        var ledger = try TrustLedger(remote: remote, origin: origin)
        // One left out, one changed, one reordered, and a count that does not match: refused, ledger unchanged.
        for bad in [[entries[0], entries[2], entries[2]], [entries[0], Data("other".utf8), entries[2]],
                    [entries[1], entries[0], entries[2]], Array(entries.prefix(2))] {
            XCTAssertThrowsError(try ledger.advance(with: bad, from: 0, to: checkpoint))
            XCTAssertEqual(ledger.size, 0)
        }
        try ledger.advance(with: Array(entries.prefix(1)), from: 0,
                           to: try Checkpoint(origin: origin, size: 1, rootHash: {
                               var one = MerkleFrontier()
                               one.append(entry: entries[0])
                               return one.root
                           }()))
        XCTAssertEqual(ledger.size, 1)
        // Staged from an older size than read: the entries already read are skipped, the rest applied.
        try ledger.advance(with: entries, from: 0, to: checkpoint)
        XCTAssertEqual(ledger.size, 3)
        XCTAssertEqual(ledger.recalls.count, 1)
        XCTAssertThrowsError(try ledger.advance(with: [], from: 4, to: checkpoint))
        // Stored and loaded; a remote blessed anew (another key) starts over.
        let directory = NSTemporaryDirectory() + "ledger-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try ledger.save(directory: directory)
        XCTAssertEqual(try TrustLedger.load(directory: directory, remote: remote, origin: origin), ledger)
        XCTAssertEqual(try TrustLedger.load(directory: directory, remote: try self.remote([b]), origin: origin).size, 0)
    }
}
