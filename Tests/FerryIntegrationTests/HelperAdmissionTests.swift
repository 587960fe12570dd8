import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// Before polkit answers, nothing is written and little is spent: what any local user can make the root helper do
/// with a call polkit will refuse, or with many calls at once.
final class HelperAdmissionTests: SystemTestCase {
    /// The whole relocated `/etc/ferry` and `/var/lib/ferry`, lock files included: a refused call writes nothing.
    func fullSnapshot() -> [String: String] {
        TreeSnapshot.take(fixture.testbed.root)
    }

    /// `scripts/test-dbus-client.py` as `user`, killed after `limit` seconds (a helper that hangs fails the test
    /// instead of holding it for the client's 600 s timeout). The answer line and how long it took.
    func timedClient(_ user: String, _ arguments: [String], limit: Int = 120) throws -> (String, TimeInterval) {
        let start = Date()
        let result = try Command.run(["timeout", "\(limit)", "runuser", "-u", user, "--", "/usr/bin/python3",
                                      Testbed.repositoryRoot() + "/scripts/test-dbus-client.py",
                                      fixture.testbed.busAddress] + arguments)
        return (result.out.trimmingCharacters(in: .whitespacesAndNewlines), Date().timeIntervalSince(start))
    }

    /// `data` in a file readable by the test users.
    func file(_ name: String, _ data: Data) throws -> String {
        let path = fixture.scratch.file(name)
        try data.write(to: URL(fileURLWithPath: path))
        chmod(path, 0o644)
        return path
    }

    /// An OpenPGP public key of about 1 MB that costs gpg minutes to import: a real ed25519 key (made by `gpg`)
    /// whose user ID packet and self-signature are repeated under thousands of distinct user IDs, each
    /// signature checked and each user ID merged on import.
    func craftedSlowKey() throws -> Data {
        let home = fixture.scratch.file("gnupg-crafted")
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        chmod(home, 0o700)
        try Command.check(["gpg", "--homedir", home, "--batch", "--passphrase", "", "--quick-generate-key",
                           "Crafted <crafted@example.org>", "ed25519", "sign", "never"])
        let exported = try Command.check(["gpg", "--homedir", home, "--export"]).stdout
        let script = """
            import sys
            d = sys.stdin.buffer.read()
            packets, i = [], 0
            while i < len(d):
                c = d[i]
                if c & 0x40:
                    l = d[i + 1]
                    if l < 192: h, n = 2, l
                    elif l < 224: h, n = 3, ((l - 192) << 8) + d[i + 2] + 192
                    else: h, n = 6, int.from_bytes(d[i + 2:i + 6], "big")
                else:
                    h = {0: 2, 1: 3, 2: 5}[c & 3]
                    n = int.from_bytes(d[i + 1:i + h], "big")
                packets.append(d[i:i + h + n])
                i += h + n
            key, signature, out, n = packets[0], packets[2], bytearray(packets[0]), 0
            while len(out) < 1000000:
                uid = ("user %d <u%d@example.org>" % (n, n)).encode()
                out += bytes([0xC0 | 13, 255]) + len(uid).to_bytes(4, "big") + uid + signature
                n += 1
            sys.stdout.buffer.write(out)
            """
        return try Command.check(["python3", "-c", script], input: exported).stdout
    }

    /// ferryt-carol may do nothing; her ConfigureRemote carries eight 1 MB GPG keys (four random, four crafted to
    /// be slow to import). Before the fix the helper parsed them as root on its bus thread before asking polkit.
    func testUnauthorizedConfigureRemoteWithLargeGPGKeysIsRefusedPromptly() throws {
        let crafted = try file("crafted.gpg", try craftedSlowKey())
        var keys: [String] = []
        for index in 0..<4 {
            keys.append(crafted)
            let junk = Data((0..<1_000_000).map { _ in UInt8.random(in: 0...255) })
            keys.append(try file("junk-\(index).gpg", junk))
        }
        let settings: [String: Any] = ["url": ["s", fixture.server.url], "gpg-keys": ["aay@", keys]]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: settings), as: UTF8.self)
        let before = fullSnapshot()
        let (reply, seconds) = try timedClient("ferryt-carol", ["configure", "evil", json])
        let refused = "ERROR dev.ferry.Error.NotAuthorized not authorized for dev.ferry.configure-remote"
        XCTAssertTrue(reply.hasPrefix(refused), reply)
        XCTAssertLessThan(seconds, 5, "answered after \(seconds) s")
        XCTAssertUnchanged(before, fullSnapshot())
        // The helper is still answering everyone.
        XCTAssertEqual(try fixture.installedRefs(), "OK []\n")
    }

    /// An `ay` is decoded as one buffer: a 24 MiB TUF root (refused for its size) must not cost the helper the
    /// gigabyte that one boxed value per byte did.
    func testLargeByteArrayIsDecodedWithoutHugeAllocation() throws {
        let pid = try XCTUnwrap(fixture.testbed.helperPID)
        let before = try peakMemoryKiB(pid)
        let root = try file("huge-root.json", Data(repeating: 0x7B, count: 24 << 20))
        let key = try String(contentsOfFile: fixture.publisher.publicKey, encoding: .utf8)
        let settings: [String: Any] = ["url": ["s", fixture.server.url], "ed25519-keys": ["as", [key]],
                                       "tuf-root": ["ay@", root]]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: settings), as: UTF8.self)
        let snapshot = fullSnapshot()
        let (reply, _) = try timedClient("ferryt-carol", ["configure", "demo", json])
        XCTAssertEqual(reply, "ERROR dev.ferry.Error.InvalidArgument remote demo: TUF root larger than 1 MiB")
        let grown = try peakMemoryKiB(pid) - before
        // One copy in sd-bus's buffer and one in ours: about 50 MiB. One boxed value per byte: over 1 GiB.
        XCTAssertLessThan(grown, 256 * 1024, "peak resident memory grew by \(grown) KiB")
        XCTAssertUnchanged(snapshot, fullSnapshot())
    }

    /// Eight deploys by ferryt-alice wait inside the helper (on a TUF lock the test holds); her ninth call is
    /// refused as Busy, while another user's call is still taken and answered at once.
    func testOneUserCannotTakeEveryJobSlot() throws {
        _ = try configureTUFRemote(fixture)
        let stage = try fixture.stagePublishedLayout()
        let hold = try TUFLockHold(stateRoot: fixture.stateRoot)
        defer { hold.release() }
        let (reply, _) = try timedClient("ferryt-alice", ["deploy-many", "8", stage, "demo", ref])
        let uid = try XCTUnwrap(getpwnam("ferryt-alice")).pointee.pw_uid
        XCTAssertEqual(reply, "ERROR dev.ferry.Error.Busy too many requests of uid \(uid) in progress (at most 8); "
                           + "try again")
        // Someone else is still served, promptly, while alice's eight deploys wait.
        let before = fullSnapshot()
        let key = try String(contentsOfFile: fixture.publisher.publicKey, encoding: .utf8)
        let settings: [String: Any] = ["url": ["s", "https://example.org/x"], "ed25519-keys": ["as", [key]]]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: settings), as: UTF8.self)
        let (other, seconds) = try timedClient("ferryt-carol", ["configure", "evil", json])
        XCTAssertTrue(other.hasPrefix("ERROR dev.ferry.Error.NotAuthorized"), other)
        XCTAssertLessThan(seconds, 5)
        XCTAssertUnchanged(before, fullSnapshot())
        hold.release()
        // The waiting deploys end once the lock is free (their caller has gone, so polkit refuses them) and the
        // helper answers as before.
        XCTAssertEqual(try fixture.installedRefs(), "OK []\n")
    }

    /// VmHWM of `pid` (its peak resident set), in KiB.
    func peakMemoryKiB(_ pid: pid_t) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") })
        return try XCTUnwrap(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    }
}

/// Makes `demo` a TUF remote (metadata by python-tuf under the served layout) and returns its publisher.
func configureTUFRemote(_ fixture: SystemFixture) throws -> TUFPublisher {
    let tuf = TUFPublisher(publisher: fixture.publisher, scratch: fixture.scratch)
    try tuf.publish()
    let key = try Data(contentsOf: URL(fileURLWithPath: fixture.publisher.publicKey))
    let root = try Data(contentsOf: URL(fileURLWithPath: tuf.trustedRoot))
    try fixture.testbed.writeSystemRemote(name: "demo", toml: "url = \"\(fixture.server.url)\"\n",
                                          keys: ["ed25519-1.pub": key, "tuf-root.json": root])
    return tuf
}

/// The helper's TUF lock of a remote (`locks/tuf-REMOTE.lock`, an flock), held by the test: a deploy from that
/// remote then waits inside the helper, after the call was accepted, until ``release()``. Makes "while a deploy
/// runs" deterministic.
final class TUFLockHold {
    let path: String
    private var fd: Int32

    init(stateRoot: String, remote: String = "demo") throws {
        try FileManager.default.createDirectory(atPath: stateRoot + "/locks", withIntermediateDirectories: true)
        path = "\(stateRoot)/locks/tuf-\(remote).lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0, flock(fd, LOCK_EX) == 0 else { throw TestbedError("cannot lock \(path)") }
    }

    /// How many processes wait for the lock (`/proc/locks` lines marked `->` on its inode).
    var waiters: Int {
        var st = stat()
        guard fd >= 0, fstat(fd, &st) == 0 else { return 0 }
        let text = (try? String(contentsOfFile: "/proc/locks", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.contains("->") && $0.contains(":\(st.st_ino) ") }.count
    }

    /// Waits until someone waits for the lock; false after `seconds`.
    func waitForWaiter(seconds: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while waiters == 0 && Date() < deadline { usleep(20_000) }
        return waiters > 0
    }

    func release() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
