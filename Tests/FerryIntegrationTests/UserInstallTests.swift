import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// `--user` installs by an unprivileged user from a static web server, against real servers on 127.0.0.1.
final class UserInstallTests: XCTestCase {
    var fixture: UserFixture!
    let ref = UserFixture.ref

    override func setUpWithError() throws {
        try XCTSkipUnless(getuid() == 0, "creates test users and runs the agent as one")
        fixture = try UserFixture()
    }

    override func tearDown() {
        fixture?.server.stop()
        fixture = nil
    }

    func testInstallUpdateRunAndUninstallFromAStaticWebServer() throws {
        try fixture.publisher.publish(ref: ref, version: "v1", timestamp: 1_700_000_000)
        try fixture.addRemote()
        let install = try fixture.agent("install", "--user", "demo", ref)
        XCTAssertEqual(install.status, 0, install.err)
        XCTAssertEqual(try fixture.run(), "hello v1 \n")
        let launcher = fixture.dataRoot + "/exports/bin/org.example.Hello"
        XCTAssertEqual(try Command.run(["runuser", "-u", UserFixture.user, "--", launcher, "z"]).out, "hello v1 z\n")
        let desktop = try String(contentsOfFile: fixture.dataRoot + "/exports/share/applications/org.example.Hello.desktop",
                                 encoding: .utf8)
        XCTAssertTrue(desktop.contains("Exec=\(launcher) %U"), desktop)

        let nothing = try fixture.agent("update", "--user")
        XCTAssertEqual(nothing.status, 0)
        XCTAssertTrue(nothing.out.contains("everything is up to date"), nothing.out)

        try fixture.publisher.publish(ref: ref, version: "v2", timestamp: 1_700_000_100)
        let update = try fixture.agent("update", "--user")
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertTrue(update.out.contains("updated"), update.out)
        XCTAssertEqual(try fixture.run(), "hello v2 \n")

        let list = try fixture.agent("list", "--user", "--json")
        XCTAssertTrue(list.out.contains("\"timestamp\" : 1700000100"), list.out)
        XCTAssertEqual(try fixture.agent("uninstall", "--user", ref).status, 0)
        XCTAssertEqual(try fixture.agent("run", ref).status, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: launcher))
        // The timestamp record survives uninstall: v1 cannot come back in after it.
        let state = try String(contentsOfFile: fixture.dataRoot + "/state.json", encoding: .utf8)
        XCTAssertTrue(state.contains("1700000100"), state)
    }

    func testFirstMirrorDownFallsBackToTheNext() throws {
        try fixture.publisher.publish(ref: ref, version: "v1", timestamp: 1_700_000_000)
        let dead = "http://127.0.0.1:\(try Registry.freePort())"
        try fixture.addRemote(url: dead, mirrors: [fixture.server.url])
        let install = try fixture.agent("install", "--user", "demo", ref)
        XCTAssertEqual(install.status, 0, install.err)
        XCTAssertEqual(try fixture.run(), "hello v1 \n")
    }

    func testCorruptedBlobOnTheFirstServerFallsBackToAMirror() throws {
        let digest = try fixture.publisher.publish(ref: ref, version: "v1", timestamp: 1_700_000_000)
        let mirror = try StaticServer(root: fixture.publisher.layout, scratch: fixture.scratch)
        defer { mirror.stop() }
        let layer = try largestBlob(fixture.publisher.layout)
        try fixture.server.setFaults([layer: ["mode": "corrupt", "after": 10]])
        try fixture.addRemote(mirrors: [mirror.url])
        let install = try fixture.agent("install", "--user", "demo", ref)
        XCTAssertEqual(install.status, 0, install.err)
        XCTAssertEqual(try fixture.run(), "hello v1 \n")
        XCTAssertTrue(fixture.server.requests().contains { $0.path.hasSuffix(layer) }, "first server was tried")
        XCTAssertTrue(mirror.requests().contains { $0.path.hasSuffix(layer) }, "mirror served the layer")
        XCTAssertFalse(digest.isEmpty)
    }

    func testInterruptedDownloadResumesWithoutFetchingCompletedBytesAgain() throws {
        // An incompressible 3 MiB file makes a layer worth resuming.
        let tree = try fixture.publisher.appTree(version: "v1")
        let random = try Command.check(["head", "-c", "3145728", "/dev/urandom"]).stdout
        try random.write(to: URL(fileURLWithPath: tree + "/data.bin"))
        try Command.check([BuiltProducts.ferry, "build", tree, fixture.publisher.layout, "--ref", ref, "--command", "/bin/hello"])
        try Command.check([BuiltProducts.ferry, "sign", fixture.publisher.layout, "--ref", ref, "--ed25519-key",
                           fixture.publisher.secretKey, "--timestamp", "1700000000"])
        try Command.check(["chmod", "-R", "a+rX", fixture.publisher.layout])
        let layer = try largestBlob(fixture.publisher.layout)
        let size = try FileManager.default.attributesOfItem(atPath: fixture.publisher.blobPath("sha256:" + layer))[.size] as? Int ?? 0
        try fixture.server.setFaults([layer: ["mode": "cut", "after": 1_048_576, "times": 1]])
        try fixture.addRemote()

        let first = try fixture.agent("install", "--user", "demo", ref)
        XCTAssertEqual(first.status, 1, "the cut connection fails the first attempt")
        let second = try fixture.agent("install", "--user", "demo", ref)
        XCTAssertEqual(second.status, 0, second.err)

        let layerRequests = fixture.server.requests().filter { $0.path.hasSuffix(layer) }
        XCTAssertEqual(layerRequests.count, 2, "\(layerRequests.map { ($0.range, $0.bytes) })")
        // The second request asks only for what the partial file lacks, and gets exactly that: bytes the first
        // attempt completed are not fetched again.
        let range = try XCTUnwrap(layerRequests.last?.range)
        let start = try XCTUnwrap(Int(range.dropFirst("bytes=".count).dropLast()))
        XCTAssertGreaterThan(start, 0, range)
        XCTAssertLessThanOrEqual(start, 1_048_576, range)
        XCTAssertEqual(layerRequests.last?.bytes, size - start)
    }

    func testUpdateFetchesOnlyTheLayerThatChanged() throws {
        let base = [ImageCrafter.dir("bin"), ImageCrafter.file("bin/hello", "#!/bin/sh\necho hello base\n", mode: 0o755)]
        let big = [ImageCrafter.file("share/big.dat", "0123456789abcdef", repeat: 65536)]
        let v1 = [ImageCrafter.file("version", "1\n")]
        let v2 = [ImageCrafter.file("version", "2\n")]
        try ImageCrafter.publish(layout: fixture.publisher.layout, ref: ref, layers: [base, big, v1])
        try sign(timestamp: 1_700_000_000)
        try fixture.addRemote()
        XCTAssertEqual(try fixture.agent("install", "--user", "demo", ref).status, 0)

        try ImageCrafter.publish(layout: fixture.publisher.layout, ref: ref, layers: [base, big, v2])
        try sign(timestamp: 1_700_000_100)
        fixture.server.clearLog()
        let update = try fixture.agent("update", "--user")
        XCTAssertEqual(update.status, 0, update.err)
        let blobs = fixture.server.requests().filter { $0.path.contains("/blobs/") }
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture.publisher.layout + "/index.json")))
        XCTAssertNotNil(manifest)
        // The manifest, the config and the one changed layer: three blobs, and the big layer is not among them.
        XCTAssertEqual(blobs.count, 3, "\(blobs.map(\.path))")
        let changedLayerBytes = blobs.map(\.bytes).max() ?? 0
        XCTAssertLessThan(changedLayerBytes, 4096, "only small blobs were fetched: \(blobs.map { ($0.path, $0.bytes) })")
        let version = try String(contentsOfFile: fixture.dataRoot + "/installed/\(stateName(ref))/files/version", encoding: .utf8)
        XCTAssertEqual(version, "2\n")
    }

    // MARK: Refusals: exit 1, a clear message, and the installed version untouched

    func installV2ThenAttack(_ attack: () throws -> Void, expect fragment: String, file: StaticString = #filePath,
                             line: UInt = #line) throws {
        try fixture.publisher.publish(ref: ref, version: "v1", timestamp: 1_700_000_000)
        try fixture.publisher.saveIndex("v1")
        try fixture.publisher.publish(ref: ref, version: "v2", timestamp: 1_700_000_100)
        try fixture.addRemote()
        XCTAssertEqual(try fixture.agent("install", "--user", "demo", ref).status, 0, file: file, line: line)
        let before = fixture.snapshot()
        try attack()
        let result = try fixture.agent("update", "--user")
        XCTAssertEqual(result.status, 1, result.out, file: file, line: line)
        XCTAssertTrue(result.err.contains(fragment), result.err, file: file, line: line)
        XCTAssertTrue(result.err.contains("demo \(ref):"), "names remote and ref: \(result.err)", file: file, line: line)
        // Progress goes to stderr as plain lines without a terminal; the error itself is one line.
        let errors = result.err.split(separator: "\n").filter { $0.hasPrefix("ferry: ") }
        XCTAssertEqual(errors.count, 1, "one error line: \(result.err)", file: file, line: line)
        XCTAssertUnchanged(before, fixture.snapshot(), file: file, line: line)
        XCTAssertEqual(try fixture.run(), "hello v2 \n", file: file, line: line)
    }

    func testOlderSignedReleaseServedAgainIsRefusedAsDowngrade() throws {
        try installV2ThenAttack({ try fixture.publisher.restoreIndex("v1") }, expect: "is older than the recorded")
    }

    func testSignatureForAnotherRefIsRefused() throws {
        try installV2ThenAttack({
            // Mix and match: a release signed for another ref, served under this one.
            let other = "org.example.Other/x86_64/stable"
            let digest = try fixture.publisher.publish(ref: other, version: "v9", timestamp: 1_700_000_200)
            let hex = digest.replacingOccurrences(of: "sha256:", with: "")
            let index = try String(contentsOfFile: fixture.publisher.layout + "/index.json", encoding: .utf8)
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(index.utf8)) as? [String: Any])
            var manifests = try XCTUnwrap(json["manifests"] as? [[String: Any]])
            manifests = manifests.map { entry in
                var entry = entry
                if (entry["annotations"] as? [String: String])?["org.opencontainers.image.ref.name"] == ref {
                    entry["digest"] = digest
                    entry["size"] = try? FileManager.default.attributesOfItem(atPath: fixture.publisher.blobPath(digest))[.size]
                }
                return entry
            }
            var updated = json
            updated["manifests"] = manifests
            try JSONSerialization.data(withJSONObject: updated).write(to: URL(fileURLWithPath: fixture.publisher.layout + "/index.json"))
            let from = fixture.publisher.layout + "/signatures/\(other)@sha256=\(hex)"
            let to = fixture.publisher.layout + "/signatures/\(ref)@sha256=\(hex)"
            try Command.check(["cp", "-a", from, to])
        }, expect: "signed for \"org.example.Other/x86_64/stable\", not \"\(ref)\"")
    }

    func testTamperedBlobIsRefused() throws {
        try installV2ThenAttack({
            let digest = try fixture.publisher.publish(ref: ref, version: "v3", timestamp: 1_700_000_200)
            let layer = fixture.publisher.blobPath(try fixture.publisher.layers(of: digest)[0])
            var data = try Data(contentsOf: URL(fileURLWithPath: layer))
            data[data.count / 2] ^= 0x01
            try data.write(to: URL(fileURLWithPath: layer))
        }, expect: "has digest")
    }

    func testUnsignedImageIsRefused() throws {
        try installV2ThenAttack({
            let tree = try fixture.publisher.appTree(version: "v3")
            try Command.check([BuiltProducts.ferry, "build", tree, fixture.publisher.layout, "--ref", ref])
        }, expect: "unsigned")
    }

    func testSignatureByAnUntrustedKeyIsRefused() throws {
        try installV2ThenAttack({
            let stranger = try Publisher(in: fixture.scratch, name: "stranger")
            let tree = try fixture.publisher.appTree(version: "v3")
            try Command.check([BuiltProducts.ferry, "build", tree, fixture.publisher.layout, "--ref", ref])
            try Command.check([BuiltProducts.ferry, "sign", fixture.publisher.layout, "--ref", ref, "--ed25519-key",
                               stranger.secretKey, "--timestamp", "1700000200"])
        }, expect: "signed by unknown minisign key")
    }

    func testOversizedManifestIsRefused() throws {
        try installV2ThenAttack({
            let big = Data(repeating: 0x20, count: 5 * 1024 * 1024)
            let digest = Digest.of(big)
            try big.write(to: URL(fileURLWithPath: fixture.publisher.blobPath(digest.description)))
            var index = try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: fixture.publisher.layout + "/index.json"))) as? [String: Any] ?? [:]
            index["manifests"] = [[
                "mediaType": MediaType.ociManifest, "digest": digest.description, "size": big.count,
                "annotations": ["org.opencontainers.image.ref.name": ref],
            ]]
            try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: fixture.publisher.layout + "/index.json"))
        }, expect: "the limit is 4 MiB")
    }

    func testClaimMoreThan24HoursInTheFutureIsRefused() throws {
        try installV2ThenAttack({
            let future = Int64(Date().timeIntervalSince1970) + 3 * 86400
            try fixture.publisher.publish(ref: ref, version: "v3", timestamp: future)
        }, expect: "in the future")
    }

    // MARK: Helpers

    func sign(timestamp: Int64) throws {
        try Command.check([BuiltProducts.ferry, "sign", fixture.publisher.layout, "--ref", ref, "--ed25519-key",
                           fixture.publisher.secretKey, "--timestamp", "\(timestamp)"])
        try Command.check(["chmod", "-R", "a+rX", fixture.publisher.layout])
    }

    /// The hex name of the largest blob in a layout (an image's layer).
    func largestBlob(_ layout: String) throws -> String {
        let dir = layout + "/blobs/sha256"
        return try FileManager.default.contentsOfDirectory(atPath: dir).max { a, b in
            let sa = (try? FileManager.default.attributesOfItem(atPath: dir + "/" + a)[.size] as? Int) ?? 0
            let sb = (try? FileManager.default.attributesOfItem(atPath: dir + "/" + b)[.size] as? Int) ?? 0
            return sa < sb
        } ?? ""
    }
}
