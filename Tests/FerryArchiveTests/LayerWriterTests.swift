import FerryArchive
import FerryCore
import FerryTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// LayerWriter output: round trips through LayerExtractor, and what stock tar, gzip and zstd make of it.
final class LayerWriterTests: XCTestCase {
    typealias F = LayerFixture

    /// A source tree with every kind LayerWriter handles; mtimes fixed so output is comparable.
    private func makeSource(in fixture: LayerFixture) throws -> String {
        let src = fixture.tmp.file("src")
        let fm = FileManager.default
        try fm.createDirectory(atPath: src + "/bin", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: src + "/share/doc/empty", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: src + "/a-b", withIntermediateDirectories: true)
        try fixture.tmp.write("src/bin/tool", "#!/bin/sh\necho hi\n")
        try fixture.tmp.write("src/share/doc/README", String(repeating: "lorem ipsum ", count: 200_000))
        try fixture.tmp.write("src/share/private", "secret\n")
        try fixture.tmp.write("src/a-b/x", "x\n")
        try fixture.tmp.write("src/caf\u{e9}-\u{65e5}\u{672c}.txt", "unicode name\n")
        let long = String(repeating: "n", count: 120) + "/" + String(repeating: "m", count: 120)
        try fm.createDirectory(atPath: src + "/" + String(repeating: "n", count: 120), withIntermediateDirectories: true)
        try fixture.tmp.write("src/" + long, "long path\n")
        XCTAssertEqual(chmod(src + "/bin/tool", 0o755), 0)
        XCTAssertEqual(chmod(src + "/share/private", 0o600), 0)
        XCTAssertEqual(chmod(src + "/share/doc/empty", 0o700), 0)
        XCTAssertEqual(Glibc.symlink("../share/doc/README", src + "/bin/readme"), 0)
        XCTAssertEqual(Glibc.symlink("/nonexistent/absolute", src + "/dangling"), 0)
        XCTAssertEqual(link(src + "/bin/tool", src + "/bin/tool-alias"), 0)
        try Command.check(["find", src, "-exec", "touch", "-h", "-d", "@1700000000", "{}", "+"])
        return src
    }

    private func roundTrip(_ compression: LayerCompression) throws {
        let fixture = try LayerFixture()
        let src = try makeSource(in: fixture)
        let out = fixture.tmp.file("layer.\(compression.rawValue)")
        let info = try LayerWriter.write(directory: src, to: out, compression: compression)

        let data = try Data(contentsOf: URL(fileURLWithPath: out))
        XCTAssertEqual(info.size, Int64(data.count))
        XCTAssertEqual(info.digest, Digest.of(data))
        if compression == .none { XCTAssertEqual(info.diffID, info.digest) }

        let fd = open(out, O_RDONLY | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        let stats = try fixture.extractor().apply(layerFD: fd, compression: compression, diffID: info.diffID)
        XCTAssertEqual(stats.entries, 15)

        var expected = try F.snapshot(src)
        var actual = try F.snapshot(fixture.root)
        // The roots themselves differ (temp dir modes); everything beneath must be identical.
        expected["."] = nil
        actual["."] = nil
        XCTAssertEqual(actual, expected)
        var a = stat()
        var b = stat()
        XCTAssertEqual(lstat(fixture.root + "/bin/tool", &a), 0)
        XCTAssertEqual(lstat(fixture.root + "/bin/tool-alias", &b), 0)
        XCTAssertEqual(a.st_ino, b.st_ino, "hard link kept")
        XCTAssertEqual(a.st_mtim.tv_sec, 1_700_000_000)
    }

    func testRoundTripUncompressed() throws { try roundTrip(.none) }
    func testRoundTripGzip() throws { try roundTrip(.gzip) }
    func testRoundTripZstd() throws { try roundTrip(.zstd) }

    func testStockToolsReadTheLayerWithRootOwners() throws {
        let fixture = try LayerFixture()
        let src = try makeSource(in: fixture)
        for compression in LayerCompression.allCases {
            let out = fixture.tmp.file("layer.\(compression.rawValue)")
            let info = try LayerWriter.write(directory: src, to: out, compression: compression)
            let tarFile = fixture.tmp.file("plain-\(compression.rawValue).tar")
            switch compression {
            case .none: try Command.check(["cp", out, tarFile])
            case .gzip: try Command.check(["sh", "-c", "gzip -dc < \"$0\" > \"$1\"", out, tarFile])
            case .zstd: try Command.check(["sh", "-c", "zstd -qdc < \"$0\" > \"$1\"", out, tarFile])
            }
            let plain = try Data(contentsOf: URL(fileURLWithPath: tarFile))
            XCTAssertEqual(Digest.of(plain), info.diffID, "\(compression): diff_id is the sha256 of the tar")
            let listing = try Command.check(["tar", "--numeric-owner", "-tvf", tarFile]).out
            let lines = listing.split(separator: "\n")
            XCTAssertEqual(lines.count, 15, listing)
            for line in lines {
                XCTAssertTrue(line.split(separator: " ", omittingEmptySubsequences: true)[1] == "0/0", String(line))
            }
            let names = try Command.check(["tar", "-tf", tarFile]).out.split(separator: "\n").map(String.init)
            XCTAssertEqual(names.first, "a-b/")
            XCTAssertTrue(names.contains("bin/tool-alias"))
            XCTAssertTrue(names.contains("caf\u{e9}-\u{65e5}\u{672c}.txt"), listing)
            XCTAssertTrue(listing.contains("bin/tool-alias link to bin/tool"), listing)
            XCTAssertTrue(listing.contains("bin/readme -> ../share/doc/README"), listing)
        }
    }

    func testOutputIsReproducible() throws {
        let fixture = try LayerFixture()
        let src = try makeSource(in: fixture)
        for compression in LayerCompression.allCases {
            let first = try LayerWriter.write(directory: src, to: fixture.tmp.file("one"), compression: compression)
            if compression == .gzip { usleep(1_100_000) }  // a gzip header timestamp would differ now
            let second = try LayerWriter.write(directory: src, to: fixture.tmp.file("two"), compression: compression)
            XCTAssertEqual(first, second, "\(compression)")
        }
    }

    func testFIFOInSourceIsRefused() throws {
        let fixture = try LayerFixture()
        try FileManager.default.createDirectory(atPath: fixture.tmp.file("src"), withIntermediateDirectories: false)
        XCTAssertEqual(mkfifo(fixture.tmp.file("src/pipe"), 0o644), 0)
        let out = fixture.tmp.file("out")
        F.assertRefused(.invalidArgument, "\"pipe\" is a device, FIFO or socket") {
            _ = try LayerWriter.write(directory: fixture.tmp.file("src"), to: out, compression: .gzip)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no half-written layer is left")
    }
}
