import FerryCore
@testable import FerryLog
import FerryTestSupport
import XCTest

/// The appender against a real directory: growth across tile boundaries, immutability of full tiles, tampering
/// found by the verifier, and a crash after every single write step.
final class LogAppenderTests: XCTestCase {
    var temp: TemporaryDirectory!
    var key: NoteSignerKey!
    var logPath: String { temp.file("layout/log") }

    override func setUpWithError() throws {
        temp = try TemporaryDirectory(prefix: "flog")
        try FileManager.default.createDirectory(atPath: temp.file("layout"), withIntermediateDirectories: true)
        key = try NoteSignerKey.generate(name: "example.com/apps/log")
    }

    func makeLog(entries: Int) throws {
        try LogAppender.create(at: logPath, signer: key)
        if entries > 0 { try LogAppender(path: logPath, signer: key).append(testEntries(entries)) }
    }

    func verify(_ path: String? = nil) throws -> Checkpoint {
        try LogVerifier.verify(try LogDirectory(path: path ?? logPath), logKey: key.verifierKey)
    }

    /// The log's files, without the lock file (which only `flock` uses).
    func snapshot(_ path: String? = nil) -> [String: String] {
        TreeSnapshot.take(path ?? logPath, excluding: [LogAppender.lockName])
    }

    func testInitWritesAnEmptyCheckpointSignedByTheLogKey() throws {
        let checkpoint = try LogAppender.create(at: logPath, signer: key)
        XCTAssertEqual(checkpoint.size, 0)
        XCTAssertEqual(checkpoint.rootHash, .emptyTree)
        let text = try String(contentsOfFile: logPath + "/checkpoint", encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("example.com/apps/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— "))
        XCTAssertEqual(try verify(), checkpoint)
        XCTAssertEqual(Set(snapshot().keys), [".", "checkpoint"])
    }

    func testInitRefusesADirectoryThatHasALog() throws {
        try makeLog(entries: 3)
        let before = snapshot()
        XCTAssertThrowsError(try LogAppender.create(at: logPath, signer: key)) {
            XCTAssertEqual($0 as? FerryError, .invalidArgument("\(self.logPath) already has a log (checkpoint exists)"))
        }
        XCTAssertEqual(snapshot(), before)
    }

    func testAWitnessKeyCannotSignALog() throws {
        let witness = try NoteSignerKey.generate(name: "w.example", type: .cosignature)
        XCTAssertThrowsError(try LogAppender.create(at: logPath, signer: witness)) {
            XCTAssertEqual($0 as? FerryError, .invalidArgument(
                "w.example: a log signs with an Ed25519 (type 0x01) key, not a witness key"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: logPath))
    }

    func testAppendsAcrossTileBoundariesKeepTheLogVerifiableAndConsistent() throws {
        try makeLog(entries: 0)
        let appender = try LogAppender(path: logPath, signer: key)
        var all: [Data] = []
        var previous = try verify()
        for batch in [1, 2, 253, 1, 300, 0, 210, 256] {
            let entries = testEntries(batch, from: all.count)
            all += entries
            let checkpoint = try appender.append(entries)
            XCTAssertEqual(checkpoint.size, UInt64(all.count))
            XCTAssertEqual(checkpoint.rootHash, NaiveMerkleTree(entries: all).hash(0, all.count))
            var seen: [Data] = []
            XCTAssertEqual(try LogVerifier.verify(try LogDirectory(path: logPath), logKey: key.verifierKey) {
                XCTAssertEqual($0, UInt64(seen.count))
                seen.append($1)
            }, checkpoint)
            XCTAssertEqual(seen, all)
            // The old checkpoint is a prefix of the new one, proved from the tiles on disk.
            let reader = try LogDirectory(path: logPath).hashReader(treeSize: checkpoint.size)
            let proof = try MerkleTree.consistencyProof(from: previous.size, to: checkpoint.size, reader: reader)
            try MerkleTree.verifyConsistency(oldSize: previous.size, newSize: checkpoint.size,
                                             oldRoot: previous.rootHash, newRoot: checkpoint.rootHash, proof: proof)
            previous = checkpoint
        }
        XCTAssertEqual(all.count, 1023)
    }

    func testFullTilesReplaceTheirPartialVersions() throws {
        try makeLog(entries: 200)
        XCTAssertNotNil(snapshot()["tile/0/000.p/200"])
        try LogAppender(path: logPath, signer: key).append(testEntries(60, from: 200))
        let files = snapshot()
        for path in ["tile/0/000", "tile/entries/000", "tile/0/001.p/4", "tile/entries/001.p/4", "tile/1/000.p/1"] {
            XCTAssertNotNil(files[path], path)
        }
        XCTAssertNil(files["tile/0/000.p"])
        XCTAssertNil(files["tile/entries/000.p"])
        XCTAssertEqual(try verify().size, 260)
    }

    func testAFullTileIsNeverRewritten() throws {
        try makeLog(entries: 300)
        // Something (not this log's append) left a full tile where the next append would write one.
        try Data(repeating: 0xaa, count: 8192).write(to: URL(fileURLWithPath: logPath + "/tile/0/001"))
        let checkpoint = try String(contentsOfFile: logPath + "/checkpoint", encoding: .utf8)
        XCTAssertThrowsError(try LogAppender(path: logPath, signer: key).append(testEntries(300, from: 300))) {
            XCTAssertEqual($0 as? FerryError, .failed(
                "\(self.logPath)/tile/0/001 exists with other content; a full tile is never rewritten"))
        }
        XCTAssertEqual(try String(contentsOfFile: logPath + "/checkpoint", encoding: .utf8), checkpoint)
        XCTAssertEqual(try verify().size, 300)
    }

    func testATamperedEntryIsFoundAndNotExtended() throws {
        try makeLog(entries: 5)
        let path = logPath + "/tile/entries/000.p/5"
        var bundle = try Data(contentsOf: URL(fileURLWithPath: path))
        bundle[bundle.count - 1] ^= 1
        try bundle.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try verify()) {
            XCTAssertEqual($0 as? FerryError, .untrusted(
                "\(self.logPath): tile/0/000.p/5 does not match the log's entries"))
        }
        XCTAssertThrowsError(try LogAppender(path: logPath, signer: key).append(testEntries(1, from: 5))) {
            XCTAssertEqual($0 as? FerryError, .failed(
                "\(self.logPath): entry bundle 0 does not match its tile"))
        }
    }

    func testATamperedTileIsFoundAndNotExtended() throws {
        try makeLog(entries: 5)
        let path = logPath + "/tile/0/000.p/5"
        var tile = try Data(contentsOf: URL(fileURLWithPath: path))
        tile[0] ^= 1
        try tile.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try verify()) {
            XCTAssertEqual($0 as? FerryError, .untrusted(
                "\(self.logPath): tile/0/000.p/5 does not match the log's entries"))
        }
        XCTAssertThrowsError(try LogAppender(path: logPath, signer: key).append(testEntries(1, from: 5))) {
            XCTAssertEqual($0 as? FerryError, .failed(
                "\(self.logPath): the tiles do not match the checkpoint's root hash"))
        }
    }

    func testACheckpointSignedByAnotherKeyIsRefused() throws {
        try makeLog(entries: 2)
        let other = try NoteSignerKey.generate(name: "example.com/apps/log")
        XCTAssertThrowsError(try LogAppender(path: logPath, signer: other).append(testEntries(1))) {
            XCTAssertEqual($0 as? FerryError, .untrusted(
                "signed note is not signed by a trusted key (trusted: \(other.verifierKey); "
                    + "signed by: \(self.key.verifierKey))"))
        }
    }

    // MARK: - Crash safety

    /// Stands for a kill: the append stops right after a durable step, running none of its later code.
    struct Killed: Error {}

    /// The durable steps of appending 10 entries to a log of 250 (crossing the first full tile), in order.
    func recordSteps(base: String) throws -> (steps: [String], result: [String: String]) {
        let reference = temp.file("reference")
        try FileManager.default.copyItem(atPath: base, toPath: reference)
        let appender = try LogAppender(path: reference, signer: key)
        var steps: [String] = []
        appender.afterWrite = { steps.append($0) }
        try appender.append(testEntries(10, from: 250))
        return (steps, snapshot(reference))
    }

    func testAKillAfterAnyWriteLeavesAVerifyingLogAndTheRetryFinishesIt() throws {
        try makeLog(entries: 250)
        let (steps, finished) = try recordSteps(base: logPath)
        XCTAssertEqual(steps, [LogAppender.journalName, "tile/entries/000", "tile/entries/001.p/4", "tile/0/000",
                               "tile/0/001.p/4", "tile/1/000.p/1", "checkpoint"])
        let committed = steps.firstIndex(of: "checkpoint") ?? 0
        for kill in steps.indices {
            let copy = temp.file("kill-\(kill)")
            try FileManager.default.copyItem(atPath: logPath, toPath: copy)
            let appender = try LogAppender(path: copy, signer: key)
            var done = 0
            appender.afterWrite = { _ in
                if done == kill { throw Killed() }
                done += 1
            }
            XCTAssertThrowsError(try appender.append(testEntries(10, from: 250)), "kill after \(steps[kill])")
            // Whatever the step, the log on disk verifies: the old tree before the checkpoint, the new one after.
            let size = try verify(copy).size
            XCTAssertEqual(size, kill >= committed ? 260 : 250, "kill after \(steps[kill])")
            // The retry (a new process: a new appender) finishes it without appending the entries twice.
            let retried = try LogAppender(path: copy, signer: key).append(testEntries(10, from: 250))
            XCTAssertEqual(retried.size, 260, "kill after \(steps[kill])")
            XCTAssertEqual(TreeSnapshot.difference(snapshot(copy), finished), [], "kill after \(steps[kill])")
        }
    }

    func testAnAppendOfOtherEntriesFinishesTheInterruptedOneFirst() throws {
        try makeLog(entries: 250)
        let appender = try LogAppender(path: logPath, signer: key)
        appender.afterWrite = { if $0 == "tile/0/000" { throw Killed() } }
        XCTAssertThrowsError(try appender.append(testEntries(10, from: 250)))
        XCTAssertEqual(try verify().size, 250)
        let other = [Data("something else".utf8)]
        XCTAssertEqual(try LogAppender(path: logPath, signer: key).append(other).size, 261)
        var entries: [Data] = []
        try LogVerifier.verify(try LogDirectory(path: logPath), logKey: key.verifierKey) { entries.append($1) }
        XCTAssertEqual(entries, testEntries(260) + other)
    }

    func testALeftoverTemporaryFileFromAKilledWriteIsHarmless() throws {
        try makeLog(entries: 3)
        // A kill inside AtomicFile.write leaves its temporary file (here: half a tile) beside the real one.
        let leftover = logPath + "/tile/0/.001.tmp-999999-7"
        try Data(repeating: 1, count: 4000).write(to: URL(fileURLWithPath: leftover))
        XCTAssertEqual(try verify().size, 3)
        XCTAssertEqual(try LogAppender(path: logPath, signer: key).append(testEntries(300, from: 3)).size, 303)
        XCTAssertEqual(try verify().size, 303)
        XCTAssertEqual(AtomicFile.sweep(logPath, recursive: true), ["tile/0/.001.tmp-999999-7"])
    }
}
