import FerryCore
@testable import FerryLog
import FerryTestSupport
import XCTest

/// Ferry's log against an independent implementation of the same standards: golang.org/x/mod/sumdb/note and
/// sumdb/tlog as Debian packages them (golang-go, golang-golang-x-mod-dev), driven through
/// `scripts/tlog-interop`, which the tests build offline in GOPATH mode.
final class GoInteropTests: XCTestCase {
    /// XCTest runs this class's tests one at a time, so the build is made once without a lock.
    nonisolated(unsafe) private static var built: (directory: TemporaryDirectory, tool: String)?
    var temp: TemporaryDirectory!

    /// Builds `scripts/tlog-interop` once per test run, with no network: GOPATH mode against the Debian sources in
    /// /usr/share/gocode, a private build cache, and the module proxy off.
    static func tool() throws -> String {
        if let built { return built.tool }
        let directory = try TemporaryDirectory(prefix: "fgo")
        let tool = directory.file("tlog-interop")
        let environment = ["GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "GOCACHE": directory.file("cache"),
                           "GOFLAGS": "", "GOPROXY": "off", "CGO_ENABLED": "0"]
        let result = try Command.run(["go", "build", "-o", tool, "./scripts/tlog-interop"],
                                     environment: environment, directory: Testbed.repositoryRoot())
        guard result.status == 0 else {
            // Not a skip: `make test` installs Go (scripts/deps.sh), and an interop test that quietly does not run
            // proves nothing.
            throw GoBuildFailed(description: "go build ./scripts/tlog-interop (install golang-go "
                + "golang-golang-x-mod-dev; scripts/deps.sh does): \(result.err)")
        }
        built = (directory, tool)
        return tool
    }

    /// Runs the Go tool and returns its standard output; fails the test when it exits non-zero.
    @discardableResult
    func go(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let result = try Command.run([try GoInteropTests.tool()] + arguments)
        XCTAssertEqual(result.status, 0, "tlog-interop \(arguments.joined(separator: " ")): \(result.err)",
                       file: file, line: line)
        return result.out
    }

    /// Runs the Go tool expecting a refusal; returns its error output.
    func goRefuses(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let result = try Command.run([try GoInteropTests.tool()] + arguments)
        XCTAssertEqual(result.status, 1, "tlog-interop \(arguments.joined(separator: " ")) accepted",
                       file: file, line: line)
        return result.err
    }

    override func setUpWithError() throws {
        _ = try GoInteropTests.tool()
        temp = try TemporaryDirectory(prefix: "fgi")
    }

    func write(_ name: String, _ data: Data) throws -> String {
        try data.write(to: URL(fileURLWithPath: temp.file(name)))
        return temp.file(name)
    }

    /// A Ferry log key with its `.vkey` file, as `ferry log keygen` writes it.
    func ferryKey(_ name: String = "example.com/apps/log", type: NoteKeyType = .ed25519) throws
        -> (key: NoteSignerKey, vkey: String)
    {
        let key = try NoteSignerKey.generate(name: name, type: type)
        let path = try write("\(key.verifierKey.keyID).vkey", Data((key.verifierKey.text + "\n").utf8))
        return (key, path)
    }

    // MARK: - Notes and keys

    func testGoVerifiesACheckpointFerrySigned() throws {
        let (key, vkey) = try ferryKey()
        try LogAppender.create(at: temp.file("log"), signer: key)
        try LogAppender(path: temp.file("log"), signer: key).append(testEntries(3))
        XCTAssertEqual(try go(["verify-note", temp.file("log/checkpoint"), vkey]), "verified example.com/apps/log\n")
        // A changed size must not verify in Go either (the check can fail).
        let checkpoint = try String(contentsOfFile: temp.file("log/checkpoint"), encoding: .utf8)
        let forged = try write("forged", Data(checkpoint.replacingOccurrences(of: "\n3\n", with: "\n4\n").utf8))
        XCTAssertTrue(try goRefuses(["verify-note", forged, vkey]).contains("invalid signature"))
    }

    func testFerryReadsGoKeysAndVerifiesANoteGoSigned() throws {
        try go(["keygen", "go.example/log", temp.file("go")])
        let signer = try NoteSignerKey(try String(contentsOfFile: temp.file("go.key"), encoding: .utf8))
        let verifier = try NoteVerifierKey(try String(contentsOfFile: temp.file("go.vkey"), encoding: .utf8))
        XCTAssertEqual(signer.verifierKey, verifier)
        let text = "go.example/log\n7\n\(MerkleHash.leaf(Data("x".utf8)).base64)\n"
        let goNote = Data(try go(["sign", temp.file("go.key"), try write("text", Data(text.utf8))]).utf8)
        let note = try SignedNote(goNote)
        XCTAssertEqual(try note.verify(by: [verifier]).map(\.key), [verifier])
        XCTAssertEqual(try Checkpoint.open(goNote, logKey: verifier).checkpoint.size, 7)
        // Ed25519 is deterministic: Ferry signing the same text with Go's key writes Go's bytes.
        XCTAssertEqual(try SignedNote.sign(text: text, with: [signer]).serialized, goNote)
    }

    func testCosignaturesVerifyInBothDirections() throws {
        let (log, logVkey) = try ferryKey()
        try LogAppender.create(at: temp.file("log"), signer: log)
        let checkpoint = temp.file("log/checkpoint")
        // Go cosigns Ferry's checkpoint with a Go-made witness key; Ferry verifies it and its time.
        try go(["witness-keygen", "witness.example/go", temp.file("w")])
        let goWitness = try NoteVerifierKey(try String(contentsOfFile: temp.file("w.vkey"), encoding: .utf8))
        XCTAssertEqual(goWitness.type, .cosignature)
        let cosigned = Data(try go(["cosign", temp.file("w.key"), checkpoint, "1700000000"]).utf8)
        let opened = try Checkpoint.open(cosigned, logKey: log.verifierKey, witnesses: [goWitness])
        XCTAssertEqual(opened.verified.map(\.timestamp), [0, 1_700_000_000])
        // Ferry cosigns; Go's verifier (written from the spec, on Go's ed25519) checks it.
        let (witness, witnessVkey) = try ferryKey("witness.example/ferry", type: .cosignature)
        let note = try SignedNote(Data(contentsOf: URL(fileURLWithPath: checkpoint)))
        let both = note.adding(try witness.sign(text: Data(note.text.utf8), timestamp: 1_700_000_123))
        let path = try write("cosigned", both.serialized)
        XCTAssertEqual(try go(["verify-note", path, logVkey, witnessVkey]),
                       "verified example.com/apps/log\nverified witness.example/ferry time 1700000123\n")
    }

    // MARK: - Logs

    /// Proof lines for `tlog-interop check-log`: every inclusion and consistency proof between `sizes`, computed
    /// by Ferry from the tiles in `log`.
    func proofLines(log: String, sizes: [UInt64], indexes: (UInt64) -> [UInt64]) throws -> String {
        let directory = try LogDirectory(path: log)
        func join(_ proof: [MerkleHash]) -> String { proof.isEmpty ? "-" : proof.map(\.base64).joined(separator: ",") }
        var lines = ""
        let logSize = sizes.max() ?? 0
        for size in sizes {
            let reader = directory.hashReader(treeSize: size, tilesOf: logSize)
            let root = try MerkleTree.rootHash(size: size, reader: reader)
            for index in indexes(size) {
                let proof = try MerkleTree.inclusionProof(index: index, size: size, reader: reader)
                lines += "inclusion \(index) \(size) \(root.base64) \(join(proof))\n"
            }
            for old in sizes where old >= 1 && old <= size {
                let oldRoot = try MerkleTree.rootHash(
                    size: old, reader: directory.hashReader(treeSize: old, tilesOf: logSize))
                let proof = try MerkleTree.consistencyProof(from: old, to: size, reader: reader)
                lines += "consistency \(old) \(size) \(oldRoot.base64) \(root.base64) \(join(proof))\n"
            }
        }
        return lines
    }

    func testGoChecksEveryProofFerryMakesForALogOf70() throws {
        let (key, vkey) = try ferryKey()
        let log = temp.file("log")
        try LogAppender.create(at: log, signer: key)
        try LogAppender(path: log, signer: key).append(testEntries(70))
        let lines = try proofLines(log: log, sizes: Array(1...70)) { Array(0..<$0) }
        let output = try go(["check-log", vkey, log, try write("proofs", Data(lines.utf8))])
        XCTAssertEqual(output, "ok example.com/apps/log size 70: 1 tiles, 4970 Ferry proofs\n")
    }

    func testGoRecomputesEveryTileOfALogFerryGrewPastTwoTileLevels() throws {
        let (key, vkey) = try ferryKey()
        let log = temp.file("log")
        try LogAppender.create(at: log, signer: key)
        let appender = try LogAppender(path: log, signer: key)
        var sizes: [UInt64] = []
        var count = 0
        for batch in [1, 254, 2, 65_279, 700] {
            sizes.append(try appender.append(testEntries(batch, from: count)).size)
            count += batch
        }
        XCTAssertEqual(sizes, [1, 255, 257, 65_536, 66_236])
        let lines = try proofLines(log: log, sizes: sizes + [300, 65_535]) { size in
            [0, 1, 255, 256, 65_535, 65_536, size - 1].filter { $0 < size }
        }
        let output = try go(["check-log", vkey, log, try write("proofs", Data(lines.utf8))])
        // 259 level-0 tiles (258 full), 2 at level 1, 1 at level 2.
        XCTAssertTrue(output.hasPrefix("ok example.com/apps/log size 66236: 262 tiles, "), output)
    }

    func testGoRefusesAFerryLogWithATamperedEntry() throws {
        let (key, vkey) = try ferryKey()
        let log = temp.file("log")
        try LogAppender.create(at: log, signer: key)
        try LogAppender(path: log, signer: key).append(testEntries(5))
        XCTAssertEqual(try go(["check-log", vkey, log]), "ok example.com/apps/log size 5: 1 tiles, 0 Ferry proofs\n")
        let bundle = log + "/tile/entries/000.p/5"
        var data = try Data(contentsOf: URL(fileURLWithPath: bundle))
        data[data.count - 1] ^= 1
        try data.write(to: URL(fileURLWithPath: bundle))
        XCTAssertTrue(try goRefuses(["check-log", vkey, log]).contains("entries hash to"))
    }

    func testFerryVerifiesAndExtendsALogGoWrote() throws {
        try go(["keygen", "go.example/log", temp.file("go")])
        let signer = try NoteSignerKey(try String(contentsOfFile: temp.file("go.key"), encoding: .utf8))
        let entries = testEntries(300)
        var files: [String] = []
        for (i, entry) in entries.enumerated() { files.append(try write("e\(i)", entry)) }
        try go(["write-log", temp.file("go.key"), temp.file("log")] + files)
        var seen: [Data] = []
        let checkpoint = try LogVerifier.verify(try LogDirectory(path: temp.file("log")), logKey: signer.verifierKey) {
            seen.append($1)
        }
        XCTAssertEqual(checkpoint.size, 300)
        XCTAssertEqual(seen, entries)
        // Ferry appends to Go's log with Go's key; Go checks the result.
        try LogAppender(path: temp.file("log"), signer: signer).append(testEntries(20, from: 300))
        XCTAssertEqual(try go(["check-log", temp.file("go.vkey"), temp.file("log")]),
                       "ok go.example/log size 320: 3 tiles, 0 Ferry proofs\n")
    }
}

struct GoBuildFailed: Error, CustomStringConvertible {
    var description: String
}
