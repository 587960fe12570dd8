import ArgumentParser
@testable import FerryCLI
import FerryCore
import FerryLog
import FerryTestSupport
import XCTest

/// `ferry log keygen` and `ferry log init` through the built `ferry` executable, and their parsing.
final class LogCommandTests: XCTestCase {
    var temp: TemporaryDirectory!

    override func setUpWithError() throws {
        temp = try TemporaryDirectory(prefix: "flc")
    }

    @discardableResult
    func ferry(_ arguments: [String], status: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws
        -> CommandResult
    {
        let result = try Command.run([BuiltProducts.ferry] + arguments, directory: temp.path)
        XCTAssertEqual(result.status, status, "ferry \(arguments.joined(separator: " ")): \(result.err)",
                       file: file, line: line)
        return result
    }

    func mode(_ path: String) -> mode_t {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & 0o7777 : 0
    }

    func testKeygenWritesASecretKeyOnlyItsOwnerReadsAndNeverOverwritesIt() throws {
        try ferry(["log", "keygen", "example.com/apps/log"])
        let keyPath = temp.file("example.com_apps_log.key")
        let vkeyPath = temp.file("example.com_apps_log.vkey")
        XCTAssertEqual(mode(keyPath), 0o600)
        XCTAssertEqual(mode(vkeyPath), 0o644)
        let signer = try NoteSignerKey(try String(contentsOfFile: keyPath, encoding: .utf8))
        let verifier = try NoteVerifierKey(try String(contentsOfFile: vkeyPath, encoding: .utf8))
        XCTAssertEqual(signer.verifierKey, verifier)
        XCTAssertEqual(verifier.type, .ed25519)
        let before = TreeSnapshot.take(temp.path)
        let again = try ferry(["log", "keygen", "example.com/apps/log"], status: 1)
        XCTAssertEqual(again.err, "ferry: example.com_apps_log.key exists; not overwriting a key\n")
        XCTAssertEqual(TreeSnapshot.take(temp.path), before)
    }

    func testKeygenWitnessWritesACosignatureKey() throws {
        try ferry(["log", "keygen", "witness.example/w1", "--witness", "--output", "w1"])
        let verifier = try NoteVerifierKey(try String(contentsOfFile: temp.file("w1.vkey"), encoding: .utf8))
        XCTAssertEqual(verifier.type, .cosignature)
        XCTAssertEqual(verifier.name, "witness.example/w1")
    }

    func testKeygenRefusesANameWithASpace() throws {
        let result = try ferry(["log", "keygen", "bad name"], status: 1)
        XCTAssertEqual(result.err, "ferry: invalid key name \"bad name\": it must be non-empty, at most 256 bytes, "
            + "with no spaces or +\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: temp.path), [])
    }

    func testInitStartsAnEmptyLogThatVerifies() throws {
        try ferry(["log", "keygen", "example.com/apps/log", "--output", "log"])
        try FileManager.default.createDirectory(atPath: temp.file("layout"), withIntermediateDirectories: false)
        let result = try ferry(["log", "init", "layout", "--key", "log.key"])
        XCTAssertEqual(result.out, "layout/log: log example.com/apps/log, size 0, root "
            + "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n")
        let verifier = try NoteVerifierKey(try String(contentsOfFile: temp.file("log.vkey"), encoding: .utf8))
        let checkpoint = try LogVerifier.verify(try LogDirectory(path: temp.file("layout/log")), logKey: verifier)
        XCTAssertEqual(checkpoint.size, 0)
        XCTAssertEqual(checkpoint.rootHash, .emptyTree)
        // A second init would fork the log: refused, nothing changed.
        let before = TreeSnapshot.take(temp.file("layout"))
        let again = try ferry(["log", "init", "layout", "--key", "log.key"], status: 1)
        XCTAssertEqual(again.err, "ferry: layout/log already has a log (checkpoint exists)\n")
        XCTAssertEqual(TreeSnapshot.take(temp.file("layout")), before)
    }

    func testInitRefusesAMissingLayoutAndAWitnessKey() throws {
        try ferry(["log", "keygen", "w.example", "--witness", "--output", "w"])
        XCTAssertEqual(try ferry(["log", "init", "nowhere", "--key", "w.key"], status: 1).err,
                       "ferry: nowhere is not a directory\n")
        try FileManager.default.createDirectory(atPath: temp.file("layout"), withIntermediateDirectories: false)
        XCTAssertEqual(try ferry(["log", "init", "layout", "--key", "w.key"], status: 1).err,
                       "ferry: w.key is a witness key; a log needs an Ed25519 (type 0x01) key\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.file("layout/log")))
    }

    func testHiddenAppendAndVerifyWorkOnTheLog() throws {
        try ferry(["log", "keygen", "example.com/apps/log", "--output", "log"])
        try FileManager.default.createDirectory(atPath: temp.file("layout"), withIntermediateDirectories: false)
        try ferry(["log", "init", "layout", "--key", "log.key"])
        try temp.write("a", "first entry")
        try temp.write("b", "second entry")
        try ferry(["log", "append", "layout", "--key", "log.key", "a", "b"])
        let root = NaiveMerkleTree(entries: [Data("first entry".utf8), Data("second entry".utf8)]).hash(0, 2)
        let vkey = try String(contentsOfFile: temp.file("log.vkey"), encoding: .utf8)
        for key in ["log.vkey", vkey.trimmingCharacters(in: .newlines)] {
            XCTAssertEqual(try ferry(["log", "verify", "layout", "--log-key", key]).out,
                           "example.com/apps/log size 2 root \(root.base64)\n")
        }
    }

    func testLogCommandsParse() throws {
        let keygen = try XCTUnwrap(try Ferry.parseAsRoot(["log", "keygen", "n.example", "--witness"])
            as? LogKeygenCommand)
        XCTAssertEqual(keygen.name, "n.example")
        XCTAssertTrue(keygen.witness)
        XCTAssertNil(keygen.output)
        let initCommand = try XCTUnwrap(try Ferry.parseAsRoot(["log", "init", "layout", "--key", "k.key"])
            as? LogInitCommand)
        XCTAssertEqual(initCommand.layout, "layout")
        XCTAssertEqual(initCommand.key, "k.key")
        XCTAssertThrowsError(try Ferry.parseAsRoot(["log", "init", "layout"]))
        XCTAssertThrowsError(try Ferry.parseAsRoot(["log", "keygen"]))
    }
}
