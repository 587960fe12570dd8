import FerryCore
@testable import FerryLog
import FerryTestSupport
import XCTest

/// Releases in the transparency log, through the built `ferry`: `ferry sign --log-key` appends a self-authenticating
/// release entry, `ferry log audit` checks the whole log and every entry's signatures and refuses a fork, and
/// `ferry mirror` carries the log, which Go's sumdb/tlog (an independent implementation) then verifies.
final class ReleaseLogTests: XCTestCase {
    static let ref = "org.example.Hello/x86_64/stable"
    var temp: TemporaryDirectory!
    var environment: [String: String] = [:]

    override func setUpWithError() throws {
        temp = try TemporaryDirectory(prefix: "frl")
        environment = ["HOME": temp.file("home"), "XDG_CACHE_HOME": temp.file("home/.cache"),
                       "XDG_CONFIG_HOME": temp.file("home/.config"), "FERRY_SYSTEM_ROOT": temp.file("none")]
        try FileManager.default.createDirectory(atPath: temp.file("home"), withIntermediateDirectories: true)
        try Command.check(["minisign", "-G", "-W", "-p", temp.file("release.pub"), "-s", temp.file("release.key")])
        try ferry(["log", "keygen", "example.com/apps/log", "--output", "log"])
        try FileManager.default.createDirectory(atPath: temp.file("app/bin"), withIntermediateDirectories: true)
    }

    @discardableResult
    func ferry(_ arguments: [String], status: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws
        -> CommandResult
    {
        let result = try Command.run([BuiltProducts.ferry] + arguments, environment: environment, directory: temp.path)
        XCTAssertEqual(result.status, status, "ferry \(arguments.joined(separator: " ")): \(result.out)\(result.err)",
                       file: file, line: line)
        return result
    }

    /// Builds version `version` into `layout` and signs it at `timestamp`, logging it with `log.key`.
    @discardableResult
    func release(_ version: String, timestamp: Int64, layout: String = "layout") throws -> CommandResult {
        try temp.write("app/bin/hello", "#!/bin/sh\necho hello \(version)\n")
        try ferry(["build", "app", layout, "--ref", Self.ref, "--command", "/bin/hello"])
        return try ferry(["sign", layout, "--ref", Self.ref, "--ed25519-key", "release.key", "--timestamp",
                          "\(timestamp)", "--log-key", "log.key"])
    }

    func audit(_ source: String = "layout", status: Int32 = 0) throws -> CommandResult {
        try ferry(["log", "audit", source, "--log-key", "log.vkey", "--ed25519-key", "release.pub"], status: status)
    }

    func testSignLogsASelfAuthenticatingReleaseEntry() throws {
        try ferry(["build", "app", "layout", "--ref", Self.ref, "--command", "/bin/hello"])
        try ferry(["log", "init", "layout", "--key", "log.key"])
        // A layout with a log never gets an unlogged release, and a log key without a log is a mistake.
        let unlogged = try ferry(["sign", "layout", "--ref", Self.ref, "--ed25519-key", "release.key"], status: 1)
        XCTAssertEqual(unlogged.err, "ferry: layout has a transparency log: give its signer key (--log-key) so that "
            + "the release is logged\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.file("layout/signatures")))
        try ferry(["build", "app", "plain", "--ref", Self.ref, "--command", "/bin/hello"])
        XCTAssertEqual(try ferry(["sign", "plain", "--ref", Self.ref, "--ed25519-key", "release.key", "--log-key",
                                  "log.key"], status: 1).err,
                       "ferry: plain has no transparency log (start one with ferry log init)\n")

        let signed = try release("v1", timestamp: 1_700_000_000)
        XCTAssertTrue(signed.out.hasSuffix("\(Self.ref): logged as entry 0 of example.com/apps/log (size 1)\n"),
                      signed.out)
        var entries: [Data] = []
        let vkey = try NoteVerifierKey(try String(contentsOfFile: temp.file("log.vkey"), encoding: .utf8))
        try LogVerifier.verify(try LogDirectory(path: temp.file("layout/log")), logKey: vkey) { entries.append($1) }
        guard case .release(let entry) = try LogEntry(parsing: try XCTUnwrap(entries.first)) else {
            return XCTFail("not a release entry")
        }
        XCTAssertEqual(entry.ref.string, Self.ref)
        XCTAssertEqual(entry.timestamp, 1_700_000_000)
        // The entry carries exactly the files the layout holds beside the image.
        let index = try ImageLayout(path: temp.file("layout"))
        let digest = try index.descriptor(for: try Ref(Self.ref)).digest
        XCTAssertEqual(entry.digest, digest)
        XCTAssertEqual(entry.signatures, try index.signatures(ref: try Ref(Self.ref), digest: digest))
        // Its bytes are canonical: serializing what was parsed gives them back.
        XCTAssertEqual(try entry.serialized(), entries.first)
    }

    func testEntriesAreStrict() throws {
        let entry = ReleaseEntry(ref: try Ref(Self.ref), digest: Digest.of(Data("m".utf8)), timestamp: 5,
                                 signatures: SignatureSet(gpg: [Data("sig".utf8)]))
        let bytes = try entry.serialized()
        XCTAssertEqual(try LogEntry(parsing: bytes), .release(entry))
        XCTAssertEqual(try LogEntry(parsing: Data(#"{"kind":"attestation","x":1}"#.utf8)), .other(kind: "attestation"))
        for bad in [#"{"kind":"key-add","key":"x"}"#, #"{"kind":"release","kind":"release"}"#, #"["release"]"#, #"{"kind":"release","ref":"../x"}"#,
                    String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: Self.ref, with: "a//b")] {
            XCTAssertThrowsError(try LogEntry(parsing: Data(bad.utf8)), bad)
        }
        XCTAssertThrowsError(try LogEntry(parsing: Data(count: 70_000)))
    }

    /// The audit reads key events as clients do: a release by a key the log added verifies, the key-add and the
    /// recall are listed with their key and reason, and a key event signed by a stranger is listed as refused.
    func testAuditFollowsKeyEventsAndListsRecalls() throws {
        try ferry(["build", "app", "layout", "--ref", Self.ref, "--command", "/bin/hello"])
        try ferry(["log", "init", "layout", "--key", "log.key"])
        try release("v1", timestamp: 1_700_000_000)
        try Command.check(["minisign", "-G", "-W", "-p", temp.file("new.pub"), "-s", temp.file("new.key")])
        try Command.check(["minisign", "-G", "-W", "-p", temp.file("stranger.pub"), "-s", temp.file("stranger.key")])
        let line = try String(contentsOfFile: temp.file("release.pub"), encoding: .utf8).split(separator: "\n").last!
        try temp.write("repo.ferryrepo", "url = \"https://example.com/apps\"\ned25519-keys = [\"\(line)\"]\n"
            + "log-key = \"\(try String(contentsOfFile: temp.file("log.vkey"), encoding: .utf8).trimmingCharacters(in: .newlines))\"\n")
        let trust = ["--from", "repo.ferryrepo", "--log-key", "log.key"]
        try ferry(["key", "add", "layout", "--ed25519-key", "release.key", "--key", "new.pub"] + trust)
        try temp.write("app/bin/hello", "#!/bin/sh\necho hello v2\n")
        try ferry(["build", "app", "layout", "--ref", Self.ref, "--command", "/bin/hello"])
        try ferry(["sign", "layout", "--ref", Self.ref, "--ed25519-key", "new.key", "--timestamp", "1700000100",
                   "--log-key", "log.key"])
        let digest = try ImageLayout(path: temp.file("layout")).descriptor(for: try Ref(Self.ref)).digest
        try ferry(["recall", "layout", "--ed25519-key", "new.key", "--ref", Self.ref, "--digest", digest.description,
                   "--reason", "crashes"] + trust)
        // A stranger's key-add: the publisher's tool refuses it, so it is appended by hand (a careless operator).
        let refused = try ferry(["key", "add", "layout", "--ed25519-key", "stranger.key", "--key", "stranger.pub"]
                                    + trust, status: 1)
        XCTAssertTrue(refused.err.contains("not written: clients would refuse it: key-add of "), refused.err)
        let entries = try LogDirectory(path: temp.file("layout/log")).entries(of: try Tile(entriesAt: 0, width: 4))
        try entries[1].write(to: URL(fileURLWithPath: temp.file("replayed")))
        try ferry(["log", "append", "layout", "--key", "log.key", "replayed"])

        // The refused entry does not verify: the audit says so and exits 1.
        let audit = try audit(status: 1)
        XCTAssertEqual(audit.err, "ferry: 1 of 5 log entries did not verify\n")
        let lines = audit.out.split(separator: "\n").map(String.init)
        let newID = String(try String(contentsOfFile: temp.file("new.pub"), encoding: .utf8)
            .split(separator: "\n")[0].split(separator: " ").last!)
        XCTAssertEqual(lines.count, 6, audit.out)
        XCTAssertTrue(lines[1].hasPrefix("1 key-add \(newID) ") && lines[1].hasSuffix(" verified"), lines[1])
        XCTAssertTrue(lines[2].hasPrefix("2 release \(Self.ref) \(digest) ") && lines[2].hasSuffix(" verified"), lines[2])
        XCTAssertTrue(lines[3].hasPrefix("3 recall \(Self.ref) \(digest) ") && lines[3].contains("(crashes) verified"),
                      lines[3])
        XCTAssertTrue(lines[4].hasSuffix("NOT VERIFIED: key-add of \(newID): already applied (the same event appended "
            + "again)"), lines[4])
    }

    func testAuditListsEveryReleaseAndRefusesInventedEntriesAndForks() throws {
        try ferry(["build", "app", "layout", "--ref", Self.ref, "--command", "/bin/hello"])
        try ferry(["log", "init", "layout", "--key", "log.key"])
        try release("v1", timestamp: 1_700_000_000)
        try release("v2", timestamp: 1_700_000_100)
        let first = try audit()
        let lines = first.out.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3, first.out)
        XCTAssertTrue(lines[0].hasPrefix("0 release \(Self.ref) sha256:"), first.out)
        XCTAssertTrue(lines[0].hasSuffix(" 2023-11-14T22:13:20Z (1700000000) verified"), first.out)
        XCTAssertTrue(lines[1].hasSuffix(" (1700000100) verified"), first.out)
        XCTAssertTrue(lines[2].hasPrefix("example.com/apps/log: 2 entries, root "), first.out)
        let json = try ferry(["log", "audit", "layout", "--log-key", "log.vkey", "--ed25519-key", "release.pub", "--json"])
        let rows = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["timestamp"] as? Int }, [1_700_000_000, 1_700_000_100])
        XCTAssertEqual(rows.map { $0["verified"] as? Bool }, [true, true])

        // The log operator appends a release nobody signed.
        let saved = temp.file("saved-log")
        try Command.check(["cp", "-a", temp.file("layout/log"), saved])
        let entry = ReleaseEntry(ref: try Ref(Self.ref), digest: Digest.of(Data("evil".utf8)),
                                 timestamp: 1_700_000_200,
                                 signatures: SignatureSet(ed25519: [.init(claim: Data("{}".utf8), minisig: Data("x".utf8))]))
        try temp.write("invented", String(decoding: try entry.serialized(), as: UTF8.self))
        try ferry(["log", "append", "layout", "--key", "log.key", "invented"])
        let invented = try audit(status: 1)
        XCTAssertTrue(invented.out.contains("2 release \(Self.ref) \(Digest.of(Data("evil".utf8))) "), invented.out)
        XCTAssertTrue(invented.out.contains("NOT VERIFIED"), invented.out)
        XCTAssertEqual(invented.err, "ferry: 1 of 3 log entries did not verify\n")

        // A fork: the log rewritten from its second entry, signed by the real log key. The last audit saw size 3.
        try FileManager.default.removeItem(atPath: temp.file("layout/log"))
        try Command.check(["cp", "-a", saved, temp.file("layout/log")])
        try release("v3", timestamp: 1_700_000_300)
        try release("v4", timestamp: 1_700_000_400)
        let fork = try audit(status: 1)
        XCTAssertTrue(fork.err.hasPrefix("ferry: example.com/apps/log: the log forked: its first 3 entries hash to "),
                      fork.err)
        let evidence = try XCTUnwrap(fork.err.components(separatedBy: "both checkpoints kept in ").last)
            .trimmingCharacters(in: .newlines)
        XCTAssertTrue(FileManager.default.fileExists(atPath: evidence + "/checkpoint-before"), evidence)
        XCTAssertTrue(FileManager.default.fileExists(atPath: evidence + "/checkpoint-now"), evidence)
    }

    func testMirrorCarriesTheLogAndGoVerifiesTheCopy() throws {
        try ferry(["build", "app", "layout", "--ref", Self.ref, "--command", "/bin/hello"])
        try ferry(["log", "init", "layout", "--key", "log.key"])
        for (i, version) in ["v1", "v2", "v3"].enumerated() {
            try release(version, timestamp: 1_700_000_000 + Int64(i))
        }
        let mirror = try ferry(["mirror", "layout", "usb", "--ed25519-key", "release.pub"])
        XCTAssertTrue(mirror.out.contains("transparency log: 3 entries"), mirror.out)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: temp.file("usb/log/checkpoint"))),
                       try Data(contentsOf: URL(fileURLWithPath: temp.file("layout/log/checkpoint"))))
        XCTAssertTrue(try ferry(["log", "verify", "usb", "--log-key", "log.vkey"]).out
            .hasPrefix("example.com/apps/log size 3 root "))
        let go = try Command.run([try GoInteropTests.tool(), "check-log", temp.file("log.vkey"), temp.file("usb/log")])
        XCTAssertEqual(go.status, 0, go.err)
        XCTAssertTrue(go.out.hasPrefix("ok example.com/apps/log size 3: "), go.out)
        // The audit reads the mirror as it reads the origin.
        XCTAssertTrue(try audit("usb").out.contains("example.com/apps/log: 3 entries"))
    }

    /// The short version of `make bench-log`: one update's log work on a log of 70,000 entries (past a tile level)
    /// fetches the checkpoint and proof tiles within the benchmark's 64 KiB bound, and the offline check passes.
    func testOneUpdatesLogWorkOnALargeLogStaysSmall() throws {
        try ferry(["build", "app", "layout", "--ref", Self.ref, "--command", "/bin/hello"])
        try ferry(["log", "init", "layout", "--key", "log.key"])
        try release("v1", timestamp: 1_700_000_000)
        let bundle = try Data(contentsOf: URL(fileURLWithPath: temp.file("layout/log/tile/entries/000.p/1")))
        try Data(bundle.dropFirst(2)).write(to: URL(fileURLWithPath: temp.file("entry")))
        try ferry(["debug-log-fill", "layout", "--key", "log.key", "--entry", "entry", "--count", "69999",
                   "--keep-checkpoint", "69000:trusted"])
        let server = try StaticServer(root: temp.file("layout"), scratch: temp)
        defer { server.stop() }
        let out = try ferry(["debug-log-update", server.url, "--log-key", "log.vkey", "--index", "69500",
                             "--trusted", "trusted"]).out
        let answer = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        XCTAssertEqual(answer["size"] as? Int, 70_000)
        let proofBytes = (answer["checkpoint_bytes"] as? Int ?? 0) + (answer["tile_bytes"] as? Int ?? 0)
        XCTAssertGreaterThan(proofBytes, 0)
        XCTAssertLessThanOrEqual(proofBytes, 64 * 1024, out)
    }
}
