import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// System installs from a remote with a transparency log: the publisher logs every release (`ferry sign
/// --log-key`) and has the checkpoint cosigned by a real `ferry witness serve`; the agent stages the proofs; the
/// helper checks them offline against its own trusted checkpoint. Unwitnessed, unlogged, forked and stale views are
/// refused with nothing installed.
final class LogRemoteTests: SystemTestCase {
    var witness: WitnessServer!
    var keys: String { fixture.scratch.file("keys") }

    override func setUpWithError() throws {
        try super.setUpWithError()
        witness = try fixture.startLog(keys: keys)
        // The fixture's v1 was signed before the log existed: start the log and publish v1 again, logged.
        try publish("v1", timestamp: 1_700_000_050)
    }

    override func tearDown() {
        witness?.stop()
        super.tearDown()
    }

    /// Publishes `version`, logged (and witnessed); returns the manifest digest.
    @discardableResult
    func publish(_ version: String, timestamp: Int64, witnessed: Bool = true) throws -> String {
        let digest = try fixture.publisher.publish(ref: ref, version: version, timestamp: timestamp,
                                                   logKey: keys + "/log.key")
        if witnessed { try witnessLog() }
        try Command.check(["chmod", "-R", "a+rX", fixture.publisher.layout])
        return digest
    }

    func witnessLog() throws {
        try Command.check([BuiltProducts.ferry, "log", "witness", fixture.publisher.layout, "--witness", witness.url,
                           "--witness-key", keys + "/w1.vkey"])
    }

    /// Blesses `demo` with the log, through the helper (`ferryt-alice` may configure remotes).
    func bless(witnesses: Bool = true, extra: [String] = []) throws {
        var arguments = ["remote-add", "--system", "demo", fixture.server.url, "--ed25519-key",
                         fixture.publisher.publicKey, "--log-key", keys + "/log.vkey", "--no-interaction"]
        if witnesses { arguments += ["--witness", keys + "/w1.vkey"] }
        let result = try fixture.testbed.agent("ferryt-alice", arguments + extra)
        XCTAssertEqual(result.status, 0, result.err)
    }

    func install(_ user: String = "ferryt-alice", _ extra: String...) throws -> CommandResult {
        try fixture.testbed.agent(user, ["install", "--system", "demo", ref, "--no-interaction"] + extra)
    }

    var trustedCheckpoint: String { fixture.stateRoot + "/log/demo/checkpoint" }
    var servedCheckpoint: String { fixture.publisher.layout + "/log/checkpoint" }

    func testLoggedAndWitnessedReleasesInstallAndTheHelperKeepsTheCheckpoint() throws {
        try bless()
        let first = try install()
        XCTAssertEqual(first.status, 0, first.err)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v1 \n")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: trustedCheckpoint)),
                       try Data(contentsOf: URL(fileURLWithPath: servedCheckpoint)))
        // v2: the update carries a consistency proof from the size the helper trusts.
        try publish("v2", timestamp: 1_700_000_100)
        let update = try fixture.agent("ferryt-bob", "update", "--system", "--no-interaction")
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v2 \n")
        let trusted = try String(contentsOfFile: trustedCheckpoint, encoding: .utf8)
        XCTAssertTrue(trusted.hasPrefix("example.com/apps/log\n2\n"), trusted)
    }

    func testAnUnwitnessedCheckpointAndAnUnloggedReleaseInstallNothing() throws {
        try bless()
        try publish("v2", timestamp: 1_700_000_100, witnessed: false)
        let before = fixture.snapshot()
        let unwitnessed = try install()
        XCTAssertEqual(unwitnessed.status, 1)
        XCTAssertEqual(unwitnessed.err, "ferry: demo \(ref): checkpoint of example.com/apps/log at size 2 has 0 of "
            + "the 1 witness cosignatures required\n")
        XCTAssertUnchanged(before, fixture.snapshot())

        // v3 is served with the log as it was before it (witnessed at size 2): v3's entry is not in it.
        try witnessLog()
        let logCopy = fixture.scratch.file("log-at-2")
        try Command.check(["cp", "-a", fixture.publisher.layout + "/log", logCopy])
        let v3 = try publish("v3", timestamp: 1_700_000_200)
        try FileManager.default.removeItem(atPath: fixture.publisher.layout + "/log")
        try Command.check(["cp", "-a", logCopy, fixture.publisher.layout + "/log"])
        let unlogged = try install()
        XCTAssertEqual(unlogged.status, 1)
        XCTAssertTrue(unlogged.err.hasPrefix("ferry: demo \(ref): \(ref) sha256:"), unlogged.err)
        XCTAssertTrue(unlogged.err.hasSuffix(" is not in the transparency log of remote demo at size 2 (its entry "
            + "would be 2)\n"), unlogged.err)
        XCTAssertUnchanged(before, fixture.snapshot())

        // The helper on its own: v3 handed over with the proof of another release's entry.
        let stage = try fixture.stagePublishedLayout()
        let v2Proof = try XCTUnwrap(FileManager.default.subpathsOfDirectory(atPath: stage + "/signatures")
            .filter { $0.hasSuffix("release.tlog-proof") && !$0.contains(String(v3.dropFirst(7))) }.sorted().first)
        try Command.check(["mv", stage + "/log", stage + "/served-log"])
        try FileManager.default.createDirectory(atPath: stage + "/log", withIntermediateDirectories: true)
        try Command.check(["cp", stage + "/signatures/" + v2Proof, stage + "/log/release.tlog-proof"])
        try Command.check(["chown", "-R", "ferryt-alice:ferryt-alice", stage])
        let reply = try fixture.dbusClient("ferryt-alice", ["deploy", stage, "demo", ref,
                                                            #"{"interactive": ["b", false]}"#])
        XCTAssertTrue(reply.hasPrefix("ERROR dev.ferry.Error.Untrusted "), reply)
        XCTAssertTrue(reply.contains(" is not this release (\(ref), sha256:"), reply)
        XCTAssertUnchanged(before, fixture.snapshot())
    }

    func testAForkedLogIsRefusedKeptAsEvidenceAndLiftedOnlyByAReset() throws {
        // Without witnesses, so that a fork signed by the real log key reaches the helper at all.
        try bless(witnesses: false)
        XCTAssertEqual(try install().status, 0)
        // The log rewritten: a different first entry, then v2 logged on top, signed by the real key.
        try FileManager.default.removeItem(atPath: fixture.publisher.layout + "/log")
        try Command.check([BuiltProducts.ferry, "log", "init", fixture.publisher.layout, "--key", keys + "/log.key"])
        try fixture.scratch.write("bogus", "not what the users saw")
        try Command.check([BuiltProducts.ferry, "log", "append", fixture.publisher.layout, "--key", keys + "/log.key",
                           fixture.scratch.file("bogus")])
        try publish("v2", timestamp: 1_700_000_100, witnessed: false)
        let before = fixture.snapshot()
        let forked = try fixture.agent("ferryt-bob", "update", "--system", "--no-interaction")
        XCTAssertEqual(forked.status, 1)
        XCTAssertTrue(forked.err.contains("the log of example.com/apps/log forked: it does not extend the checkpoint "
            + "trusted before (trusted: size 1 root "), forked.err)
        XCTAssertTrue(forked.err.contains("and the remote is refused until an administrator resets it"), forked.err)
        // The helper's log has it at error level, with both tree heads.
        XCTAssertTrue(fixture.testbed.helperLog.contains("error: remote demo: the log of example.com/apps/log forked"),
                      fixture.testbed.helperLog)
        let evidence = try FileManager.default.contentsOfDirectory(atPath: fixture.stateRoot + "/log/demo")
            .filter { $0.hasPrefix("evidence-") }
        XCTAssertEqual(evidence.count, 1, "\(evidence)")
        let changed = TreeSnapshot.difference(before, fixture.snapshot())
        XCTAssertTrue(changed.allSatisfy { $0.hasPrefix("var/lib/ferry/log/demo/") }, changed.joined(separator: "\n"))
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v1 \n")

        // Refused from now on, whatever is served, until an administrator resets the remote's trust.
        let again = try install("ferryt-dave", "--allow-downgrade")
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.err.contains("remote demo is refused: the log of example.com/apps/log forked"), again.err)
        try bless(witnesses: false, extra: ["--reset-trust"])
        let update = try fixture.agent("ferryt-bob", "update", "--system", "--no-interaction")
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v2 \n")
        XCTAssertTrue(FileManager.default.fileExists(atPath: fixture.stateRoot + "/log/demo/" + evidence[0]))
    }

    /// With nothing new to install, an update still refuses a forked log instead of saying "up to date".
    func testAnUpToDateUpdateStillRefusesAFork() throws {
        try bless(witnesses: false)
        XCTAssertEqual(try install().status, 0)
        XCTAssertTrue(try fixture.agent("ferryt-bob", "update", "--system", "--no-interaction").out
            .contains("up to date"))
        try FileManager.default.removeItem(atPath: fixture.publisher.layout + "/log")
        try Command.check([BuiltProducts.ferry, "log", "init", fixture.publisher.layout, "--key", keys + "/log.key"])
        try fixture.scratch.write("bogus", "not what the users saw")
        try Command.check([BuiltProducts.ferry, "log", "append", fixture.publisher.layout, "--key", keys + "/log.key",
                           fixture.scratch.file("bogus"), fixture.scratch.file("bogus")])
        try Command.check(["chmod", "-R", "a+rX", fixture.publisher.layout])
        let before = fixture.snapshot()
        let update = try fixture.agent("ferryt-bob", "update", "--system", "--no-interaction")
        XCTAssertEqual(update.status, 1, update.out)
        XCTAssertTrue(update.err.contains("the log of example.com/apps/log forked: it does not extend the checkpoint "
            + "trusted before"), update.err)
        XCTAssertFalse(update.out.contains("up to date"), update.out)
        // The update's reading of the log brought the fork to the helper: evidence and the refusal are all that
        // changed; no deployment, state or trusted checkpoint did.
        let after = fixture.snapshot()
        let changed = TreeSnapshot.difference(before, after)
        XCTAssertFalse(changed.isEmpty)
        XCTAssertTrue(changed.allSatisfy { $0.hasPrefix("var/lib/ferry/log/demo/evidence-")
            || $0.hasPrefix("var/lib/ferry/log/demo/refused:") }, "\(changed)")
        XCTAssertEqual(before["var/lib/ferry/log/demo/checkpoint"], after["var/lib/ferry/log/demo/checkpoint"])
    }

    func testAnOldWitnessedViewNeedsAllowStaleAndAnAdministrator() throws {
        try bless(extra: ["--max-age", "1"])
        sleep(2)
        let before = fixture.snapshot()
        let stale = try install()
        XCTAssertEqual(stale.status, 1)
        XCTAssertTrue(stale.err.hasPrefix("ferry: demo \(ref): the newest witness cosignature of example.com/apps/log "
            + "is "), stale.err)
        XCTAssertTrue(stale.err.hasSuffix(" s old; the remote allows 1 s; to install from this older view on purpose, "
            + "use --allow-stale (system installs then need dev.ferry.downgrade, an administrator)\n"), stale.err)
        let refused = try install("ferryt-alice", "--allow-stale")
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.err.contains("not authorized for dev.ferry.downgrade"), refused.err)
        XCTAssertUnchanged(before, fixture.snapshot().filter { !$0.key.hasPrefix("var/lib/ferry/log") })
        let admin = try install("ferryt-dave", "--allow-stale")
        XCTAssertEqual(admin.status, 0, admin.err)
    }

    /// A USB mirror carries the log and the proofs' index hints; a tampered tile on it installs nothing.
    func testAMirrorCarriesTheLogAndATamperedTileInstallsNothing() throws {
        try publish("v2", timestamp: 1_700_000_100)
        try publish("v3", timestamp: 1_700_000_200)
        try bless()
        let usb = try fixture.writableDirectory("usb")
        let mirror = try fixture.agent("ferryt-alice", "mirror", "demo", usb)
        XCTAssertEqual(mirror.status, 0, mirror.err)
        XCTAssertTrue(mirror.out.contains("transparency log: 3 entries"), mirror.out)
        let key = try String(contentsOfFile: keys + "/log.vkey", encoding: .utf8).trimmingCharacters(in: .newlines)
        let witnessKey = try String(contentsOfFile: keys + "/w1.vkey", encoding: .utf8)
            .trimmingCharacters(in: .newlines)
        try fixture.testbed.writeSystemRemote(
            name: "usb", toml: "url = \"file://\(usb)\"\nlog-key = \"\(key)\"\nwitness-keys = [\"\(witnessKey)\"]\n",
            keys: ["ed25519-1.pub": try Data(contentsOf: URL(fileURLWithPath: fixture.publisher.publicKey))])
        let tile = usb + "/log/tile/0/000.p/3"
        let good = try Data(contentsOf: URL(fileURLWithPath: tile))
        var bad = good
        bad[5] ^= 0x01
        try bad.write(to: URL(fileURLWithPath: tile))
        let before = fixture.snapshot()
        let tampered = try fixture.offlineAgent("ferryt-alice", "install", "--system", "usb", ref, "--no-interaction")
        XCTAssertEqual(tampered.status, 1)
        XCTAssertEqual(tampered.err.split(separator: "\n").last.map(String.init),
                       "ferry: usb \(ref): the release is not in the log: the inclusion proof of entry 2 "
                        + "does not lead to the checkpoint's root")
        XCTAssertUnchanged(before, fixture.snapshot())
        try good.write(to: URL(fileURLWithPath: tile))
        let install = try fixture.offlineAgent("ferryt-alice", "install", "--system", "usb", ref, "--no-interaction")
        XCTAssertEqual(install.status, 0, install.err)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v3 \n")
    }

    /// The same checks in a per-user install: the user's engine keeps its own trusted checkpoint.
    func testAUserInstallChecksTheLogToo() throws {
        let carol = "ferryt-carol"
        let add = try fixture.testbed.agent(carol, ["remote-add", "--user", "mine", fixture.server.url,
                                                    "--ed25519-key", fixture.publisher.publicKey,
                                                    "--log-key", keys + "/log.vkey", "--witness", keys + "/w1.vkey"])
        XCTAssertEqual(add.status, 0, add.err)
        let install = try fixture.testbed.agent(carol, ["install", "--user", "mine", ref])
        XCTAssertEqual(install.status, 0, install.err)
        let trusted = try fixture.testbed.home(carol) + "/.local/share/ferry/log/mine/checkpoint"
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: trusted)),
                       try Data(contentsOf: URL(fileURLWithPath: servedCheckpoint)))
        try publish("v2", timestamp: 1_700_000_100, witnessed: false)
        let refused = try fixture.testbed.agent(carol, ["update", "--user"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.err.contains("has 0 of the 1 witness cosignatures required"), refused.err)
        try witnessLog()
        let update = try fixture.testbed.agent(carol, ["update", "--user"])
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertTrue(try String(contentsOfFile: trusted, encoding: .utf8).hasPrefix("example.com/apps/log\n2\n"))
    }

    /// A `.ferryrepo` served next to the layout blesses the remote in one step: URL, key, log key and witness. It
    /// came over the network, so the command says it is not a source of trust, and trusts nothing unasked.
    func testAFerryrepoBlessesTheRemoteWithItsLogInOneStep() throws {
        let key = try String(contentsOfFile: fixture.publisher.publicKey, encoding: .utf8)
            .split(separator: "\n").last.map(String.init) ?? ""
        func vkey(_ name: String) throws -> String {
            try String(contentsOfFile: keys + "/\(name).vkey", encoding: .utf8).trimmingCharacters(in: .newlines)
        }
        try Data("""
            url = "\(fixture.server.url)"
            ed25519-keys = ["\(key)"]
            log-key = "\(try vkey("log"))"
            witness-keys = ["\(try vkey("w1"))"]
            max-age = 3600
            """.utf8).write(to: URL(fileURLWithPath: fixture.publisher.layout + "/demo.ferryrepo"))
        try Command.check(["chmod", "a+r", fixture.publisher.layout + "/demo.ferryrepo"])
        let url = fixture.server.url + "/demo.ferryrepo"
        let before = fixture.snapshot()
        let unasked = try fixture.testbed.agent("ferryt-alice", ["remote-add", "--system", "demo", "--from", url,
                                                                 "--no-interaction"])
        XCTAssertEqual(unasked.status, 1)
        XCTAssertTrue(unasked.out.contains("  ed25519 key "), unasked.out)
        XCTAssertTrue(unasked.out.contains("  transparency log example.com/apps/log, key example.com/apps/log+"),
                      unasked.out)
        XCTAssertTrue(unasked.out.contains("it is a convenience, not a source of trust"), unasked.out)
        XCTAssertEqual(unasked.err, "ferry: remote demo: nothing trusted; accept the keys above with --assume-yes, or "
            + "run this on a terminal to be asked\n")
        XCTAssertUnchanged(before, fixture.snapshot())

        let add = try fixture.testbed.agent("ferryt-alice", ["remote-add", "--system", "demo", "--from", url,
                                                             "--assume-yes", "--no-interaction"])
        XCTAssertEqual(add.status, 0, add.err)
        let stored = try String(contentsOfFile: fixture.testbed.root + "/etc/ferry/remotes.d/demo.toml", encoding: .utf8)
        XCTAssertTrue(stored.contains("log-key = 'example.com/apps/log+"), stored)
        XCTAssertTrue(stored.contains("max-age = 3600"), stored)
        let install = try install()
        XCTAssertEqual(install.status, 0, install.err)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v1 \n")
        let info = try fixture.agent("ferryt-carol", "remote-info", "demo")
        XCTAssertEqual(info.status, 0, info.err)
        for line in ["remote demo (system): \(fixture.server.url)", "  transparency log example.com/apps/log, key ",
                     "  witness quorum 1, max-age 3600 s", "  trusted checkpoint: 1 entries, root ",
                     "  served checkpoint: 1 entries, 1 of 1 cosignatures, newest "] {
            XCTAssertTrue(info.out.contains(line), "\(line)\n\(info.out)")
        }
        XCTAssertTrue(info.out.contains(" s old (fresh)"), info.out)

        // A threshold the keys cannot meet is refused, not ignored.
        try fixture.scratch.write("threshold.ferryrepo", "url = \"\(fixture.server.url)\"\nkey-threshold = 2\n")
        let threshold = try fixture.testbed.agent("ferryt-alice", ["remote-add", "--user", "t", "--from",
                                                                   fixture.scratch.file("threshold.ferryrepo"),
                                                                   "--assume-yes"])
        XCTAssertEqual(threshold.status, 1)
        XCTAssertTrue(threshold.err.contains("key-threshold 2 with 0 ed25519 keys (1 to the number of keys)"),
                      threshold.err)
    }

    /// A mirror of a logged remote copies only logged releases: an image the log does not hold is not spread.
    func testAMirrorOfALoggedRemoteCopiesOnlyLoggedReleases() throws {
        try bless()
        let logCopy = fixture.scratch.file("log-at-1")
        try Command.check(["cp", "-a", fixture.publisher.layout + "/log", logCopy])
        try publish("v2", timestamp: 1_700_000_100)
        try FileManager.default.removeItem(atPath: fixture.publisher.layout + "/log")
        try Command.check(["cp", "-a", logCopy, fixture.publisher.layout + "/log"])
        let usb = try fixture.writableDirectory("usb")
        let mirror = try fixture.agent("ferryt-alice", "mirror", "demo", usb)
        XCTAssertEqual(mirror.status, 1)
        XCTAssertTrue(mirror.err.contains("not mirrored: \(ref): \(ref) sha256:"), mirror.err)
        XCTAssertTrue(mirror.err.contains(" is not in the transparency log of remote demo at size 1 (its entry would "
            + "be 1)"), mirror.err)
        XCTAssertFalse(try String(contentsOfFile: usb + "/index.json", encoding: .utf8).contains(ref))
    }
}
