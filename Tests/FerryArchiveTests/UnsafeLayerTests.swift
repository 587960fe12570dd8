import FerryArchive
import FerryCore
import FerryTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Hostile layers: each test names the attack, feeds it to the extractor, and checks the exact refusal and
/// that nothing outside the target directory changed.
final class UnsafeLayerTests: XCTestCase {
    typealias F = LayerFixture

    /// Applies `layers` in order (all but the last must succeed) and asserts the last is refused with `code`
    /// and `fragment`; then that `outside/` is byte-for-byte as before.
    private func assertLastLayerRefused(
        _ layers: [[[String: Any]]], _ fragment: String, code: FerryError.Code = .unsafeArchive,
        limits: ExtractionLimits = .standard, file: StaticString = #filePath, line: UInt = #line
    ) throws -> LayerFixture {
        let fixture = try LayerFixture()
        let before = try F.snapshot(fixture.outside)
        let extractor = try fixture.extractor(limits: limits)
        for entries in layers.dropLast() { try fixture.apply(extractor, try fixture.layer(entries)) }
        let last = try fixture.layer(layers.last ?? [])
        F.assertRefused(code, fragment, file: file, line: line) { try fixture.apply(extractor, last) }
        XCTAssertEqual(try F.snapshot(fixture.outside), before, "outside/ changed", file: file, line: line)
        return fixture
    }

    func testAbsolutePathIsRefused() throws {
        let fixture = try LayerFixture()
        let before = try F.snapshot(fixture.outside)
        let layer = try fixture.layer([F.file(fixture.outside + "/x", "pwned\n")])
        F.assertRefused(.unsafeArchive, "absolute path") { try fixture.apply(try fixture.extractor(), layer) }
        XCTAssertEqual(try F.snapshot(fixture.outside), before)
        XCTAssertEqual(try fixture.rootNames(), [])
    }

    func testDotDotComponentIsRefused() throws {
        let fixture = try assertLastLayerRefused([[F.file("../outside/x", "pwned\n")]], "'..' component")
        XCTAssertEqual(try fixture.rootNames(), [])
    }

    func testDotDotInsideAPathIsRefused() throws {
        _ = try assertLastLayerRefused([[F.dir("a"), F.file("a/../../outside/file", "pwned\n")]], "'..' component")
    }

    func testEntryThroughSymlinkInSameLayerIsRefused() throws {
        _ = try assertLastLayerRefused(
            [[F.symlink("evil", to: "../outside"), F.file("evil/x", "pwned\n")]], "parent \"evil\" is a symlink")
    }

    func testEntryThroughSymlinkFromLowerLayerIsRefused() throws {
        _ = try assertLastLayerRefused(
            [[F.symlink("evil", to: "../outside")], [F.file("evil/file", "pwned\n")]], "parent \"evil\" is a symlink")
    }

    func testEntryThroughAbsoluteSymlinkIsRefused() throws {
        let fixture = try LayerFixture()
        let before = try F.snapshot(fixture.outside)
        let extractor = try fixture.extractor()
        try fixture.apply(extractor, try fixture.layer([F.symlink("evil", to: fixture.outside)]))
        let attack = try fixture.layer([F.dir("evil/sub")])
        F.assertRefused(.unsafeArchive, "is a symlink") { try fixture.apply(extractor, attack) }
        XCTAssertEqual(try F.snapshot(fixture.outside), before)
    }

    func testHardLinkOutOfTreeWithDotDotIsRefused() throws {
        let fixture = try assertLastLayerRefused(
            [[F.hardlink("l", to: "../outside/file")]], "hard link target \"../outside/file\": path contains a '..'")
        XCTAssertEqual(try fixture.rootNames(), [])
    }

    func testHardLinkToEtcPasswdIsRefused() throws {
        let fixture = try assertLastLayerRefused(
            [[F.hardlink("passwd", to: "/etc/passwd")]], "hard link target \"/etc/passwd\": absolute path")
        XCTAssertEqual(try fixture.rootNames(), [])
    }

    func testHardLinkThroughSymlinkIsRefused() throws {
        _ = try assertLastLayerRefused(
            [[F.symlink("evil", to: "../outside"), F.hardlink("l", to: "evil/file")]], "parent \"evil\" is a symlink")
    }

    func testHardLinkToSymlinkIsRefused() throws {
        // Linking the symlink inode itself would be harmless, but only regular files are promised.
        _ = try assertLastLayerRefused(
            [[F.symlink("s", to: "../outside/file"), F.hardlink("l", to: "s")]], "is not a regular file extracted")
    }

    func testHardLinkToMissingFileIsRefused() throws {
        _ = try assertLastLayerRefused([[F.hardlink("l", to: "nothing")]], "is not a regular file extracted")
    }

    func testCharacterDeviceIsRefused() throws {
        let fixture = try assertLastLayerRefused([[F.special("null", "chr")]], "\"null\": device nodes are not allowed")
        XCTAssertEqual(try fixture.rootNames(), [])
    }

    func testBlockDeviceIsRefused() throws {
        _ = try assertLastLayerRefused([[F.special("loop0", "blk")]], "\"loop0\": device nodes are not allowed")
    }

    func testFIFOIsRefused() throws {
        let fixture = try assertLastLayerRefused([[F.special("pipe", "fifo")]], "\"pipe\": FIFOs are not allowed")
        XCTAssertEqual(try fixture.rootNames(), [])
    }

    func testSetuidSetgidAndStickyBitsAreStripped() throws {
        let fixture = try LayerFixture()
        let layer = try fixture.layer([
            F.file("suid", mode: 0o4755), F.file("sgid", mode: 0o2755), F.file("sticky", mode: 0o1777),
            F.dir("sgiddir", mode: 0o2775),
        ])
        try fixture.apply(try fixture.extractor(), layer)
        XCTAssertEqual(try mode(fixture.root + "/suid"), 0o755)
        XCTAssertEqual(try mode(fixture.root + "/sgid"), 0o755)
        // A system (root) extraction also drops group and other write: nobody but root writes a deployment.
        XCTAssertEqual(try mode(fixture.root + "/sticky"), 0o755)
        XCTAssertEqual(try mode(fixture.root + "/sgiddir"), 0o755)
    }

    func testUserExtractionKeepsGroupAndOtherWriteBits() throws {
        let fixture = try LayerFixture()
        let layer = try fixture.layer([F.file("shared", mode: 0o4777), F.dir("pub", mode: 0o2777)])
        try fixture.apply(try fixture.extractor(ownership: .currentUser), layer)
        XCTAssertEqual(try mode(fixture.root + "/shared"), 0o777)
        XCTAssertEqual(try mode(fixture.root + "/pub"), 0o777)
    }

    func testArchiveOwnershipIsIgnored() throws {
        let fixture = try LayerFixture()
        try fixture.apply(try fixture.extractor(), try fixture.layer([F.file("owned", uid: 1234)]))
        var st = stat()
        XCTAssertEqual(lstat(fixture.root + "/owned", &st), 0)
        XCTAssertEqual(st.st_uid, 0)
        XCTAssertEqual(st.st_gid, 0)
    }

    func testOversizeEntryIsRefused() throws {
        let limits = ExtractionLimits(maxEntrySize: 1024)
        let fixture = try assertLastLayerRefused(
            [[F.file("big", "x", repeat: 4096)]], "\"big\": 4096 bytes is over the 1024-byte limit per file",
            limits: limits)
        XCTAssertEqual(try fixture.rootNames(), [])
    }

    func testTotalSizeOverLimitIsRefused() throws {
        let limits = ExtractionLimits(maxTotalSize: 5000)
        _ = try assertLastLayerRefused(
            [[F.file("a", "x", repeat: 3000)], [F.file("b", "x", repeat: 3000)]],
            "\"b\": layers exceed the 5000-byte total size limit", limits: limits)
    }

    func testTooManyEntriesIsRefused() throws {
        let limits = ExtractionLimits(maxEntries: 3)
        _ = try assertLastLayerRefused(
            [[F.file("1"), F.file("2"), F.file("3"), F.file("4"), F.file("5")]], "too many entries (limit 3)",
            limits: limits)
    }

    func testOverlongPathIsRefused() throws {
        let limits = ExtractionLimits(maxPathLength: 100)
        _ = try assertLastLayerRefused(
            [[F.file(String(repeating: "a/", count: 60) + "x")]], "path longer than 100 bytes", limits: limits)
    }

    func testWhiteoutWithDotDotIsRefused() throws {
        _ = try assertLastLayerRefused([[F.file("../outside/.wh.file", "")]], "'..' component")
    }

    func testWhiteoutNamingParentIsRefused() throws {
        _ = try assertLastLayerRefused([[F.dir("a"), F.file("a/.wh..", "")]], "whiteout names no valid entry")
    }

    func testWhiteoutThroughSymlinkIsRefused() throws {
        let fixture = try assertLastLayerRefused(
            [[F.symlink("evil", to: "../outside")], [F.file("evil/.wh.file", "")]], "parent \"evil\" is a symlink")
        XCTAssertTrue(FileManager.default.fileExists(atPath: fixture.outside + "/file"))
    }

    func testOpaqueWhiteoutThroughSymlinkIsRefused() throws {
        _ = try assertLastLayerRefused(
            [[F.symlink("evil", to: "../outside")], [F.file("evil/.wh..wh..opq", "")]], "parent \"evil\" is a symlink")
    }

    func testPaxPathOverrideWithDotDotIsRefused() throws {
        // A pax "path" record replaces the innocent ustar name; the check must see the final name.
        var entry = F.file("innocent", "pwned\n")
        entry["pax"] = ["path": "../outside/x"]
        _ = try assertLastLayerRefused([[entry]], "\"../outside/x\": path contains a '..' component")
    }

    func testGnuLongNameWithDotDotIsRefused() throws {
        let fixture = try LayerFixture()
        let before = try F.snapshot(fixture.outside)
        let name = String(repeating: "d/", count: 60) + String(repeating: "../", count: 61) + "outside/x"
        let layer = try fixture.layer([F.file(name, "pwned\n")], format: "gnu")
        F.assertRefused(.unsafeArchive, "path contains a '..' component") {
            try fixture.apply(try fixture.extractor(), layer)
        }
        XCTAssertEqual(try F.snapshot(fixture.outside), before)
    }

    func testNameThatIsNotUTF8IsRefused() throws {
        var entry = F.file("unused")
        entry["nameHex"] = "6361669f"  // "caf" + a lone continuation byte
        let fixture = try assertLastLayerRefused([[entry]], "not UTF-8")
        XCTAssertEqual(try fixture.rootNames(), [])
    }

    func testDiffIDMismatchIsRefused() throws {
        let fixture = try LayerFixture()
        let layer = try fixture.layer([F.file("a")])
        let wrong = (path: layer.path, diffID: Digest.of(Data("something else".utf8)))
        F.assertRefused(.digestMismatch, "layer diff_id mismatch: expected \(wrong.diffID)") {
            try fixture.apply(try fixture.extractor(), wrong)
        }
    }

    func testCompressionOtherThanDeclaredIsRefused() throws {
        let fixture = try LayerFixture()
        let layer = try fixture.layer([F.file("a")], compression: .gzip)
        F.assertRefused(.unsafeArchive, "layer is not zstd-compressed") {
            try fixture.apply(try fixture.extractor(), layer, compression: .zstd)
        }
        XCTAssertEqual(try fixture.rootNames(), [])
    }

    func testGarbageIsNotATar() throws {
        let fixture = try LayerFixture()
        try fixture.tmp.write("garbage", String(repeating: "not a tar archive\n", count: 100))
        let layer = (path: fixture.tmp.file("garbage"), diffID: Digest.of(Data()))
        F.assertRefused(.unsafeArchive, "tar") { try fixture.apply(try fixture.extractor(), layer) }
    }

    private func mode(_ path: String) throws -> mode_t {
        var st = stat()
        guard lstat(path, &st) == 0 else { throw FerryError.failed("lstat \(path)") }
        return st.st_mode & 0o7777
    }
}
