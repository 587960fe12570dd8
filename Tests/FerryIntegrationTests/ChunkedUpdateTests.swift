import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// An update of a `zstd:chunked` image (written by skopeo, an independent implementation of the format) fetches
/// what changed: the agent assembles the new layer from the frames of the cached one and range requests, and the
/// result is verified by its digest like any download. A server that ignores ranges, and a cached blob whose frames
/// are not the same bytes, fall back to the whole layer.
final class ChunkedUpdateTests: XCTestCase {
    var fixture: UserFixture!
    var tree: String { fixture.scratch.file("tree") }
    var built: String { fixture.scratch.file("built") }

    override func setUpWithError() throws {
        try XCTSkipUnless(getuid() == 0, "runs the agent as an unprivileged user")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/skopeo"), "skopeo missing")
        fixture = try UserFixture()
        // Two large files that stay, and one that changes.
        for name in ["a", "b"] { try random(count: 1_500_000).write(to: URL(fileURLWithPath: path("share/" + name))) }
        try Data("#!/bin/sh\necho hello\n".utf8).write(to: URL(fileURLWithPath: path("bin/hello")))
        chmod(path("bin/hello"), 0o755)
        try publish(changing: random(count: 200_000), timestamp: 1_700_000_000)
        try fixture.addRemote()
        let install = try fixture.agent("install", "--user", "demo", UserFixture.ref)
        XCTAssertEqual(install.status, 0, install.err)
    }

    override func tearDown() {
        fixture?.server.stop()
        fixture = nil
    }

    func random(count: Int) -> Data {
        var generator = SystemRandomNumberGenerator()
        return Data((0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    func path(_ name: String) -> String {
        let full = tree + "/" + name
        try? FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true)
        return full
    }

    /// Builds the tree with `share/changing` set to `content`, has skopeo recompress it as zstd:chunked into the
    /// served layout, and signs it there.
    func publish(changing content: Data, timestamp: Int64) throws {
        try content.write(to: URL(fileURLWithPath: path("share/changing")))
        try? FileManager.default.removeItem(atPath: built)
        try Command.check([BuiltProducts.ferry, "build", tree, built, "--ref", UserFixture.ref, "--command",
                           "/bin/hello"])
        try Command.check(["skopeo", "copy", "--dest-compress-format", "zstd:chunked",
                           "oci:\(built):\(UserFixture.ref)", "oci:\(fixture.publisher.layout):\(UserFixture.ref)"])
        try Command.check([BuiltProducts.ferry, "sign", fixture.publisher.layout, "--ref", UserFixture.ref,
                           "--ed25519-key", fixture.publisher.secretKey, "--timestamp", "\(timestamp)"])
        try Command.check(["chmod", "-R", "a+rX", fixture.publisher.directory])
    }

    /// Builds the tree as `zstd:chunked` with Ferry itself into the served layout, and signs it.
    func publishWithFerry(timestamp: Int64) throws {
        try Command.check([BuiltProducts.ferry, "build", tree, fixture.publisher.layout, "--ref", UserFixture.ref,
                           "--command", "/bin/hello", "--compression", "zstd:chunked"])
        try Command.check([BuiltProducts.ferry, "sign", fixture.publisher.layout, "--ref", UserFixture.ref,
                           "--ed25519-key", fixture.publisher.secretKey, "--timestamp", "\(timestamp)"])
        try Command.check(["chmod", "-R", "a+rX", fixture.publisher.directory])
    }

    /// The layer of the image the layout serves now.
    func servedLayer() throws -> Descriptor {
        let index = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: fixture.publisher.layout + "/index.json"))) as? [String: Any]
        let manifests = try XCTUnwrap(index?["manifests"] as? [[String: Any]])
        let digest = try Digest(parsing: try XCTUnwrap(manifests.last?["digest"] as? String))
        let manifest = try Manifest.parse(try Data(contentsOf: URL(
            fileURLWithPath: fixture.publisher.layout + "/blobs/sha256/\(digest.hex)")))
        return try XCTUnwrap(manifest.layers.first)
    }

    /// The served layer's size, and the bytes and range requests the last update fetched of it.
    func layerFetched() throws -> (size: Int, fetched: Int, ranged: Int) {
        let layer = try servedLayer()
        let requests = fixture.server.requests().filter { $0.path.hasSuffix(layer.digest.hex) }
        return (Int(layer.size), requests.reduce(0) { $0 + $1.bytes }, requests.filter { $0.range != nil }.count)
    }

    func installedChanging() throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath:
            "\(fixture.dataRoot)/installed/\(stateName(UserFixture.ref))/files/share/changing"))
    }

    /// Publishes a new `share/changing`, updates, and checks the update installed it; returns what was fetched.
    func updateChangingFile(before: () throws -> Void = {}) throws -> (size: Int, fetched: Int, ranged: Int) {
        let changed = random(count: 200_000)
        try publish(changing: changed, timestamp: 1_700_000_100)
        try before()
        fixture.server.clearLog()
        let update = try fixture.agent("update", "--user")
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertEqual(try installedChanging(), changed)
        return try layerFetched()
    }

    func testAnUpdateFetchesWhatChangedAndTheAssembledLayerVerifies() throws {
        let (size, fetched, ranged) = try updateChangingFile()
        // The changed file (random: it compresses to about its size), tar headers and the TOC; not the 3 MB that
        // stayed. Bound: the file plus 64 KiB.
        XCTAssertGreaterThan(size, 3_000_000)
        XCTAssertLessThanOrEqual(fetched, 200_000 + 64 * 1024, "fetched \(fetched) of \(size)")
        XCTAssertGreaterThan(ranged, 1)
    }

    func testAServerThatIgnoresRangesGetsTheWholeLayer() throws {
        let (size, fetched, _) = try updateChangingFile {
            try fixture.server.setFaults([try servedLayer().digest.hex: ["mode": "no-ranges"]])
        }
        XCTAssertGreaterThanOrEqual(fetched, size)
    }

    /// The cached layer's frames are damaged: the assembled blob does not verify, and the whole layer is fetched.
    func testAnAssemblyThatDoesNotVerifyFallsBackToTheWholeLayer() throws {
        let cache = fixture.home + "/.cache/ferry/blobs/sha256"
        for name in try FileManager.default.contentsOfDirectory(atPath: cache) {
            let path = cache + "/" + name
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                (attributes[.size] as? Int ?? 0) > 3_000_000
            else { continue }
            // The middle of the big layer: inside the frames of the files that stay.
            let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: path))
            try handle.seek(toOffset: 1_000_000)
            try handle.write(contentsOf: Data(repeating: 0, count: 64))
            try handle.close()
        }
        let (size, fetched, _) = try updateChangingFile()
        XCTAssertGreaterThanOrEqual(fetched, size)
    }

    /// A layer Ferry built: 100 bytes changed in the middle of a 1.5 MB file refetch only the content-defined chunks
    /// around them (at most 1 MiB), not the file, and not the layer.
    func testAFerryBuiltLayerRefetchesOnlyTheChunksAroundAChange() throws {
        try publishWithFerry(timestamp: 1_700_000_100)
        XCTAssertEqual(try fixture.agent("update", "--user").status, 0)
        var big = try Data(contentsOf: URL(fileURLWithPath: path("share/a")))
        big.replaceSubrange(750_000..<750_100, with: random(count: 100))
        try big.write(to: URL(fileURLWithPath: path("share/a")))
        try publishWithFerry(timestamp: 1_700_000_200)
        fixture.server.clearLog()
        let update = try fixture.agent("update", "--user")
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath:
            "\(fixture.dataRoot)/installed/\(stateName(UserFixture.ref))/files/share/a")), big)
        let (size, fetched, ranged) = try layerFetched()
        XCTAssertGreaterThan(size, 3_000_000)
        XCTAssertLessThan(fetched, (1 << 20) + 64 * 1024, "fetched \(fetched) of \(size)")
        XCTAssertGreaterThan(ranged, 0)
    }

    /// A chunked layer whose table of contents gives a file the digest of a file the store holds, while its data
    /// is something else (a consistent image otherwise: blob, annotations and manifest match, and it is signed):
    /// extraction reads the data, finds it is not what the TOC says, and refuses the layer; nothing changes.
    func testATOCThatLiesAboutAFilesContentIsRefused() throws {
        try publishWithFerry(timestamp: 1_700_000_100)
        XCTAssertEqual(try fixture.agent("update", "--user").status, 0)
        let held = try installedChanging()
        // The same name, mode and time, other content: only the digest the TOC gives would make it "held".
        var st = stat()
        XCTAssertEqual(lstat(path("share/changing"), &st), 0)
        try random(count: 200_000).write(to: URL(fileURLWithPath: path("share/changing")))
        var times = [st.st_atim, st.st_mtim]
        XCTAssertEqual(utimensat(AT_FDCWD, path("share/changing"), &times, 0), 0)
        try Command.check([BuiltProducts.ferry, "build", tree, fixture.publisher.layout, "--ref", UserFixture.ref,
                           "--command", "/bin/hello", "--compression", "zstd:chunked"])
        try Command.check(["/usr/bin/python3", Testbed.repositoryRoot() + "/scripts/chunked-toc-lie.py",
                           fixture.publisher.layout, "share/changing", Digest.of(held).description])
        try Command.check([BuiltProducts.ferry, "sign", fixture.publisher.layout, "--ref", UserFixture.ref,
                           "--ed25519-key", fixture.publisher.secretKey, "--timestamp", "1700000200"])
        try Command.check(["chmod", "-R", "a+rX", fixture.publisher.directory])
        let before = fixture.snapshot()
        let update = try fixture.agent("update", "--user")
        XCTAssertEqual(update.status, 1, update.out)
        XCTAssertTrue(update.err.contains("entry \"share/changing\": its data is not what the layer's table of contents "
            + "says (\(Digest.of(held).short))"), update.err)
        XCTAssertEqual(try installedChanging(), held)
        XCTAssertUnchanged(before, fixture.snapshot())
    }
}
