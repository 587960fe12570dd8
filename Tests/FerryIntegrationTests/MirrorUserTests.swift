import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// `ferry mirror` as a plain user: resuming an interrupted copy, and `--user` remotes that are directories.
final class MirrorUserTests: XCTestCase {
    var fixture: UserFixture!
    let ref = UserFixture.ref
    var digest = ""

    override func setUpWithError() throws {
        try XCTSkipUnless(getuid() == 0, "creates test users and runs the agent as one")
        fixture = try UserFixture()
        digest = try fixture.publisher.publish(ref: ref, version: "v1", timestamp: 1_700_000_000,
                                      extra: ["share/data.bin": String((0..<40_000).map { _ in
                                          "0123456789abcdef".randomElement()! })])
    }

    override func tearDown() {
        fixture?.server.stop()
        fixture = nil
    }

    /// A directory the test user may write.
    func stick(_ name: String) throws -> String {
        let path = fixture.scratch.file(name)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try Command.check(["chown", "\(UserFixture.user):\(UserFixture.user)", path])
        return path
    }

    func testAnInterruptedMirrorListsNothingHalfCopiedAndResumesWhereItStopped() throws {
        let usb = try stick("usb")
        let layer = String(try XCTUnwrap(try fixture.publisher.layers(of: digest).first).dropFirst(7))
        try fixture.server.setFaults([layer: ["mode": "cut", "after": 4096, "times": 1]])
        let cut = try fixture.agent(["mirror", fixture.server.url, usb, "--ed25519-key", fixture.publisher.publicKey],
                                    environment: ["FERRY_STALL_TIMEOUT": "2"])
        XCTAssertEqual(cut.status, 1, cut.out)
        XCTAssertTrue(cut.err.contains("not mirrored: \(ref): blob sha256:"), cut.err)
        // The index names no image whose blobs are incomplete; the verified prefix waits in .partial.
        XCTAssertFalse(try String(contentsOfFile: usb + "/index.json", encoding: .utf8).contains(ref))
        let partial = usb + "/.partial/" + layer
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: partial)[.size] as? Int, 4096)

        fixture.server.clearLog()
        let resumed = try fixture.agent("mirror", fixture.server.url, usb, "--ed25519-key", fixture.publisher.publicKey)
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.out.contains("added 1 blob"), resumed.out)
        XCTAssertTrue(resumed.out.contains("2 already there"), resumed.out)
        let requests = fixture.server.requests()
        let layerRequests = requests.filter { $0.path.hasSuffix(layer) }
        XCTAssertEqual(layerRequests.map(\.range), ["bytes=4096-"])
        XCTAssertTrue(try String(contentsOfFile: usb + "/index.json", encoding: .utf8).contains(ref))
        XCTAssertFalse(FileManager.default.fileExists(atPath: usb + "/.partial"))

        // A damaged blob in DEST is found and replaced, not spread.
        let path = usb + "/blobs/sha256/" + layer
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[10] ^= 0xff
        try bytes.write(to: URL(fileURLWithPath: path))
        let repaired = try fixture.agent("mirror", fixture.server.url, usb, "--ed25519-key", fixture.publisher.publicKey)
        XCTAssertEqual(repaired.status, 0, repaired.err)
        XCTAssertTrue(repaired.out.contains("1 damaged and replaced"), repaired.out)
        XCTAssertEqual(try Command.check(["sha256sum", path]).out.prefix(64), Substring(layer))
    }

    func testAUserRemoteThatIsADirectoryInstallsWithTheNetworkCut() throws {
        let usb = try stick("usb")
        try fixture.addRemote()
        XCTAssertEqual(try fixture.agent("mirror", "demo", usb).status, 0)
        let add = try fixture.agent("remote-add", "--user", "usb", usb, "--ed25519-key", fixture.publisher.publicKey)
        XCTAssertEqual(add.status, 0, add.err)
        let install = try Command.run(["unshare", "-n", "runuser", "-u", UserFixture.user, "--", "env", "-i",
                                       "HOME=\(fixture.home)", "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
                                       BuiltProducts.ferry, "install", "--user", "usb", ref])
        XCTAssertEqual(install.status, 0, install.err)
        XCTAssertEqual(try fixture.run(), "hello v1 \n")
        let history = try fixture.agent("history", "--user")
        XCTAssertTrue(history.out.contains("install \(ref) from usb"), history.out)

        // Keys given with a configured remote are a usage error: the remote's own trust is what a mirror checks.
        let mixed = try fixture.agent("mirror", "demo", usb, "--ed25519-key", fixture.publisher.publicKey)
        XCTAssertEqual(mixed.status, 2)
        XCTAssertTrue(mixed.err.contains("remote demo is configured"), mixed.err)
        // A source without keys copies nothing.
        let unkeyed = try fixture.agent("mirror", fixture.server.url, try stick("other"))
        XCTAssertEqual(unkeyed.status, 1)
        XCTAssertEqual(unkeyed.err, "ferry: remote source has no trusted keys; a mirror copies only what verifies\n")
    }
}
