import FerryCore
@testable import FerryLog
import FerryTestSupport
import XCTest

/// Witnessing (c2sp.org/tlog-witness): the protocol checks of `Witness` alone, then real `ferry witness serve`
/// processes on 127.0.0.1 cosigning a publisher's log through `ferry log witness`, refusing a fork and a shrink
/// across a restart, with Go's note verifier checking the cosigned checkpoint.
final class WitnessTests: XCTestCase {
    var temp: TemporaryDirectory!
    var logKey: NoteSignerKey!
    var witnessKey: NoteSignerKey!

    override func setUpWithError() throws {
        temp = try TemporaryDirectory(prefix: "fwt")
        logKey = try NoteSignerKey.generate(name: "example.com/apps/log")
        witnessKey = try NoteSignerKey.generate(name: "w1.example/witness", type: .cosignature)
    }

    func witness() throws -> Witness {
        try Witness(key: witnessKey, logKeys: [logKey.verifierKey], stateDirectory: temp.file("state"))
    }

    /// A log in `name` with `entries`, and its checkpoint's bytes.
    @discardableResult
    func log(_ name: String, _ entries: [String], key: NoteSignerKey? = nil) throws -> (LogDirectory, Data) {
        let path = temp.file(name)
        try LogAppender.create(at: path, signer: key ?? logKey)
        if !entries.isEmpty { try LogAppender(path: path, signer: key ?? logKey).append(entries.map { Data($0.utf8) }) }
        let directory = try LogDirectory(path: path)
        return (directory, try directory.readCheckpoint())
    }

    func request(_ witness: Witness, old: UInt64, from directory: LogDirectory, checkpoint: Data) throws
        -> Witness.Response
    {
        let size = try Checkpoint(text: try SignedNote(checkpoint).text).size
        let proof = old == 0 ? [] : try MerkleTree.consistencyProof(from: old, to: size,
                                                                   reader: directory.hashReader(treeSize: size))
        return witness.addCheckpoint(Witness.requestBody(old: old, proof: proof, checkpoint: checkpoint), now: 1_700_000_000)
    }

    func testTheProtocolChecks() throws {
        let witness = try witness()
        let (small, smallCheckpoint) = try log("small", ["a", "b"])
        // First contact: old size 0, no proof; the answer is one cosignature line that verifies.
        let first = try request(witness, old: 0, from: small, checkpoint: smallCheckpoint)
        XCTAssertEqual(first.status, 200)
        let note = try SignedNote(smallCheckpoint)
        let cosigned = try SignedNote(Data(note.text.utf8) + Data("\n".utf8) + first.body)
        XCTAssertEqual(try cosigned.verify(by: [witnessKey.verifierKey]).map(\.timestamp), [1_700_000_000])
        XCTAssertEqual(try witness.latestCosigned(origin: logKey.name).size, 2)

        // The same checkpoint again from 0: 409 with the size it holds.
        let stale = try request(witness, old: 0, from: small, checkpoint: smallCheckpoint)
        XCTAssertEqual(stale, Witness.Response(status: 409, contentType: "text/x.tlog.size", body: Data("2\n".utf8)))

        // A fork of the same origin, signed by the real key: 422, and the state stays.
        let (fork, forkCheckpoint) = try log("fork", ["a", "x", "y"])
        XCTAssertEqual(try request(witness, old: 2, from: fork, checkpoint: forkCheckpoint),
                       .text(422, "not consistent with the checkpoint of size 2 cosigned before"))
        // The same size with another root is a fork too.
        let (other, otherCheckpoint) = try log("other", ["a", "z"])
        XCTAssertEqual(try request(witness, old: 2, from: other, checkpoint: otherCheckpoint).status, 422)
        XCTAssertEqual(try witness.latestCosigned(origin: logKey.name).size, 2)

        // An honest extension with its proof is cosigned.
        let (grown, grownCheckpoint) = try log("grown", ["a", "b", "c"])
        XCTAssertEqual(try request(witness, old: 2, from: grown, checkpoint: grownCheckpoint).status, 200)
        XCTAssertEqual(try witness.latestCosigned(origin: logKey.name).size, 3)

        // Unknown origin 404; the right origin signed by another key 403; old beyond the size 400.
        let stranger = try NoteSignerKey.generate(name: "stranger.example/log")
        let (_, strangerCheckpoint) = try log("stranger", ["a"], key: stranger)
        XCTAssertEqual(witness.addCheckpoint(Witness.requestBody(old: 0, proof: [], checkpoint: strangerCheckpoint)),
                       .text(404, "unknown log origin"))
        let impostor = try NoteSignerKey.generate(name: logKey.name)
        let (_, impostorCheckpoint) = try log("impostor", ["a", "b", "c", "d"], key: impostor)
        XCTAssertEqual(witness.addCheckpoint(Witness.requestBody(old: 3, proof: [], checkpoint: impostorCheckpoint)),
                       .text(403, "checkpoint is not signed by a key this witness trusts for the origin"))
        XCTAssertEqual(witness.addCheckpoint(Witness.requestBody(old: 9, proof: [], checkpoint: grownCheckpoint)),
                       .text(400, "old size 9 is larger than the checkpoint's 3"))
        // Size 0 with a root that is not the empty tree's: 422. A proof from size 0: 422.
        let empty = try SignedNote.sign(text: try Checkpoint(origin: logKey.name, size: 0, rootHash: .leaf(Data())).text,
                                        with: [logKey])
        let fresh = try Witness(key: witnessKey, logKeys: [logKey.verifierKey], stateDirectory: temp.file("state2"))
        XCTAssertEqual(fresh.addCheckpoint(Witness.requestBody(old: 0, proof: [], checkpoint: empty.serialized)),
                       .text(422, "a checkpoint of size 0 must have the empty tree's root"))
        XCTAssertEqual(fresh.addCheckpoint(Witness.requestBody(old: 0, proof: [.emptyTree], checkpoint: grownCheckpoint)),
                       .text(422, "a proof from size 0 must be empty"))
        // Malformed bodies: 400.
        for body in ["", "old 1\n", "old 01\n\n", "new 1\n\nx", "old 1\nnot base64\n\nx"] {
            XCTAssertEqual(fresh.addCheckpoint(Data(body.utf8)).status, 400, body)
        }
        XCTAssertEqual(try fresh.latestCosigned(origin: logKey.name).size, 0)
    }

    func testWitnessServersCosignAPublishersLogAndRefuseAForkAcrossARestart() throws {
        // Keys on disk, as a publisher and two witness operators would have them.
        let ferry = BuiltProducts.ferry
        try Command.check([ferry, "log", "keygen", "example.com/apps/log", "--output", temp.file("log")])
        for name in ["w1", "w2"] {
            try Command.check([ferry, "log", "keygen", "\(name).example/witness", "--witness", "--output",
                               temp.file(name)])
        }
        var servers = try ["w1", "w2"].map {
            try WitnessServer(key: temp.file("\($0).key"), logs: [temp.file("log.vkey")], state: temp.file("\($0)-state"))
        }
        defer { servers.forEach { $0.stop() } }
        let layout = temp.file("layout")
        try FileManager.default.createDirectory(atPath: layout, withIntermediateDirectories: true)
        try Command.check([ferry, "log", "init", layout, "--key", temp.file("log.key")])
        func append(_ text: String) throws {
            try temp.write("entry", text)
            try Command.check([ferry, "log", "append", layout, "--key", temp.file("log.key"), temp.file("entry")])
        }
        func witnessLog(status: Int32 = 0) throws -> CommandResult {
            let result = try Command.run([ferry, "log", "witness", layout]
                + servers.flatMap { ["--witness", $0.url] }
                + ["--witness-key", temp.file("w1.vkey"), "--witness-key", temp.file("w2.vkey")])
            XCTAssertEqual(result.status, status, result.out + result.err)
            return result
        }
        try append("release 1")
        try append("release 2")
        let first = try witnessLog()
        XCTAssertTrue(first.out.contains("cosigned example.com/apps/log at size 2 (w1.example/witness)"), first.out)
        // Go's note verifier checks the log's signature and both cosignatures.
        let verified = try Command.run([try GoInteropTests.tool(), "verify-note", layout + "/log/checkpoint",
                                        temp.file("log.vkey"), temp.file("w1.vkey"), temp.file("w2.vkey")])
        XCTAssertEqual(verified.status, 0, verified.err)
        XCTAssertEqual(verified.out.split(separator: "\n").count, 3, verified.out)

        // The log grows: each witness answers 409 with size 2, and the retry carries the proof from there.
        try append("release 3")
        XCTAssertTrue(try witnessLog().out.contains("at size 3 (w2.example/witness)"))

        // A fork: the log rewritten from its second entry, signed by the real key. Both witnesses refuse it,
        // and the checkpoint gets no cosignature.
        try FileManager.default.removeItem(atPath: layout + "/log")
        try Command.check([ferry, "log", "init", layout, "--key", temp.file("log.key")])
        try append("release 1")
        try append("forged 2")
        try append("forged 3")
        try append("forged 4")
        let before = try Data(contentsOf: URL(fileURLWithPath: layout + "/log/checkpoint"))
        let fork = try witnessLog(status: 1)
        XCTAssertTrue(fork.err.contains("refused the checkpoint: HTTP 422: not consistent with the checkpoint of size 3 "
            + "cosigned before"), fork.err)
        XCTAssertTrue(fork.err.hasSuffix("ferry: 2 of 2 witnesses did not cosign\n"), fork.err)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: layout + "/log/checkpoint")), before)

        // Restarted, the witnesses still remember size 3 (their state was written before they answered).
        servers.forEach { $0.stop() }
        servers = try ["w1", "w2"].map {
            try WitnessServer(key: temp.file("\($0).key"), logs: [temp.file("log.vkey")], state: temp.file("\($0)-state"))
        }
        XCTAssertTrue(try witnessLog(status: 1).err.contains("HTTP 422"))
        // A shrink: a log of 1 entry, while the witnesses cosigned 3.
        try FileManager.default.removeItem(atPath: layout + "/log")
        try Command.check([ferry, "log", "init", layout, "--key", temp.file("log.key")])
        try append("release 1")
        let shrink = try witnessLog(status: 1)
        XCTAssertTrue(shrink.err.contains("it cosigned 3 entries, more than this log's 1: the log shrank or forked"),
                      shrink.err)

        // Plain HTTP against the server: anything but POST /add-checkpoint is refused.
        let get = try Command.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", servers[0].url + "/add-checkpoint"])
        XCTAssertEqual(get.out, "405")
        let garbage = try Command.run(["curl", "-s", "-w", " %{http_code}", "--data-binary", "garbage",
                                       servers[0].url + "/add-checkpoint"])
        XCTAssertEqual(garbage.out, "malformed request: expected an old size line, proof lines and an empty line\n 400")
    }
}
