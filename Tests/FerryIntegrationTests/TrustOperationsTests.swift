import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// Trust operations on a logged, witnessed remote, end to end: the publisher rotates, removes and revokes keys and
/// recalls releases with `ferry key` and `ferry recall`; the helper (as root, offline) applies them from the log in
/// order; `ferryt-bob`, who may only update (as the timer's user), updates passwordlessly onto a release signed by
/// a new key and off a recalled one. Every refusal is checked with its exact message, and with nothing changed.
final class TrustOperationsTests: SystemTestCase {
    var witness: WitnessServer!
    /// The digest of v1, logged as entry 0.
    var v1 = ""
    var keys: String { fixture.scratch.file("keys") }
    /// The `.ferryrepo` users are blessed with, which the publisher's tools read the log from.
    var repoFile: String { keys + "/demo.ferryrepo" }

    override func setUpWithError() throws {
        try super.setUpWithError()
        witness = try fixture.startLog(keys: keys)
        for name in ["new", "spare"] {
            try Command.check(["minisign", "-G", "-W", "-p", "\(keys)/\(name).pub", "-s", "\(keys)/\(name).key"])
        }
        try Command.check(["chmod", "-R", "a+rX", keys])
        v1 = try publish("v1", timestamp: 1_700_000_050)
    }

    override func tearDown() {
        witness?.stop()
        super.tearDown()
    }

    // MARK: Helpers

    @discardableResult
    func publish(_ version: String, timestamp: Int64, key: String? = nil) throws -> String {
        let digest = try fixture.publisher.publish(ref: ref, version: version, timestamp: timestamp,
                                                   logKey: keys + "/log.key", signingKey: key)
        try witnessLog()
        return digest
    }

    func witnessLog() throws {
        try Command.check([BuiltProducts.ferry, "log", "witness", fixture.publisher.layout, "--witness", witness.url,
                           "--witness-key", keys + "/w1.vkey"])
        try Command.check(["chmod", "-R", "a+rX", fixture.publisher.layout])
    }

    func keyLine(_ pub: String) throws -> String {
        let lines = try String(contentsOfFile: pub, encoding: .utf8).split(separator: "\n")
        return String(lines.last ?? "")
    }

    /// Writes the `.ferryrepo` (the publisher's blessed keys and threshold) and blesses `demo` system-wide with it.
    func bless(keys pubs: [String]? = nil, threshold: Int? = nil) throws {
        let pubs = pubs ?? [fixture.publisher.publicKey]
        var text = "url = \"\(fixture.server.url)\"\n"
        text += "ed25519-keys = [" + (try pubs.map { "\"\(try keyLine($0))\"" }).joined(separator: ", ") + "]\n"
        text += "log-key = \"\(try String(contentsOfFile: keys + "/log.vkey", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))\"\n"
        text += "witness-keys = [\"\(try String(contentsOfFile: keys + "/w1.vkey", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))\"]\n"
        if let threshold { text += "key-threshold = \(threshold)\n" }
        try text.write(toFile: repoFile, atomically: true, encoding: .utf8)
        try Command.check(["chmod", "a+r", repoFile])
        let added = try fixture.testbed.agent("ferryt-alice", ["remote-add", "--system", "demo", "--from", repoFile,
                                                               "--assume-yes", "--no-interaction"])
        XCTAssertEqual(added.status, 0, added.err)
    }

    /// `ferry key CHANGE` on the publisher's layout, signed with `signers`.
    @discardableResult
    func keyEvent(_ change: String, _ pub: String, signers: [String], repo: String? = nil, extra: [String] = [],
                  witnessed: Bool = true) throws -> CommandResult
    {
        var arguments = [BuiltProducts.ferry, "key", change, fixture.publisher.layout, "--from", repo ?? repoFile,
                         "--log-key", keys + "/log.key", "--key", pub]
        for signer in signers { arguments += ["--ed25519-key", signer] }
        let result = try Command.run(arguments + extra)
        if result.status == 0 && witnessed { try witnessLog() }
        return result
    }

    func recall(_ digest: String, reason: String, signer: String? = nil) throws -> CommandResult {
        let result = try Command.run([BuiltProducts.ferry, "recall", fixture.publisher.layout, "--from", repoFile,
                                      "--log-key", keys + "/log.key", "--ed25519-key",
                                      signer ?? fixture.publisher.secretKey, "--ref", ref, "--digest", digest,
                                      "--reason", reason])
        if result.status == 0 { try witnessLog() }
        return result
    }

    func install(_ user: String = "ferryt-alice") throws -> CommandResult {
        try fixture.testbed.agent(user, ["install", "--system", "demo", ref, "--no-interaction"])
    }

    /// The timer's update: `ferryt-bob` may only update.
    func timerUpdate() throws -> CommandResult {
        try fixture.agent("ferryt-bob", "update", "--system", "--no-interaction")
    }

    func running() throws -> String { try fixture.agent("ferryt-carol", "run", ref).out }

    func keyID(_ pub: String) throws -> String {
        let first = try String(contentsOfFile: pub, encoding: .utf8).split(separator: "\n").first ?? ""
        return String(first.split(separator: " ").last ?? "")
    }

    /// The entries of the publisher's log, in order (read from its entry bundles, as a client would).
    func logEntries() throws -> [Data] {
        let checkpoint = try String(contentsOfFile: fixture.publisher.layout + "/log/checkpoint", encoding: .utf8)
        let size = Int(checkpoint.split(separator: "\n")[1])!
        XCTAssertLessThan(size, 256)
        let path = fixture.publisher.layout + "/log/tile/entries/000.p/\(size)"
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var entries: [Data] = []
        var offset = 0
        while offset < data.count {
            let length = Int(data[offset]) << 8 | Int(data[offset + 1])
            entries.append(Data(data[(offset + 2)..<(offset + 2 + length)]))
            offset += 2 + length
        }
        return entries
    }

    func remoteInfo() throws -> String {
        let info = try fixture.testbed.agent("ferryt-carol", ["remote-info", "--system", "demo"])
        XCTAssertEqual(info.status, 0, info.err)
        return info.out
    }

    // MARK: Keys

    /// The publisher adds a new key and removes the old one in the log; the timer's update installs a release
    /// signed by the new key with no new blessing and no password. A release the old key signs after its removal
    /// is refused, and so is the removal's event appended again out of turn.
    func testARotatedKeySignsTheNextUpdatePasswordlessly() throws {
        try bless()
        XCTAssertEqual(try install().status, 0)
        let old = try keyID(fixture.publisher.publicKey)
        let new = try keyID(keys + "/new.pub")

        let added = try keyEvent("add", keys + "/new.pub", signers: [fixture.publisher.secretKey])
        XCTAssertEqual(added.status, 0, added.err)
        XCTAssertTrue(added.out.contains("key-add \(new): logged as entry 1 of example.com/apps/log"), added.out)
        let removed = try keyEvent("remove", fixture.publisher.publicKey, signers: [keys + "/new.key"])
        XCTAssertEqual(removed.status, 0, removed.err)
        try publish("v2", timestamp: 1_700_000_100, key: keys + "/new.key")

        let update = try timerUpdate()
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertTrue(update.out.contains("updated"), update.out)
        XCTAssertEqual(try running(), "hello v2 \n")
        let info = try remoteInfo()
        XCTAssertTrue(info.contains("  ed25519 key \(old): removed at log entry 2 on "), info)
        XCTAssertTrue(info.contains("  ed25519 key \(new): active (added at log entry 1)"), info)

        // The old key, removed, signs v3: logged after the removal, it is refused, and nothing changes.
        try publish("v3", timestamp: 1_700_000_200)
        let before = fixture.snapshot()
        let refused = try timerUpdate()
        XCTAssertEqual(refused.status, 1, refused.out)
        XCTAssertTrue(refused.err.contains("signed by \(old), which is removed at log entry 2 on "), refused.err)
        XCTAssertTrue(refused.err.contains("the release is logged after that (entry 4); the remote's current keys are "
            + "\(new)"), refused.err)
        XCTAssertEqual(try running(), "hello v2 \n")

        // A thief with the log key appends the old key's removal again (and its addition): out of turn, refused.
        let entries = try logEntries()
        for (index, name) in [(1, "replayed-add"), (2, "replayed-remove")] {
            try entries[index].write(to: URL(fileURLWithPath: fixture.scratch.file(name)))
        }
        try Command.check([BuiltProducts.ferry, "log", "append", fixture.publisher.layout, "--key", keys + "/log.key",
                           fixture.scratch.file("replayed-add"), fixture.scratch.file("replayed-remove")])
        try witnessLog()
        XCTAssertEqual(try timerUpdate().status, 1)
        let after = try remoteInfo()
        XCTAssertTrue(after.contains("refused log entry 5: key-add of \(new): already applied (the same event appended "
            + "again)"), after)
        XCTAssertTrue(after.contains("refused log entry 6: key-remove of \(old): already applied"), after)
        XCTAssertEqual(try running(), "hello v2 \n")
        // Only root's reading of the log moved on; no deployment or state did.
        XCTAssertTrue(TreeSnapshot.difference(before, fixture.snapshot()).allSatisfy {
            $0.hasPrefix("var/lib/ferry/log/demo/")
        })
    }

    /// With `key-threshold = 2`, an event signed by one key is refused by the publisher's tool; written anyway (a
    /// publisher whose file says 1), every client refuses it, and the key it would add signs nothing.
    func testAKeyEventSignedBelowTheThresholdIsRefused() throws {
        try bless(keys: [fixture.publisher.publicKey, keys + "/spare.pub"], threshold: 2)
        XCTAssertEqual(try install().status, 0)
        let tool = try keyEvent("add", keys + "/new.pub", signers: [fixture.publisher.secretKey], witnessed: false)
        XCTAssertEqual(tool.status, 1)
        XCTAssertTrue(tool.err.contains("not written: clients would refuse it: key-add of \(try keyID(keys + "/new.pub")): "
            + "signed by 1 of the 2 current keys required"), tool.err)

        let careless = keys + "/careless.ferryrepo"
        try String(contentsOfFile: repoFile, encoding: .utf8).replacingOccurrences(of: "key-threshold = 2\n", with: "")
            .write(toFile: careless, atomically: true, encoding: .utf8)
        let written = try keyEvent("add", keys + "/new.pub", signers: [fixture.publisher.secretKey], repo: careless)
        XCTAssertEqual(written.status, 0, written.err)
        try publish("v2", timestamp: 1_700_000_100, key: keys + "/new.key")
        let before = fixture.snapshot()
        let update = try timerUpdate()
        XCTAssertEqual(update.status, 1, update.out)
        XCTAssertTrue(update.err.contains("signed by unknown minisign key \(try keyID(keys + "/new.pub"))"), update.err)
        XCTAssertEqual(try running(), "hello v1 \n")
        XCTAssertTrue(try remoteInfo().contains("refused log entry 1: key-add of \(try keyID(keys + "/new.pub")): "
            + "signed by 1 of the 2 current keys required"))
        XCTAssertTrue(TreeSnapshot.difference(before, fixture.snapshot()).allSatisfy {
            $0.hasPrefix("var/lib/ferry/log/demo/")
        })
    }

    /// A revoked key's signatures on claims from its revocation on count for nothing: the installed release it
    /// signed is marked, and the timer's update moves back to the kept release (signed before) as an update; a
    /// back-dated claim logged after the revocation is refused too.
    func testARevokedKeysReleaseIsLeftForAGoodOne() throws {
        try bless()
        XCTAssertEqual(try install().status, 0)
        try publish("v2", timestamp: 1_700_000_100)
        XCTAssertEqual(try timerUpdate().status, 0)
        XCTAssertEqual(try running(), "hello v2 \n")
        let old = try keyID(fixture.publisher.publicKey)

        XCTAssertEqual(try keyEvent("add", keys + "/new.pub", signers: [fixture.publisher.secretKey]).status, 0)
        let revoked = try keyEvent("revoke", fixture.publisher.publicKey, signers: [keys + "/new.key"],
                                   extra: ["--since", "1700000080"])
        XCTAssertEqual(revoked.status, 0, revoked.err)
        let update = try timerUpdate()
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertTrue(update.out.contains("moved off the installed"), update.out)
        XCTAssertTrue(update.out.contains("SIGNING KEY REVOKED"), update.out)
        XCTAssertEqual(try running(), "hello v1 \n")
        let history = try fixture.agent("ferryt-carol", "history", "--system")
        XCTAssertTrue(history.out.contains("recall"), history.out)

        // The thief's back-dated claim, logged after the revocation: refused.
        try publish("v3", timestamp: 1_700_000_060)
        let refused = try install()
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.err.contains("signed by \(old), which is revoked at log entry "), refused.err)
        XCTAssertEqual(try running(), "hello v1 \n")
    }

    // MARK: Recalls

    /// A recall reaches the helper through the timer's update, which moves the installed release back to the kept
    /// one (as an update: `ferryt-bob` may do nothing else); installing the recalled release is refused with the
    /// reason; with no good release left, `update` and `list` say so loudly.
    func testARecallMovesTheTimerOffTheInstalledRelease() throws {
        try bless()
        XCTAssertEqual(try install().status, 0)
        let v2 = try publish("v2", timestamp: 1_700_000_100)
        XCTAssertEqual(try timerUpdate().status, 0)
        XCTAssertEqual(try running(), "hello v2 \n")

        // A recall signed by a key the remote does not have is refused by the publisher's tool.
        let stranger = try recall(v2, reason: "crashes on start", signer: keys + "/new.key")
        XCTAssertEqual(stranger.status, 1)
        XCTAssertTrue(stranger.err.contains("not written: clients would refuse it: recall of "), stranger.err)

        let recalled = try recall(v2, reason: "crashes on start")
        XCTAssertEqual(recalled.status, 0, recalled.err)
        let update = try timerUpdate()
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertTrue(update.out.contains("moved off the installed"), update.out)
        XCTAssertTrue(update.out.contains("RECALLED: crashes on start"), update.out)
        XCTAssertEqual(try running(), "hello v1 \n")
        let history = try fixture.agent("ferryt-carol", "history", "--system")
        XCTAssertTrue(history.out.contains("recall"), history.out)

        // Installing it again is refused, with the reason, and changes nothing.
        let before = fixture.snapshot()
        let again = try install()
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.err.contains("is recalled by remote demo (log entry 2, "), again.err)
        XCTAssertTrue(again.err.contains("): crashes on start"), again.err)
        XCTAssertUnchanged(before, fixture.snapshot())

        // v1 recalled too: nothing good is left; update fails loudly, list marks it.
        XCTAssertEqual(try recall(v1, reason: "leaks the session token").status, 0)
        let stuck = try timerUpdate()
        XCTAssertEqual(stuck.status, 1)
        XCTAssertTrue(stuck.err.contains("is RECALLED: leaks the session token; there is no good release to move to"),
                      stuck.err)
        let list = try fixture.agent("ferryt-carol", "list", "--system")
        XCTAssertTrue(list.out.contains("RECALLED: leaks the session token"), list.out)
        XCTAssertTrue(try fixture.agent("ferryt-carol", "info", ref).out.contains("status     RECALLED: leaks"))
    }

    /// The `--user` engine applies the same log: a rotated key's release installs, a recalled one is left for the
    /// kept release, and `list` marks what the log says.
    func testAUserScopeAppliesKeyEventsAndRecallsToo() throws {
        let carol = "ferryt-carol"
        try bless()
        let added = try fixture.testbed.agent(carol, ["remote-add", "--user", "mine", "--from", repoFile,
                                                      "--assume-yes"])
        XCTAssertEqual(added.status, 0, added.err)
        XCTAssertEqual(try fixture.testbed.agent(carol, ["install", "--user", "mine", ref]).status, 0)
        XCTAssertEqual(try keyEvent("add", keys + "/new.pub", signers: [fixture.publisher.secretKey]).status, 0)
        let v2 = try publish("v2", timestamp: 1_700_000_100, key: keys + "/new.key")
        let update = try fixture.testbed.agent(carol, ["update", "--user"])
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertEqual(try fixture.testbed.agent(carol, ["run", ref]).out, "hello v2 \n")

        XCTAssertEqual(try recall(v2, reason: "eats saves", signer: keys + "/new.key").status, 0)
        let moved = try fixture.testbed.agent(carol, ["update", "--user"])
        XCTAssertEqual(moved.status, 0, moved.err)
        XCTAssertTrue(moved.out.contains("moved off the installed"), moved.out)
        XCTAssertEqual(try fixture.testbed.agent(carol, ["run", ref]).out, "hello v1 \n")
        XCTAssertTrue(try fixture.testbed.agent(carol, ["history", "--user"]).out.contains("recall"))
        let info = try fixture.testbed.agent(carol, ["remote-info", "--user", "mine"])
        XCTAssertTrue(info.out.contains("  recalled: \(ref) sha256:"), info.out)
        XCTAssertTrue(info.out.contains(": eats saves"), info.out)
    }

    /// ApplyLog needs no authorization, so any local user may call it: it must take only what the log key and
    /// the witnesses vouch for. An entry changed, one left out, a view older than root's, options and a remote
    /// it does not know are refused with the exact error, and root's view does not move.
    func testApplyLogFromAnyLocalUserTakesOnlyAWitnessedExtension() throws {
        try bless()
        XCTAssertEqual(try install().status, 0)
        let first = try Data(contentsOf: URL(fileURLWithPath: fixture.publisher.layout + "/log/checkpoint"))
        let v2 = try publish("v2", timestamp: 1_700_000_100)
        XCTAssertEqual(try recall(v2, reason: "crashes on start").status, 0)
        let entries = try logEntries()
        let checkpoint = try Data(contentsOf: URL(fileURLWithPath: fixture.publisher.layout + "/log/checkpoint"))

        /// A staged view as `ferryt-carol` (authorized for nothing) would hand it over: entries from 1 (root has read 1).
        func stage(_ name: String, entries staged: [Data], from: Int = 1, checkpoint data: Data? = nil) throws
            -> String
        {
            let directory = try fixture.writableDirectory(name, owner: "ferryt-carol")
            var bytes = Data("from \(from)\n".utf8)
            for entry in staged { bytes += Data([UInt8(entry.count >> 8), UInt8(entry.count & 0xff)]) + entry }
            try Command.check(["runuser", "-u", "ferryt-carol", "--", "mkdir", "-p", directory + "/log"])
            for (file, content) in [("entries", bytes), ("checkpoint", data ?? checkpoint)] {
                let path = fixture.scratch.file("\(name)-\(file)")
                try content.write(to: URL(fileURLWithPath: path))
                chmod(path, 0o644)
                try Command.check(["runuser", "-u", "ferryt-carol", "--", "cp", path, "\(directory)/log/\(file)"])
            }
            return directory
        }
        func applyLog(_ directory: String, _ remote: String = "demo", _ options: String = "{}") throws -> String {
            try Command.run(["runuser", "-u", "ferryt-carol", "--", "/usr/bin/python3",
                             Testbed.repositoryRoot() + "/scripts/test-dbus-client.py", fixture.testbed.busAddress,
                             "apply-log", directory, remote, options]).out
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let before = fixture.snapshot()
        var changed = entries
        changed[2][changed[2].startIndex + 20] ^= 1
        let cases: [(String, String, String)] = [
            ("changed", try stage("changed", entries: Array(changed.dropFirst())),
             "ERROR dev.ferry.Error.Untrusted the log entries staged for example.com/apps/log do not lead to its "
                + "checkpoint's root (an entry was left out, changed or reordered)"),
            ("left-out", try stage("left-out", entries: [entries[1]]),
             "ERROR dev.ferry.Error.Untrusted 1 log entries were staged from 1, and the checkpoint of "
                + "example.com/apps/log has 3"),
            ("from-later", try stage("from-later", entries: [entries[2]], from: 2),
             "ERROR dev.ferry.Error.Untrusted log entries from 2 were staged, and this scope has read the log of "
                + "example.com/apps/log only up to 1"),
            ("unsigned", try stage("unsigned", entries: Array(entries.dropFirst()),
                                   checkpoint: Data("example.com/apps/log\n3\nAAAA\n".utf8)),
             "ERROR dev.ferry.Error.InvalidArgument"),
        ]
        for (name, directory, expected) in cases {
            let answer = try applyLog(directory)
            XCTAssertTrue(answer.hasPrefix(expected), "\(name): \(answer)")
        }
        let unknown = try applyLog(try stage("unknown", entries: []), "nosuch")
        XCTAssertEqual(unknown, "ERROR dev.ferry.Error.Untrusted remote nosuch is not configured system-wide")
        let option = try applyLog(try stage("option", entries: []), "demo", #"{"interactive": ["b", true]}"#)
        XCTAssertEqual(option, "ERROR dev.ferry.Error.InvalidArgument unknown option \"interactive\"")
        XCTAssertUnchanged(before, fixture.snapshot())

        // The true view moves root on (the recall is root's now); the same view again changes nothing.
        XCTAssertEqual(try applyLog(try stage("true", entries: Array(entries.dropFirst()))), "OK 3")
        XCTAssertTrue(try remoteInfo().contains("  recalled: \(ref) \(v2.prefix(19)): crashes on start"))
        XCTAssertEqual(try applyLog(try stage("again", entries: [], from: 3)), "OK 3")
        // A view older than root's (a frozen mirror's): refused.
        let after = fixture.snapshot()
        XCTAssertEqual(try applyLog(try stage("old", entries: [], from: 1, checkpoint: first)),
                       "ERROR dev.ferry.Error.Untrusted the log of example.com/apps/log offered has 1 entries, older "
                        + "than the 3 trusted (a stale mirror)")
        XCTAssertUnchanged(after, fixture.snapshot())
    }
}
