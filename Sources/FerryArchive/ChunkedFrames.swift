import FerryCore
import Foundation

/// The bookkeeping of a `zstd:chunked` layer being written (``LayerWriter`` with `chunked`): which compressed
/// bytes hold which file's content, cut into content-defined chunks for large files, and the table of contents
/// that says so (the format ``ChunkedTOC`` reads, as containers/storage writes it: version 1, one entry per tar
/// entry, `chunk` entries after a file cut in several).
///
/// Chunks: a gear rolling hash over the file's bytes cuts where its low 18 bits are zero (about every 256 KiB),
/// never before 64 KiB into a chunk and always at 1 MiB, so one change in a large file moves the cuts only around
/// it and an update refetches only the chunks it touched. Files under 128 KiB are one chunk. Deterministic: the
/// same tree gives the same blob.
final class ChunkedFrames {
    static let minChunk = 64 * 1024
    static let maxChunk = 1024 * 1024
    static let cutMask: UInt64 = (1 << 18) - 1
    /// The footer's last 8 bytes.
    static let footerMagic = Array("GNUlInUx".utf8)

    /// 256 fixed pseudo-random words (splitmix64 from a fixed seed): the gear hash's table.
    static let gear: [UInt64] = {
        var state: UInt64 = 0x6665_7272_7963_6863  // "ferrychc"
        return (0..<256).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }()

    /// A TOC entry as written (the fields containers/storage writes that Ferry fills).
    struct Entry: Encodable {
        var type: String
        var name: String
        var linkName: String?
        var mode: UInt32?
        var size: Int64?
        var modtime: String?
        var uid: Int?
        var gid: Int?
        var digest: String?
        var offset: UInt64?
        var endOffset: UInt64?
        var chunkSize: Int64?
        var chunkOffset: Int64?
        var chunkDigest: String?
    }

    private var entries: [Entry] = []

    /// The file whose content is being written.
    private struct Content {
        var entry: Int
        var start: UInt64
        var size: Int64
        var file = DigestHasher(.sha256)
        var chunk = DigestHasher(.sha256)
        /// Bytes of the file seen, and where the current chunk started (in the file, and compressed).
        var position: Int64 = 0
        var chunkStart: Int64 = 0
        var chunkCompressedStart: UInt64
        var hash: UInt64 = 0
        var cuttable: Bool
        var chunks: [(offset: Int64, size: Int64, digest: Digest, compressed: UInt64)] = []
    }

    private var content: Content?
    /// A cut is due after the bytes just consumed.
    private(set) var atCut = false

    func entry(type: UInt32, name: String, mode: UInt32, mtime: Int, size: Int64, hardlink: String?, symlink: String?)
    {
        let kind: String
        switch type {
        case _ where hardlink != nil: kind = "hardlink"
        case LibArchive.directory: kind = "dir"
        case LibArchive.symlink: kind = "symlink"
        default: kind = "reg"
        }
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        entries.append(Entry(type: kind, name: kind == "dir" ? name + "/" : name, linkName: hardlink ?? symlink,
                             mode: mode, size: kind == "reg" ? size : nil,
                             modtime: formatter.string(from: Date(timeIntervalSince1970: TimeInterval(mtime))),
                             uid: 0, gid: 0))
    }

    func beginContent(at offset: UInt64) {
        guard let last = entries.indices.last, let size = entries[last].size else { return }
        content = Content(entry: last, start: offset, size: size, chunkCompressedStart: offset,
                          cuttable: size >= Int64(2 * ChunkedFrames.minChunk))
    }

    /// How many of `bytes` go into the current frame: all of them, or up to (and including) the byte after which
    /// the rolling hash cuts the chunk. Sets ``atCut`` when it does.
    func bytesBeforeCut(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard var content, content.cuttable else { return bytes.count }
        var hash = content.hash
        var length = content.position - content.chunkStart
        for (index, byte) in bytes.enumerated() {
            hash = (hash << 1) &+ ChunkedFrames.gear[Int(byte)]
            length += 1
            let remainingInFile = content.size - (content.position + Int64(index) + 1)
            if remainingInFile > 0, length >= Int64(ChunkedFrames.minChunk),
                hash & ChunkedFrames.cutMask == 0 || length >= Int64(ChunkedFrames.maxChunk)
            {
                content.hash = 0
                self.content = content
                atCut = true
                return index + 1
            }
        }
        content.hash = hash
        self.content = content
        return bytes.count
    }

    /// `bytes` went into the current frame.
    func consumed(_ bytes: UnsafeRawBufferPointer) {
        guard var content else { return }
        content.file.update(bytes)
        content.chunk.update(bytes)
        content.position += Int64(bytes.count)
        self.content = content
    }

    /// The frame ended at a cut; the compressed stream is now at `offset`.
    func cut(at offset: UInt64) {
        atCut = false
        guard var content else { return }
        content.chunks.append((content.chunkStart, content.position - content.chunkStart, content.chunk.finalize(),
                               content.chunkCompressedStart))
        content.chunk = DigestHasher(.sha256)
        content.chunkStart = content.position
        content.chunkCompressedStart = offset
        self.content = content
    }

    /// The file's content ended, its last frame closed at `offset`.
    func endContent(at offset: UInt64) {
        guard var content else { return }
        content.chunks.append((content.chunkStart, content.position - content.chunkStart, content.chunk.finalize(),
                               content.chunkCompressedStart))
        entries[content.entry].digest = content.file.finalize().description
        entries[content.entry].offset = content.start
        entries[content.entry].endOffset = offset
        if content.chunks.count > 1 {
            entries[content.entry].chunkSize = content.chunks[0].size
            entries[content.entry].chunkDigest = content.chunks[0].digest.description
            let name = entries[content.entry].name
            var chunkEntries: [Entry] = []
            for chunk in content.chunks.dropFirst() {
                chunkEntries.append(Entry(type: "chunk", name: name, offset: chunk.compressed, chunkSize: chunk.size,
                                          chunkOffset: chunk.offset, chunkDigest: chunk.digest.description))
            }
            entries.insert(contentsOf: chunkEntries, at: content.entry + 1)
        }
        self.content = nil
    }

    /// The TOC's JSON.
    func tableOfContents() throws -> Data {
        struct TOC: Encodable {
            var version = 1
            var entries: [Entry]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(TOC(entries: entries))
    }

    /// The header of a zstd skippable frame (magic 0x184D2A50) of `payload` bytes.
    static func skippableHeader(payload: Int) -> Data {
        var header = Data()
        header.append(littleEndian: UInt32(0x184D_2A50))
        header.append(littleEndian: UInt32(payload))
        return header
    }
}

extension Data {
    mutating func append<T: FixedWidthInteger>(littleEndian value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
