import Foundation

/// The real system pieces, started for a test: a system-like `dbus-daemon` on a private socket, `polkitd` (as the
/// polkitd user) with Ferry's policy and test rules, and `ferry-helper` as root with `--root` relocation.
/// Agents run as real unprivileged users through `runuser`. ``stop()`` ends everything and removes the polkit
/// files it installed.
///
/// Test users and what the test rules grant them (`ferryt-*`, created on first use):
/// - `ferryt-alice`: install, update, uninstall, configure-remote
/// - `ferryt-dave`: the same plus downgrade
/// - `ferryt-bob`: update only
/// - `ferryt-carol`: nothing
/// - `ferry-update`: what the shipped rule `polkit/50-ferry-update.rules` grants (update)
public final class Testbed: @unchecked Sendable {
    public static let users = ["ferryt-alice", "ferryt-bob", "ferryt-carol", "ferryt-dave", "ferry-update"]
    static let policyTarget = "/usr/share/polkit-1/actions/dev.ferry.policy"
    static let testRules = "/etc/polkit-1/rules.d/10-ferry-testbed.rules"
    static let shippedRules = "/etc/polkit-1/rules.d/50-ferry-update.rules"

    public let directory: TemporaryDirectory
    /// The helper's `--root`; agents see it as `FERRY_SYSTEM_ROOT`.
    public let root: String
    public private(set) var busAddress = ""
    private var busPID: pid_t = 0
    private var polkitd: Child?
    private var helper: Child?
    private var installedPolicy = false
    private let repository: String

    /// Starts bus and polkitd; the helper starts with ``startHelper()``.
    public init() throws {
        repository = Testbed.repositoryRoot()
        directory = try TemporaryDirectory(prefix: "ft")
        chmod(directory.path, 0o755)
        root = directory.file("root")
        try FileManager.default.createDirectory(atPath: root + "/etc/ferry/remotes.d", withIntermediateDirectories: true)
        for user in Testbed.users { try Testbed.ensureUser(user) }
        try installPolkitFiles()
        try startBus()
        try startPolkit()
    }

    deinit { stop() }

    /// The repository checkout (for `dbus/` and `polkit/` files).
    public static func repositoryRoot() -> String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }

    public static func ensureUser(_ name: String) throws {
        if getpwnam(name) != nil { return }
        try Command.check(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                           "--shell", "/usr/sbin/nologin", "--user-group", name])
    }

    private func installPolkitFiles() throws {
        let policy = try Data(contentsOf: URL(fileURLWithPath: repository + "/polkit/dev.ferry.policy"))
        if FileManager.default.contents(atPath: Testbed.policyTarget) != policy {
            try policy.write(to: URL(fileURLWithPath: Testbed.policyTarget))
            chmod(Testbed.policyTarget, 0o644)
            installedPolicy = true
        }
        let rules = """
            // Written by Ferry's test harness; removed when the test ends.
            polkit.addRule(function(action, subject) {
                if (action.id.indexOf("dev.ferry.") != 0) { return polkit.Result.NOT_HANDLED; }
                var everything = ["dev.ferry.install", "dev.ferry.update", "dev.ferry.uninstall",
                                  "dev.ferry.configure-remote"];
                if (subject.user == "ferryt-alice" && everything.indexOf(action.id) >= 0) { return polkit.Result.YES; }
                if (subject.user == "ferryt-dave") { return polkit.Result.YES; }
                if (subject.user == "ferryt-bob" && action.id == "dev.ferry.update") { return polkit.Result.YES; }
                if (subject.user.indexOf("ferryt-") == 0) { return polkit.Result.NO; }
                return polkit.Result.NOT_HANDLED;
            });

            """
        try writeRules(rules, to: Testbed.testRules)
        let shipped = try String(contentsOfFile: repository + "/polkit/50-ferry-update.rules", encoding: .utf8)
        try writeRules(shipped, to: Testbed.shippedRules)
    }

    /// polkitd ignores rules files that are not 0644.
    private func writeRules(_ text: String, to path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o644)
    }

    private func startBus() throws {
        try FileManager.default.createDirectory(atPath: directory.file("system.d"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: repository + "/dbus/dev.ferry.Helper1.conf",
                                         toPath: directory.file("system.d/dev.ferry.Helper1.conf"))
        let config = try String(contentsOfFile: repository + "/scripts/private-system-bus.conf", encoding: .utf8)
            .replacingOccurrences(of: "@SOCKET@", with: directory.file("bus"))
            .replacingOccurrences(of: "@SERVICES@", with: directory.file("system.d"))
        try directory.write("bus.conf", config)
        try Command.check([
            "sh", "-c",
            "exec dbus-daemon --config-file=\(directory.file("bus.conf")) --fork --print-pid=3 --print-address=4"
                + " 3>\(directory.file("bus.pid")) 4>\(directory.file("bus.address"))",
        ])
        busPID = pid_t(try String(contentsOfFile: directory.file("bus.pid"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        busAddress = try String(contentsOfFile: directory.file("bus.address"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func startPolkit() throws {
        // Started as root, polkitd drops to its own user itself (as under systemd).
        polkitd = try Child(["/usr/lib/polkit-1/polkitd", "--no-debug"],
                            environment: ["DBUS_SYSTEM_BUS_ADDRESS": busAddress, "PATH": "/usr/bin:/bin"])
        try waitForName("org.freedesktop.PolicyKit1")
    }

    /// Waits until `name` has an owner on the bus (up to 10 s).
    public func waitForName(_ name: String, seconds: Double = 10) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let result = try Command.run(["busctl", "--address=\(busAddress)", "status", name])
            if result.status == 0 { return }
            usleep(50_000)
        }
        throw TestbedError("\(name) did not appear on the bus")
    }

    /// Starts `ferry-helper --root ROOT` as root on the private bus and waits for its name.
    /// `wrapper` runs in front of the helper (`unshare -n` to take its network away, for example).
    public func startHelper(idleTimeout: Int = 0, extraEnvironment: [String: String] = [:], wrapper: [String] = [])
        throws
    {
        let command = wrapper + [BuiltProducts.helper, "--root", root, "--idle-timeout", "\(idleTimeout)",
                                 "--bus-address", busAddress]
        let log = open(directory.file("helper.log"), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        defer { close(log) }
        helper = try Child(command, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"]
                            .merging(extraEnvironment) { _, new in new }, fds: [1: log, 2: log])
        try waitForName("dev.ferry.Helper1")
    }

    public var helperPID: pid_t? { helper?.isRunning == true ? helper?.pid : nil }
    public var helperLog: String { (try? String(contentsOfFile: directory.file("helper.log"), encoding: .utf8)) ?? "" }

    /// Stops the helper: SIGTERM, or SIGKILL for crash tests.
    public func stopHelper(signal: Int32 = SIGTERM) {
        helper?.stop(signal: signal)
        helper = nil
    }

    /// A home directory for `user` inside the testbed (cache, config and user installs live there).
    public func home(_ user: String) throws -> String {
        let path = directory.file("home/\(user)")
        if !FileManager.default.fileExists(atPath: path) {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try Command.check(["chown", "\(user):\(user)", path])
            chmod(path, 0o700)
        }
        return path
    }

    /// Runs the agent as `user` against this testbed's bus and root. `wrapper` runs in front, as root
    /// (`unshare -n` cuts the network: the bus is a socket in the file system and stays reachable).
    @discardableResult
    public func agent(_ user: String, _ arguments: [String], environment: [String: String] = [:],
                      wrapper: [String] = []) throws -> CommandResult {
        let home = try home(user)
        var env = [
            "HOME": home, "DBUS_SYSTEM_BUS_ADDRESS": busAddress, "FERRY_SYSTEM_ROOT": root,
            "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
        ]
        env.merge(environment) { _, new in new }
        let envArgs = env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        return try Command.run(wrapper + ["runuser", "-u", user, "--", "env", "-i"] + envArgs + [BuiltProducts.ferry]
            + arguments)
    }

    /// A staged layout as an agent would leave it: a copy of `layout` in this testbed, owned by `user`.
    public func stageCopy(of layout: String, owner user: String) throws -> String {
        let dir = directory.file("stage-\(UInt32.random(in: 0...UInt32.max))")
        try Command.check(["cp", "-a", layout, dir])
        try Command.check(["chown", "-R", "\(user):\(user)", dir])
        return dir
    }

    /// Calls the helper with python3-dbus (`scripts/test-dbus-client.py`, an independent client) as `user`;
    /// its one-line answer: `OK …` or `ERROR <name> <message>`.
    public func dbusClient(_ user: String, _ arguments: [String]) throws -> String {
        try Command.run(["runuser", "-u", user, "--", "/usr/bin/python3",
                         Testbed.repositoryRoot() + "/scripts/test-dbus-client.py", busAddress] + arguments)
            .out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Configures a system remote directly in the relocated /etc (as an administrator would drop a file).
    public func writeSystemRemote(name: String, toml: String, keys: [String: Data]) throws {
        let dir = root + "/etc/ferry/remotes.d"
        try Data(toml.utf8).write(to: URL(fileURLWithPath: "\(dir)/\(name).toml"))
        try FileManager.default.createDirectory(atPath: "\(dir)/\(name).d", withIntermediateDirectories: true)
        for (file, data) in keys { try data.write(to: URL(fileURLWithPath: "\(dir)/\(name).d/\(file)")) }
    }

    public func stop() {
        stopHelper()
        polkitd?.stop()
        polkitd = nil
        if busPID > 0 {
            kill(busPID, SIGTERM)
            busPID = 0
        }
        unlink(Testbed.testRules)
        unlink(Testbed.shippedRules)
        if installedPolicy {
            unlink(Testbed.policyTarget)
            installedPolicy = false
        }
    }
}

public struct TestbedError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
