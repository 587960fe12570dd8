import FerryBus
import FerryTestSupport
import Glibc
import XCTest

/// sd_notify against a real datagram socket standing in for systemd's notification socket.
final class ServiceNotifierTests: XCTestCase {
    private var socketFD: Int32 = -1
    private var directory: TemporaryDirectory?

    override func setUpWithError() throws {
        let directory = try TemporaryDirectory(prefix: "fn")
        self.directory = directory
        let path = directory.file("notify")
        socketFD = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        XCTAssertGreaterThanOrEqual(socketFD, 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() where index < raw.count - 1 { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socketFD, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        XCTAssertEqual(bound, 0)
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(socketFD, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setenv("NOTIFY_SOCKET", path, 1)
    }

    override func tearDown() {
        unsetenv("NOTIFY_SOCKET")
        if socketFD >= 0 { close(socketFD) }
        directory = nil
    }

    private func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(socketFD, &buffer, buffer.count, 0)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    func testReadyAndStatusReachTheNotifySocket() {
        XCTAssertTrue(ServiceNotifier.ready())
        XCTAssertEqual(receive(), "READY=1")
        XCTAssertTrue(ServiceNotifier.status("verifying org.example.App"))
        XCTAssertEqual(receive(), "STATUS=verifying org.example.App")
        XCTAssertTrue(ServiceNotifier.stopping())
        XCTAssertEqual(receive(), "STOPPING=1")
    }

    func testStatusCannotInjectOtherAssignments() {
        XCTAssertTrue(ServiceNotifier.status("ref\nREADY=1\nMAINPID=1"))
        XCTAssertEqual(receive(), "STATUS=ref READY=1 MAINPID=1")
    }

    func testWithoutNotifySocketNothingIsSent() {
        unsetenv("NOTIFY_SOCKET")
        XCTAssertFalse(ServiceNotifier.ready())
        XCTAssertFalse(ServiceNotifier.status("x"))
    }
}
