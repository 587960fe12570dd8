import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A child process started with `posix_spawnp` and reaped with `waitpid` on its own pid.
///
/// Foundation's `Process` can miss a child's exit on Linux when many children come and go (its SIGCHLD
/// bookkeeping left a daemonizing `dbus-daemon` as an unreaped zombie and the test hanging), so the test
/// support spawns and waits for children itself.
public final class Child: @unchecked Sendable {
    public let pid: pid_t
    private var status: Int32?
    private let lock = NSLock()

    /// Starts `arguments` (looked up on PATH). `fds` maps child descriptors (0, 1, 2) to descriptors of ours;
    /// unmapped standard descriptors get /dev/null. `environment` replaces the environment when given.
    public init(_ arguments: [String], environment: [String: String]? = nil, fds: [Int32: Int32] = [:],
                directory: String? = nil) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for target: Int32 in [0, 1, 2] {
            if let source = fds[target] {
                posix_spawn_file_actions_adddup2(&actions, source, target)
            } else {
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Children start with default signal handling and an empty mask, whatever the test process set.
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        // Run from `directory` through the shell (glibc's addchdir is not visible to Swift).
        let arguments = Sanitizer.passedThrough(
            directory.map { ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", $0] + arguments } ?? arguments)
        let env = (environment.map { $0.merging(Sanitizer.options) { given, _ in given } }
            ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var child: pid_t = 0
        let rc = posix_spawnp(&child, arguments.first ?? "", &actions, &attributes, &argv, &envp)
        guard rc == 0 else {
            throw TestbedError("cannot start \(arguments.first ?? ""): \(String(cString: strerror(rc)))")
        }
        pid = child
    }

    /// Waits for the child to exit; its exit status, or 128 + the signal that ended it.
    @discardableResult
    public func wait() -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        if let status { return status }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
        let result = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        status = result
        return result
    }

    /// Whether the child is still running (reaps it if it has exited).
    public var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        if status != nil { return false }
        var raw: Int32 = 0
        let r = waitpid(pid, &raw, WNOHANG)
        if r == pid {
            status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            return false
        }
        return r == 0
    }

    /// Sends `signal` and waits for the exit.
    public func stop(signal: Int32 = SIGTERM) {
        if isRunning { kill(pid, signal) }
        wait()
    }
}

/// A pipe whose ends close on deinit.
final class PipePair {
    var read: Int32 = -1
    var write: Int32 = -1

    init() throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw TestbedError("pipe failed") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        read = fds[0]
        write = fds[1]
    }

    func closeRead() {
        if read >= 0 { close(read) }
        read = -1
    }

    func closeWrite() {
        if write >= 0 { close(write) }
        write = -1
    }

    deinit {
        closeRead()
        closeWrite()
    }
}

/// The sanitizer runtime's options (`ASAN_OPTIONS`, `LSAN_OPTIONS`, `UBSAN_OPTIONS`) reach every child, even one
/// started with a clean environment or through `env -i`, so a sanitizer build checks the helper and the agents the
/// tests start as well as the test process (`make asan`).
public enum Sanitizer {
    static let names = ["ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS"]

    public static var options: [String: String] {
        ProcessInfo.processInfo.environment.filter { names.contains($0.key) }
    }

    /// Whether this run is under AddressSanitizer (`make asan` sets `ASAN_OPTIONS`).
    public static var isAddress: Bool { options["ASAN_OPTIONS"] != nil }

    /// `arguments` with the options inserted after each `env -i`, which would drop them.
    static func passedThrough(_ arguments: [String]) -> [String] {
        let extra = options.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        guard !extra.isEmpty else { return arguments }
        var result: [String] = []
        for (i, argument) in arguments.enumerated() {
            result.append(argument)
            if argument == "-i", i > 0, arguments[i - 1] == "env" { result += extra }
        }
        return result
    }
}
