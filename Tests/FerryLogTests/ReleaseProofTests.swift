import FerryCore
@testable import FerryLog
import FerryTestSupport
import XCTest

/// The offline check of a release's log proof (what the helper runs): each way a checkpoint or proof can be wrong
/// has its own error.
final class ReleaseProofTests: XCTestCase {
    var temp: TemporaryDirectory!
    var logKey: NoteSignerKey!
    var w1: NoteSignerKey!
    var w2: NoteSignerKey!

    override func setUpWithError() throws {
        temp = try TemporaryDirectory(prefix: "frp")
        logKey = try NoteSignerKey.generate(name: "example.com/apps/log")
        w1 = try NoteSignerKey.generate(name: "w1.example", type: .cosignature)
        w2 = try NoteSignerKey.generate(name: "w2.example", type: .cosignature)
    }

    /// A log of `entries` in `name`; the proof of entry `index` with the checkpoint cosigned by `cosigners` at `time`.
    func proof(_ name: String, _ entries: [String], index: UInt64, cosigners: [NoteSignerKey] = [],
               time: UInt64 = 1_700_000_000) throws -> (ReleaseProof, LogDirectory) {
        let path = temp.file(name)
        try LogAppender.create(at: path, signer: logKey)
        try LogAppender(path: path, signer: logKey).append(entries.map { Data($0.utf8) })
        let directory = try LogDirectory(path: path)
        var note = try SignedNote(try directory.readCheckpoint())
        for witness in cosigners { note = note.adding(try witness.sign(text: Data(note.text.utf8), timestamp: time)) }
        let size = UInt64(entries.count)
        let inclusion = try MerkleTree.inclusionProof(index: index, size: size, reader: directory.hashReader(treeSize: size))
        return (ReleaseProof(entry: Data(entries[Int(index)].utf8), index: index, proof: inclusion,
                             checkpoint: note.serialized), directory)
    }

    func policy(quorum: Int = 1, maxAge: Int64? = nil) -> LogPolicy {
        LogPolicy(logKey: logKey.verifierKey, witnesses: [w1.verifierKey, w2.verifierKey], quorum: quorum,
                  maxAge: maxAge)
    }

    func message(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "no error"
        } catch let error as FerryError {
            return error.message
        } catch let fork as LogForkError {
            return "fork: " + fork.message
        } catch {
            return "\(error)"
        }
    }

    func testAProofRoundTripsAndVerifies() throws {
        let (made, _) = try proof("log", ["a", "b", "c"], index: 1, cosigners: [w1])
        let parsed = try ReleaseProof(parsing: made.serialized)
        XCTAssertEqual(parsed, made)
        XCTAssertTrue(String(decoding: made.serialized, as: UTF8.self).hasPrefix("c2sp.org/tlog-proof@v1\nextra "))
        XCTAssertEqual(try parsed.verify(policy: policy(), trusted: nil, consistency: nil, now: 1_700_000_010).size, 3)
    }

    func testCosignatures() throws {
        // Missing: none at all.
        let (bare, _) = try proof("bare", ["a"], index: 0)
        XCTAssertEqual(message { _ = try bare.verify(policy: self.policy(), trusted: nil, consistency: nil, now: 0) },
                       "checkpoint of example.com/apps/log at size 1 has 0 of the 1 witness cosignatures required")
        // An unknown witness counts for nothing.
        let stranger = try NoteSignerKey.generate(name: "stranger.example", type: .cosignature)
        let (unknown, _) = try proof("unknown", ["a"], index: 0, cosigners: [stranger])
        XCTAssertEqual(message { _ = try unknown.verify(policy: self.policy(), trusted: nil, consistency: nil, now: 0) },
                       "checkpoint of example.com/apps/log at size 1 has 0 of the 1 witness cosignatures required")
        // A bad cosignature by a known witness rejects the checkpoint.
        let (good, _) = try proof("bad", ["a"], index: 0, cosigners: [w1])
        var text = String(decoding: good.checkpoint, as: UTF8.self)
        let line = try XCTUnwrap(text.split(separator: "\n").last { $0.hasPrefix("— w1.example ") })
        var bytes = Array(Data(base64Encoded: String(line.dropFirst("— w1.example ".count)))!)
        bytes[bytes.count - 1] ^= 1
        text = text.replacingOccurrences(of: String(line), with: "— w1.example " + Data(bytes).base64EncodedString())
        var bad = good
        bad.checkpoint = Data(text.utf8)
        XCTAssertTrue(message { _ = try bad.verify(policy: self.policy(), trusted: nil, consistency: nil, now: 0) }
            .hasSuffix("does not verify"))
        // A quorum of two distinct witnesses.
        let (one, _) = try proof("one", ["a"], index: 0, cosigners: [w1])
        XCTAssertEqual(message { _ = try one.verify(policy: self.policy(quorum: 2), trusted: nil, consistency: nil,
                                                   now: 0) },
                       "checkpoint of example.com/apps/log at size 1 has 1 of the 2 witness cosignatures required")
        let (two, _) = try proof("two", ["a"], index: 0, cosigners: [w1, w2])
        XCTAssertEqual(message { _ = try two.verify(policy: self.policy(quorum: 2), trusted: nil, consistency: nil,
                                                   now: 0) }, "no error")
        // One witness twice (two lines, two timestamps) is refused by the note's parser: never two cosignatures.
        let note = try SignedNote(one.checkpoint)
        let again = note.adding(try w1.sign(text: Data(note.text.utf8), timestamp: 1_700_000_500))
        let second = try XCTUnwrap(String(decoding: again.serialized, as: UTF8.self).split(separator: "\n")
            .last { $0.hasPrefix("— w1.example ") })
        var doubled = one
        doubled.checkpoint = one.checkpoint + Data((second + "\n").utf8)
        XCTAssertEqual(message { _ = try doubled.verify(policy: self.policy(quorum: 2), trusted: nil, consistency: nil,
                                                       now: 0) },
                       "signed note has two signatures by w1.example+\(NoteVerifierKey.hex(w1.verifierKey.keyID))")
        // With a quorum of two, both must be young: one fresh cosignature does not make an old checkpoint current.
        let oldAndNew = try SignedNote(one.checkpoint).adding(try w2.sign(text: Data(note.text.utf8),
                                                                          timestamp: 1_700_001_000))
        var mixed = one
        mixed.checkpoint = oldAndNew.serialized
        XCTAssertTrue(message { _ = try mixed.verify(policy: self.policy(quorum: 2, maxAge: 100), trusted: nil,
                                                     consistency: nil, now: 1_700_001_050) }
            .hasPrefix("the 2 newest witness cosignatures of example.com/apps/log are up to 1050 s old; the remote "
                + "allows 100 s"))
        XCTAssertEqual(message { _ = try mixed.verify(policy: self.policy(quorum: 1, maxAge: 100), trusted: nil,
                                                      consistency: nil, now: 1_700_001_050) }, "no error")
    }

    func testAgeInclusionAndSize() throws {
        let (made, _) = try proof("log", ["a", "b", "c"], index: 2, cosigners: [w1], time: 1_700_000_000)
        XCTAssertTrue(message { _ = try made.verify(policy: self.policy(maxAge: 60), trusted: nil, consistency: nil,
                                                   now: 1_700_000_061) }
            .hasPrefix("the newest witness cosignature of example.com/apps/log is 61 s old; the remote allows 60 s"))
        XCTAssertEqual(message { _ = try made.verify(policy: self.policy(maxAge: 60), trusted: nil, consistency: nil,
                                                    now: 1_700_000_061, allowStale: true) }, "no error")
        var other = made
        other.entry = Data("not c".utf8)
        XCTAssertEqual(message { _ = try other.verify(policy: self.policy(), trusted: nil, consistency: nil, now: 0) },
                       "the release is not in the log: the inclusion proof of entry 2 does not lead to the "
                        + "checkpoint's root")
        var beyond = made
        beyond.index = 3
        XCTAssertEqual(message { _ = try beyond.verify(policy: self.policy(), trusted: nil, consistency: nil, now: 0) },
                       "log proof: entry 3 is beyond the checkpoint's 3")
        // A checkpoint too large to be honest, signed by the real key.
        let huge = try SignedNote.sign(text: try Checkpoint(origin: logKey.name, size: 1 << 50,
                                                            rootHash: .emptyTree).text, with: [logKey, w1])
        var claimed = made
        claimed.checkpoint = huge.serialized
        XCTAssertEqual(message { _ = try claimed.verify(policy: self.policy(), trusted: nil, consistency: nil, now: 0) },
                       "checkpoint of example.com/apps/log claims 1125899906842624 entries, more than any honest log "
                        + "of releases holds (1099511627776)")
        // A proof file too large: refused by the parser before anything else.
        XCTAssertThrowsError(try ReleaseProof(parsing: Data(count: 1 << 20)))
        for text in ["", "c2sp.org/tlog-proof@v1\n\n", "c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\nx",
                     "c2sp.org/tlog-proof@v1\nextra YQ==\nindex 01\n\nx", "c2sp.org/tlog-proof@v2\nextra YQ==\nindex 1\n\nx"] {
            XCTAssertThrowsError(try ReleaseProof(parsing: Data(text.utf8)), text)
        }
    }

    func testConsistencyWithTheTrustedCheckpoint() throws {
        let (old, _) = try proof("old", ["a", "b"], index: 0, cosigners: [w1])
        let (new, directory) = try proof("new", ["a", "b", "c", "d"], index: 3, cosigners: [w1])
        let consistency = ReleaseProof.consistencyFile(
            old: 2, proof: try MerkleTree.consistencyProof(from: 2, to: 4, reader: directory.hashReader(treeSize: 4)))
        XCTAssertEqual(message { _ = try new.verify(policy: self.policy(), trusted: old.checkpoint,
                                                   consistency: consistency, now: 0) }, "no error")
        XCTAssertEqual(message { _ = try new.verify(policy: self.policy(), trusted: old.checkpoint, consistency: nil,
                                                   now: 0) }, "log proof: no consistency proof from the trusted size 2")
        // A stale mirror: older than what is trusted.
        XCTAssertEqual(message { _ = try old.verify(policy: self.policy(), trusted: new.checkpoint, consistency: nil,
                                                   now: 0) },
                       "the log of example.com/apps/log offered has 2 entries, older than the 4 trusted (a stale mirror)")
        // Forks: another history of the same size, and one that does not extend the trusted one.
        let (same, _) = try proof("same", ["a", "x"], index: 0, cosigners: [w1])
        XCTAssertTrue(message { _ = try same.verify(policy: self.policy(), trusted: old.checkpoint, consistency: nil,
                                                   now: 0) }.hasPrefix("fork: the log of example.com/apps/log forked: same size"))
        let (forked, forkDirectory) = try proof("forked", ["a", "x", "c", "d"], index: 3, cosigners: [w1])
        let forkProof = ReleaseProof.consistencyFile(
            old: 2, proof: try MerkleTree.consistencyProof(from: 2, to: 4, reader: forkDirectory.hashReader(treeSize: 4)))
        XCTAssertTrue(message { _ = try forked.verify(policy: self.policy(), trusted: old.checkpoint,
                                                     consistency: forkProof, now: 0) }
            .hasPrefix("fork: the log of example.com/apps/log forked: it does not extend the checkpoint trusted before"))
    }
}
