import FerryArchive
import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// The zstd:chunked TOC reader against what skopeo writes (`skopeo copy --dest-compress-format zstd:chunked`, an
/// independent implementation of the format): every file's digest and size are the tree's, and every range and
/// chunk, cut out of the blob and decompressed by the `zstd` tool, is exactly that part of the file. TOCs that lie
/// are refused with the reason.
final class ChunkedTOCTests: XCTestCase {
    var temp: TemporaryDirectory!
    /// The files of the tree, by path.
    var tree: [String: Data] = [:]

    override func setUpWithError() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/skopeo"), "skopeo missing")
        temp = try TemporaryDirectory()
        // Incompressible but fixed (a linear congruential sequence), so both tools cut the same chunks every run;
        // 2.5 MB is more than twice the largest chunk either writes, so the file is cut at least twice.
        var state: UInt64 = 0x5EED
        let big = Data((0..<2_500_000).map { _ -> UInt8 in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        })
        tree = [
            "bin/hello": Data("#!/bin/sh\necho hello\n".utf8),
            "share/big": big,
            "share/text": Data(String(repeating: "a line of text that repeats\n", count: 5000).utf8),
            "share/empty": Data(),
        ]
        for (path, data) in tree {
            let full = temp.file("app/" + path)
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try data.write(to: URL(fileURLWithPath: full))
        }
        try Command.check([BuiltProducts.ferry, "build", temp.file("app"), temp.file("layout"), "--ref",
                           "org.example.A/x86_64/stable", "--command", "/bin/hello"])
        try Command.check(["skopeo", "copy", "--dest-compress-format", "zstd:chunked",
                           "oci:\(temp.file("layout")):org.example.A/x86_64/stable", "oci:\(temp.file("out")):latest"])
    }

    /// The chunked layer in `layout` (default: the one skopeo wrote): its descriptor and its bytes.
    func layer(_ layout: String = "out") throws -> (Descriptor, Data) {
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: temp.file("\(layout)/index.json")))) as? [String: Any]
        let manifests = try XCTUnwrap(index?["manifests"] as? [[String: Any]])
        let digest = try Digest(parsing: try XCTUnwrap(manifests.first?["digest"] as? String))
        let manifest = try Manifest.parse(try Data(contentsOf: URL(fileURLWithPath: temp.file("\(layout)/blobs/sha256/\(digest.hex)"))))
        let layer = try XCTUnwrap(manifest.layers.first)
        return (layer, try Data(contentsOf: URL(fileURLWithPath: temp.file("\(layout)/blobs/sha256/\(layer.digest.hex)"))))
    }

    func unzstdBytes(_ data: Data) throws -> Data {
        let path = temp.file("slice.zst")
        try data.write(to: URL(fileURLWithPath: path))
        try Command.check(["zstd", "-d", "-q", "-f", path, "-o", temp.file("slice")])
        return try Data(contentsOf: URL(fileURLWithPath: temp.file("slice")))
    }

    func testTheTOCSkopeoWritesDescribesEveryFileAndEveryChunk() throws {
        let (descriptor, blob) = try layer()
        let toc = try checkTOC(descriptor, blob)
        // The large file is cut into content-defined chunks.
        XCTAssertGreaterThan(toc.files.first { $0.name == "share/big" }?.chunks.count ?? 0, 1)
        // A plain layer announces nothing.
        let plain = Descriptor(mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: descriptor.digest,
                               size: descriptor.size)
        XCTAssertNil(try ChunkedTOC.announced(by: plain))
    }

    /// Reads the TOC `descriptor` announces from `blob`, and checks it against the tree: every file with its
    /// digest and size, every range and chunk decompressed by the `zstd` tool to exactly that part of the file.
    @discardableResult
    func checkTOC(_ descriptor: Descriptor, _ blob: Data) throws -> ChunkedTOC {
        let (position, checksum) = try XCTUnwrap(try ChunkedTOC.announced(by: descriptor))
        let compressed = blob[Int(position.offset)..<Int(position.offset + position.length)]
        let toc = try ChunkedTOC(compressed: Data(compressed), position: position, checksum: checksum,
                                 blobSize: descriptor.size)
        XCTAssertEqual(Set(toc.files.map(\.name)), Set(tree.filter { !$0.value.isEmpty }.keys))
        for file in toc.files {
            let content = try XCTUnwrap(tree[file.name])
            XCTAssertEqual(file.size, Int64(content.count), file.name)
            XCTAssertEqual(file.digest, Digest.of(content), file.name)
            let whole = blob[Int(file.range.lowerBound)..<Int(file.range.upperBound)]
            XCTAssertEqual(try unzstdBytes(Data(whole)), content, file.name)
            for chunk in file.chunks {
                let part = content[Int(chunk.offset)..<Int(chunk.offset + chunk.size)]
                let bytes = try unzstdBytes(Data(blob[Int(chunk.range.lowerBound)..<Int(chunk.range.upperBound)]))
                XCTAssertEqual(bytes, part, "\(file.name) chunk at \(chunk.offset)")
                if let digest = chunk.digest { XCTAssertEqual(digest, Digest.of(part)) }
            }
        }
        return toc
    }

    /// `ferry build --compression zstd:chunked` writes what skopeo writes: a TOC this reader takes (every range and
    /// chunk right), a blob the `zstd` tool decompresses to the tar whose digest is the config's diff_id, and that
    /// skopeo copies (decompressing it to recompress as gzip) and umoci unpacks to the same tree. Reproducible.
    func testFerryWritesChunkedLayersThatOtherToolsRead() throws {
        try Command.check([BuiltProducts.ferry, "build", temp.file("app"), temp.file("mine"), "--ref",
                           "org.example.A/x86_64/stable", "--command", "/bin/hello", "--compression", "zstd:chunked"])
        let (descriptor, blob) = try layer("mine")
        XCTAssertEqual(descriptor.mediaType, "application/vnd.oci.image.layer.v1.tar+zstd")
        let toc = try checkTOC(descriptor, blob)
        XCTAssertGreaterThan(toc.files.first { $0.name == "share/big" }?.chunks.count ?? 0, 1)
        // The whole blob, as any zstd reader sees it: the tar of the tree (skippable frames passed over).
        let tar = try unzstdBytes(blob)
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: temp.file("mine/index.json")))) as? [String: Any]
        let manifestDigest = try Digest(parsing: try XCTUnwrap((index?["manifests"] as? [[String: Any]])?.first?["digest"] as? String))
        let manifest = try Manifest.parse(try Data(contentsOf: URL(fileURLWithPath: temp.file("mine/blobs/sha256/\(manifestDigest.hex)"))))
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: temp.file("mine/blobs/sha256/\(manifest.config.digest.hex)")))) as? [String: Any]
        let diffIDs = (config?["rootfs"] as? [String: Any])?["diff_ids"] as? [String]
        XCTAssertEqual(diffIDs, [Digest.of(tar).description])
        // skopeo reads it (recompressing to gzip), umoci unpacks the result: the same files.
        try Command.check(["skopeo", "copy", "--dest-compress-format", "gzip",
                           "oci:\(temp.file("mine")):org.example.A/x86_64/stable", "oci:\(temp.file("gz")):latest"])
        try Command.check(["umoci", "raw", "unpack", "--rootless", "--image", "\(temp.file("gz")):latest",
                           temp.file("unpacked")])
        for (path, data) in tree {
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: temp.file("unpacked/" + path))), data, path)
        }
        // The same tree gives the same bytes.
        try Command.check([BuiltProducts.ferry, "build", temp.file("app"), temp.file("again"), "--ref",
                           "org.example.A/x86_64/stable", "--command", "/bin/hello", "--compression", "zstd:chunked"])
        XCTAssertEqual(try layer("again").0.digest, descriptor.digest)
    }

    /// Each lie is refused with what is wrong; a checksum that does not match is a digest mismatch.
    func testTOCsThatLieAreRefused() throws {
        let (descriptor, blob) = try layer()
        let (position, checksum) = try XCTUnwrap(try ChunkedTOC.announced(by: descriptor))
        let compressed = Data(blob[Int(position.offset)..<Int(position.offset + position.length)])
        let json = try unzstdBytes(compressed)

        /// `json` changed by `edit`, compressed by the `zstd` tool, with a matching checksum.
        func toc(_ edit: (String) -> String) throws -> String {
            let changed = Data(edit(String(decoding: json, as: UTF8.self)).utf8)
            try changed.write(to: URL(fileURLWithPath: temp.file("toc.json")))
            try Command.check(["zstd", "-q", "-f", temp.file("toc.json"), "-o", temp.file("toc.json.zst")])
            let bytes = try Data(contentsOf: URL(fileURLWithPath: temp.file("toc.json.zst")))
            let moved = ChunkedTOC.Position(offset: position.offset, length: UInt64(bytes.count),
                                            uncompressedLength: UInt64(changed.count))
            return errorMessage {
                _ = try ChunkedTOC(compressed: bytes, position: moved, checksum: Digest.of(bytes),
                                   blobSize: descriptor.size)
            }
        }

        var flipped = compressed
        flipped[flipped.startIndex + 20] ^= 1
        XCTAssertEqual(errorMessage { _ = try ChunkedTOC(compressed: flipped, position: position, checksum: checksum,
                                                    blobSize: descriptor.size) },
                       "zstd:chunked TOC: its bytes do not have the checksum the signed manifest gives "
                        + "(\(checksum.short))")
        var longer = position
        longer.uncompressedLength += 1
        XCTAssertEqual(errorMessage { _ = try ChunkedTOC(compressed: compressed, position: longer, checksum: checksum,
                                                    blobSize: descriptor.size) },
                       "zstd:chunked TOC: decompresses to \(json.count) bytes, not the \(json.count + 1) announced")
        XCTAssertEqual(try toc { _ in "{\"version\":1,\"version\":1,\"entries\":[]}" }, "zstd:chunked TOC: a duplicate key")
        XCTAssertEqual(try toc { $0.replacingOccurrences(of: "\"version\":1", with: "\"version\":2") },
                       "zstd:chunked TOC: version 2, not 1")
        XCTAssertTrue(try toc { $0.replacingOccurrences(of: "\"type\":\"dir\"", with: "\"type\":\"socket\"") }
            .hasSuffix("unknown entry type \"socket\""))
        let end = try XCTUnwrap(try ChunkedTOC(compressed: compressed, position: position, checksum: checksum,
                                               blobSize: descriptor.size).files.last?.range.upperBound)
        XCTAssertTrue(try toc { $0.replacingOccurrences(of: "\"endOffset\":\(end)",
                                                       with: "\"endOffset\":\(position.offset + 1)") }
            .hasSuffix("is not after the previous file and before the TOC (\(position.offset))"))
        XCTAssertTrue(try toc { $0.replacingOccurrences(of: "\"chunkOffset\":", with: "\"chunkOffset\":1") }
            .contains("is not right after the one before, inside the file"))

        // Announcements that do not fit the blob, or are malformed, are errors, not plain layers.
        func announced(_ annotations: [String: String]) -> String {
            errorMessage {
                _ = try ChunkedTOC.announced(by: Descriptor(mediaType: descriptor.mediaType, digest: descriptor.digest,
                                                            size: descriptor.size, annotations: annotations))
            }
        }
        let key = "io.containers.zstd-chunked.manifest-position"
        let sum = ["io.containers.zstd-chunked.manifest-checksum": checksum.description]
        XCTAssertTrue(announced(sum.merging([key: "\(descriptor.size):10:10:1"]) { $1 }).hasSuffix("or is too large"))
        XCTAssertTrue(announced(sum.merging([key: "1:2:3"]) { $1 }).contains("malformed zstd:chunked position"))
        XCTAssertTrue(announced(sum.merging([key: "1:2:3:2"]) { $1 }).contains("malformed zstd:chunked position"))
        XCTAssertTrue(announced([key: "1:2:3:1"]).hasSuffix("without its checksum"))
    }
}
