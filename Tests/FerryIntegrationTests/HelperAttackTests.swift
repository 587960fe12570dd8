import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// Attacks on the helper through its D-Bus interface, from an unprivileged user who is otherwise allowed to
/// install: each is refused with the exact error and leaves nothing on disk.
final class HelperAttackTests: SystemTestCase {

    /// A staged layout as the agent would leave it: a copy of the publisher's layout owned by `ferryt-alice`.
    func stage() throws -> String {
        try fixture.stagePublishedLayout()
    }

    /// The largest blob of the staged image (its layer).
    func layerPath(_ stage: String) throws -> String {
        let files = try FileManager.default.contentsOfDirectory(atPath: stage + "/blobs/sha256")
        let sized = try files.map { name -> (String, Int) in
            let attrs = try FileManager.default.attributesOfItem(atPath: stage + "/blobs/sha256/" + name)
            return (name, (attrs[.size] as? Int) ?? 0)
        }
        return stage + "/blobs/sha256/" + (sized.max { $0.1 < $1.1 }?.0 ?? "")
    }

    func deploy(_ stage: String) throws -> String {
        try fixture.dbusClient("ferryt-alice", ["deploy", stage, "demo", ref, #"{"interactive": ["b", false]}"#])
    }

    func assertRefused(_ stage: String, _ error: String, _ fragment: String, file: StaticString = #filePath,
                       line: UInt = #line) throws {
        let before = fixture.snapshot()
        let reply = try deploy(stage)
        XCTAssertTrue(reply.hasPrefix("ERROR dev.ferry.Error.\(error)"), reply, file: file, line: line)
        XCTAssertTrue(reply.contains(fragment), reply, file: file, line: line)
        XCTAssertUnchanged(before, fixture.snapshot(), file: file, line: line)
        XCTAssertEqual(try fixture.installedRefs(), "OK []\n", file: file, line: line)
    }

    func testCleanStagingIsAcceptedAsTheBaseline() throws {
        let reply = try deploy(try stage())
        XCTAssertTrue(reply.hasPrefix("OK \"sha256:"), reply)
    }

    func testBlobReplacedAfterTheAgentVerifiedItIsRefused() throws {
        let stage = try stage()
        let layer = try layerPath(stage)
        var data = try Data(contentsOf: URL(fileURLWithPath: layer))
        data[data.count / 2] ^= 0x55
        try data.write(to: URL(fileURLWithPath: layer))
        try assertRefused(stage, "DigestMismatch", "has digest")
    }

    func testSymlinkInPlaceOfABlobIsRefused() throws {
        let stage = try stage()
        let layer = try layerPath(stage)
        try FileManager.default.moveItem(atPath: layer, toPath: stage + "/moved")
        try FileManager.default.createSymbolicLink(atPath: layer, withDestinationPath: stage + "/moved")
        try assertRefused(stage, "InvalidArgument", "symlink")
    }

    func testFifoInPlaceOfABlobIsRefusedWithoutHanging() throws {
        let stage = try stage()
        let layer = try layerPath(stage)
        try FileManager.default.removeItem(atPath: layer)
        XCTAssertEqual(mkfifo(layer, 0o644), 0)
        try Command.check(["chown", "ferryt-alice", layer])
        try assertRefused(stage, "InvalidArgument", "not a regular file")
    }

    func testHardLinkToARootOnlyFileIsRefused() throws {
        let stage = try stage()
        let layer = try layerPath(stage)
        let secret = fixture.scratch.file("root-only")
        try Data("secret\n".utf8).write(to: URL(fileURLWithPath: secret))
        chmod(secret, 0o600)
        try FileManager.default.removeItem(atPath: layer)
        XCTAssertEqual(link(secret, layer), 0)
        try assertRefused(stage, "InvalidArgument", "not owned by the caller")
    }

    func testFileLargerThanItsDescriptorIsRefused() throws {
        let stage = try stage()
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: try layerPath(stage)))
        handle.seekToEndOfFile()
        handle.write(Data(repeating: 0, count: 4096))
        try handle.close()
        try assertRefused(stage, "DigestMismatch", "larger than its descriptor")
    }

    /// Attack: a validly signed manifest whose layer sizes add up past `Int64.max` (two layers of `Int64.max`
    /// bytes). Summing them for the progress total trapped, and a trap in the root helper ends every caller's
    /// job; the manifest is now refused when it is read, before anything is copied.
    func testLayerSizesOverflowingInt64AreRefused() throws {
        let stage = try stage()
        let indexURL = URL(fileURLWithPath: stage + "/index.json")
        var index = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: indexURL)) as? [String: Any])
        var entries = try XCTUnwrap(index["manifests"] as? [[String: Any]])
        let old = try Digest(parsing: try XCTUnwrap(entries.first?["digest"] as? String))
        let oldURL = URL(fileURLWithPath: stage + "/blobs/sha256/" + old.hex)
        var manifest = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: oldURL)) as? [String: Any])
        var layer = try XCTUnwrap((manifest["layers"] as? [[String: Any]])?.first)
        layer["size"] = NSNumber(value: Int64.max)
        manifest["layers"] = [layer, layer]
        let data = try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])
        let digest = Digest.of(data)
        try data.write(to: URL(fileURLWithPath: stage + "/blobs/sha256/" + digest.hex))
        entries[0]["digest"] = digest.description
        entries[0]["size"] = data.count
        index["manifests"] = entries
        try JSONSerialization.data(withJSONObject: index, options: [.sortedKeys]).write(to: indexURL)
        // Signed by the blessed key, for this ref, with a newer timestamp: only the sizes are wrong.
        let signatures = stage + "/" + SignatureSet.directory(ref: try Ref(ref), digest: digest)
        try FileManager.default.createDirectory(atPath: signatures, withIntermediateDirectories: true)
        let claim = signatures + "/" + SignatureSet.claimFileName(1)
        try Claim(digest: digest, identity: ref, timestamp: 1_700_000_050).serialized()
            .write(to: URL(fileURLWithPath: claim))
        try Command.check(["minisign", "-S", "-s", fixture.publisher.secretKey, "-m", claim,
                           "-x", signatures + "/" + SignatureSet.minisigFileName(1)])
        try Command.check(["chown", "-R", "ferryt-alice:ferryt-alice", stage])
        try assertRefused(stage, "InvalidArgument", "manifest sizes overflow")
    }

    func testUnsignedStagingIsRefused() throws {
        let stage = try stage()
        try FileManager.default.removeItem(atPath: stage + "/signatures")
        try assertRefused(stage, "SignatureInvalid", "unsigned")
    }

    func testRemoteNotBlessedSystemWideIsRefusedAsUntrusted() throws {
        let reply = try fixture.dbusClient("ferryt-alice", ["deploy", try stage(), "elsewhere", ref])
        XCTAssertTrue(reply.hasPrefix("ERROR dev.ferry.Error.Untrusted"), reply)
    }

    func testHostileArgumentsAreInvalidArgument() throws {
        let stage = try stage()
        let long = String(repeating: "a", count: 4096)
        let before = fixture.snapshot()
        let cases: [[String]] = [
            ["deploy", stage, "demo", "../../etc/passwd"],
            ["deploy", stage, "demo", "/etc/passwd"],
            ["deploy", stage, "demo", "org.example.Hello/../../x"],
            ["deploy", stage, "demo", long],
            ["deploy", stage, "..", ref],
            ["deploy", stage, "/etc", ref],
            ["deploy", stage, "a/b", ref],
            ["deploy", stage, long, ref],
            ["deploy", stage, "demo", ref, #"{"allow-everything": ["b", true]}"#],
            ["deploy", stage, "demo", ref, #"{"allow-downgrade": ["s", "yes"]}"#],
            ["deploy", stage, "demo", ref, #"{"interactive": ["u", 1]}"#],
            ["uninstall", "../x"],
            ["uninstall", ref, #"{"force": ["b", true]}"#],
            ["configure", "../evil", #"{"url": ["s", "http://x"]}"#],
            ["configure", "demo", #"{"url": ["b", true]}"#],
            ["configure", "demo", #"{"url": ["s", "file:///etc/../shadow\n"]}"#],
            ["configure", "demo", #"{"keys": ["as", []]}"#],
            ["raw", "Deploy", "sssa{sv}", #"["/tmp", "demo", "x", {}]"#],
            ["raw", "ListInstalled", "s", #"["extra"]"#],
        ]
        for arguments in cases {
            let reply = try fixture.dbusClient("ferryt-alice", arguments)
            XCTAssertTrue(reply.hasPrefix("ERROR dev.ferry.Error.InvalidArgument"),
                          "\(arguments.map { String($0.prefix(40)) }): \(reply.prefix(300))")
        }
        // D-Bus strings cannot carry NUL: the client library refuses to send, the helper never sees it.
        let nul = try fixture.dbusClient("ferryt-alice", ["deploy", stage, "demo", #"json:"a\u0000b""#])
        XCTAssertTrue(nul.hasPrefix("ERROR"), nul)
        XCTAssertUnchanged(before, fixture.snapshot())
    }
}
