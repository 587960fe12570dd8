import FerryCore
import FerryTestSupport
import Foundation
import XCTest

@testable import FerryTrust

/// A repository built by python-tuf through scripts/tuf-repo.py, and a client metadata directory.
struct TUFTestRepository {
    static var scriptsDirectory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts").path
    }

    let temp: TemporaryDirectory
    var repo: String { temp.file("repo") }
    var metadata: String { temp.file("client") }
    var downloads: String { temp.file("downloads") }

    /// Builds `scenario` and initializes the client with the scenario's version 1 root.
    init(_ scenario: String) throws {
        temp = try TemporaryDirectory(prefix: "tuf")
        try Command.check(["python3", TUFTestRepository.scriptsDirectory + "/tuf-repo.py", scenario, repo])
        let trusted = try Data(contentsOf: URL(fileURLWithPath: repo + "/trusted_root.json"))
        try TUFUpdater.initialize(metadataDirectory: metadata, trustedRoot: trusted)
        try FileManager.default.createDirectory(atPath: downloads, withIntermediateDirectories: true)
    }

    func stage(_ n: Int) -> String { "\(repo)/stage-\(n)" }

    /// An updater whose only "network" is stage `n`'s metadata directory.
    func updater(stage n: Int, now: Date = Date(), limits: TUFLimits = TUFLimits()) throws -> TUFUpdater {
        let fetcher = DirectoryTUFFetcher(directory: try DirectoryHandle(path: stage(n) + "/metadata"),
                                          baseURL: "tuf-test:/metadata/")
        return try TUFUpdater(metadataDirectory: metadata, metadataBaseURL: "tuf-test:/metadata",
                              fetcher: fetcher, now: now, limits: limits)
    }

    /// Refreshes against stage `n`.
    func refresh(stage n: Int) async throws {
        try await updater(stage: n).refresh()
    }

    /// Finds and downloads `path` from stage `n` into ``downloads``; returns the file's content.
    func download(_ path: String, stage n: Int) async throws -> Data {
        let updater = try updater(stage: n)
        guard let info = try await updater.targetInfo(path: path) else {
            throw FerryError.failed("\(path) not found")
        }
        let fetcher = DirectoryTUFFetcher(directory: try DirectoryHandle(path: stage(n) + "/targets"),
                                          baseURL: "tuf-test:/targets/")
        let file = try await updater.download(target: info, baseURL: "tuf-test:/targets/", to: downloads,
                                              fetcher: fetcher)
        return try Data(contentsOf: URL(fileURLWithPath: file))
    }

    /// Every file in the client's metadata directory, by name.
    func trustedFiles() throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: metadata) {
            files[name] = try Data(contentsOf: URL(fileURLWithPath: metadata + "/" + name))
        }
        return files
    }

    func trustedVersion(_ role: String) throws -> Int? {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(metadata)/\(role).json"))
        return try TUFJSON.parse(data)["signed"]?["version"]?.intValue
    }

    func served(_ stage: Int, _ file: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: "\(self.stage(stage))/metadata/\(file)"))
    }
}

/// Asserts that `body` throws a FerryError with `code` whose message contains `fragment`.
func assertTUFError(_ code: FerryError.Code, _ fragment: String, file: StaticString = #filePath, line: UInt = #line,
                    _ body: () async throws -> Void) async
{
    do {
        try await body()
        XCTFail("expected \(code) error containing \(fragment.debugDescription)", file: file, line: line)
    } catch let error as FerryError {
        XCTAssertEqual(error.code, code, error.message, file: file, line: line)
        XCTAssertTrue(error.message.contains(fragment), "message: \(error.message)", file: file, line: line)
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}

final class TUFUpdaterTests: XCTestCase {
    // MARK: - Refresh and download

    func testRefreshStoresTopLevelMetadataUnderPlainNames() async throws {
        let repo = try TUFTestRepository("basic")
        try await repo.refresh(stage: 0)
        XCTAssertEqual(Set(try repo.trustedFiles().keys),
                       ["root.json", "timestamp.json", "snapshot.json", "targets.json"])
        XCTAssertEqual(try repo.trustedFiles()["snapshot.json"], try repo.served(0, "1.snapshot.json"))
        XCTAssertEqual(try repo.trustedFiles()["timestamp.json"], try repo.served(0, "timestamp.json"))
    }

    func testConsistentSnapshotTargetIsDownloadedAndVerified() async throws {
        let repo = try TUFTestRepository("basic")
        let downloaded1 = try await repo.download("file1.txt", stage: 0)

        XCTAssertEqual(downloaded1, Data("hello ferry\n".utf8))
        let downloaded2 = try await repo.download("dir/file2.txt", stage: 0)

        XCTAssertEqual(downloaded2, Data("second file\n".utf8))
        XCTAssertTrue(FileManager.default.fileExists(atPath: repo.downloads + "/dir%2Ffile2.txt"))
    }

    func testRepositoryWithoutConsistentSnapshotsUsesUnversionedNames() async throws {
        let repo = try TUFTestRepository("basic-plain")
        let downloaded3 = try await repo.download("dir/file2.txt", stage: 0)

        XCTAssertEqual(downloaded3, Data("second file\n".utf8))
        XCTAssertEqual(try repo.trustedVersion("snapshot"), 1)
    }

    func testNewReleaseIsPickedUpOnNextRefresh() async throws {
        let repo = try TUFTestRepository("basic")
        let downloaded4 = try await repo.download("file1.txt", stage: 0)

        XCTAssertEqual(downloaded4, Data("hello ferry\n".utf8))
        let downloaded5 = try await repo.download("file1.txt", stage: 1)

        XCTAssertEqual(downloaded5, Data("hello again\n".utf8))
        XCTAssertEqual(try repo.trustedVersion("targets"), 2)
    }

    func testCachedTargetIsNotFetchedAgain() async throws {
        let repo = try TUFTestRepository("basic")
        _ = try await repo.download("file1.txt", stage: 0)
        // The targets directory is gone: only the cache can satisfy the second download.
        try FileManager.default.removeItem(atPath: repo.stage(0) + "/targets")
        try FileManager.default.createDirectory(atPath: repo.stage(0) + "/targets", withIntermediateDirectories: true)
        let downloaded6 = try await repo.download("file1.txt", stage: 0)

        XCTAssertEqual(downloaded6, Data("hello ferry\n".utf8))
    }

    func testSubstitutedTargetIsRefusedAndNotStored() async throws {
        let repo = try TUFTestRepository("basic")
        let targets = repo.stage(0) + "/targets"
        for name in try FileManager.default.contentsOfDirectory(atPath: targets) where name.hasSuffix("file1.txt") {
            try Data("hello fErry\n".utf8).write(to: URL(fileURLWithPath: targets + "/" + name))
        }
        await assertTUFError(.digestMismatch, "hash does not match") {
            _ = try await repo.download("file1.txt", stage: 0)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: repo.downloads), [])
    }

    func testUnknownTargetIsNotFound() async throws {
        let repo = try TUFTestRepository("basic")
        let info = try await repo.updater(stage: 0).targetInfo(path: "missing.txt")
        XCTAssertNil(info)
    }

    func testKeyTypesSignRepositories() async throws {
        for scenario in ["keys-ecdsa", "keys-rsa-pss", "keys-rsa-pkcs1v15"] {
            let repo = try TUFTestRepository(scenario)
            let downloaded7 = try await repo.download("file1.txt", stage: 1)

            XCTAssertEqual(downloaded7, Data("hello again\n".utf8), scenario)
        }
    }

    // MARK: - Root rotation

    func testRootRotationWithThresholdChangeIsFollowed() async throws {
        let repo = try TUFTestRepository("rotation")
        try await repo.refresh(stage: 0)
        let updater = try repo.updater(stage: 1)
        try await updater.refresh()
        let version = await updater.rootVersion
        XCTAssertEqual(version, 3)
        XCTAssertEqual(try repo.trustedFiles()["root.json"], try repo.served(1, "3.root.json"))
    }

    func testRootNotSignedByThePreviousRootIsRefused() async throws {
        let repo = try TUFTestRepository("rotation-unsigned-by-old")
        try await repo.refresh(stage: 0)
        let before = try repo.trustedFiles()
        await assertTUFError(.untrusted, "root metadata version 2: 0 of the 1 signatures required by root version 1") {
            try await repo.refresh(stage: 1)
        }
        XCTAssertEqual(try repo.trustedFiles(), before)
    }

    func testRootMissingItsOwnNewThresholdIsRefused() async throws {
        let repo = try TUFTestRepository("rotation-new-threshold-unmet")
        try await repo.refresh(stage: 0)
        let before = try repo.trustedFiles()
        await assertTUFError(.untrusted, "root metadata version 2: 1 of the 2 signatures required by root version 2") {
            try await repo.refresh(stage: 1)
        }
        XCTAssertEqual(try repo.trustedFiles(), before)
    }

    // MARK: - Freeze (expiry)

    func testExpiredTimestampIsRefused() async throws {
        try await assertExpired("timestamp", "timestamp metadata version 2 expired at 2001-01-01T00:00:00Z")
    }

    func testExpiredSnapshotIsRefused() async throws {
        try await assertExpired("snapshot", "snapshot metadata version 2 expired at 2001-01-01T00:00:00Z")
    }

    func testExpiredTargetsAreRefused() async throws {
        try await assertExpired("targets", "targets metadata version 2 expired at 2001-01-01T00:00:00Z")
    }

    private func assertExpired(_ role: String, _ message: String) async throws {
        let repo = try TUFTestRepository("expired-\(role)")
        try await repo.refresh(stage: 0)
        let before = try repo.trustedFiles()
        await assertTUFError(.failed, message) { try await repo.refresh(stage: 1) }
        // Metadata that came before the expired role in the workflow was valid and is kept; the expired
        // role itself is never stored.
        XCTAssertEqual(try repo.trustedFiles()["\(role).json"], before["\(role).json"])
    }

    func testMetadataExpiredByTheClockIsRefused() async throws {
        let repo = try TUFTestRepository("basic")
        let later = Date().addingTimeInterval(2 * 365 * 86400)
        await assertTUFError(.failed, "root metadata version 1 expired at") {
            try await repo.updater(stage: 0, now: later).refresh()
        }
        XCTAssertEqual(Set(try repo.trustedFiles().keys), ["root.json"])
    }

    // MARK: - Rollback

    func testTimestampRollbackIsRefusedAsDowngrade() async throws {
        let repo = try TUFTestRepository("rollback-timestamp")
        try await repo.refresh(stage: 0)
        let before = try repo.trustedFiles()
        await assertTUFError(.downgrade, "timestamp metadata version 1 is older than the trusted version 2") {
            try await repo.refresh(stage: 1)
        }
        XCTAssertEqual(try repo.trustedFiles(), before)
    }

    func testTargetsRollbackIsRefusedAsDowngrade() async throws {
        let repo = try TUFTestRepository("rollback-targets")
        try await repo.refresh(stage: 0)
        let before = try repo.trustedFiles()
        await assertTUFError(.downgrade, "lists targets.json version 1, older than the trusted 2") {
            try await repo.refresh(stage: 1)
        }
        XCTAssertEqual(try repo.trustedFiles()["snapshot.json"], before["snapshot.json"])
        XCTAssertEqual(try repo.trustedFiles()["targets.json"], before["targets.json"])
    }

    // MARK: - Fast-forward recovery

    func testFastForwardRecoveryAfterKeyRotation() async throws {
        let repo = try TUFTestRepository("fast-forward")
        try await repo.refresh(stage: 0)
        XCTAssertEqual(try repo.trustedVersion("timestamp"), 1000)
        // Without new keys, version 1 is a rollback.
        await assertTUFError(.downgrade, "timestamp metadata version 1 is older than the trusted version 1000") {
            try await repo.refresh(stage: 1)
        }
        // Root v2 rotates the timestamp and snapshot keys: the old versions no longer verify and stop counting.
        try await repo.refresh(stage: 2)
        XCTAssertEqual(try repo.trustedVersion("root"), 2)
        XCTAssertEqual(try repo.trustedVersion("timestamp"), 1)
        XCTAssertEqual(try repo.trustedVersion("snapshot"), 1)
    }

    // MARK: - Delegations

    func testDelegatedTargetsAreFoundThroughTheDelegationGraph() async throws {
        let repo = try TUFTestRepository("delegations")
        let downloaded8 = try await repo.download("a/one.txt", stage: 0)

        XCTAssertEqual(downloaded8, Data("from role-a\n".utf8))
        let downloaded9 = try await repo.download("a/deep.txt", stage: 0)

        XCTAssertEqual(downloaded9, Data("from role-c\n".utf8))
        let downloaded10 = try await repo.download("fall.txt", stage: 0)

        XCTAssertEqual(downloaded10, Data("from role-f\n".utf8))
        let downloaded11 = try await repo.download("top.txt", stage: 0)

        XCTAssertEqual(downloaded11, Data("from targets\n".utf8))
        XCTAssertNotNil(try repo.trustedFiles()["role-c.json"])
    }

    func testRoleListingAPathOutsideItsDelegationIsIgnored() async throws {
        let repo = try TUFTestRepository("delegations")
        let info = try await repo.updater(stage: 0).targetInfo(path: "a/evil.txt")
        XCTAssertNil(info)
    }

    func testTerminatingDelegationStopsTheSearch() async throws {
        let repo = try TUFTestRepository("delegations")
        let info = try await repo.updater(stage: 0).targetInfo(path: "t/shadowed.txt")
        XCTAssertNil(info)
    }

    func testSuccinctHashBinDelegationsFindTargets() async throws {
        let repo = try TUFTestRepository("hash-bins")
        for i in 0..<6 {
            let fetched = try await repo.download("pkg/file-\(i).txt", stage: 0)
            XCTAssertEqual(fetched, Data("content \(i)\n".utf8))
        }
        XCTAssertTrue(try repo.trustedFiles().keys.contains { $0.hasPrefix("bin-") })
    }

    func testPathHashPrefixDelegationsFindTargets() async throws {
        let repo = try TUFTestRepository("hash-prefixes")
        for i in 0..<6 {
            let fetched = try await repo.download("pkg/file-\(i).txt", stage: 0)
            XCTAssertEqual(fetched, Data("content \(i)\n".utf8))
        }
    }

    /// Attack ("diamond"): parent-a and parent-b both delegate the role `release`, each to its own key, and
    /// `release` is signed only by parent-a's. Found through A first, it was cached by name and then trusted for
    /// parent-b's paths without a check against B's keys (the conformance suite's
    /// `test_cached_role_is_verified_against_current_delegator`).
    func testRoleLoadedThroughOneDelegatorIsVerifiedAgainstTheNext() async throws {
        let repo = try TUFTestRepository("diamond")
        let updater = try repo.updater(stage: 0)
        let trusted = try await updater.targetInfo(path: "team-a/app.txt")
        XCTAssertEqual(trusted?.path, "team-a/app.txt")
        await assertTUFError(
            .untrusted, "release metadata version 1: 0 of the 1 signatures required by parent-b metadata verify"
        ) {
            _ = try await updater.targetInfo(path: "team-b/app.txt")
        }
    }

    /// The same lookup from the trusted copy on disk (a later run): the cached file is checked against B too.
    func testRoleCachedOnDiskIsVerifiedAgainstTheCurrentDelegator() async throws {
        let repo = try TUFTestRepository("diamond")
        let downloaded = try await repo.download("team-a/app.txt", stage: 0)
        XCTAssertEqual(downloaded, Data("trusted A\n".utf8))
        XCTAssertNotNil(try repo.trustedFiles()["release.json"])
        await assertTUFError(
            .untrusted, "release metadata version 1: 0 of the 1 signatures required by parent-b metadata verify"
        ) {
            _ = try await repo.updater(stage: 0).targetInfo(path: "team-b/app.txt")
        }
    }

    func testDelegationCapStopsTheWalk() async throws {
        let repo = try TUFTestRepository("hash-prefixes")
        var limits = TUFLimits()
        limits.maxDelegations = 0
        let info = try await repo.updater(stage: 0, limits: limits).targetInfo(path: "pkg/file-0.txt")
        XCTAssertNil(info)
    }

    // MARK: - Tampering and caps

    func testTamperedTimestampIsRefusedAsUntrusted() async throws {
        let repo = try TUFTestRepository("basic")
        let path = repo.stage(0) + "/metadata/timestamp.json"
        let text = String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self)
        try Data(text.replacingOccurrences(of: "\"version\": 1", with: "\"version\": 7").utf8)
            .write(to: URL(fileURLWithPath: path))
        await assertTUFError(.untrusted, "timestamp metadata version 7: 0 of the 1 signatures") {
            try await repo.refresh(stage: 0)
        }
        XCTAssertEqual(Set(try repo.trustedFiles().keys), ["root.json"])
    }

    func testTamperedSnapshotFailsTimestampHash() async throws {
        let repo = try TUFTestRepository("basic")
        let path = repo.stage(0) + "/metadata/1.snapshot.json"
        // Same length, one byte changed: only the sha256 that timestamp lists can tell.
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        data[data.count / 2] ^= 0x01
        try data.write(to: URL(fileURLWithPath: path))
        await assertTUFError(.digestMismatch, "snapshot metadata: sha256 hash does not match") {
            try await repo.refresh(stage: 0)
        }
        XCTAssertNil(try repo.trustedFiles()["snapshot.json"])
    }

    func testOversizedTimestampIsRefused() async throws {
        let repo = try TUFTestRepository("basic")
        var limits = TUFLimits()
        limits.timestampMaxLength = 100
        await assertTUFError(.failed, "longer than the 100 bytes allowed") {
            try await repo.updater(stage: 0, limits: limits).refresh()
        }
    }

    func testUnsignedTrustedRootIsRefused() throws {
        let repo = try TUFTestRepository("basic")
        let root = try TUFJSON.parse(Data(contentsOf: URL(fileURLWithPath: repo.metadata + "/root.json")))
        guard case .object(var members) = root else { return XCTFail("root is not an object") }
        members = members.map { $0.key == "signatures" ? ($0.key, .array([])) : $0 }
        try TUFUpdater.initialize(metadataDirectory: repo.metadata, trustedRoot: try TUFJSON.object(members)
                                    .canonicalBytes())
        XCTAssertThrowsError(try repo.updater(stage: 0)) { error in
            XCTAssertEqual((error as? FerryError)?.code, .untrusted)
        }
    }
}
