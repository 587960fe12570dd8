import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// The helper's `Progress` signals go to the caller only, and the agent believes them only from the helper.
///
/// Each test holds the helper's TUF lock of `demo` (``TUFLockHold``), so the agent's deploy is known to be inside
/// the helper, subscribed to progress, while the other bus client listens or forges.
final class ProgressSignalTests: SystemTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        if fixture != nil { _ = try configureTUFRemote(fixture) }
    }

    /// `ferry install --system demo REF` as ferryt-alice in the background; its stdout and stderr go to a file.
    func startInstall() throws -> (Child, String) {
        let testbed = fixture.testbed
        let env = ["HOME": try testbed.home("ferryt-alice"), "DBUS_SYSTEM_BUS_ADDRESS": testbed.busAddress,
                   "FERRY_SYSTEM_ROOT": testbed.root, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"]
        let output = fixture.scratch.file("agent-\(UInt32.random(in: 0...UInt32.max)).out")
        let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { close(fd) }
        let child = try Child(["runuser", "-u", "ferryt-alice", "--", "env", "-i"]
            + env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            + [BuiltProducts.ferry, "install", "--system", "demo", ref, "--no-interaction"], fds: [1: fd, 2: fd])
        return (child, output)
    }

    func contents(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    /// ferryt-bob subscribes to the helper's signals (a plain match rule, as any client may add) while ferryt-alice
    /// installs: he learns nothing of her deploy. Before the fix every Progress was broadcast to such listeners.
    func testAnotherClientDoesNotReceiveTheCallersProgress() throws {
        let log = fixture.scratch.file("bob-monitor.log")
        let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        // setpriv execs in place (runuser would fork), so stopping the child stops gdbus itself: a monitor left
        // running would outlive the test and keep its inherited descriptors open.
        let monitor = try Child(["setpriv", "--reuid=ferryt-bob", "--regid=ferryt-bob", "--clear-groups", "--",
                                 "stdbuf", "-oL", "gdbus", "monitor",
                                 "--address", fixture.testbed.busAddress, "--dest", "dev.ferry.Helper1",
                                 "--object-path", "/dev/ferry/Helper1"], fds: [1: fd, 2: fd])
        close(fd)
        defer { monitor.stop(signal: SIGKILL) }
        // gdbus prints the owner once its match rule is in place.
        let ready = Date().addingTimeInterval(10)
        while !contents(log).contains("is owned by") && Date() < ready { usleep(20_000) }
        XCTAssertTrue(contents(log).contains("is owned by"), contents(log))

        let hold = try TUFLockHold(stateRoot: fixture.stateRoot)
        defer { hold.release() }
        let (agent, output) = try startInstall()
        XCTAssertTrue(hold.waitForWaiter(), "the deploy never reached the helper: \(contents(output))")
        hold.release()
        XCTAssertEqual(agent.wait(), 0, contents(output))
        // The caller did get its progress; the listener none of it.
        XCTAssertTrue(contents(output).contains("helper: copy"), contents(output))
        usleep(300_000)
        XCTAssertFalse(contents(log).contains("Progress"), contents(log))
    }

    /// While ferryt-alice's deploy runs, ferryt-carol sends Progress signals with the helper's path and interface,
    /// broadcast and unicast to each of alice's connections: the agent shows only what the helper sent.
    func testForgedProgressFromAnotherConnectionIsIgnored() throws {
        let hold = try TUFLockHold(stateRoot: fixture.stateRoot)
        defer { hold.release() }
        let (agent, output) = try startInstall()
        XCTAssertTrue(hold.waitForWaiter(), "the deploy never reached the helper: \(contents(output))")
        let forged = try fixture.dbusClient("ferryt-carol", ["forge-progress", ref, "forged", "1.5", "ferryt-alice"])
        XCTAssertTrue(forged.hasPrefix("OK \"sent "), forged)
        XCTAssertNotEqual(forged, "OK \"sent 0\"")
        hold.release()
        XCTAssertEqual(agent.wait(), 0, contents(output))
        XCTAssertTrue(contents(output).contains("helper: copy"), contents(output))
        XCTAssertFalse(contents(output).contains("forged"), contents(output))
    }
}
