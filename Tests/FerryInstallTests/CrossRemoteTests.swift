import FerryCore
import FerryInstall
import FerryTestSupport
import Foundation
import XCTest

/// One app ID, one remote: a publisher of remote `b` cannot install or update an app installed from `a`, in any
/// branch, without `--switch-remote`; a switch is checked against the installed claim and asked as a downgrade.
final class CrossRemoteTests: VictimTestCase {
    override class var victimTimestamp: Int64 { 1_750_000_000 }

    func testAnotherBranchOfTheAppFromAnotherRemoteIsRefused() throws {
        try fx.publish("b", "org.victim.App/x86_64/other", EngineFixture.app("evil"), timestamp: 1_760_000_000)
        let before = fx.snapshot()
        XCTAssertFerryError(try fx.deploy("b", "org.victim.App/x86_64/other"), .untrusted,
                            "org.victim.App is installed from remote a (\(Self.victim)); installing it from b needs "
                                + "--switch-remote")
        XCTAssertUnchanged(before, fx.snapshot())
    }

    /// The 2017 claim of remote b replaced a current install from a as a plain install.
    func testOldClaimOfAnotherRemoteIsRefusedAndEvenWithSwitchIsADowngrade() throws {
        try fx.publish("b", Self.victim, EngineFixture.app("evil"), timestamp: 1_500_000_000)
        let before = fx.snapshot()
        XCTAssertFerryError(try fx.deploy("b", Self.victim), .untrusted, "needs --switch-remote")
        XCTAssertFerryError(try fx.deploy("b", Self.victim, switchRemote: true), .downgrade,
                            "of remote b is older than the installed")
        XCTAssertUnchanged(before, fx.snapshot())
        XCTAssertEqual(try fx.installedHello(Self.victim), "#!/bin/sh\necho victim\n")
    }

    func testSwitchIsPlannedAsASwitchAndTheLauncherFollows() throws {
        try fx.publish("b", Self.victim, EngineFixture.app("from b"), timestamp: 1_760_000_000)
        var seen: [DeployPlan] = []
        try fx.deploy("b", Self.victim, switchRemote: true) { seen.append($0) }
        XCTAssertEqual(seen.map { $0.switchesFrom?.string }, ["a"])
        XCTAssertEqual(try fx.installation(Self.victim)?.remote.string, "b")
        XCTAssertEqual(try fx.installedHello(Self.victim), "#!/bin/sh\necho from b\n")
        // Back to a is a switch again, never an update.
        try fx.publish("a", Self.victim, EngineFixture.app("victim 2"), timestamp: 1_770_000_000)
        XCTAssertFerryError(try fx.deploy("a", Self.victim), .untrusted, "installed from remote b")
    }

    /// A record of remote b equal to what is installed from a made a cross-remote deploy a passwordless update.
    func testRecordOfAnotherRemoteNeverMakesAnUpdate() throws {
        try fx.publish("b", Self.victim, EngineFixture.app("from b"), timestamp: 1_760_000_000)
        try fx.deploy("b", Self.victim, switchRemote: true)
        try fx.deploy("a", Self.victim, switchRemote: true, allowDowngrade: true)
        // Both remotes now have a record; installed is a's. b's claim again:
        var seen: [DeployPlan] = []
        try fx.deploy("b", Self.victim, switchRemote: true) { seen.append($0) }
        XCTAssertEqual(seen.first?.switchesFrom?.string, "a")
        XCTAssertNotEqual(seen.first?.decision, .nothingToDo)
        XCTAssertNotEqual(seen.first?.decision, .update)
    }

    func testRefusedAuthorizationCreatesNoLockAndChangesNothing() throws {
        try fx.publish("a", "org.victim.App/x86_64/beta", EngineFixture.app("beta"), timestamp: 1_760_000_000)
        let before = fx.snapshot()
        struct Refused: Error {}
        XCTAssertThrowsError(try fx.deploy("a", "org.victim.App/x86_64/beta") { _ in throw Refused() })
        XCTAssertUnchanged(before, fx.snapshot())
    }
}
