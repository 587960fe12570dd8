import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// The publisher of one blessed remote (`other`) going after an app installed from another (`demo`), through the
/// real helper, polkitd and bus, and the same attacks on a user's own installs.
final class CrossRemoteAttackTests: SystemTestCase {
    var attacker: Publisher!
    var attackerServer: StaticServer!

    override func setUpWithError() throws {
        try super.setUpWithError()
        attacker = try Publisher(in: fixture.scratch, name: "attacker")
        try attacker.publish(ref: "com.b.P", version: "p", timestamp: 1_700_000_000)
        attackerServer = try StaticServer(root: attacker.layout, scratch: fixture.scratch)
        let key = try Data(contentsOf: URL(fileURLWithPath: attacker.publicKey))
        try fixture.testbed.writeSystemRemote(name: "other", toml: "url = \"\(attackerServer.url)\"\n",
                                              keys: ["ed25519-1.pub": key])
        let install = try fixture.agent("ferryt-alice", "install", "--system", "demo", ref, "--no-interaction")
        XCTAssertEqual(install.status, 0, install.err)
    }

    override func tearDown() {
        attackerServer?.stop()
        super.tearDown()
    }

    /// Publishes a crafted one-layer image under `ref` in the attacker's layout, signed by the attacker's key.
    func craft(_ ref: String, _ entries: [[String: Any]], timestamp: Int64 = 1_700_000_000) throws {
        try ImageCrafter.publish(layout: attacker.layout, ref: ref, layers: [entries])
        try Command.check([BuiltProducts.ferry, "sign", attacker.layout, "--ref", ref, "--ed25519-key",
                           attacker.secretKey, "--timestamp", "\(timestamp)"])
        try Command.check(["chmod", "-R", "a+rX", attacker.directory])
    }

    func victimLink() throws -> String {
        try FileManager.default.destinationOfSymbolicLink(atPath: fixture.stateRoot + "/installed/" + stateName(ref))
    }

    func testNestedRefOfAnotherRemoteCannotReplaceTheVictimsLinkNorWriteOutside() throws {
        let link = try victimLink()
        let outside = fixture.scratch.file("outside")
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        chmod(outside, 0o755)
        try craft("com.b.P", [
            ImageCrafter.dir("bin"), ImageCrafter.file("bin/hello", "#!/bin/sh\necho p\n", mode: 0o755),
            ImageCrafter.symlink("x", to: fixture.stateRoot + "/installed/org.example.Hello/x86_64"),
            ImageCrafter.symlink("y", to: outside),
        ])
        for target in ["com.b.P", "com.b.P/files/x/stable", "com.b.P/files/y/evil"] {
            if target != "com.b.P" {
                try craft(target, [ImageCrafter.dir("bin"),
                                   ImageCrafter.file("bin/hello", "#!/bin/sh\necho evil\n", mode: 0o755)])
            }
            let result = try fixture.agent("ferryt-alice", "install", "--system", "other", target, "--no-interaction")
            XCTAssertEqual(result.status, 0, result.err)
        }
        XCTAssertEqual(try victimLink(), link)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outside), [])
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v1 \n")
        // Recovery at the next helper start believes nothing the attacker's deployments say.
        fixture.testbed.stopHelper()
        try fixture.testbed.startHelper()
        XCTAssertEqual(try victimLink(), link)
        let list = try fixture.agent("ferryt-carol", "list", "--system", "--json")
        XCTAssertTrue(list.out.contains("\"remote\":\"demo\"") || list.out.contains("\"remote\" : \"demo\""),
                      list.out)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v1 \n")
    }

    func testAppFromAnotherRemoteNeedsSwitchRemoteAndDowngradeAuthorization() throws {
        try attacker.publish(ref: ref, version: "evil", timestamp: 1_750_000_000)
        let before = fixture.snapshot()
        let plain = try fixture.agent("ferryt-alice", "install", "--system", "other", ref, "--no-interaction")
        XCTAssertEqual(plain.status, 1)
        XCTAssertTrue(plain.err.contains("org.example.Hello is installed from remote demo (\(ref)); installing it "
                                            + "from other needs --switch-remote"), plain.err)
        XCTAssertUnchanged(before, fixture.snapshot())
        // The timer's user and a user who may install and update: a switch is a downgrade-level action.
        for user in ["ferry-update", "ferryt-bob", "ferryt-alice"] {
            let switched = try fixture.agent(user, "install", "--system", "other", ref, "--switch-remote",
                                             "--no-interaction")
            XCTAssertEqual(switched.status, 1, user)
            XCTAssertTrue(switched.err.contains("not authorized for dev.ferry.downgrade"), switched.err)
            XCTAssertUnchanged(before, fixture.snapshot())
        }
        let update = try fixture.agent("ferry-update", "update", "--system", "--no-interaction")
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v1 \n")
        let dave = try fixture.agent("ferryt-dave", "install", "--system", "other", ref, "--switch-remote",
                                     "--no-interaction")
        XCTAssertEqual(dave.status, 0, dave.err)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello evil \n")
    }

    func testOtherBranchOfTheAppFromAnotherRemoteTakesNothing() throws {
        let launcher = try String(contentsOfFile: fixture.stateRoot + "/exports/bin/org.example.Hello",
                                  encoding: .utf8)
        try attacker.publish(ref: "org.example.Hello/x86_64/other", version: "evil", timestamp: 1_750_000_000)
        let before = fixture.snapshot()
        let result = try fixture.agent("ferryt-alice", "install", "--system", "other",
                                       "org.example.Hello/x86_64/other", "--no-interaction")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.err.contains("needs --switch-remote"), result.err)
        XCTAssertUnchanged(before, fixture.snapshot())
        XCTAssertEqual(try String(contentsOfFile: fixture.stateRoot + "/exports/bin/org.example.Hello",
                                  encoding: .utf8), launcher)
    }

    /// A caller polkit refuses leaves the whole state tree byte-identical, lock files included.
    func testRefusedCallerCreatesNoLockFile() throws {
        try attacker.publish(ref: "com.b.Q/x86_64/stable", version: "q", timestamp: 1_700_000_000)
        let before = TreeSnapshot.take(fixture.testbed.root)
        let result = try fixture.agent("ferryt-carol", "install", "--system", "other", "com.b.Q/x86_64/stable",
                                       "--no-interaction")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.err.contains("not authorized for dev.ferry.install"), result.err)
        XCTAssertUnchanged(before, TreeSnapshot.take(fixture.testbed.root))
    }
}

/// The same rules for a user's own installs (no helper, no polkit: the user's engine).
final class UserCrossRemoteTests: XCTestCase {
    func testUserAppFromAnotherRemoteNeedsSwitchRemote() throws {
        try XCTSkipUnless(getuid() == 0, "runs the agent as an unprivileged test user")
        let fixture = try UserFixture()
        defer { fixture.server.stop() }
        try fixture.publisher.publish(ref: UserFixture.ref, version: "v1", timestamp: 1_700_000_000)
        try fixture.addRemote()
        XCTAssertEqual(try fixture.agent("install", "--user", "demo", UserFixture.ref).status, 0)
        let attacker = try Publisher(in: fixture.scratch, name: "attacker")
        try attacker.publish(ref: UserFixture.ref, version: "evil", timestamp: 1_750_000_000)
        let server = try StaticServer(root: attacker.layout, scratch: fixture.scratch)
        defer { server.stop() }
        let add = try fixture.agent("remote-add", "--user", "other", server.url, "--ed25519-key", attacker.publicKey)
        XCTAssertEqual(add.status, 0, add.err)
        let before = fixture.snapshot()
        let plain = try fixture.agent("install", "--user", "other", UserFixture.ref)
        XCTAssertEqual(plain.status, 1)
        XCTAssertTrue(plain.err.contains("installed from remote demo"), plain.err)
        XCTAssertTrue(plain.err.contains("needs --switch-remote"), plain.err)
        let update = try fixture.agent("update", "--user")
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertUnchanged(before, fixture.snapshot())
        XCTAssertEqual(try fixture.run(), "hello v1 \n")
        let switched = try fixture.agent("install", "--user", "other", UserFixture.ref, "--switch-remote")
        XCTAssertEqual(switched.status, 0, switched.err)
        XCTAssertEqual(try fixture.run(), "hello evil \n")
    }
}
