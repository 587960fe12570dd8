import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// TUF metadata for a publisher's layout, written by python-tuf (`scripts/tuf-publish.py`) into `LAYOUT/tuf/`,
/// which the static server serves as `URL/tuf/`. Keys live outside the served tree.
struct TUFPublisher {
    let publisher: Publisher
    let keys: String
    /// The root a remote is configured with (world-readable, for the unprivileged agents).
    let trustedRoot: String

    init(publisher: Publisher, scratch: TemporaryDirectory, name: String = "tuf") {
        self.publisher = publisher
        keys = scratch.file("\(name)-keys")
        trustedRoot = scratch.file("\(name)-root.json")
    }

    var metadata: String { publisher.layout + "/tuf" }

    /// Publishes the next timestamp, snapshot and targets versions for what `index.json` serves now.
    @discardableResult
    func publish(_ options: [String] = []) throws -> String {
        let result = try Command.check(
            ["python3", Testbed.repositoryRoot() + "/scripts/tuf-publish.py", "--keys", keys, "--metadata",
             metadata, "--layout", publisher.layout] + options)
        if !FileManager.default.fileExists(atPath: trustedRoot) {
            try FileManager.default.copyItem(atPath: keys + "/root.json", toPath: trustedRoot)
            chmod(trustedRoot, 0o644)
        }
        try Command.check(["chmod", "-R", "a+rX", metadata])
        return result.out
    }

    /// The manifest descriptor `index.json` names now: ("sha256:…", size).
    func servedManifest() throws -> (digest: String, size: Int) {
        let data = try Data(contentsOf: URL(fileURLWithPath: publisher.layout + "/index.json"))
        let index = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        let first = (index?["manifests"] as? [[String: Any]])?.first
        return (first?["digest"] as? String ?? "", first?["size"] as? Int ?? 0)
    }

    func saveTimestamp(_ name: String) throws {
        try Command.check(["cp", metadata + "/timestamp.json", "\(publisher.directory)/timestamp-\(name).json"])
    }

    func restoreTimestamp(_ name: String) throws {
        try Command.check(["cp", "\(publisher.directory)/timestamp-\(name).json", metadata + "/timestamp.json"])
    }
}

/// What an expiry error adds: how to accept the older view on purpose.
let staleHint = "; to install from this older view on purpose, use --allow-stale (system installs then need "
    + "dev.ferry.downgrade, an administrator)"

/// System installs from a remote configured with a TUF root: the agent refreshes and stages the metadata, the
/// helper verifies it offline against its own trusted copy, and refuses freeze, rollback and mixed releases.
final class TUFRemoteTests: SystemTestCase {
    var tuf: TUFPublisher!

    override func setUpWithError() throws {
        try super.setUpWithError()
        tuf = TUFPublisher(publisher: fixture.publisher, scratch: fixture.scratch)
        try tuf.publish()
        let key = try Data(contentsOf: URL(fileURLWithPath: fixture.publisher.publicKey))
        let root = try Data(contentsOf: URL(fileURLWithPath: tuf.trustedRoot))
        try fixture.testbed.writeSystemRemote(name: "demo", toml: "url = \"\(fixture.server.url)\"\n",
                                              keys: ["ed25519-1.pub": key, "tuf-root.json": root])
    }

    var helperTrusted: String { fixture.stateRoot + "/tuf/demo" }

    func install(_ user: String = "ferryt-alice") throws -> CommandResult {
        try fixture.agent(user, "install", "--system", "demo", ref, "--no-interaction")
    }

    /// The served layout as a staging directory owned by `ferryt-alice`, `tuf/` included: what an agent that
    /// skipped its own checks would hand the helper.
    func stageServedLayout() throws -> String {
        try fixture.stagePublishedLayout()
    }

    func deployDirectly(_ stage: String) throws -> String {
        try fixture.dbusClient("ferryt-alice", ["deploy", stage, "demo", ref, #"{"interactive": ["b", false]}"#])
    }

    /// Asserts that the helper itself refuses the served layout with `error` and `fragment`, changing nothing.
    /// With `metadataValid`, the served TUF metadata itself is current and validly signed, so the helper's trusted
    /// copy may advance to it (and must hold nothing else); everything else stays as it was.
    func assertHelperRefuses(_ error: String, _ fragment: String, metadataValid: Bool = false,
                             file: StaticString = #filePath, line: UInt = #line) throws {
        let excluded = Set(["var/lib/ferry/locks"] + (metadataValid ? ["var/lib/ferry/tuf"] : []))
        let before = TreeSnapshot.take(fixture.testbed.root, excluding: excluded)
        let reply = try deployDirectly(try stageServedLayout())
        XCTAssertTrue(reply.hasPrefix("ERROR dev.ferry.Error.\(error)"), reply, file: file, line: line)
        XCTAssertTrue(reply.contains(fragment), reply, file: file, line: line)
        XCTAssertUnchanged(before, TreeSnapshot.take(fixture.testbed.root, excluding: excluded), file: file, line: line)
        if metadataValid {
            let trusted = try Data(contentsOf: URL(fileURLWithPath: helperTrusted + "/timestamp.json"))
            XCTAssertEqual(trusted, try Data(contentsOf: URL(fileURLWithPath: tuf.metadata + "/timestamp.json")),
                           file: file, line: line)
        }
    }

    func testInstallFromATUFRemoteGoesThroughTheHelper() throws {
        let result = try install()
        XCTAssertEqual(result.status, 0, result.err)
        XCTAssertEqual(try fixture.agent("ferryt-alice", "run", ref).out, "hello v1 \n")
        // The helper's own trusted copy advanced to what the agent staged; the agent keeps its own.
        let trusted = try Data(contentsOf: URL(fileURLWithPath: helperTrusted + "/timestamp.json"))
        let served = try Data(contentsOf: URL(fileURLWithPath: tuf.metadata + "/timestamp.json"))
        XCTAssertEqual(trusted, served)
        XCTAssertTrue(FileManager.default.fileExists(atPath: helperTrusted + "/targets.json"))
        let cache = try fixture.testbed.home("ferryt-alice") + "/.cache/ferry/tuf/demo/timestamp.json"
        XCTAssertTrue(FileManager.default.fileExists(atPath: cache))
    }

    func testHelperStartsFromMetadataTheAgentAlreadyTrusted() throws {
        // The user's install leaves the agent trusting the current timestamp; the helper has seen nothing yet,
        // so the agent must still stage everything a client starting from the configured root needs.
        let user = try fixture.agent("ferryt-alice", "install", "--user", "demo", ref)
        XCTAssertEqual(user.status, 0, user.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: helperTrusted))
        let system = try install()
        XCTAssertEqual(system.status, 0, system.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: helperTrusted + "/targets.json"))
    }

    func testReconfiguredTUFRootResetsTheHelpersTrust() throws {
        XCTAssertEqual(try install().status, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: helperTrusted + "/timestamp.json"))
        // The publisher starts a new repository with new keys; the administrator configures its root.
        let other = TUFPublisher(publisher: fixture.publisher, scratch: fixture.scratch, name: "tuf-other")
        try FileManager.default.removeItem(atPath: tuf.metadata)
        try fixture.publishV2()
        try other.publish()
        let added = try fixture.agent("ferryt-alice", "remote-add", "--system", "demo", fixture.server.url,
                                      "--ed25519-key", fixture.publisher.publicKey, "--tuf-root", other.trustedRoot,
                                      "--no-interaction")
        XCTAssertEqual(added.status, 0, added.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: helperTrusted))
        let update = try fixture.agent("ferryt-alice", "update", "--system", "--no-interaction")
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertEqual(try fixture.agent("ferryt-alice", "run", ref).out, "hello v2 \n")
    }

    func testUpdateFollowsARootKeyRotation() throws {
        XCTAssertEqual(try install().status, 0)
        try fixture.publishV2()
        try tuf.publish(["--rotate-keys"])
        let update = try fixture.agent("ferryt-alice", "update", "--system", "--no-interaction")
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertEqual(try fixture.agent("ferryt-alice", "run", ref).out, "hello v2 \n")
        // The helper walked root 1 → 2 from the staged 2.root.json.
        let root = try Data(contentsOf: URL(fileURLWithPath: helperTrusted + "/root.json"))
        XCTAssertEqual(root, try Data(contentsOf: URL(fileURLWithPath: tuf.metadata + "/2.root.json")))
    }

    /// A mirror carries the TUF metadata that lists what it copies: installs from it with the network cut run the
    /// same TUF checks. Tampered metadata on the stick installs nothing, and an expired view is not copied at all.
    func testMirrorCarriesTUFMetadataForOfflineInstalls() throws {
        let usb = try fixture.writableDirectory("usb")
        let mirror = try fixture.agent("ferryt-alice", "mirror", "demo", usb)
        XCTAssertEqual(mirror.status, 0, mirror.err)
        // What a client starting from the configured root needs (no 1.root.json: it is the configured root).
        let copied = try FileManager.default.contentsOfDirectory(atPath: usb + "/tuf").sorted()
        XCTAssertTrue(copied.contains("timestamp.json") && copied.contains { $0.hasSuffix("targets.json") }, "\(copied)")
        for name in copied {
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(usb)/tuf/\(name)")),
                           try Data(contentsOf: URL(fileURLWithPath: "\(tuf.metadata)/\(name)")), name)
        }
        let key = try Data(contentsOf: URL(fileURLWithPath: fixture.publisher.publicKey))
        let root = try Data(contentsOf: URL(fileURLWithPath: tuf.trustedRoot))
        try fixture.testbed.writeSystemRemote(name: "usb", toml: "url = \"file://\(usb)\"\n",
                                              keys: ["ed25519-1.pub": key, "tuf-root.json": root])

        // The timestamp on the stick, re-signed by nobody: one byte of its version changed.
        let timestamp = usb + "/tuf/timestamp.json"
        let good = try Data(contentsOf: URL(fileURLWithPath: timestamp))
        try Data(String(decoding: good, as: UTF8.self).replacingOccurrences(of: "\"version\": 1",
                                                                            with: "\"version\": 7").utf8)
            .write(to: URL(fileURLWithPath: timestamp))
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: timestamp)), good)
        let before = fixture.snapshot()
        let forged = try fixture.offlineAgent("ferryt-alice", "install", "--system", "usb", ref, "--no-interaction")
        XCTAssertEqual(forged.status, 1)
        XCTAssertEqual(forged.err, "ferry: usb \(ref): TUF timestamp metadata version 7: 0 of the 1 signatures "
            + "required by root version 1 verify\n")
        XCTAssertUnchanged(before, fixture.snapshot())
        try good.write(to: URL(fileURLWithPath: timestamp))

        let install = try fixture.offlineAgent("ferryt-alice", "install", "--system", "usb", ref, "--no-interaction")
        XCTAssertEqual(install.status, 0, install.err)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v1 \n")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: fixture.stateRoot + "/tuf/usb/timestamp.json")), good)

        // A frozen source: the mirror refuses to copy the expired view and the stick keeps what it had.
        try fixture.publishV2()
        try tuf.publish(["--timestamp-expired"])
        let stale = try fixture.agent("ferryt-alice", "mirror", "demo", usb)
        XCTAssertEqual(stale.status, 1)
        XCTAssertTrue(stale.err.contains("not mirrored: \(ref): TUF timestamp metadata version 2 expired at "
            + "2001-01-01T00:00:00Z"), stale.err)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: timestamp)), good)
    }

    /// A stick made a while ago carries metadata that has expired since. The error says how to accept it on
    /// purpose; `--allow-stale` is then asked as `dev.ferry.downgrade`, which the desktop user and the timer do not
    /// have and an administrator does; a per-user install takes it with no privilege.
    func testAnExpiredViewInstallsOnlyWithAllowStaleAndAnAdministrator() throws {
        try tuf.publish(["--timestamp-expired"])
        let usb = try fixture.writableDirectory("usb")
        try Command.check(["cp", "-a", fixture.publisher.layout + "/.", usb])
        let key = try Data(contentsOf: URL(fileURLWithPath: fixture.publisher.publicKey))
        let root = try Data(contentsOf: URL(fileURLWithPath: tuf.trustedRoot))
        try fixture.testbed.writeSystemRemote(name: "usb", toml: "url = \"file://\(usb)\"\n",
                                              keys: ["ed25519-1.pub": key, "tuf-root.json": root])
        let before = fixture.snapshot()
        let stale = try fixture.offlineAgent("ferryt-alice", "install", "--system", "usb", ref, "--no-interaction")
        XCTAssertEqual(stale.status, 1)
        XCTAssertEqual(stale.err, "ferry: usb \(ref): TUF timestamp metadata version 2 expired at 2001-01-01T00:00:00Z"
            + staleHint + "\n")
        for user in ["ferryt-alice", "ferry-update"] {
            let refused = try fixture.offlineAgent(user, "install", "--system", "usb", ref, "--allow-stale",
                                                   "--no-interaction")
            XCTAssertEqual(refused.status, 1, user)
            XCTAssertTrue(refused.err.contains("not authorized for dev.ferry.downgrade"), refused.err)
        }
        // Only the trusted root of the new remote was laid down (from configuration); nothing else changed.
        XCTAssertUnchanged(before, fixture.snapshot().filter { !$0.key.hasPrefix("var/lib/ferry/tuf") })
        XCTAssertFalse(fixture.snapshot().keys.contains { $0.hasPrefix("var/lib/ferry/installed/") })

        let admin = try fixture.offlineAgent("ferryt-dave", "install", "--system", "usb", ref, "--allow-stale",
                                             "--no-interaction")
        XCTAssertEqual(admin.status, 0, admin.err)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v1 \n")


        let user = try fixture.testbed.agent("ferryt-carol", ["remote-add", "--user", "stick", usb, "--ed25519-key",
                                                              fixture.publisher.publicKey, "--tuf-root",
                                                              tuf.trustedRoot])
        XCTAssertEqual(user.status, 0, user.err)
        let refusedUser = try fixture.testbed.agent("ferryt-carol", ["install", "--user", "stick", ref],
                                                    wrapper: ["unshare", "-n"])
        XCTAssertEqual(refusedUser.status, 1)
        XCTAssertTrue(refusedUser.err.contains("use --allow-stale"), refusedUser.err)
        let perUser = try fixture.testbed.agent("ferryt-carol", ["install", "--user", "stick", ref, "--allow-stale"],
                                                wrapper: ["unshare", "-n"])
        XCTAssertEqual(perUser.status, 0, perUser.err)
    }

    func testExpiredTimestampIsRefusedAsAFreeze() throws {
        XCTAssertEqual(try install().status, 0)
        try fixture.publishV2()
        try tuf.publish(["--timestamp-expired"])
        let before = fixture.snapshot()
        let update = try fixture.agent("ferryt-alice", "update", "--system", "--no-interaction")
        XCTAssertEqual(update.status, 1)
        XCTAssertTrue(update.err.contains("TUF timestamp metadata version 2 expired at 2001-01-01T00:00:00Z"),
                      update.err)
        let again = try install()
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.err.contains("expired at 2001-01-01T00:00:00Z"), again.err)
        XCTAssertUnchanged(before, fixture.snapshot())
        // The helper refuses on its own too, when handed the frozen metadata directly.
        try assertHelperRefuses("Failed", "TUF timestamp metadata version 2 expired at 2001-01-01T00:00:00Z")
        XCTAssertEqual(try fixture.agent("ferryt-alice", "run", ref).out, "hello v1 \n")
    }

    /// The one line a failed `ferry` command printed for `ref` (progress lines aside).
    func failureLine(_ output: String) -> String {
        output.split(separator: "\n").map(String.init).first { $0.hasPrefix("ferry: ") && $0.contains(ref) } ?? output
    }

    /// A frozen mirror serves the installed release (the same index.json) with expired TUF metadata: update used to
    /// report "up to date" from the unverified index before TUF ran. It fails as install does, also for the timer's
    /// user, and nothing changes.
    func testUpdateOfACurrentRefFromAFrozenRemoteFailsAsInstallDoes() throws {
        XCTAssertEqual(try install().status, 0)
        try tuf.publish(["--timestamp-expired"])
        let before = fixture.snapshot()
        let expected = "ferry: demo \(ref): TUF timestamp metadata version 2 expired at 2001-01-01T00:00:00Z"
            + staleHint
        for user in ["ferryt-alice", "ferry-update"] {
            let update = try fixture.agent(user, "update", "--system", "--no-interaction")
            XCTAssertEqual(update.status, 1, "\(user): \(update.out)\(update.err)")
            XCTAssertEqual(failureLine(update.err), expected, update.err)
            XCTAssertFalse(update.out.contains("up to date"), update.out)
        }
        let again = try install()
        XCTAssertEqual(again.status, 1)
        XCTAssertEqual(failureLine(again.err), expected, again.err)
        XCTAssertUnchanged(before, fixture.snapshot())
    }

    /// The helper trusts timestamp version 2; the mirror replays version 1 (still unexpired, same release). A user
    /// whose agent never saw version 2 would pass its own check: update runs the helper's check too (against a
    /// copy of root's trusted metadata) and refuses, as a deploy would.
    func testUpdateIsCheckedAgainstTheHelpersTrustedMetadata() throws {
        try tuf.saveTimestamp("1")
        try tuf.publish()
        XCTAssertEqual(try install().status, 0)
        try tuf.restoreTimestamp("1")
        let before = fixture.snapshot()
        let update = try fixture.agent("ferryt-dave", "update", "--system", "--no-interaction")
        XCTAssertEqual(update.status, 1, update.out + update.err)
        XCTAssertEqual(failureLine(update.err),
                       "ferry: demo \(ref): TUF timestamp metadata version 1 is older than the trusted version 2",
                       update.err)
        XCTAssertUnchanged(before, fixture.snapshot())
    }

    func testRolledBackTimestampIsRefused() throws {
        try tuf.saveTimestamp("1")
        try tuf.publish()
        XCTAssertEqual(try install().status, 0)
        try tuf.restoreTimestamp("1")
        let before = fixture.snapshot()
        let again = try install()
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.err.contains("timestamp metadata version 1 is older than the trusted version 2"),
                      again.err)
        XCTAssertUnchanged(before, fixture.snapshot())
        // A user whose agent never saw version 2 passes the agent's check; the helper still refuses.
        let other = try install("ferryt-dave")
        XCTAssertEqual(other.status, 1)
        XCTAssertTrue(other.err.contains("TUF timestamp metadata version 1 is older than the trusted version 2"),
                      other.err)
        XCTAssertUnchanged(before, fixture.snapshot())
        try assertHelperRefuses("Downgrade", "TUF timestamp metadata version 1 is older than the trusted version 2")
    }

    func testMixedRemoteIsRefused() throws {
        let v1 = try tuf.servedManifest()
        try fixture.publishV2()
        let v2 = try tuf.servedManifest()
        // index.json serves v2; targets still vouch for v1.
        try tuf.publish(["--target", "\(ref)=\(v1.digest):\(v1.size)"])
        let before = fixture.snapshot()
        let result = try install()
        XCTAssertEqual(result.status, 1)
        let expected = "TUF targets of remote demo name \(v1.digest) (\(v1.size) bytes) for \(ref), the remote "
            + "serves \(v2.digest) (\(v2.size) bytes)"
        XCTAssertTrue(result.err.contains(expected), result.err)
        XCTAssertUnchanged(before, fixture.snapshot())
        // The metadata is current and valid (only the index is mixed): the helper's trusted copy may advance.
        try assertHelperRefuses("DigestMismatch", expected, metadataValid: true)
        XCTAssertEqual(try fixture.installedRefs(), "OK []\n")
    }

    func testStagingWithoutTUFMetadataIsRefused() throws {
        let stage = try stageServedLayout()
        try FileManager.default.removeItem(atPath: stage + "/tuf")
        let before = fixture.snapshot()
        let reply = try deployDirectly(stage)
        XCTAssertTrue(reply.hasPrefix("ERROR dev.ferry.Error.Untrusted"), reply)
        XCTAssertTrue(reply.contains("requires TUF metadata, and the staged layout carries none"), reply)
        XCTAssertUnchanged(before, fixture.snapshot())
    }
}

/// `--user` installs from a TUF remote: the same engine check, against the user's own trusted metadata.
final class TUFUserInstallTests: XCTestCase {
    var fixture: UserFixture!
    var tuf: TUFPublisher!
    let ref = UserFixture.ref

    override func setUpWithError() throws {
        try XCTSkipUnless(getuid() == 0, "creates test users and runs the agent as one")
        fixture = try UserFixture()
        try fixture.publisher.publish(ref: ref, version: "v1", timestamp: 1_700_000_000)
        tuf = TUFPublisher(publisher: fixture.publisher, scratch: fixture.scratch)
        try tuf.publish()
        let added = try fixture.agent("remote-add", "--user", "demo", fixture.server.url, "--ed25519-key",
                                      fixture.publisher.publicKey, "--tuf-root", tuf.trustedRoot)
        XCTAssertEqual(added.status, 0, added.err)
    }

    override func tearDown() {
        fixture?.server.stop()
        fixture = nil
    }

    func testUserInstallFromATUFRemote() throws {
        let install = try fixture.agent("install", "--user", "demo", ref)
        XCTAssertEqual(install.status, 0, install.err)
        XCTAssertEqual(try fixture.run(), "hello v1 \n")
        XCTAssertTrue(FileManager.default.fileExists(atPath: fixture.dataRoot + "/tuf/demo/timestamp.json"))
    }

    func testTUFMetadataFallsBackToAMirror() throws {
        let dead = "http://127.0.0.1:\(try Registry.freePort())"
        let added = try fixture.agent("remote-add", "--user", "mirrored", dead, "--mirror", fixture.server.url,
                                      "--ed25519-key", fixture.publisher.publicKey, "--tuf-root", tuf.trustedRoot)
        XCTAssertEqual(added.status, 0, added.err)
        let install = try fixture.agent("install", "--user", "mirrored", ref)
        XCTAssertEqual(install.status, 0, install.err)
        XCTAssertEqual(try fixture.run(), "hello v1 \n")
    }

    func testUserUpdateFromAFrozenRemoteIsRefused() throws {
        XCTAssertEqual(try fixture.agent("install", "--user", "demo", ref).status, 0)
        try fixture.publisher.publish(ref: ref, version: "v2", timestamp: 1_700_000_100)
        try tuf.publish(["--timestamp-expired"])
        let before = fixture.snapshot()
        let update = try fixture.agent("update", "--user")
        XCTAssertEqual(update.status, 1)
        XCTAssertTrue(update.err.contains("TUF timestamp metadata version 2 expired at 2001-01-01T00:00:00Z"),
                      update.err)
        XCTAssertUnchanged(before, fixture.snapshot())
        XCTAssertEqual(try fixture.run(), "hello v1 \n")
    }

    /// `--user` twin of the frozen-mirror update: the installed release is still served, the TUF timestamp expired.
    func testUserUpdateOfACurrentRefFromAFrozenRemoteFailsAsInstallDoes() throws {
        XCTAssertEqual(try fixture.agent("install", "--user", "demo", ref).status, 0)
        try tuf.publish(["--timestamp-expired"])
        let before = fixture.snapshot()
        let expected = "ferry: demo \(ref): TUF timestamp metadata version 2 expired at 2001-01-01T00:00:00Z"
            + staleHint
        let update = try fixture.agent("update", "--user")
        XCTAssertEqual(update.status, 1, update.out + update.err)
        XCTAssertTrue(update.err.split(separator: "\n").contains { $0 == expected }, update.err)
        XCTAssertFalse(update.out.contains("up to date"), update.out)
        let install = try fixture.agent("install", "--user", "demo", ref)
        XCTAssertEqual(install.status, 1)
        XCTAssertTrue(install.err.split(separator: "\n").contains { $0 == expected }, install.err)
        XCTAssertUnchanged(before, fixture.snapshot())
        XCTAssertEqual(try fixture.run(), "hello v1 \n")
    }

    func testNewTUFRootResetsTheTrustedMetadata() throws {
        XCTAssertEqual(try fixture.agent("install", "--user", "demo", ref).status, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: fixture.dataRoot + "/tuf/demo/timestamp.json"))
        // A different repository (new keys, root version 1 again) configured by the user.
        let other = TUFPublisher(publisher: fixture.publisher, scratch: fixture.scratch, name: "tuf-other")
        try FileManager.default.removeItem(atPath: tuf.metadata)
        try other.publish()
        let added = try fixture.agent("remote-add", "--user", "demo", fixture.server.url, "--ed25519-key",
                                      fixture.publisher.publicKey, "--tuf-root", other.trustedRoot)
        XCTAssertEqual(added.status, 0, added.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: fixture.dataRoot + "/tuf/demo"))
        let install = try fixture.agent("install", "--user", "demo", ref)
        XCTAssertEqual(install.status, 0, install.err)
    }
}
