import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// The helper's state on a small tmpfs: a deploy that does not fit fails with NoSpace, the previous deployment
/// stays active and intact, and nothing of the partial one is left.
final class DiskFullTests: XCTestCase {
    var harness: SystemHarness?
    var mountPoint: String?
    let ref = "org.example.Full/x86_64/stable"

    override func setUpWithError() throws {
        try XCTSkipUnless(getuid() == 0, "mounts a tmpfs and starts the helper as root")
        harness = try SystemHarness(stateOn: { [weak self] path in
            try Command.check(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "ferry-test-full", path])
            self?.mountPoint = path
        })
    }

    override func tearDown() {
        harness?.stop()
        if let mountPoint { _ = try? Command.run(["umount", "-l", mountPoint]) }
        harness = nil
    }

    func testDeployThatDoesNotFitFailsWithNoSpaceAndKeepsThePreviousDeployment() throws {
        let harness = try XCTUnwrap(harness)
        let v1 = try harness.publish(ref: ref, version: "v1", timestamp: 1_700_000_000, layers: 1, filesPerLayer: 10)
        let install = try harness.agent("ferryt-alice", "install", "--system", "demo", ref, "--no-interaction")
        XCTAssertEqual(install.status, 0, install.err)
        let before = try harness.assertConsistent([ref: [v1]])
        XCTAssertEqual(before[ref]?.digest, v1.digest)

        // About 1.6 MB of poorly compressible files: more than the 1 MiB the state lives on.
        let v2 = try harness.publish(ref: ref, version: "v2", timestamp: 1_700_000_100, layers: 4, filesPerLayer: 100)
        let update = try harness.agent("ferryt-alice", "update", "--system", "--no-interaction")
        XCTAssertEqual(update.status, 1)
        XCTAssertTrue(update.err.contains("no space left on device"), update.err)

        // The same refusal seen by an independent D-Bus client carries the NoSpace error name.
        let stage = try harness.testbed.stageCopy(of: harness.publisher.layout, owner: "ferryt-alice")
        let direct = try harness.testbed.dbusClient("ferryt-alice", ["deploy", stage, "demo", ref])
        XCTAssertTrue(direct.hasPrefix("ERROR dev.ferry.Error.NoSpace"), direct)

        let after = try harness.assertConsistent([ref: [v1, v2]])
        XCTAssertEqual(after[ref]?.digest, v1.digest, "the previous deployment stays active")
        XCTAssertEqual(try harness.agent("ferryt-carol", "run", ref).out, "hello v1\n")
        let deployments = try FileManager.default.contentsOfDirectory(atPath: harness.stateRoot + "/deploy/" + stateName(ref))
        XCTAssertEqual(deployments, [v1.digest.hex], "the partial deployment is gone")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: harness.stateRoot + "/tmp"), [])
        // No blob of v2 stays behind in the helper's storage.
        let stored = Set(try FileManager.default.contentsOfDirectory(atPath: harness.stateRoot + "/blobs/sha256"))
        for layer in try harness.publisher.layers(of: v2.digest.description) {
            XCTAssertFalse(stored.contains(String(layer.dropFirst("sha256:".count))), "v2 layer \(layer) left behind")
        }
        XCTAssertFalse(stored.contains(v2.digest.hex))
    }
}
