import FerryCore
import Foundation

/// What a finished child process left behind.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: Data
    public var stderr: Data
    public var out: String { String(decoding: stdout, as: UTF8.self) }
    public var err: String { String(decoding: stderr, as: UTF8.self) }
}

/// Runs real programs (gpg, minisign, skopeo, the built `ferry`) for tests. Test-only; never linked into Ferry.
public enum Command {
    /// Runs `arguments[0]` (looked up on PATH) and waits. Standard input is `input` or /dev/null.
    @discardableResult
    public static func run(_ arguments: [String], environment: [String: String]? = nil, input: Data? = nil,
                           directory: String? = nil) throws -> CommandResult {
        let out = try PipePair(), err = try PipePair()
        let inPipe = input == nil ? nil : try PipePair()
        var fds: [Int32: Int32] = [1: out.write, 2: err.write]
        if let inPipe { fds[0] = inPipe.read }
        let env = environment.map { ProcessInfo.processInfo.environment.merging($0) { _, new in new } }
        let child = try Child(arguments, environment: env, fds: fds, directory: directory)
        out.closeWrite()
        err.closeWrite()
        inPipe?.closeRead()
        // Feed input and drain both outputs together, so a chatty child never blocks on a full pipe.
        var pending = input ?? Data()
        var stdout = Data(), stderr = Data()
        var open: [Int32] = [out.read, err.read]
        if let inPipe, pending.isEmpty { inPipe.closeWrite() }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty || (inPipe?.write ?? -1) >= 0 {
            var polls = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if let inPipe, inPipe.write >= 0 { polls.append(pollfd(fd: inPipe.write, events: Int16(POLLOUT), revents: 0)) }
            if poll(&polls, nfds_t(polls.count), -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            for p in polls where p.revents != 0 {
                if p.fd == inPipe?.write {
                    let n = pending.withUnsafeBytes { Glibc.write(p.fd, $0.baseAddress, min($0.count, 65536)) }
                    if n > 0 { pending.removeFirst(n) }
                    if n < 0 || pending.isEmpty { inPipe?.closeWrite() }
                    continue
                }
                let n = buffer.withUnsafeMutableBytes { read(p.fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    if p.fd == out.read { stdout.append(contentsOf: buffer[0..<n]) } else { stderr.append(contentsOf: buffer[0..<n]) }
                } else if n == 0 || errno != EINTR {
                    open.removeAll { $0 == p.fd }
                }
            }
        }
        return CommandResult(status: child.wait(), stdout: stdout, stderr: stderr)
    }

    /// Runs and throws unless the status is 0.
    @discardableResult
    public static func check(_ arguments: [String], environment: [String: String]? = nil, input: Data? = nil,
                             directory: String? = nil) throws -> CommandResult {
        let result = try run(arguments, environment: environment, input: input, directory: directory)
        guard result.status == 0 else {
            throw CommandFailure(arguments: arguments, result: result)
        }
        return result
    }
}

public struct CommandFailure: Error, CustomStringConvertible {
    public var arguments: [String]
    public var result: CommandResult
    public var description: String {
        "\(arguments.joined(separator: " ")) exited \(result.status): \(result.err)\(result.out)"
    }
}

/// A temporary directory removed when the value is released. Short paths (`/tmp/f.XXXXXX`) so that
/// sockets inside (gpg-agent, dbus) fit in `sun_path`.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(prefix: String = "f") throws {
        var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ buffer in buffer.baseAddress.flatMap { mkdtemp($0) } })
        else {
            throw CocoaError(.fileWriteUnknown)
        }
        path = String(cString: made)
    }

    public func file(_ name: String) -> String { path + "/" + name }

    public func write(_ name: String, _ contents: String) throws {
        try Data(contents.utf8).write(to: URL(fileURLWithPath: file(name)))
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Where the built executables are: next to the test bundle in `.build/<config>/`.
public enum BuiltProducts {
    public static var directory: String {
        if let env = ProcessInfo.processInfo.environment["FERRY_BUILD_DIR"] { return env }
        // On Linux the test bundle is itself the executable, in the build directory beside the products.
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        return executable.deletingLastPathComponent().path
    }

    public static var ferry: String { directory + "/ferry" }
    public static var helper: String { directory + "/ferry-helper" }
}

/// The message of the error `body` throws (a `FerryError`'s message, or the error described), or "no error": for
/// tests that assert exact refusals.
public func errorMessage(_ body: () throws -> Void) -> String {
    do {
        try body()
        return "no error"
    } catch let error as FerryError {
        return error.message
    } catch {
        return "\(error)"
    }
}
