import FerryBus
import FerryTestSupport
import Foundation
import Glibc

/// A real `dbus-daemon` with a system-bus-like policy, listening on a socket in a short temp directory
/// that every user can reach (tests connect as `nobody` too). Killed by `stop()`.
final class PrivateBus: @unchecked Sendable {
    let directory: TemporaryDirectory
    let address: String
    private let daemon: ChildProcess

    var pid: pid_t { daemon.process.processIdentifier }

    init() throws {
        directory = try TemporaryDirectory(prefix: "fb")
        chmod(directory.path, 0o755)
        let config = """
            <busconfig>
              <type>system</type>
              <listen>unix:path=\(directory.file("sock"))</listen>
              <auth>EXTERNAL</auth>
              <policy context="default">
                <allow user="*"/>
                <allow own="*"/>
                <allow send_destination="*" eavesdrop="true"/>
                <allow receive_sender="*"/>
              </policy>
              <includedir>/usr/share/dbus-1/system.d</includedir>
            </busconfig>
            """
        try directory.write("bus.conf", config)
        // A direct child (no --fork) so the test reaps it; the address line means it is listening.
        daemon = try ChildProcess([
            "dbus-daemon", "--config-file=\(directory.file("bus.conf"))", "--nofork", "--print-address=1",
        ])
        address = daemon.firstLine()
        guard address.hasPrefix("unix:") else {
            daemon.stop()
            throw BusError.failed("dbus-daemon printed no address")
        }
    }

    /// Terminates the daemon and waits for it.
    func stop() {
        daemon.stop()
    }
}

/// A child process the test started; `stop()` terminates it and waits.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    let output = Pipe()
    let input = Pipe()

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        process.standardOutput = output
        process.standardInput = input
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// The first line the child printed on standard output.
    func firstLine() -> String {
        var bytes: [UInt8] = []
        let handle = output.fileHandleForReading
        while true {
            let chunk = handle.readData(ofLength: 1)
            guard let byte = chunk.first, byte != UInt8(ascii: "\n") else { break }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}

/// A service connection whose loop runs on its own thread until `stop()`.
final class RunningService: @unchecked Sendable {
    let connection: BusConnection
    private let finished = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var exit: Result<BusConnection.LoopExit, Error>?

    init(_ connection: BusConnection, idleTimeout: Duration? = nil) {
        self.connection = connection
        let thread = Thread { [self] in
            let result = Result { try connection.run(idleTimeout: idleTimeout) }
            lock.lock()
            exit = result
            lock.unlock()
            finished.signal()
        }
        thread.start()
    }

    /// Waits up to `seconds` for the loop to return by itself.
    func waitForExit(seconds: Double) -> Result<BusConnection.LoopExit, Error>? {
        guard finished.wait(timeout: .now() + seconds) == .success else { return nil }
        finished.signal()
        lock.lock()
        defer { lock.unlock() }
        return exit
    }

    func stop() {
        connection.stop()
        _ = waitForExit(seconds: 5)
    }
}
