import FerryCore
import FerryInstall
import FerryTestSupport
import Foundation
import XCTest

/// `rollback` switches to the kept previous deployment and back; `history.jsonl` records every change.
final class RollbackHistoryTests: VictimTestCase {
    func testRollbackSwitchesToThePreviousDeploymentAndBack() throws {
        let v1 = try fx.installation(Self.victim)!
        try fx.publish("a", Self.victim, EngineFixture.app("victim 2"), timestamp: 1_700_000_100)
        try fx.deploy("a", Self.victim)
        let v2 = try fx.installation(Self.victim)!
        var asked: [RollbackPlan] = []
        let plan = try fx.installer.rollback(try Ref(Self.victim)) { asked.append($0) }
        XCTAssertEqual(asked, [plan])
        XCTAssertEqual(plan.fromDigest, v2.digest)
        XCTAssertEqual(plan.toDigest, v1.digest)
        XCTAssertEqual(try fx.installedHello(Self.victim), "#!/bin/sh\necho victim\n")
        XCTAssertEqual(try fx.installation(Self.victim)?.deployment, v1.deployment)
        XCTAssertEqual(try fx.installation(Self.victim)?.previous, v2.deployment)
        // The record still remembers v2: a replay of v1's claim is no update, and update offers v2 again.
        XCTAssertEqual(try fx.installer.state().records["a \(Self.victim)"]?.digest, v2.digest)
        XCTAssertEqual(try fx.deploy("a", Self.victim).decision, .update)
        XCTAssertEqual(try fx.installedHello(Self.victim), "#!/bin/sh\necho victim 2\n")
        // A second rollback goes back to v1 again, and recovery keeps what the rollback did.
        try fx.installer.rollback(try Ref(Self.victim))
        try fx.installer.recover(collectingGarbage: true)
        XCTAssertEqual(try fx.installedHello(Self.victim), "#!/bin/sh\necho victim\n")
    }

    func testRollbackWithoutAKeptDeploymentIsRefusedAndChangesNothing() throws {
        let before = fx.snapshot()
        XCTAssertFerryError(try fx.installer.rollback(try Ref(Self.victim)), .notInstalled,
                            "no previous deployment is kept")
        XCTAssertFerryError(try fx.installer.rollback(try Ref("org.other.App")), .notInstalled, "is not installed")
        XCTAssertUnchanged(before, fx.snapshot())
    }

    func testRefusedRollbackAuthorizationChangesNothing() throws {
        try fx.publish("a", Self.victim, EngineFixture.app("victim 2"), timestamp: 1_700_000_100)
        try fx.deploy("a", Self.victim)
        let before = fx.snapshot()
        struct Refused: Error {}
        XCTAssertThrowsError(try fx.installer.rollback(try Ref(Self.victim)) { _ in throw Refused() })
        XCTAssertUnchanged(before, fx.snapshot())
    }

    func testHistoryRecordsEveryChangeInOrder() throws {
        let v1 = try fx.installation(Self.victim)!.digest
        try fx.publish("a", Self.victim, EngineFixture.app("victim 2"), timestamp: 1_700_000_100)
        let v2 = try fx.deploy("a", Self.victim).digest
        try fx.installer.rollback(try Ref(Self.victim))
        try fx.publish("b", Self.victim, EngineFixture.app("b"), timestamp: 1_700_000_200)
        let b = try fx.deploy("b", Self.victim, switchRemote: true).digest
        try fx.installer.uninstall(try Ref(Self.victim))
        let history = try History.read(fx.installer.paths)
        XCTAssertEqual(history.map(\.action), [.install, .update, .rollback, .switchRemote, .uninstall])
        XCTAssertEqual(history.map(\.from), [nil, v1, v2, v1, b])
        XCTAssertEqual(history.map(\.to), [v1, v2, v1, b, nil])
        XCTAssertEqual(history.map(\.remote.string), ["a", "a", "a", "b", "b"])
        XCTAssertEqual(Set(history.map(\.uid)), [getuid()])
        XCTAssertEqual(Set(history.map(\.ref.string)), [Self.victim])
        // A line cut by a crash is skipped, not half-trusted, and later lines still count.
        let file = fx.root + "/history.jsonl"
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: file))
        handle.seekToEndOfFile()
        handle.write(Data(#"{"action":"install","ti"#.utf8))
        handle.closeFile()
        XCTAssertEqual(try History.read(fx.installer.paths).count, 5)
    }
}

extension RollbackHistoryTests {
    func testEntryAfterACutLineStartsOnAFreshLine() throws {
        let file = fx.root + "/history.jsonl"
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: file))
        handle.seekToEndOfFile()
        handle.write(Data(#"{"action":"install","ti"#.utf8))
        handle.closeFile()
        try fx.installer.uninstall(try Ref(Self.victim))
        XCTAssertEqual(try History.read(fx.installer.paths).map(\.action), [.install, .uninstall])
    }
}
