import Foundation

/// `scripts/test-http-server.py`: a static server on 127.0.0.1 with byte ranges, a JSON request log, and
/// faults set at run time (see the script's header). Stopped on deinit.
public final class StaticServer: @unchecked Sendable {
    public let root: String
    public let port: Int
    public let logPath: String
    public let faultsPath: String
    private var child: Child?

    public init(root: String, scratch: TemporaryDirectory) throws {
        self.root = root
        logPath = scratch.file("http-\(UInt32.random(in: 0...UInt32.max)).log")
        faultsPath = logPath + ".faults.json"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let out = try PipePair()
        child = try Child(["/usr/bin/python3", Testbed.repositoryRoot() + "/scripts/test-http-server.py", "--root", root,
                           "--log", logPath, "--faults", faultsPath], fds: [1: out.write])
        out.closeWrite()
        var line = [UInt8]()
        var byte: UInt8 = 0
        while read(out.read, &byte, 1) == 1 && byte != 10 { line.append(byte) }
        guard let port = Int(String(decoding: line, as: UTF8.self).replacingOccurrences(of: "PORT ", with: "")) else {
            throw TestbedError("static server did not start")
        }
        self.port = port
    }

    public var url: String { "http://127.0.0.1:\(port)" }

    /// Sets the faults (path suffix → fault object); `[:]` clears them.
    public func setFaults(_ faults: [String: [String: Any]]) throws {
        let data = try JSONSerialization.data(withJSONObject: faults)
        try data.write(to: URL(fileURLWithPath: faultsPath + ".new"))
        _ = rename(faultsPath + ".new", faultsPath)
    }

    public struct Request: Decodable {
        public var path: String
        public var range: String?
        public var status: Int
        public var bytes: Int
        /// The request's `Authorization` header, if it had one.
        public var authorization: String?
    }

    /// Every request served so far.
    public func requests() -> [Request] {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(Request.self, from: Data($0.utf8)) }
    }

    /// Forgets the log (to measure one operation).
    public func clearLog() { try? Data().write(to: URL(fileURLWithPath: logPath)) }

    public func stop() {
        child?.stop()
    }

    deinit { stop() }
}

/// Debian's `docker-registry` (the CNCF distribution registry) on a free 127.0.0.1 port, storing in a temp dir.
public final class Registry: @unchecked Sendable {
    public let port: Int
    private var child: Child?

    public init(scratch: TemporaryDirectory) throws {
        port = try Registry.freePort()
        let storage = scratch.file("registry-\(port)")
        try FileManager.default.createDirectory(atPath: storage, withIntermediateDirectories: true)
        let config = """
            version: 0.1
            log:
              level: error
            storage:
              filesystem:
                rootdirectory: \(storage)
              delete:
                enabled: true
            http:
              addr: 127.0.0.1:\(port)
            """
        try scratch.write("registry-\(port).yml", config)
        child = try Child(["/usr/bin/docker-registry", "serve", scratch.file("registry-\(port).yml")])
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if (try? Command.run(["curl", "-sf", "http://127.0.0.1:\(port)/v2/"]))?.status == 0 { return }
            usleep(50_000)
        }
        throw TestbedError("docker-registry did not start")
    }

    public var hostPort: String { "127.0.0.1:\(port)" }

    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard bound else { throw TestbedError("no free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    public func stop() {
        child?.stop()
    }

    deinit { stop() }
}

/// `ferry witness serve` on 127.0.0.1 (a free port), with its state in `state`. Stopped on deinit.
public final class WitnessServer: @unchecked Sendable {
    public let url: String
    private var child: Child?

    public init(key: String, logs: [String], state: String) throws {
        let out = try PipePair()
        child = try Child([BuiltProducts.ferry, "witness", "serve", "--key", key, "--state", state,
                           "--listen", "127.0.0.1:0"] + logs.flatMap { ["--log", $0] }, fds: [1: out.write])
        out.closeWrite()
        var line = [UInt8]()
        var byte: UInt8 = 0
        while read(out.read, &byte, 1) == 1 && byte != 10 { line.append(byte) }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("listening on http://") else { throw TestbedError("witness did not start: \(text)") }
        url = String(text.dropFirst("listening on ".count))
    }

    public func stop() {
        child?.stop()
        child = nil
    }

    deinit { stop() }
}
