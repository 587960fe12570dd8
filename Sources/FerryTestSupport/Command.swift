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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let outPipe = Pipe()
        let errPipe = Pipe()
        let inPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.standardInput = input == nil ? FileHandle.nullDevice : inPipe
        try process.run()
        if let input {
            inPipe.fileHandleForWriting.write(input)
            try? inPipe.fileHandleForWriting.close()
        }
        // Read both pipes concurrently so a chatty child cannot deadlock on a full pipe.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errData = errPipe.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = outPipe.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus, stdout: outData, stderr: errData)
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
        var url = Bundle.main.bundleURL
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            url = bundle.bundleURL
        }
        return url.deletingLastPathComponent().path
    }

    public static var ferry: String { directory + "/ferry" }
    public static var helper: String { directory + "/ferry-helper" }
}
