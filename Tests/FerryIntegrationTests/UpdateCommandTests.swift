import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// `ferry update REF...` across both scopes.
final class UpdateCommandTests: SystemTestCase {
    /// A ref installed in both scopes and one installed nowhere: the missing one is named and the exit status is 1.
    /// (The missing count used to count (scope, ref) pairs, so the first ref's two installs hid the second.)
    func testUpdateNamingARefInstalledNowhereSaysSoAndFails() throws {
        let system = try fixture.agent("ferryt-alice", "install", "--system", "demo", ref, "--no-interaction")
        XCTAssertEqual(system.status, 0, system.err)
        let added = try fixture.agent("ferryt-alice", "remote-add", "--user", "demo", fixture.server.url,
                                      "--ed25519-key", fixture.publisher.publicKey)
        XCTAssertEqual(added.status, 0, added.err)
        let user = try fixture.agent("ferryt-alice", "install", "--user", "demo", ref)
        XCTAssertEqual(user.status, 0, user.err)
        let missing = "org.example.Missing/x86_64/stable"
        let before = fixture.snapshot()
        let update = try fixture.agent("ferryt-alice", "update", ref, missing, "--no-interaction")
        XCTAssertEqual(update.status, 1, update.out + update.err)
        XCTAssertEqual(update.err, "ferry: \(missing) is not installed\n")
        XCTAssertTrue(update.out.contains("\(ref): up to date ("), update.out)
        XCTAssertEqual(update.out.components(separatedBy: "\(ref): up to date (").count - 1, 2, update.out)
        XCTAssertUnchanged(before, fixture.snapshot())
    }
}
