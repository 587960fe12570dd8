import FerryCore
import FerryTrust
import Foundation
import XCTest

/// Every branch of DESIGN.md "Timestamps: no silent downgrade".
final class TimestampPolicyTests: XCTestCase {
    private let now: Int64 = 1_764_000_000
    private let digestA = Digest.of(Data("release A".utf8))
    private let digestB = Digest.of(Data("release B".utf8))

    private func decide(
        _ timestamp: Int64,
        _ digest: Digest,
        recorded: (Int64, Digest)?,
        installed: Bool,
        installedDigest: Digest? = nil,
        allowDowngrade: Bool = false
    ) throws -> TimestampPolicy.Decision {
        // Installed means, unless a test says otherwise, that the recorded release is what is installed.
        let installedRelease = installed ? installedDigest ?? recorded?.1 ?? digestA : nil
        return try TimestampPolicy.decide(
            newTimestamp: timestamp,
            newDigest: digest,
            recorded: recorded.map { (timestamp: $0.0, digest: $0.1) },
            installed: installedRelease,
            now: now,
            allowDowngrade: allowDowngrade
        )
    }

    /// After a rollback the installed release is older than the record: the recorded claim again is an update.
    func testRecordedClaimOverAnOlderInstalledReleaseIsUpdate() throws {
        XCTAssertEqual(try decide(now - 5, digestA, recorded: (now - 5, digestA), installed: true,
                                  installedDigest: digestB), .update)
    }

    func testFirstInstallWithoutRecordIsInstall() throws {
        XCTAssertEqual(try decide(now, digestA, recorded: nil, installed: false), .install)
    }

    func testInstalledWithoutRecordIsUpdate() throws {
        XCTAssertEqual(try decide(now, digestA, recorded: nil, installed: true), .update)
    }

    func testNewerClaimIsUpdateWhenInstalled() throws {
        XCTAssertEqual(try decide(now, digestB, recorded: (now - 10, digestA), installed: true), .update)
    }

    func testNewerClaimIsInstallAfterUninstall() throws {
        XCTAssertEqual(try decide(now, digestB, recorded: (now - 10, digestA), installed: false), .install)
    }

    func testSameTimestampSameDigestIsNothingToDo() throws {
        XCTAssertEqual(try decide(now - 5, digestA, recorded: (now - 5, digestA), installed: true), .nothingToDo)
    }

    func testSameTimestampSameDigestReinstallsAfterUninstall() throws {
        XCTAssertEqual(try decide(now - 5, digestA, recorded: (now - 5, digestA), installed: false), .install)
    }

    /// Two releases cannot share a timestamp: one of them was not published as the other's successor.
    func testSameTimestampOtherDigestIsRefused() {
        assertFerryError(.signatureInvalid, "same timestamp") {
            try decide(now - 5, digestB, recorded: (now - 5, digestA), installed: true)
        }
        assertFerryError(.signatureInvalid, "different digest") {
            try decide(now - 5, digestB, recorded: (now - 5, digestA), installed: true, allowDowngrade: true)
        }
    }

    /// A mirror replaying an old, vulnerable release.
    func testOlderClaimIsRefusedAsDowngrade() {
        assertFerryError(.downgrade, "older than the recorded") {
            try decide(now - 100, digestB, recorded: (now - 10, digestA), installed: true)
        }
    }

    /// The record survives uninstall, so an old release cannot come back through uninstall + install.
    func testOlderClaimAfterUninstallIsStillRefusedAsDowngrade() {
        assertFerryError(.downgrade, "--allow-downgrade") {
            try decide(now - 100, digestB, recorded: (now - 10, digestA), installed: false)
        }
    }

    func testOlderClaimWithAllowDowngradeIsDowngrade() throws {
        XCTAssertEqual(
            try decide(
                now - 100,
                digestB,
                recorded: (now - 10, digestA),
                installed: true,
                allowDowngrade: true
            ),
            .downgrade
        )
    }

    /// A far-future claim would block every later (honestly timestamped) update.
    func testClaimMoreThanADayAheadIsRefused() {
        assertFerryError(.signatureInvalid, "more than 24 h in the future") {
            try decide(now + 24 * 3600 + 1, digestA, recorded: nil, installed: false)
        }
        assertFerryError(.signatureInvalid, "more than 24 h in the future") {
            try decide(Int64.max, digestA, recorded: (now, digestB), installed: true, allowDowngrade: true)
        }
    }

    func testClaimExactlyADayAheadIsAccepted() throws {
        XCTAssertEqual(try decide(now + 24 * 3600, digestA, recorded: (now, digestB), installed: true), .update)
    }
}
