import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// One system under test: bus, polkitd, the helper as root (relocated), a publisher with signed releases on a
/// static server, and the remote `demo` blessed by the administrator (a file in the relocated /etc/ferry).
final class SystemFixture {
    static let ref = "org.example.Hello/x86_64/stable"
    let scratch: TemporaryDirectory
    let testbed: Testbed
    let publisher: Publisher
    let server: StaticServer
    var stateRoot: String { testbed.root + "/var/lib/ferry" }

    init(startHelper: Bool = true) throws {
        testbed = try Testbed()
        scratch = try TemporaryDirectory(prefix: "fs")
        chmod(scratch.path, 0o755)
        publisher = try Publisher(in: scratch)
        try publisher.publish(ref: SystemFixture.ref, version: "v1", timestamp: 1_700_000_000)
        try publisher.saveIndex("v1")
        server = try StaticServer(root: publisher.layout, scratch: scratch)
        try blessRemote()
        if startHelper { try testbed.startHelper() }
    }

    func blessRemote(name: String = "demo") throws {
        let key = try Data(contentsOf: URL(fileURLWithPath: publisher.publicKey))
        try testbed.writeSystemRemote(name: name, toml: "url = \"\(server.url)\"\n", keys: ["ed25519-1.pub": key])
    }

    func publishV2(timestamp: Int64 = 1_700_000_100) throws {
        try publisher.publish(ref: SystemFixture.ref, version: "v2", timestamp: timestamp)
        try publisher.saveIndex("v2")
    }

    /// `ferry ARGS` as `user`, with the testbed's bus and root.
    @discardableResult
    func agent(_ user: String, _ arguments: String...) throws -> CommandResult {
        try testbed.agent(user, arguments)
    }

    /// The system state and configuration, for "nothing changed" checks (lock files excluded).
    func snapshot() -> [String: String] {
        TreeSnapshot.take(testbed.root, excluding: ["var/lib/ferry/locks"])
    }

    func installedRefs() throws -> String {
        try Command.check(["/usr/bin/python3", Testbed.repositoryRoot() + "/scripts/test-dbus-client.py",
                           testbed.busAddress, "list"]).out
    }

    /// Calls the helper directly with python3-dbus as `user` (an independent client).
    func dbusClient(_ user: String, _ arguments: [String]) throws -> String {
        try testbed.dbusClient(user, arguments)
    }

    /// A new directory in the scratch area that `user` may write (a "USB stick" for `ferry mirror`).
    func writableDirectory(_ name: String, owner user: String = "ferryt-alice") throws -> String {
        let path = scratch.file(name)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try Command.check(["chown", "\(user):\(user)", path])
        return path
    }

    /// `ferry ARGS` as `user` with no network at all (`unshare -n`; the bus socket stays reachable).
    func offlineAgent(_ user: String, _ arguments: String...) throws -> CommandResult {
        try testbed.agent(user, arguments, wrapper: ["unshare", "-n"])
    }

    /// The publisher's layout staged for the helper as `ferryt-alice` would hand it over.
    func stagePublishedLayout() throws -> String {
        try testbed.stageCopy(of: publisher.layout, owner: "ferryt-alice")
    }

    func stop() {
        server.stop()
        testbed.stop()
    }
}

/// A test class whose tests each get a fresh ``SystemFixture`` (skipped unless root).
class SystemTestCase: XCTestCase {
    var fixture: SystemFixture!
    let ref = SystemFixture.ref
    /// Whether setUp starts the helper (tests that start it themselves, in a sandbox, say no).
    var startsHelper: Bool { true }

    override func setUpWithError() throws {
        try XCTSkipUnless(getuid() == 0, "system tests start a bus, polkitd and the helper as root")
        fixture = try SystemFixture(startHelper: startsHelper)
    }

    override func tearDown() {
        fixture?.stop()
        fixture = nil
    }
}

func XCTAssertUnchanged(_ before: [String: String], _ after: [String: String], file: StaticString = #filePath,
                        line: UInt = #line) {
    let diff = TreeSnapshot.difference(before, after)
    XCTAssertTrue(diff.isEmpty, "disk changed:\n" + diff.joined(separator: "\n"), file: file, line: line)
}

extension SystemFixture {
    /// Gives the publisher a transparency log: a log key `example.com/apps/log` and a witness key `w1.example/witness`
    /// in `keys` (`log.key`/`.vkey`, `w1.key`/`.vkey`, readable by the test users), a real witness that cosigns the
    /// log, and an empty log under the publisher's layout. The caller stops the witness.
    func startLog(keys: String) throws -> WitnessServer {
        try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true)
        try Command.check([BuiltProducts.ferry, "log", "keygen", "example.com/apps/log", "--output", keys + "/log"])
        try Command.check([BuiltProducts.ferry, "log", "keygen", "w1.example/witness", "--witness", "--output",
                           keys + "/w1"])
        try Command.check(["chmod", "-R", "a+rX", keys])
        let witness = try WitnessServer(key: keys + "/w1.key", logs: [keys + "/log.vkey"],
                                        state: scratch.file("w1-state"))
        try Command.check([BuiltProducts.ferry, "log", "init", publisher.layout, "--key", keys + "/log.key"])
        return witness
    }
}
