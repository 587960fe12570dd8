import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// `ferry rollback --system` through the helper, authorized as `dev.ferry.downgrade`, and `ferry history`.
final class RollbackSystemTests: SystemTestCase {
    func testRollbackNeedsDowngradeAuthorizationAndHistoryRecordsWhoDidWhat() throws {
        XCTAssertEqual(try fixture.agent("ferryt-alice", "install", "--system", "demo", ref, "--no-interaction").status, 0)
        try fixture.publishV2()
        XCTAssertEqual(try fixture.agent("ferryt-bob", "update", "--system", "--no-interaction").status, 0)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v2 \n")

        let before = fixture.snapshot()
        for user in ["ferryt-bob", "ferryt-alice", "ferry-update"] {
            let refused = try fixture.agent(user, "rollback", "--system", ref, "--no-interaction")
            XCTAssertEqual(refused.status, 1, user)
            XCTAssertTrue(refused.err.contains("not authorized for dev.ferry.downgrade"), refused.err)
            XCTAssertUnchanged(before, fixture.snapshot())
        }
        let rollback = try fixture.agent("ferryt-dave", "rollback", "--system", ref, "--no-interaction")
        XCTAssertEqual(rollback.status, 0, rollback.err)
        XCTAssertTrue(rollback.out.contains("rolled back"), rollback.out)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v1 \n")
        // The newer release stays recorded: the timer's update brings it back.
        XCTAssertEqual(try fixture.agent("ferry-update", "update", "--system", "--no-interaction").status, 0)
        XCTAssertEqual(try fixture.agent("ferryt-carol", "run", ref).out, "hello v2 \n")

        let history = try fixture.agent("ferryt-carol", "history", "--system", "--json")
        XCTAssertEqual(history.status, 0, history.err)
        let rows = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(history.out.utf8)) as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["action"] as? String }, ["install", "update", "rollback", "update"])
        let names: [String] = ["ferryt-alice", "ferryt-bob", "ferryt-dave", "ferry-update"]
        let users = names.map { name in getpwnam(name).map { Int($0.pointee.pw_uid) } }
        XCTAssertEqual(rows.map { $0["uid"] as? Int }, users)
        XCTAssertEqual(Set(rows.map { $0["scope"] as? String }), ["system"])
        let text = try fixture.agent("ferryt-carol", "history", ref)
        XCTAssertTrue(text.out.contains("rollback \(ref) from demo"), text.out)
        XCTAssertTrue(text.out.contains("by ferryt-dave"), text.out)
    }

    func testRollbackWithNothingKeptIsRefusedBeforePolkit() throws {
        XCTAssertEqual(try fixture.agent("ferryt-alice", "install", "--system", "demo", ref, "--no-interaction").status, 0)
        let before = fixture.snapshot()
        let result = try fixture.agent("ferryt-dave", "rollback", "--system", ref, "--no-interaction")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.err.contains("no previous deployment is kept"), result.err)
        XCTAssertUnchanged(before, fixture.snapshot())
    }
}
