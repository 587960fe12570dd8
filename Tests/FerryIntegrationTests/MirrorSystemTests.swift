import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// `ferry mirror` and system installs from what it makes: a second web server with the origin down, a directory
/// with the network cut (`unshare -n`), a mirror of a mirror, and tampered copies that must install nothing.
final class MirrorSystemTests: SystemTestCase {
    func stick(_ name: String) throws -> String { try fixture.writableDirectory(name) }

    /// The digests of the layers of the image `ref` names in the layout at `path`.
    func layers(in path: String) throws -> [String] {
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path + "/index.json")))
        let manifests = try XCTUnwrap((index as? [String: Any])?["manifests"] as? [[String: Any]])
        let digest = try XCTUnwrap(manifests.first { ($0["annotations"] as? [String: String])?[
            "org.opencontainers.image.ref.name"] == ref }?["digest"] as? String)
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath:
            path + "/blobs/sha256/" + digest.dropFirst(7))))
        let layers = try XCTUnwrap((manifest as? [String: Any])?["layers"] as? [[String: Any]])
        return layers.compactMap { $0["digest"] as? String }
    }

    func testMirrorOnASecondServerServesInstallsWhileTheOriginIsDown() throws {
        let usb = try stick("usb")
        let mirror = try fixture.agent("ferryt-alice", "mirror", "demo", usb)
        XCTAssertEqual(mirror.status, 0, mirror.err)
        XCTAssertTrue(mirror.out.contains("\(ref) sha256:"), mirror.out)
        XCTAssertTrue(mirror.out.contains("added 3 blobs"), mirror.out)
        XCTAssertTrue(mirror.out.contains("mirrored 1 of 1 refs from demo"), mirror.out)
        XCTAssertFalse(FileManager.default.fileExists(atPath: usb + "/.partial"))
        // An independent reader takes the mirror as an OCI layout.
        let inspect = try Command.run(["skopeo", "inspect", "--raw", "oci:\(usb):\(ref)"])
        XCTAssertEqual(inspect.status, 0, inspect.err)

        let lan = try StaticServer(root: usb, scratch: fixture.scratch)
        defer { lan.stop() }
        let key = try Data(contentsOf: URL(fileURLWithPath: fixture.publisher.publicKey))
        try fixture.testbed.writeSystemRemote(
            name: "demo", toml: "url = \"\(fixture.server.url)\"\nmirrors = [\"\(lan.url)\"]\n",
            keys: ["ed25519-1.pub": key])
        fixture.server.stop()
        let install = try fixture.agent("ferryt-alice", "install", "--system", "demo", ref, "--no-interaction")
        XCTAssertEqual(install.status, 0, install.err)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v1 \n")
        let layer = try XCTUnwrap(try layers(in: usb).first)
        XCTAssertTrue(lan.requests().contains { $0.path.hasSuffix(String(layer.dropFirst(7))) && $0.status == 200 })

        // The publisher's v2 reaches the LAN through a second run, which copies only what the mirror lacks.
        try fixture.publishV2()
        let again = try fixture.agent("ferryt-alice", "mirror", fixture.publisher.layout, usb,
                                      "--ed25519-key", fixture.publisher.publicKey)
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertTrue(again.out.contains("added 3 blobs"), again.out)
        let unchanged = try fixture.agent("ferryt-alice", "mirror", fixture.publisher.layout, usb,
                                          "--ed25519-key", fixture.publisher.publicKey)
        XCTAssertTrue(unchanged.out.contains("\(ref) sha256:"), unchanged.out)
        XCTAssertTrue(unchanged.out.contains(": already mirrored\n"), unchanged.out)
        XCTAssertTrue(unchanged.out.contains("(0 bytes added)"), unchanged.out)
        let update = try fixture.agent("ferryt-bob", "update", "--system", "--no-interaction")
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v2 \n")
        let history = try fixture.agent("ferryt-carol", "history", "--system", ref)
        XCTAssertTrue(history.out.contains("install \(ref) from demo"), history.out)
        XCTAssertTrue(history.out.contains("update \(ref) from demo"), history.out)
    }

    func testOfflineInstallAndUpdateFromAMirrorOfAMirrorInADirectory() throws {
        let first = try stick("first")
        let usb = try stick("usb")
        XCTAssertEqual(try fixture.agent("ferryt-alice", "mirror", "demo", first).status, 0)
        let copy = try fixture.agent("ferryt-alice", "mirror", first, usb, "--ed25519-key", fixture.publisher.publicKey)
        XCTAssertEqual(copy.status, 0, copy.err)
        XCTAssertTrue(copy.out.contains("added 3 blobs"), copy.out)
        let add = try fixture.agent("ferryt-alice", "remote-add", "--system", "usb", usb, "--ed25519-key",
                                    fixture.publisher.publicKey, "--no-interaction")
        XCTAssertEqual(add.status, 0, add.err)
        XCTAssertTrue(add.out.contains("file://\(usb)"), add.out)

        // The network really is gone: the web remote cannot be reached.
        let cut = try fixture.offlineAgent("ferryt-alice", "remote-ls", "demo")
        XCTAssertEqual(cut.status, 1, cut.out)
        let install = try fixture.offlineAgent("ferryt-alice", "install", "--system", "usb", ref, "--no-interaction")
        XCTAssertEqual(install.status, 0, install.err)
        XCTAssertTrue(install.out.contains("installed"), install.out)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v1 \n")

        try fixture.publishV2()
        XCTAssertEqual(try fixture.agent("ferryt-alice", "mirror", "demo", first).status, 0)
        XCTAssertEqual(try fixture.agent("ferryt-alice", "mirror", first, usb, "--ed25519-key",
                                         fixture.publisher.publicKey).status, 0)
        let update = try fixture.offlineAgent("ferryt-alice", "update", "--system", "--no-interaction")
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertTrue(update.out.contains("updated"), update.out)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v2 \n")

        let history = try fixture.agent("ferryt-carol", "history", "--system", "--json")
        let rows = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(history.out.utf8)) as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["action"] as? String }, ["install", "update"])
        XCTAssertEqual(Set(rows.map { $0["remote"] as? String }), ["usb"])
    }

    func testTamperedMirrorInstallsNothing() throws {
        let usb = try stick("usb")
        XCTAssertEqual(try fixture.agent("ferryt-alice", "mirror", "demo", usb).status, 0)
        XCTAssertEqual(try fixture.agent("ferryt-alice", "remote-add", "--system", "usb", usb, "--ed25519-key",
                                         fixture.publisher.publicKey, "--no-interaction").status, 0)
        let before = fixture.snapshot()

        // One blob: a layer with one byte changed (same size).
        let layer = usb + "/blobs/sha256/" + (try XCTUnwrap(try layers(in: usb).first)).dropFirst(7)
        let original = try Data(contentsOf: URL(fileURLWithPath: layer))
        var bad = original
        bad[bad.count / 2] ^= 0x01
        try bad.write(to: URL(fileURLWithPath: layer))
        let blob = try fixture.offlineAgent("ferryt-alice", "install", "--system", "usb", ref, "--no-interaction")
        XCTAssertEqual(blob.status, 1)
        let short = "sha256:" + layer.suffix(64).prefix(12)
        XCTAssertEqual(blob.err.split(separator: "\n").last.map(String.init),
                       "ferry: usb \(ref): blob \(short): file://\(layer): blob \(short) has digest \(Digest.of(bad).short)")
        XCTAssertUnchanged(before, fixture.snapshot())
        try original.write(to: URL(fileURLWithPath: layer))

        // One signature: the claim's minisign signature with one character changed.
        let signatures = try XCTUnwrap(FileManager.default.subpathsOfDirectory(atPath: usb + "/signatures")
            .first { $0.hasSuffix("claim-1.json.minisig") })
        let sigPath = usb + "/signatures/" + signatures
        let sig = try String(contentsOfFile: sigPath, encoding: .utf8)
        var lines = sig.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[1] = String(lines[1].prefix(20)) + (lines[1].dropFirst(20).first == "A" ? "B" : "A")
            + lines[1].dropFirst(21)
        try lines.joined(separator: "\n").write(toFile: sigPath, atomically: true, encoding: .utf8)
        let signature = try fixture.offlineAgent("ferryt-alice", "install", "--system", "usb", ref, "--no-interaction")
        XCTAssertEqual(signature.status, 1)
        let forged = "\(ref): claim-1.json.minisig: minisign signature by key "
        XCTAssertTrue(signature.err.hasPrefix("ferry: usb " + forged), signature.err)
        XCTAssertTrue(signature.err.hasSuffix(" does not match the signed data\n"), signature.err)
        XCTAssertUnchanged(before, fixture.snapshot())

        // And a mirror of the tampered mirror refuses to spread it: DEST gains no ref.
        let second = try stick("second")
        let spread = try fixture.agent("ferryt-alice", "mirror", usb, second, "--ed25519-key",
                                       fixture.publisher.publicKey)
        XCTAssertEqual(spread.status, 1)
        XCTAssertTrue(spread.err.hasPrefix("ferry: not mirrored: " + forged), spread.err)
        XCTAssertTrue(spread.err.contains("1 ref did not verify and was not mirrored"), spread.err)
        let index = try String(contentsOfFile: second + "/index.json", encoding: .utf8)
        XCTAssertFalse(index.contains(ref), index)
    }
}
