import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// System-wide installs through the real helper, polkitd and bus, by real unprivileged users.
final class SystemInstallTests: SystemTestCase {

    func testGrantedUserInstallsUpdatesRunsAndUninstallsSystemWide() throws {
        let install = try fixture.agent("ferryt-alice", "install", "--system", "demo", ref, "--no-interaction")
        XCTAssertEqual(install.status, 0, install.err + install.out)
        XCTAssertTrue(install.out.contains("installed"), install.out)

        // Root-owned deployment under the relocated /var/lib/ferry, reported by ListInstalled.
        let link = fixture.stateRoot + "/installed/" + stateName(ref)
        let deployment = try FileManager.default.destinationOfSymbolicLink(atPath: link)
        var st = stat()
        XCTAssertEqual(lstat(deployment + "/files/bin/hello", &st), 0)
        XCTAssertEqual(st.st_uid, 0)
        XCTAssertEqual(st.st_mode & 0o022, 0, "no group/other write on a system deployment")
        XCTAssertTrue(try fixture.installedRefs().contains(ref))

        let run1 = try fixture.agent("ferryt-carol", "run", ref, "--", "x")
        XCTAssertEqual(run1.out, "hello v1 x\n", run1.err)

        try fixture.publishV2()
        let update = try fixture.agent("ferryt-alice", "update", "--system", "--no-interaction")
        XCTAssertEqual(update.status, 0, update.err + update.out)
        XCTAssertTrue(update.out.contains("updated"), update.out)
        XCTAssertEqual(try fixture.agent("ferryt-alice", "run", ref).out, "hello v2 \n")
        // One level of rollback: the v1 deployment is kept beside v2.
        let kept = try FileManager.default.contentsOfDirectory(atPath: fixture.stateRoot + "/deploy/" + stateName(ref))
        XCTAssertEqual(kept.count, 2, "\(kept)")

        let again = try fixture.agent("ferryt-alice", "update", "--system", "--no-interaction")
        XCTAssertEqual(again.status, 0)
        XCTAssertTrue(again.out.contains("up to date"), again.out)

        let uninstall = try fixture.agent("ferryt-alice", "uninstall", "--system", ref, "--no-interaction")
        XCTAssertEqual(uninstall.status, 0, uninstall.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: fixture.stateRoot + "/deploy/" + stateName(ref)))
        XCTAssertFalse(try fixture.installedRefs().contains(ref))
    }

    func testUpdateOnlyUserUpdatesButIsRefusedANewInstall() throws {
        let before = fixture.snapshot()
        let install = try fixture.agent("ferryt-bob", "install", "--system", "demo", ref, "--no-interaction")
        XCTAssertEqual(install.status, 1)
        XCTAssertTrue(install.err.contains("not authorized for dev.ferry.install"), install.err)
        XCTAssertUnchanged(before, fixture.snapshot())

        XCTAssertEqual(try fixture.agent("ferryt-alice", "install", "--system", "demo", ref, "--no-interaction").status, 0)
        try fixture.publishV2()
        let update = try fixture.agent("ferryt-bob", "update", "--system", "--no-interaction")
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertEqual(try fixture.agent("ferryt-bob", "run", ref).out, "hello v2 \n")
    }

    func testUserGrantedNothingIsNotAuthorizedAndNothingChanges() throws {
        XCTAssertEqual(try fixture.agent("ferryt-alice", "install", "--system", "demo", ref, "--no-interaction").status, 0)
        try fixture.publishV2()
        let before = fixture.snapshot()
        for arguments in [["update", "--system", "--no-interaction"], ["uninstall", "--system", ref, "--no-interaction"]] {
            let result = try fixture.testbed.agent("ferryt-carol", arguments)
            XCTAssertEqual(result.status, 1, arguments.joined(separator: " "))
            XCTAssertTrue(result.err.contains("not authorized"), result.err)
        }
        let direct = try fixture.dbusClient("ferryt-carol", ["uninstall", ref])
        XCTAssertTrue(direct.hasPrefix("ERROR dev.ferry.Error.NotAuthorized"), direct)
        XCTAssertUnchanged(before, fixture.snapshot())
    }

    func testDowngradeIsRefusedWithoutTheFlagAndAllowedWithItAndTheAuthorization() throws {
        try fixture.publishV2()
        XCTAssertEqual(try fixture.agent("ferryt-dave", "install", "--system", "demo", ref, "--no-interaction").status, 0)
        try fixture.publisher.restoreIndex("v1")
        let before = fixture.snapshot()

        let plain = try fixture.agent("ferryt-dave", "update", "--system", "--no-interaction")
        XCTAssertEqual(plain.status, 1)
        XCTAssertTrue(plain.err.contains("older"), plain.err)
        XCTAssertUnchanged(before, fixture.snapshot())

        let alice = try fixture.agent("ferryt-alice", "update", "--system", "--allow-downgrade", "--no-interaction")
        XCTAssertEqual(alice.status, 1)
        XCTAssertTrue(alice.err.contains("not authorized for dev.ferry.downgrade"), alice.err)
        XCTAssertUnchanged(before, fixture.snapshot())

        let dave = try fixture.agent("ferryt-dave", "update", "--system", "--allow-downgrade", "--no-interaction")
        XCTAssertEqual(dave.status, 0, dave.err)
        XCTAssertTrue(dave.out.contains("downgraded"), dave.out)
        XCTAssertEqual(try fixture.agent("ferryt-dave", "run", ref).out, "hello v1 \n")
    }

    func testListInstalledAndVersionAnswerWhileIdle() throws {
        XCTAssertEqual(try fixture.installedRefs(), "OK []\n")
        let version = try Command.run(["busctl", "--address=\(fixture.testbed.busAddress)", "get-property",
                                       "dev.ferry.Helper1", "/dev/ferry/Helper1", "dev.ferry.Helper1", "Version"])
        XCTAssertEqual(version.out, "u 1\n", version.err)
        let introspection = try Command.run(["busctl", "--address=\(fixture.testbed.busAddress)", "introspect",
                                             "dev.ferry.Helper1", "/dev/ferry/Helper1", "dev.ferry.Helper1"])
        XCTAssertTrue(introspection.out.contains(".Deploy"), introspection.out)
    }
}
