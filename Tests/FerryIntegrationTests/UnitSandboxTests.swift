import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// The helper as the shipped `systemd/ferry-helper.service` runs it: `scripts/unit-sandbox.py` reads that file and
/// reproduces its sandbox without systemd (seccomp filter, capability bounding set, no-new-privileges, no network,
/// read-only system with only the state and configuration writable, private /tmp and /dev, hidden homes).
/// A unit that breaks the helper (a filter that denies a call the helper needs) fails here, not in a user's install;
/// the probes make sure the sandbox is really in force, so the tests cannot pass on an unsandboxed helper.
final class UnitSandboxTests: SystemTestCase {
    override var startsHelper: Bool { false }

    static let unit = Testbed.repositoryRoot() + "/systemd/ferry-helper.service"

    /// The wrapper in front of the helper's command line. The test root stands in for `/` (`--relocate`: the
    /// unit's `/var/lib/ferry` and `/etc/ferry` are the root's), the bus socket for `/run/dbus/system_bus_socket`.
    func sandbox(unit: String = UnitSandboxTests.unit, keep: [String] = []) -> [String] {
        ["/usr/bin/python3", Testbed.repositoryRoot() + "/scripts/unit-sandbox.py", unit,
         "--relocate", fixture.testbed.root, "--keep", fixture.testbed.directory.file("bus")]
            + keep.flatMap { ["--keep", $0] } + ["--"]
    }

    func testSystemInstallUpdateDowngradeRefusalAndUninstallPassUnderTheShippedHelperUnit() throws {
        try fixture.testbed.startHelper(wrapper: sandbox())
        let pid = try XCTUnwrap(fixture.testbed.helperPID)
        try assertSandboxInForce(helper: pid)

        let install = try fixture.agent("ferryt-alice", "install", "--system", "demo", ref, "--no-interaction")
        XCTAssertEqual(install.status, 0, install.err + fixture.testbed.helperLog)
        // One entry in installed/, whatever the escaping of the ref into one name.
        let installed = try FileManager.default.contentsOfDirectory(atPath: fixture.stateRoot + "/installed")
        XCTAssertEqual(installed.count, 1, "\(installed)")
        var st = stat()
        XCTAssertEqual(lstat(fixture.stateRoot + "/installed/\(installed.first ?? "")/files/bin/hello", &st), 0)
        XCTAssertEqual(st.st_uid, 0, "fchown under the unit's filter: root-owned deployment")
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v1 \n")

        try fixture.publishV2()
        let update = try fixture.agent("ferryt-alice", "update", "--system", "--no-interaction")
        XCTAssertEqual(update.status, 0, update.err + fixture.testbed.helperLog)
        XCTAssertTrue(update.out.contains("\(ref): updated"), update.out)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v2 \n")

        try fixture.publisher.restoreIndex("v1")
        let before = fixture.snapshot()
        let downgrade = try fixture.agent("ferryt-alice", "update", "--system", "--no-interaction")
        XCTAssertEqual(downgrade.status, 1, downgrade.out)
        XCTAssertTrue(downgrade.err.contains("older"), downgrade.err)
        XCTAssertUnchanged(before, fixture.snapshot())

        let uninstall = try fixture.agent("ferryt-alice", "uninstall", "--system", ref, "--no-interaction")
        XCTAssertEqual(uninstall.status, 0, uninstall.err + fixture.testbed.helperLog)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: fixture.stateRoot + "/installed"), [])
        XCTAssertFalse(try fixture.installedRefs().contains(ref))
        XCTAssertEqual(fixture.testbed.helperPID, pid, "the same sandboxed helper answered every call")
    }

    /// The timer's job as `systemd/ferry-update.service` runs it (as `ferry-update`, no capabilities, its seccomp and
    /// address-family filters, a read-only system but for its cache), against the helper under its own unit: the
    /// agent's fetch, verification and D-Bus call all work inside, and it cannot open a netlink socket.
    func testTimerJobUpdatesUnderTheShippedUpdateUnit() throws {
        try fixture.testbed.startHelper(wrapper: sandbox())
        let install = try fixture.agent("ferryt-alice", "install", "--system", "demo", ref, "--no-interaction")
        XCTAssertEqual(install.status, 0, install.err + fixture.testbed.helperLog)
        try fixture.publishV2()

        let unit = Testbed.repositoryRoot() + "/systemd/ferry-update.service"
        let text = try String(contentsOfFile: unit, encoding: .utf8)
        let exec = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
        var command = exec.dropFirst("ExecStart=".count).split(separator: " ").map(String.init)
        XCTAssertEqual(command.first, "/usr/bin/ferry")
        // Its real path: the sandbox binds the file back behind PrivateTmp=, not the `.build/debug` symlink.
        command[0] = URL(fileURLWithPath: BuiltProducts.ferry).resolvingSymlinksInPath().path
        // Environment=XDG_CACHE_HOME=/var/cache/ferry-update, relocated like the unit's CacheDirectory=.
        let cache = fixture.testbed.root + "/var/cache/ferry-update"
        XCTAssertTrue(text.contains("\nEnvironment=XDG_CACHE_HOME=/var/cache/ferry-update\n"))
        let environment = [
            "env", "-i", "HOME=\(cache)", "XDG_CACHE_HOME=\(cache)", "LANG=C.UTF-8", "PATH=/usr/bin:/bin",
            "DBUS_SYSTEM_BUS_ADDRESS=\(fixture.testbed.busAddress)", "FERRY_SYSTEM_ROOT=\(fixture.testbed.root)",
        ]
        // The agent runs through `env`, so the script cannot tell it is the program: keep it visible by hand (a
        // checkout under /tmp is hidden by PrivateTmp=).
        let update = try Command.run(sandbox(unit: unit, keep: [command[0]]) + environment + command)
        XCTAssertEqual(update.status, 0, update.err + fixture.testbed.helperLog)
        XCTAssertTrue(update.out.contains("\(ref): updated"), update.out + update.err)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v2 \n")
        var st = stat()
        XCTAssertEqual(stat(cache, &st), 0, "the agent's cache is the relocated CacheDirectory")
        XCTAssertEqual(st.st_uid, getpwnam("ferry-update")?.pointee.pw_uid)

        let probe = """
            import errno, socket
            status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines())
            print(status["CapBnd"], status["NoNewPrivs"], status["Seccomp"])
            try:
                socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)
                print("netlink ok")
            except OSError as error:
                print("netlink", errno.errorcode[error.errno])

            """
        let inside = try Command.run(sandbox(unit: unit) + ["/usr/bin/python3", "-c", probe])
        XCTAssertEqual(inside.out, "0000000000000000 1 2\nnetlink EAFNOSUPPORT\n", inside.err)
        let user = try Command.run(sandbox(unit: unit) + ["id", "-un"])
        XCTAssertEqual(user.out, "ferry-update\n", user.err)
    }

    /// The unit as it shipped before: `~@privileged` takes `@chown` out of the allow-list, so the extractor's
    /// `fchownat` fails with EPERM and no system install can succeed. This proves the sandbox test above would have
    /// caught it.
    func testUnitThatFiltersChownBreaksSystemInstalls() throws {
        let shipped = try String(contentsOfFile: UnitSandboxTests.unit, encoding: .utf8)
        XCTAssertTrue(shipped.contains("\nSystemCallFilter=@chown\n"), "the line this test removes")
        let broken = fixture.testbed.directory.file("ferry-helper.service")
        try Data(shipped.replacingOccurrences(of: "\nSystemCallFilter=@chown\n", with: "\n").utf8)
            .write(to: URL(fileURLWithPath: broken))
        try fixture.testbed.startHelper(wrapper: sandbox(unit: broken))
        let install = try fixture.agent("ferryt-alice", "install", "--system", "demo", ref, "--no-interaction")
        XCTAssertEqual(install.status, 1, install.out)
        XCTAssertTrue(install.err.contains("Operation not permitted"), install.err + fixture.testbed.helperLog)
        XCTAssertFalse(try fixture.installedRefs().contains(ref))
        XCTAssertNotNil(fixture.testbed.helperPID, "the helper refused the install and stayed up")
    }

    /// Calls the unit's filter denies fail inside the sandbox and succeed outside it, with the errors systemd gives:
    /// the filter is loaded, not merely written down. `fchown` is allowed: the extractor needs it.
    func testSandboxDeniesWhatTheUnitDeniesAndAllowsWhatTheHelperNeeds() throws {
        let probe = fixture.testbed.directory.file("probe.py")
        try Data(UnitSandboxTests.probe.utf8).write(to: URL(fileURLWithPath: probe))
        let outside = try Command.run(["/usr/bin/python3", probe])
        XCTAssertEqual(outside.out, "setpriority ok\ninet ok\nfchown ok\n", outside.err)
        let inside = try Command.run(sandbox(keep: [probe]) + ["/usr/bin/python3", probe])
        XCTAssertEqual(inside.status, 0, inside.err)
        XCTAssertEqual(inside.out, "setpriority EPERM\ninet EAFNOSUPPORT\nfchown ok\n", inside.err)
    }

    /// Setting the nice value it already has needs no privilege (the unit denies `@resources`, so it fails with the
    /// unit's EPERM); an `AF_INET` socket needs none either (the unit allows `AF_UNIX` only); `fchown` of a file
    /// in the private /tmp is what the extractor does.
    static let probe = """
        import ctypes, errno, os, socket
        libc = ctypes.CDLL(None, use_errno=True)
        def report(name, result):
            print(name, "ok" if result == 0 else errno.errorcode[ctypes.get_errno()])
        report("setpriority", libc.setpriority(0, 0, os.getpriority(os.PRIO_PROCESS, 0)))
        try:
            socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
            print("inet ok")
        except OSError as error:
            print("inet", errno.errorcode[error.errno])
        fd = os.open("/tmp", os.O_TMPFILE | os.O_RDWR, 0o600)
        report("fchown", libc.fchown(fd, 0, 0))

        """

    /// What the running helper's /proc entry and namespaces show: the unit's capability bounding set (and nothing
    /// more in effect), no-new-privileges, a seccomp filter, only loopback, a read-only system in which only the
    /// relocated state and configuration are writable, and empty homes.
    func assertSandboxInForce(helper pid: pid_t, file: StaticString = #filePath, line: UInt = #line) throws {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        func field(_ name: String) -> String? {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
        }
        let bounding = try UnitSandboxTests.boundingSet(of: UnitSandboxTests.unit)
        XCTAssertEqual(field("CapBnd").flatMap { UInt64($0, radix: 16) }, bounding, file: file, line: line)
        XCTAssertEqual(field("CapEff").flatMap { UInt64($0, radix: 16) }, bounding, file: file, line: line)
        XCTAssertEqual(field("NoNewPrivs"), "1", file: file, line: line)
        XCTAssertEqual(field("Seccomp"), "2", "filter mode", file: file, line: line)

        let devices = try Command.run(["nsenter", "-t", "\(pid)", "-n", "cat", "/proc/net/dev"])
        let interfaces = devices.out.split(separator: "\n").dropFirst(2)
            .map { $0.split(separator: ":")[0].trimmingCharacters(in: .whitespaces) }
        XCTAssertEqual(interfaces, ["lo"], file: file, line: line)

        // Outside, the test root is writable; in the helper's mount namespace only the unit's ReadWritePaths are.
        let root = fixture.testbed.root
        for (path, writable) in [("/usr/lib", false), (root, false), (root + "/var/lib", false),
                                 (root + "/var/lib/ferry", true), (root + "/etc/ferry", true)] {
            let probe = path + "/.ferry-sandbox-probe"
            let result = try Command.run(["nsenter", "-t", "\(pid)", "-m", "sh", "-c", "touch \(probe) && rm \(probe)"])
            XCTAssertEqual(result.status == 0, writable, "\(path): \(result.err)", file: file, line: line)
            if !writable {
                XCTAssertTrue(result.err.contains("Read-only file system"), result.err, file: file, line: line)
            }
        }
        XCTAssertEqual(try Command.run(["sh", "-c", "touch \(root)/.probe && rm \(root)/.probe"]).status, 0)
        let home = try Command.run(["nsenter", "-t", "\(pid)", "-m", "ls", "-A", "/root"])
        XCTAssertEqual(home.status, 0, home.err, file: file, line: line)
        XCTAssertEqual(home.out, "", "ProtectHome: an empty /root", file: file, line: line)
        // PrivateTmp: of the testbed under /tmp, the helper sees only the bus socket and the relocated root, not
        // the agents' homes where they stage (staging reaches the helper as a descriptor only).
        let testbed = try Command.run(["nsenter", "-t", "\(pid)", "-m", "ls", "-A", fixture.testbed.directory.path])
        XCTAssertEqual(testbed.out, "bus\nroot\n", testbed.err, file: file, line: line)
    }

    /// `CapabilityBoundingSet=` of a unit as the mask /proc shows, from the kernel's capability numbers.
    static func boundingSet(of unit: String) throws -> UInt64 {
        let numbers = [
            "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
            "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_SYS_ADMIN": 21,
        ]
        let text = try String(contentsOfFile: unit, encoding: .utf8)
        var mask: UInt64 = 0
        for line in text.split(separator: "\n") where line.hasPrefix("CapabilityBoundingSet=") {
            for name in line.dropFirst("CapabilityBoundingSet=".count).split(separator: " ") {
                let number = try XCTUnwrap(numbers[String(name)], "add \(name) to the table")
                mask |= 1 << UInt64(number)
            }
        }
        return mask
    }
}
