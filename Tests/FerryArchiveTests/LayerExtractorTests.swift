import FerryArchive
import FerryCore
import FerryTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Ordinary layers: replacement between layers, OCI whiteouts, ownership modes, cleanup.
final class LayerExtractorTests: XCTestCase {
    typealias F = LayerFixture

    func testLayersApplyInOrderAndReplaceLowerEntries() throws {
        let fixture = try LayerFixture()
        let extractor = try fixture.extractor()
        try fixture.apply(extractor, try fixture.layer([
            F.file("a", "lower\n"), F.dir("d"), F.file("d/inner"), F.file("f"), F.symlink("s", to: "a"),
        ]))
        let stats = try fixture.apply(extractor, try fixture.layer([
            F.file("a", "upper\n"), F.file("d", "file now\n"), F.dir("f"), F.file("f/x"), F.file("s", "plain\n"),
        ]))
        XCTAssertEqual(stats, ExtractionStats(entries: 5, bytes: 6 + 9 + 5 + 6))
        XCTAssertEqual(try String(contentsOfFile: fixture.root + "/a", encoding: .utf8), "upper\n")
        XCTAssertEqual(try String(contentsOfFile: fixture.root + "/d", encoding: .utf8), "file now\n")
        XCTAssertEqual(try String(contentsOfFile: fixture.root + "/f/x", encoding: .utf8), "data\n")
        let snapshot = try F.snapshot(fixture.root)
        XCTAssertEqual(snapshot["s"]?.contains(" -> "), false)
    }

    func testMissingParentsAreCreated() throws {
        let fixture = try LayerFixture()
        try fixture.apply(try fixture.extractor(), try fixture.layer([F.file("usr/share/doc/readme")]))
        XCTAssertEqual(try fixture.rootNames(), ["usr", "usr/share", "usr/share/doc", "usr/share/doc/readme"])
        XCTAssertEqual(try F.snapshot(fixture.root)["usr/share"]?.hasPrefix("mode=40755"), true)
    }

    func testDotSlashPrefixesAndUnicodeNamesAreExtracted() throws {
        let fixture = try LayerFixture()
        try fixture.apply(try fixture.extractor(), try fixture.layer([
            F.dir("./"), F.dir("./usr/"), F.file("./usr//caf\u{e9}-\u{65e5}\u{672c}"), F.file("usr/./plain"),
        ]))
        XCTAssertEqual(try fixture.rootNames(), ["usr", "usr/caf\u{e9}-\u{65e5}\u{672c}", "usr/plain"])
    }

    func testWhiteoutRemovesLowerEntries() throws {
        let fixture = try LayerFixture()
        let extractor = try fixture.extractor()
        try fixture.apply(extractor, try fixture.layer([
            F.dir("a"), F.file("a/gone"), F.file("a/kept"), F.dir("d"), F.file("d/x"), F.symlink("link", to: "/etc"),
        ]))
        try fixture.apply(extractor, try fixture.layer([
            F.file("a/.wh.gone", ""), F.file(".wh.d", ""), F.file(".wh.link", ""), F.file(".wh.never-existed", ""),
        ]))
        XCTAssertEqual(try fixture.rootNames(), ["a", "a/kept"])
    }

    func testWhiteoutKeepsEntryOfSameLayer() throws {
        let fixture = try LayerFixture()
        let extractor = try fixture.extractor()
        try fixture.apply(extractor, try fixture.layer([F.file("x", "lower\n")]))
        try fixture.apply(extractor, try fixture.layer([F.file("x", "upper\n"), F.file(".wh.x", "")]))
        XCTAssertEqual(try String(contentsOfFile: fixture.root + "/x", encoding: .utf8), "upper\n")
    }

    func testOpaqueWhiteoutRemovesLowerContentAndKeepsCurrentLayer() throws {
        let fixture = try LayerFixture()
        let extractor = try fixture.extractor()
        try fixture.apply(extractor, try fixture.layer([
            F.dir("d"), F.file("d/old"), F.dir("d/sub"), F.file("d/sub/old2"), F.dir("d/lowerdir"), F.file("d/lowerdir/z"),
            F.file("other"),
        ]))
        try fixture.apply(extractor, try fixture.layer([
            F.dir("d"), F.file("d/before", "b\n"), F.file("d/.wh..wh..opq", ""), F.file("d/sub/after", "a\n"),
        ]))
        XCTAssertEqual(try fixture.rootNames(), ["d", "d/before", "d/sub", "d/sub/after", "other"])
    }

    func testOpaqueWhiteoutInNewDirectoryIsHarmless() throws {
        let fixture = try LayerFixture()
        try fixture.apply(try fixture.extractor(), try fixture.layer([F.file("n/.wh..wh..opq", ""), F.file("n/f")]))
        XCTAssertEqual(try fixture.rootNames(), ["n", "n/f"])
    }

    func testHardLinkToLowerLayerFileSharesItsInode() throws {
        let fixture = try LayerFixture()
        let extractor = try fixture.extractor()
        try fixture.apply(extractor, try fixture.layer([F.file("bin/tool", "#!/bin/sh\n", mode: 0o755)]))
        try fixture.apply(extractor, try fixture.layer([F.hardlink("bin/alias", to: "bin/tool")]))
        var a = stat()
        var b = stat()
        XCTAssertEqual(lstat(fixture.root + "/bin/tool", &a), 0)
        XCTAssertEqual(lstat(fixture.root + "/bin/alias", &b), 0)
        XCTAssertEqual(a.st_ino, b.st_ino)
    }

    func testDirectoryModeIsAppliedAfterItsContent() throws {
        let fixture = try LayerFixture()
        try fixture.apply(try fixture.extractor(ownership: .currentUser), try fixture.layer([
            F.dir("ro", mode: 0o555), F.file("ro/inside"),
        ]))
        // .currentUser keeps the owner's rwx so later layers and removal still work.
        XCTAssertEqual(try F.snapshot(fixture.root)["ro"]?.hasPrefix("mode=40755"), true)
        let root = try LayerFixture()
        try root.apply(try root.extractor(ownership: .root), try root.layer([F.dir("ro", mode: 0o555), F.file("ro/in")]))
        XCTAssertEqual(try F.snapshot(root.root)["ro"]?.hasPrefix("mode=40555"), true)
    }

    func testCurrentUserOwnershipNeverChowns() throws {
        let fixture = try LayerFixture()
        try fixture.apply(try fixture.extractor(ownership: .currentUser), try fixture.layer([F.file("f", uid: 4321)]))
        var st = stat()
        XCTAssertEqual(lstat(fixture.root + "/f", &st), 0)
        XCTAssertEqual(st.st_uid, geteuid())
    }

    func testGzipAndZstdLayersAreDecompressed() throws {
        for compression in [LayerCompression.gzip, .zstd] {
            let fixture = try LayerFixture()
            let layer = try fixture.layer([F.file("big", "0123456789", repeat: 300_000)], compression: compression)
            let stats = try fixture.apply(try fixture.extractor(), layer, compression: compression)
            XCTAssertEqual(stats.bytes, 3_000_000, "\(compression)")
        }
    }

    func testRemoveTreeDoesNotFollowSymlinks() throws {
        let fixture = try LayerFixture()
        let before = try F.snapshot(fixture.outside)
        try fixture.apply(try fixture.extractor(), try fixture.layer([
            F.symlink("out", to: "../outside"), F.symlink("abs", to: fixture.outside), F.dir("a/b/c", mode: 0o500),
            F.file("a/b/c/f", mode: 0o000), F.symlink("a/b/up", to: "../../../outside/file"),
        ]))
        try LayerExtractor.removeTree(fixture.root)
        XCTAssertFalse(FileManager.default.fileExists(atPath: fixture.root))
        XCTAssertEqual(try F.snapshot(fixture.outside), before)
        try LayerExtractor.removeTree(fixture.root)  // already gone: fine
    }

    func testRemoveTreeOfASymlinkRemovesOnlyTheLink() throws {
        let fixture = try LayerFixture()
        XCTAssertEqual(Glibc.symlink(fixture.outside, fixture.tmp.file("link")), 0)
        try LayerExtractor.removeTree(fixture.tmp.file("link") + "/")
        XCTAssertTrue(FileManager.default.fileExists(atPath: fixture.outside + "/file"))
    }
}
