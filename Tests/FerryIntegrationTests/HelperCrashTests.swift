import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// The helper killed at the worst moments, and archives built to escape their deployment.
final class HelperCrashTests: SystemTestCase {

    func sign(_ timestamp: Int64) throws {
        try Command.check([BuiltProducts.ferry, "sign", fixture.publisher.layout, "--ref", ref, "--ed25519-key",
                           fixture.publisher.secretKey, "--timestamp", "\(timestamp)"])
        try Command.check(["chmod", "-R", "a+rX", fixture.publisher.layout])
    }

    func testKillDuringExtractionLeavesThePreviousDeploymentActiveAndSweepsLeftovers() throws {
        XCTAssertEqual(try fixture.agent("ferryt-alice", "install", "--system", "demo", ref, "--no-interaction").status, 0)
        let v1 = try FileManager.default.destinationOfSymbolicLink(atPath: fixture.stateRoot + "/installed/" + stateName(ref))
        let stateBefore = try String(contentsOfFile: fixture.stateRoot + "/state.json", encoding: .utf8)

        // v2: thousands of files, so extraction takes long enough to be interrupted.
        let many = (0..<4000).map { ImageCrafter.file("data/f\($0)", String(repeating: "x", count: 2048)) }
        try ImageCrafter.publish(layout: fixture.publisher.layout, ref: ref,
                                 layers: [[ImageCrafter.file("bin/hello", "#!/bin/sh\necho hello v2\n", mode: 0o755)], many])
        try sign(1_700_000_500)

        let home = try fixture.testbed.home("ferryt-alice")
        let agent = try Child(["runuser", "-u", "ferryt-alice", "--", "env", "-i", "HOME=\(home)", "PATH=/usr/bin:/bin",
                               "DBUS_SYSTEM_BUS_ADDRESS=\(fixture.testbed.busAddress)",
                               "FERRY_SYSTEM_ROOT=\(fixture.testbed.root)", BuiltProducts.ferry, "update", "--system",
                               "--no-interaction"])
        let tmp = fixture.stateRoot + "/tmp"
        var sawExtraction = false
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && agent.isRunning {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []
            if entries.contains(where: { $0.hasPrefix("deploy-") }) {
                sawExtraction = true
                break
            }
            usleep(2000)
        }
        XCTAssertTrue(sawExtraction, "extraction was observed in progress")
        fixture.testbed.stopHelper(signal: SIGKILL)
        XCTAssertNotEqual(agent.wait(), 0)

        // Still v1 before any recovery ran.
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: fixture.stateRoot + "/installed/" + stateName(ref)), v1)
        try fixture.testbed.startHelper()
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: fixture.stateRoot + "/installed/" + stateName(ref)), v1)
        XCTAssertEqual(try String(contentsOfFile: fixture.stateRoot + "/state.json", encoding: .utf8), stateBefore)
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? [], [], "leftovers swept")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: fixture.stateRoot + "/deploy/" + stateName(ref)).count, 1)
        XCTAssertEqual(try fixture.agent("ferryt-alice", "run", ref).out, "hello v1 \n")

        // And the interrupted update goes through on the next try.
        let retry = try fixture.agent("ferryt-alice", "update", "--system", "--no-interaction")
        XCTAssertEqual(retry.status, 0, retry.err)
        XCTAssertEqual(try fixture.agent("ferryt-alice", "run", ref).out, "hello v2\n")
    }

    func testSignedImagesWithUnsafeEntriesNeverWriteOutsideTheirDeployment() throws {
        let outside = fixture.scratch.file("outside")
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try Data("sentinel\n".utf8).write(to: URL(fileURLWithPath: outside + "/file"))
        let before = TreeSnapshot.take(outside)
        let hello = ImageCrafter.file("bin/hello", "#!/bin/sh\necho hello\n", mode: 0o755)
        let attacks: [(String, [[String: Any]], String)] = [
            ("absolute path", [hello, ImageCrafter.file(outside + "/abs", "x")], "absolute"),
            ("dot-dot", [hello, ImageCrafter.file("../../../../../../\(outside)/dotdot", "x")], ".."),
            ("write through symlink", [hello, ImageCrafter.symlink("evil", to: outside),
                                       ImageCrafter.file("evil/through", "x")], "symlink"),
            ("hard link out of the tree", [hello, ImageCrafter.hardlink("passwd", to: "/etc/passwd")], "link"),
            ("character device", [hello, ImageCrafter.special("dev/mem", "chr")], "device"),
            ("block device", [hello, ImageCrafter.special("dev/sda", "blk")], "device"),
            ("fifo", [hello, ImageCrafter.special("pipe", "fifo")], "FIFO"),
            ("whiteout escaping", [hello, ImageCrafter.file("../.wh.outside", "")], ".."),
        ]
        var timestamp: Int64 = 1_700_001_000
        for (name, entries, fragment) in attacks {
            try ImageCrafter.publish(layout: fixture.publisher.layout, ref: ref, layers: [entries])
            timestamp += 10
            try sign(timestamp)
            let state = fixture.snapshot()
            let result = try fixture.agent("ferryt-alice", "install", "--system", "demo", ref, "--no-interaction")
            XCTAssertEqual(result.status, 1, "\(name) was installed")
            XCTAssertTrue(result.err.lowercased().contains(fragment.lowercased()), "\(name): \(result.err)")
            XCTAssertUnchanged(state, fixture.snapshot())
            XCTAssertUnchanged(before, TreeSnapshot.take(outside))
        }

        // setuid and setgid bits are neutralised, not refused.
        try ImageCrafter.publish(layout: fixture.publisher.layout, ref: ref,
                                 layers: [[hello, ImageCrafter.file("bin/suid", "x", mode: 0o6755)]])
        try sign(timestamp + 10)
        let install = try fixture.agent("ferryt-alice", "install", "--system", "demo", ref, "--no-interaction")
        XCTAssertEqual(install.status, 0, install.err)
        var st = stat()
        XCTAssertEqual(lstat(fixture.stateRoot + "/installed/\(stateName(ref))/files/bin/suid", &st), 0)
        XCTAssertEqual(st.st_mode & (S_ISUID | S_ISGID), 0, "setuid/setgid stripped")
        XCTAssertEqual(st.st_uid, 0)
        XCTAssertUnchanged(before, TreeSnapshot.take(outside))
    }
}
