import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// A frozen mirror: a verified copy (`ferry mirror`) of a logged, witnessed remote that stops changing while the
/// publisher moves on. Everything on it still verifies (signatures, the log, the proofs); only the age of the newest
/// witness cosignature shows that the view is old. Installs at the real time succeed; eight days later (libfaketime,
/// past the default `max-age` of 7 days) installs and updates are refused with the view's age, nothing on disk
/// changes, and `--allow-stale` is free for `--user` and needs `dev.ferry.downgrade` system-wide. The helper judges
/// the age by its own clock, whatever the agent's says.
final class FrozenMirrorTests: SystemTestCase {
    static let other = "org.example.Other/x86_64/stable"
    static let eightDays: Int64 = 8 * 24 * 3600
    /// What the remotes here allow: the default for a remote with witnesses (none is configured).
    static let defaultMaxAge: Int64 = 7 * 24 * 3600
    static let hint = "to install from this older view on purpose, use --allow-stale (system installs then need "
        + "dev.ferry.downgrade, an administrator)"

    var witness: WitnessServer!
    var lan: StaticServer?
    var keys: String { fixture.scratch.file("keys") }
    var usb = ""

    /// `ferry ARGS` as `user` with the testbed's bus and root, as ``Testbed/agent(_:_:environment:wrapper:)`` runs
    /// it, but under `faketime -f OFFSET` (8 days ahead unless told). The `faketime` command goes between `env -i` and
    /// the agent, not in front (`env -i` would drop its settings), and is not replaced by setting `LD_PRELOAD` and
    /// `FAKETIME` by hand: libfaketime 0.9.10 then sets `FAKETIME_SHARED` itself in its constructor, `setenv` moves
    /// `environ` off the initial stack, and the Swift runtime, which finds `argv` on Linux by walking back from
    /// `environ`, sees no arguments at all. The `timeout` turns a hang into a failure: under libfaketime 0.9.10 no
    /// libdispatch timer fires (`Task.sleep`, `asyncAfter`; it shifts `TFD_TIMER_ABSTIME` timerfds on the monotonic
    /// clock as if they were on the real-time one), while swift-nio's relative timerfd is unaffected.
    @discardableResult
    func later(_ user: String, offset: String = "+8d", _ arguments: String...) throws -> CommandResult {
        let environment = [
            "HOME": try fixture.testbed.home(user), "DBUS_SYSTEM_BUS_ADDRESS": fixture.testbed.busAddress,
            "FERRY_SYSTEM_ROOT": fixture.testbed.root, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
        ]
        return try Command.run(["timeout", "-k", "5", "120", "runuser", "-u", user, "--", "env", "-i"]
            + environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            + ["faketime", "-f", offset, BuiltProducts.ferry] + arguments)
    }

    override func setUpWithError() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/faketime"), "faketime missing")
        // The LD_PRELOAD that `faketime` sets and the AddressSanitizer runtime both want to be first (TUFCommandTests).
        try XCTSkipIf(Sanitizer.isAddress, "faketime cannot preload into an AddressSanitizer build")
        try super.setUpWithError()
        witness = try fixture.startLog(keys: keys)
        // The fixture's v1 was signed before the log existed: start the log and publish both apps, logged.
        try publish(ref, "v1", timestamp: 1_700_000_050)
        try publish(FrozenMirrorTests.other, "other", timestamp: 1_700_000_060)

        // The publisher's remote, blessed with its log; then a copy of it as it is now, on a "USB stick".
        try add("demo", fixture.server.url)
        usb = try fixture.writableDirectory("usb")
        let mirror = try fixture.agent("ferryt-alice", "mirror", "demo", usb)
        XCTAssertEqual(mirror.status, 0, mirror.err)
        XCTAssertTrue(mirror.out.contains("transparency log: 2 entries"), mirror.out)
        // The publisher moves on; the copy does not.
        try publish(ref, "v2", timestamp: 1_700_000_100)
    }

    override func tearDown() {
        lan?.stop()
        witness?.stop()
        super.tearDown()
    }

    /// Publishes `version` of `app`, logged, and has the witness cosign the new checkpoint.
    func publish(_ app: String, _ version: String, timestamp: Int64) throws {
        try fixture.publisher.publish(ref: app, version: version, timestamp: timestamp, logKey: keys + "/log.key")
        try Command.check([BuiltProducts.ferry, "log", "witness", fixture.publisher.layout, "--witness", witness.url,
                           "--witness-key", keys + "/w1.vkey"])
        try Command.check(["chmod", "-R", "a+rX", fixture.publisher.layout])
    }

    /// Arguments that configure `name` at `url` with the publisher's key, log key and witness (no max-age: the
    /// default applies).
    func remoteArguments(_ name: String, _ url: String, scope: String) -> [String] {
        ["remote-add", scope, name, url, "--ed25519-key", fixture.publisher.publicKey,
         "--log-key", keys + "/log.vkey", "--witness", keys + "/w1.vkey"]
    }

    /// Blesses a system remote through the helper (`ferryt-alice` may configure remotes).
    func add(_ name: String, _ url: String, extra: [String] = []) throws {
        let result = try fixture.testbed.agent("ferryt-alice", remoteArguments(name, url, scope: "--system")
            + ["--no-interaction"] + extra)
        XCTAssertEqual(result.status, 0, result.err)
    }

    /// The time of the newest cosignature by the witness on the checkpoint at `path` (c2sp.org/tlog-cosignature:
    /// the signature's bytes are a 4-byte key hash, a big-endian 8-byte timestamp, and the Ed25519 signature).
    func cosignatureTime(_ path: String) throws -> Int64 {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let times = text.split(separator: "\n").compactMap { line -> Int64? in
            guard line.hasPrefix("\u{2014} w1.example/witness "), let encoded = line.split(separator: " ").last,
                let bytes = Data(base64Encoded: String(encoded)), bytes.count == 4 + 8 + 64
            else { return nil }
            return bytes[4..<12].reduce(Int64(0)) { $0 << 8 | Int64($1) }
        }
        return try XCTUnwrap(times.max(), "no cosignature by w1.example/witness in \(path):\n\(text)")
    }

    /// Runs `body` and returns its result with the range of ages the frozen view can have had meanwhile, on a clock
    /// `offset` seconds ahead (libfaketime's `+8d` adds exactly that many seconds to the real clock).
    func timed(offset: Int64 = FrozenMirrorTests.eightDays, _ body: () throws -> CommandResult) throws
        -> (CommandResult, ClosedRange<Int64>)
    {
        let cosigned = try cosignatureTime(usb + "/log/checkpoint")
        let start = Int64(Date().timeIntervalSince1970)
        let result = try body()
        let end = Int64(Date().timeIntervalSince1970)
        return (result, (start + offset - cosigned)...(end + offset - cosigned))
    }

    /// Asserts that `result` is exactly the refusal of a stale view of `remote` for `app`, with an age in `ages`.
    func assertStale(_ result: CommandResult, remote: String, app: String, ages: ClosedRange<Int64>,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.status, 1, result.out, file: file, line: line)
        let prefix = "ferry: \(remote) \(app): the newest witness cosignature of example.com/apps/log is "
        let suffix = " s old; the remote allows \(FrozenMirrorTests.defaultMaxAge) s; \(FrozenMirrorTests.hint)\n"
        guard result.err.hasPrefix(prefix), result.err.hasSuffix(suffix),
            let age = Int64(result.err.dropFirst(prefix.count).dropLast(suffix.count))
        else {
            XCTFail("not the stale-view refusal:\n\(result.err)", file: file, line: line)
            return
        }
        XCTAssertTrue(ages.contains(age), "age \(age) s, expected \(ages)", file: file, line: line)
        XCTAssertEqual(result.err, prefix + "\(age)" + suffix, file: file, line: line)
    }

    /// `remote-info` says how old the frozen view is: fresh now, stale eight days later. This is also the check that
    /// libfaketime reaches the agent at all (a Swift binary reads the clock through `clock_gettime`).
    func assertInfo(_ remote: String, user: String, stale: Bool, file: StaticString = #filePath, line: UInt = #line)
        throws
    {
        let (info, ages) = try timed(offset: stale ? FrozenMirrorTests.eightDays : 0) {
            try stale ? later(user, "remote-info", remote) : fixture.agent(user, "remote-info", remote)
        }
        XCTAssertEqual(info.status, 0, info.err, file: file, line: line)
        XCTAssertTrue(info.out.contains("  witness quorum 1, max-age \(FrozenMirrorTests.defaultMaxAge) s\n"), info.out,
                      file: file, line: line)
        let verdict = stale ? "(STALE: max-age \(FrozenMirrorTests.defaultMaxAge) s)" : "(fresh)"
        let expected = ages.map { "  served checkpoint: 2 entries, 1 of 1 cosignatures, newest \($0) s old \(verdict)" }
        XCTAssertTrue(expected.contains { info.out.split(separator: "\n").contains(Substring($0)) },
                      "expected one of \(expected) in:\n\(info.out)", file: file, line: line)
    }

    func testAFrozenMirrorIsRefusedOnceItsNewestCosignatureIsOlderThanMaxAge() throws {
        let other = FrozenMirrorTests.other
        lan = try StaticServer(root: usb, scratch: fixture.scratch)
        try add("frozen", try XCTUnwrap(lan).url)
        try assertInfo("frozen", user: "ferryt-carol", stale: false)
        let install = try fixture.agent("ferryt-alice", "install", "--system", "frozen", ref, "--no-interaction")
        XCTAssertEqual(install.status, 0, install.err)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v1 \n")

        // Eight days later by the agents' clock. The helper keeps the real one: the agent refuses before it stages
        // anything, and with --allow-stale neither side checks the age.
        try assertInfo("frozen", user: "ferryt-carol", stale: true)
        let before = fixture.snapshot()
        let (update, updateAges) = try timed { try later("ferryt-bob", "update", "--system", "--no-interaction") }
        assertStale(update, remote: "frozen", app: ref, ages: updateAges)
        XCTAssertFalse(update.out.contains("up to date"), update.out)
        let (refused, installAges) = try timed {
            try later("ferryt-alice", "install", "--system", "frozen", other, "--no-interaction")
        }
        assertStale(refused, remote: "frozen", app: other, ages: installAges)
        XCTAssertUnchanged(before, fixture.snapshot())

        // An older view on purpose: system-wide that is dev.ferry.downgrade, which alice does not have and dave has.
        let unauthorized = try later("ferryt-alice", "install", "--system", "frozen", other, "--no-interaction",
                                     "--allow-stale")
        XCTAssertEqual(unauthorized.status, 1, unauthorized.out)
        XCTAssertTrue(unauthorized.err.contains("not authorized for dev.ferry.downgrade"), unauthorized.err)
        XCTAssertUnchanged(before, fixture.snapshot())
        let admin = try later("ferryt-dave", "install", "--system", "frozen", other, "--no-interaction",
                              "--allow-stale")
        XCTAssertEqual(admin.status, 0, admin.err)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", other).out, "hello other \n")
        // What the frozen view holds is what is installed: accepting it changes nothing and asks nobody.
        let afterAdmin = fixture.snapshot()
        let current = try later("ferryt-bob", "update", "--system", "--no-interaction", "--allow-stale")
        XCTAssertEqual(current.status, 0, current.err)
        XCTAssertTrue(current.out.contains("everything is up to date"), current.out)
        XCTAssertUnchanged(afterAdmin, fixture.snapshot())
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v1 \n")
    }

    /// The helper decides freshness by its own clock, not the agent's: a user may preload anything into their own
    /// agent. Here the remote allows 1 s, and an agent eight days behind finds the view fresh and stages it; the
    /// helper, at the real time, refuses it with nothing installed.
    func testTheHelperJudgesFreshnessByItsOwnClock() throws {
        try add("frozen", "file://" + usb, extra: ["--max-age", "1"])
        sleep(2)
        let before = fixture.snapshot()
        let cosigned = try cosignatureTime(usb + "/log/checkpoint")
        let start = Int64(Date().timeIntervalSince1970)
        let refused = try later("ferryt-alice", offset: "-8d", "install", "--system", "frozen", ref, "--no-interaction")
        let end = Int64(Date().timeIntervalSince1970)
        XCTAssertEqual(refused.status, 1, refused.out)
        let reason = "the newest witness cosignature of example.com/apps/log is "
        let last = refused.err.split(separator: "\n").last.map(String.init) ?? ""
        XCTAssertTrue((start - cosigned...end - cosigned).contains {
            last == "ferry: frozen \(ref): \(reason)\($0) s old; the remote allows 1 s; \(FrozenMirrorTests.hint)"
        }, refused.err)
        // The agent found the view fresh and handed it over: the refusal is the helper's.
        XCTAssertTrue(fixture.testbed.helperLog.contains("deploy refused: " + reason), fixture.testbed.helperLog)
        XCTAssertUnchanged(before, fixture.snapshot())
    }

    /// The same freeze in a per-user install from the directory itself: refused eight days later with the user's
    /// data untouched, and `--allow-stale` needs no privilege at all.
    func testAUserInstallFromAFrozenDirectoryNeedsAllowStaleEightDaysLater() throws {
        let carol = "ferryt-carol"
        let other = FrozenMirrorTests.other
        let add = try fixture.testbed.agent(carol, remoteArguments("frozen", usb, scope: "--user"))
        XCTAssertEqual(add.status, 0, add.err)
        let install = try fixture.agent(carol, "install", "--user", "frozen", ref)
        XCTAssertEqual(install.status, 0, install.err)
        XCTAssertEqual(try fixture.agent(carol, "run", ref).out, "hello v1 \n")

        let data = try fixture.testbed.home(carol) + "/.local/share/ferry"
        let before = TreeSnapshot.take(data, excluding: ["locks"])
        let (update, updateAges) = try timed { try later(carol, "update", "--user") }
        assertStale(update, remote: "frozen", app: ref, ages: updateAges)
        let (refused, installAges) = try timed { try later(carol, "install", "--user", "frozen", other) }
        assertStale(refused, remote: "frozen", app: other, ages: installAges)
        XCTAssertUnchanged(before, TreeSnapshot.take(data, excluding: ["locks"]))

        let stale = try later(carol, "install", "--user", "frozen", other, "--allow-stale")
        XCTAssertEqual(stale.status, 0, stale.err)
        XCTAssertEqual(try fixture.agent(carol, "run", other).out, "hello other \n")
        let current = try later(carol, "update", "--user", "--allow-stale")
        XCTAssertEqual(current.status, 0, current.err)
        XCTAssertTrue(current.out.contains("everything is up to date"), current.out)
    }
}
