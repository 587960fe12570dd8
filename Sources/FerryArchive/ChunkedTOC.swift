internal import CArchive
import FerryCore
import Foundation

/// The table of contents of a `zstd:chunked` layer (the format containers/storage, skopeo, podman and buildah write;
/// DESIGN.md, "Chunked layers and the object store"): the layer is a plain `tar+zstd` blob whose regular files each
/// start a zstd frame of their own, and a skippable frame near its end holds a zstd-compressed JSON list of every
/// tar entry, with each file's content digest and the compressed byte range of its frames (and, for large files,
/// of each content-defined chunk).
///
/// The TOC is trusted only through the signed manifest: its layer descriptor's annotations give the TOC's range
/// (`manifest-position`: offset, compressed length, uncompressed length, type 1) and the digest of its compressed
/// bytes (`manifest-checksum`). A client fetches that range, checks the digest, and only then reads the JSON, which
/// is checked against its own limits before anything uses it; every file fetched through it is later checked
/// against its TOC digest. Both annotation spellings are read: `io.containers.zstd-chunked.*` (skopeo 1.9) and
/// `io.github.containers.zstd-chunked.*` (later releases).
public struct ChunkedTOC: Sendable, Equatable {
    /// Where the TOC is in the layer blob.
    public struct Position: Sendable, Equatable {
        public var offset: UInt64
        public var length: UInt64
        public var uncompressedLength: UInt64

        public init(offset: UInt64, length: UInt64, uncompressedLength: UInt64) {
            self.offset = offset
            self.length = length
            self.uncompressedLength = uncompressedLength
        }
    }

    /// A piece of a regular file's content: its place in the file and the compressed bytes that hold it.
    public struct Chunk: Sendable, Equatable {
        /// Offset of the chunk in the uncompressed file.
        public var offset: Int64
        public var size: Int64
        /// The chunk's own digest (when the TOC gives one).
        public var digest: Digest?
        /// The compressed bytes of the chunk in the layer blob.
        public var range: Range<UInt64>
    }

    /// A regular file with content.
    public struct File: Sendable, Equatable {
        public var name: String
        public var size: Int64
        /// The digest of the uncompressed content.
        public var digest: Digest
        /// The compressed bytes of the whole content in the layer blob (its frames, concatenated).
        public var range: Range<UInt64>
        /// The chunks, in order, covering the file; one chunk for a file that is not cut.
        public var chunks: [Chunk]
    }

    /// The regular files with content, in TOC order.
    public var files: [File]
    /// Entries of every type in the TOC (directories, links, empty files...), for counting and limits.
    public var entryCount: Int

    // MARK: Limits

    /// The largest TOC read: 64 MiB compressed and 256 MiB of JSON (some million entries).
    public static let maxCompressedSize: UInt64 = 64 << 20
    public static let maxUncompressedSize: UInt64 = 256 << 20
    public static let maxEntries = 1 << 20
    public static let maxNameBytes = 4096

    // MARK: Annotations

    public static let positionAnnotations = ["io.github.containers.zstd-chunked.manifest-position",
                                             "io.containers.zstd-chunked.manifest-position"]
    public static let checksumAnnotations = ["io.github.containers.zstd-chunked.manifest-checksum",
                                             "io.containers.zstd-chunked.manifest-checksum"]

    /// The TOC's position and checksum as a layer descriptor announces them; `nil` for a layer that is not
    /// `zstd:chunked` (no position annotation). A layer that announces a TOC badly is an error, never a plain layer.
    public static func announced(by layer: Descriptor) throws -> (Position, Digest)? {
        let annotations = layer.annotations ?? [:]
        guard let text = positionAnnotations.lazy.compactMap({ annotations[$0] }).first else { return nil }
        guard layer.mediaType == "application/vnd.oci.image.layer.v1.tar+zstd" else {
            throw FerryError.invalidArgument("layer \(layer.digest.short) announces a zstd:chunked TOC, and is "
                + "\(layer.mediaType)")
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[3] == "1", let offset = UInt64(parts[0]), let length = UInt64(parts[1]),
            let uncompressed = UInt64(parts[2]), parts[0...2].allSatisfy({ $0.allSatisfy(\.isASCII) })
        else {
            throw FerryError.invalidArgument("layer \(layer.digest.short): malformed zstd:chunked position "
                + "\(String(text.prefix(80)).debugDescription) (offset:length:uncompressed:1)")
        }
        guard let checksumText = checksumAnnotations.lazy.compactMap({ annotations[$0] }).first else {
            throw FerryError.invalidArgument("layer \(layer.digest.short) announces a zstd:chunked TOC without its "
                + "checksum")
        }
        let checksum = try Digest(parsing: checksumText)
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, length > 0, end <= UInt64(max(layer.size, 0)), length <= maxCompressedSize,
            uncompressed <= maxUncompressedSize
        else {
            throw FerryError.invalidArgument("layer \(layer.digest.short): the zstd:chunked TOC at \(offset) (\(length) "
                + "bytes, \(uncompressed) uncompressed) is not inside the \(layer.size)-byte blob or is too large")
        }
        return (Position(offset: offset, length: length, uncompressedLength: uncompressed), checksum)
    }

    // MARK: Parsing

    private struct Wire: Decodable {
        struct Entry: Decodable {
            var type: String
            var name: String
            var size: Int64?
            var digest: String?
            var offset: UInt64?
            var endOffset: UInt64?
            var chunkOffset: Int64?
            var chunkSize: Int64?
            var chunkDigest: String?
            var chunkType: String?
        }
        var version: Int
        var entries: [Entry]
    }

    /// Reads the TOC from its compressed bytes (the range ``announced(by:)`` gives), which must have `checksum`, in a
    /// layer blob of `blobSize` bytes whose TOC starts at `position.offset`. Every file's frames must lie before the
    /// TOC, in order and without overlap; every chunk inside its file, the chunks covering it exactly.
    public init(compressed: Data, position: Position, checksum: Digest, blobSize: Int64) throws {
        try self.init(json: try ChunkedTOC.json(compressed: compressed, position: position, checksum: checksum),
                      tocOffset: position.offset, blobSize: blobSize)
    }

    /// The TOC's JSON from its compressed bytes, once they are known to have `checksum`.
    static func json(compressed: Data, position: Position, checksum: Digest) throws -> Data {
        guard UInt64(compressed.count) == position.length else {
            throw FerryError.invalidArgument("zstd:chunked TOC: \(compressed.count) bytes where the layer announces "
                + "\(position.length)")
        }
        guard Digest.of(compressed, algorithm: checksum.algorithm) == checksum else {
            throw FerryError(.digestMismatch, "zstd:chunked TOC: its bytes do not have the checksum the signed "
                + "manifest gives (\(checksum.short))")
        }
        return try ChunkedTOC.decompress(compressed, expected: position.uncompressedLength)
    }

    /// The TOC `layer` announces, read from its blob open as `fd` (with `pread`: the descriptor's offset stays where
    /// it was) and checked as ``init(compressed:position:checksum:blobSize:)`` checks it, with its JSON; `nil` for a
    /// plain layer.
    public static func read(layer: Descriptor, fd: Int32) throws -> (toc: ChunkedTOC, json: Data)? {
        guard let (position, checksum) = try announced(by: layer) else { return nil }
        var compressed = Data(count: Int(position.length))
        let n = compressed.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(position.offset)) }
        guard n == Int(position.length) else {
            throw FerryError.invalidArgument("zstd:chunked TOC: the blob of layer \(layer.digest.short) is shorter "
                + "than its annotation says")
        }
        let json = try ChunkedTOC.json(compressed: compressed, position: position, checksum: checksum)
        return (try ChunkedTOC(json: json, tocOffset: position.offset, blobSize: layer.size), json)
    }

    /// Reads the TOC's JSON, once its bytes are known to be the ones the signed manifest names; `tocOffset` and
    /// `blobSize` bound the ranges it may give.
    public init(json: Data, tocOffset: UInt64, blobSize: Int64) throws {
        func bad(_ why: String) -> FerryError { FerryError.invalidArgument("zstd:chunked TOC: \(why)") }
        do {
            try JSONDuplicateKeys.check(json)
        } catch {
            throw bad("a duplicate key")
        }
        let wire: Wire
        do {
            wire = try JSONDecoder().decode(Wire.self, from: json)
        } catch {
            throw bad("not the JSON of a TOC")
        }
        guard wire.version == 1 else { throw bad("version \(wire.version), not 1") }
        guard wire.entries.count <= ChunkedTOC.maxEntries else {
            throw bad("\(wire.entries.count) entries; at most \(ChunkedTOC.maxEntries)")
        }
        let limit = min(tocOffset, UInt64(max(blobSize, 0)))
        var files: [File] = []
        var lastEnd: UInt64 = 0
        for entry in wire.entries {
            guard !entry.name.isEmpty, entry.name.utf8.count <= ChunkedTOC.maxNameBytes,
                !entry.name.unicodeScalars.contains(where: { $0.value == 0 })
            else {
                throw bad("an entry name is empty, too long or has a NUL")
            }
            switch entry.type {
            case "reg":
                let size = entry.size ?? 0
                guard size >= 0 else { throw bad("\(entry.name): negative size") }
                guard size > 0 else { continue }
                guard let digestText = entry.digest, let start = entry.offset, let end = entry.endOffset else {
                    throw bad("\(entry.name): a file with content and no digest or range")
                }
                let digest = try Digest(parsing: digestText)
                guard start < end, end <= limit, start >= lastEnd else {
                    throw bad("\(entry.name): range \(start)..<\(end) is not after the previous file and before the "
                        + "TOC (\(limit))")
                }
                lastEnd = end
                var chunk = Chunk(offset: 0, size: size, digest: nil, range: start..<end)
                if let chunkSize = entry.chunkSize {
                    guard entry.chunkOffset ?? 0 == 0, chunkSize > 0, chunkSize <= size else {
                        throw bad("\(entry.name): its first chunk is not at its start")
                    }
                    chunk.size = chunkSize
                    chunk.digest = try entry.chunkDigest.map { try Digest(parsing: $0) }
                }
                files.append(File(name: entry.name, size: size, digest: digest, range: start..<end, chunks: [chunk]))
            case "chunk":
                guard var file = files.last, file.name == entry.name else {
                    throw bad("\(entry.name): a chunk that does not follow its file")
                }
                guard let start = entry.offset, let offset = entry.chunkOffset, let size = entry.chunkSize,
                    entry.chunkType == nil || entry.chunkType == "data"
                else {
                    throw bad("\(entry.name): a chunk without offsets, or of a kind this reader does not take")
                }
                let previous = file.chunks[file.chunks.count - 1]
                guard offset == previous.offset + previous.size, size > 0, offset + size <= file.size,
                    start > previous.range.lowerBound, start < file.range.upperBound
                else {
                    throw bad("\(entry.name): chunk at \(offset) (\(size) bytes, compressed from \(start)) is not "
                        + "right after the one before, inside the file")
                }
                file.chunks[file.chunks.count - 1].range = previous.range.lowerBound..<start
                file.chunks.append(Chunk(offset: offset, size: size,
                                         digest: try entry.chunkDigest.map { try Digest(parsing: $0) },
                                         range: start..<file.range.upperBound))
                files[files.count - 1] = file
            case "dir", "symlink", "hardlink", "char", "block", "fifo":
                continue
            default:
                throw bad("\(entry.name): unknown entry type \(String(entry.type.prefix(32)).debugDescription)")
            }
        }
        for file in files {
            let last = file.chunks[file.chunks.count - 1]
            guard last.offset + last.size == file.size else {
                throw bad("\(file.name): its chunks cover \(last.offset + last.size) of its \(file.size) bytes")
            }
        }
        self.files = files
        entryCount = wire.entries.count
    }

    /// Decompresses the TOC's zstd frame, which must give exactly `expected` bytes.
    public static func decompress(_ data: Data, expected: UInt64) throws -> Data {
        guard let archive = archive_read_new() else { throw FerryError.failed("libarchive: out of memory") }
        defer { archive_read_free(archive) }
        archive_read_support_filter_zstd(archive)
        archive_read_support_format_raw(archive)
        var output = Data()
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            guard archive_read_open_memory(archive, bytes.baseAddress, bytes.count) == ARCHIVE_OK else {
                throw FerryError.invalidArgument("zstd:chunked TOC: \(LibArchive.errorMessage(archive))")
            }
            var entry: OpaquePointer?
            guard archive_read_next_header(archive, &entry) == ARCHIVE_OK,
                archive_filter_code(archive, 0) == ARCHIVE_FILTER_ZSTD
            else {
                throw FerryError.invalidArgument("zstd:chunked TOC: not a zstd frame")
            }
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let n = buffer.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, $0.count) }
                guard n >= 0 else {
                    throw FerryError.invalidArgument("zstd:chunked TOC: \(LibArchive.errorMessage(archive))")
                }
                if n == 0 { break }
                guard UInt64(output.count + n) <= expected else {
                    throw FerryError.invalidArgument("zstd:chunked TOC: decompresses to more than the \(expected) "
                        + "bytes announced")
                }
                output.append(contentsOf: buffer[0..<n])
            }
        }
        guard UInt64(output.count) == expected else {
            throw FerryError.invalidArgument("zstd:chunked TOC: decompresses to \(output.count) bytes, not the "
                + "\(expected) announced")
        }
        return output
    }
}
