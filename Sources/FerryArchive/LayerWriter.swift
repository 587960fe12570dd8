internal import CArchive
import FerryCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The digests and size of a layer ``LayerWriter`` wrote.
public struct LayerInfo: Sendable, Equatable {
    /// sha256 of the uncompressed tar stream: the image config's `rootfs.diff_ids` entry.
    public var diffID: Digest
    /// sha256 of the file as written (compressed): the manifest's layer descriptor digest.
    public var digest: Digest
    /// Bytes written to the file: the layer descriptor's size.
    public var size: Int64
    /// The layer descriptor's annotations: a zstd:chunked layer's TOC position and checksum.
    public var annotations: [String: String]?

    public init(diffID: Digest, digest: Digest, size: Int64, annotations: [String: String]? = nil) {
        self.diffID = diffID
        self.digest = digest
        self.size = size
        self.annotations = annotations
    }
}

/// Turns a directory into an OCI layer: a POSIX tar, optionally gzip- or zstd-compressed.
///
/// The tar is pax-restricted (plain ustar headers; a pax extended header only where ustar cannot say it, such
/// as long or non-ASCII names), written by libarchive. Output is reproducible: the same tree (names, contents,
/// modes, mtimes) gives the same bytes. Entries come depth-first, each directory's names sorted bytewise
/// (the order of Go's `filepath.Walk`, so a directory always precedes what it holds); the directory itself is
/// not an entry. Every entry has uid/gid 0 and empty user and group names; permission bits are kept
/// (`mode & 0o7777`); mtimes are kept in whole seconds, and atime/ctime are not recorded; the gzip header
/// carries no timestamp. Directories, regular files, symlinks (target as read) and hard links (a file with
/// several names inside the tree: the first name in entry order holds the data, later ones link to it).
/// FIFOs, sockets, devices and names that are not UTF-8 are refused with ``FerryError/Code/invalidArgument``.
///
/// Streams: both digests are computed while writing (an in-memory pipe: tar → hash → compressor → hash →
/// file), nothing is re-read, memory does not grow with the tree's size beyond one directory listing per level.
public enum LayerWriter {
    /// Writes `directory` as a layer to `output` (created or truncated, mode 0644, fsynced).
    /// On error `output` is removed.
    ///
    /// `chunked` (zstd only) writes a `zstd:chunked` layer (``ChunkedFrames``): still a plain `tar+zstd` blob for
    /// any reader, with every file's content in frames of its own and a table of contents at the end, whose
    /// position and checksum the returned annotations give.
    public static func write(directory: String, to output: String, compression: LayerCompression,
                             chunked: Bool = false) throws -> LayerInfo {
        guard !chunked || compression == .zstd else {
            throw FerryError.invalidArgument("zstd:chunked layers are zstd-compressed")
        }
        return try LibArchive.withUTF8Locale {
            try writeLayer(directory: directory, to: output, compression: compression, chunked: chunked)
        }
    }

    private static func writeLayer(directory: String, to output: String, compression: LayerCompression,
                                   chunked: Bool) throws -> LayerInfo
    {
        let root = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else {
            throw FerryError.invalidArgument("cannot open directory \(EntryPath.shown(directory)): \(errnoString())")
        }
        let rootDir = OpenDirectory(adopting: root)
        let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw FerryError.failed("cannot create \(EntryPath.shown(output)): \(errnoString())")
        }
        var finished = false
        defer {
            close(fd)
            if !finished { unlink(output) }
        }
        let sink = try LayerSink(fd: fd, compression: compression, chunked: chunked)
        // Before the descriptor closes: libarchive flushes on free, and must not write into a reused fd number.
        defer { sink.abandon() }
        let tar = try sink.openTar()
        try TreeWriter(tar: tar, sink: sink).add(directory: rootDir, prefix: "")
        let annotations = try sink.close()
        guard fsync(fd) == 0 else { throw FerryError.failed("cannot fsync \(EntryPath.shown(output)): \(errnoString())") }
        finished = true
        return LayerInfo(diffID: sink.uncompressed.finalize(), digest: sink.fileDigest, size: sink.size,
                         annotations: annotations)
    }
}

/// Where tar bytes go: hashed as the diff_id, compressed (libarchive raw format with a filter), hashed again,
/// and written to the file.
final class LayerSink {
    private let fd: Int32
    private let compression: LayerCompression
    private var compressor: OpaquePointer?
    /// zstd:chunked: where frames start and end, and the TOC being built; `nil` for a plain layer.
    private(set) var chunked: ChunkedFrames?
    private var tar: OpaquePointer?
    private var abandoned = false
    private(set) var uncompressed = DigestHasher(.sha256)
    private var compressed = DigestHasher(.sha256)
    /// The digest of the file: the compressed stream, or the tar itself when uncompressed.
    var fileDigest: Digest { compression == .none ? uncompressed.finalize() : compressed.finalize() }
    private(set) var size: Int64 = 0
    /// The first failure inside a write callback; reported instead of libarchive's generic message.
    private(set) var error: FerryError?

    init(fd: Int32, compression: LayerCompression, chunked: Bool = false) throws {
        self.fd = fd
        self.compression = compression
        if chunked {
            // Frames are opened as bytes come (``ChunkedFrames``), one at a time.
            self.chunked = ChunkedFrames()
            return
        }
        if compression == .none {
            compressor = nil
            return
        }
        compressor = try LayerSink.makeCompressor(compression, context: self)
    }

    /// A libarchive raw writer with `compression`'s filter, whose output comes to ``fileBytes(_:_:)``: one zstd
    /// frame (or gzip member) from its first byte to its close.
    fileprivate static func makeCompressor(_ compression: LayerCompression, context: LayerSink) throws -> OpaquePointer {
        guard let archive = archive_write_new() else { throw FerryError.failed("libarchive: out of memory") }
        var ok = archive_write_set_format_raw(archive) == ARCHIVE_OK
        switch compression {
        case .gzip:
            ok = ok && archive_write_add_filter_gzip(archive) == ARCHIVE_OK
            // No mtime in the gzip header: the same tree must give the same blob.
            ok = ok && archive_write_set_filter_option(archive, "gzip", "timestamp", nil) == ARCHIVE_OK
        case .zstd:
            ok = ok && archive_write_add_filter_zstd(archive) == ARCHIVE_OK
        case .none:
            break
        }
        // Unblocked output: padding after a compressed stream is garbage to gzip -d and zstd -d.
        ok = ok && archive_write_set_bytes_per_block(archive, Int32(LibArchive.chunkSize)) == ARCHIVE_OK
        ok = ok && archive_write_set_bytes_in_last_block(archive, 1) == ARCHIVE_OK
        let opaque = Unmanaged.passUnretained(context).toOpaque()
        ok = ok && archive_write_open(archive, opaque, nil, layerSinkWriteCompressed, nil) == ARCHIVE_OK
        if ok, let entry = archive_entry_new() {
            defer { archive_entry_free(entry) }
            archive_entry_set_pathname(entry, "layer.tar")
            archive_entry_set_filetype(entry, LibArchive.regular)
            archive_entry_set_perm(entry, 0o644)
            ok = archive_write_header(archive, entry) == ARCHIVE_OK
        } else {
            ok = false
        }
        guard ok else {
            let message = LibArchive.errorMessage(archive)
            archive_write_free(archive)
            throw FerryError.failed("cannot set up \(compression.rawValue) compression: \(message)")
        }
        return archive
    }

    deinit { abandon() }

    /// Frees both archives without writing anything more (callbacks refuse from here on).
    func abandon() {
        abandoned = true
        if let tar { archive_write_free(tar) }
        if let compressor { archive_write_free(compressor) }
        tar = nil
        compressor = nil
    }

    /// A pax-restricted tar writer whose output comes here.
    func openTar() throws -> OpaquePointer {
        guard let tar = archive_write_new() else { throw FerryError.failed("libarchive: out of memory") }
        var ok = archive_write_set_format_pax_restricted(tar) == ARCHIVE_OK
        // 10240-byte records like tar(1), without padding the last one; unblocked for zstd:chunked, so that each
        // header and each file's data reach ``tarBytes(_:_:)`` as they are written and frames can end between them.
        ok = ok && archive_write_set_bytes_per_block(tar, chunked == nil ? 10240 : 0) == ARCHIVE_OK
        ok = ok && archive_write_set_bytes_in_last_block(tar, 1) == ARCHIVE_OK
        let context = Unmanaged.passUnretained(self).toOpaque()
        ok = ok && archive_write_open(tar, context, nil, layerSinkWriteTar, nil) == ARCHIVE_OK
        self.tar = tar
        guard ok else { throw FerryError.failed("cannot start tar: \(LibArchive.errorMessage(tar))") }
        return tar
    }

    /// Writes the tar's end and flushes the compressor (for zstd:chunked, then the TOC and the footer). The digests
    /// and size are final afterwards. Returns the layer descriptor's annotations.
    func close() throws -> [String: String]? {
        if let tar, archive_write_close(tar) != ARCHIVE_OK { throw failure(tar, "cannot finish tar") }
        guard let chunked else {
            if let compressor, archive_write_close(compressor) != ARCHIVE_OK {
                throw failure(compressor, "cannot finish compression")
            }
            return nil
        }
        try endFrame()
        let toc = try chunked.tableOfContents()
        let compressed = try LibArchive.zstdFrame(toc)
        // The TOC in a skippable frame (zstd readers pass over it), then the footer that points at it.
        var skippable = ChunkedFrames.skippableHeader(payload: compressed.count)
        try writeRaw(skippable)
        let offset = UInt64(size)
        try writeRaw(compressed)
        var footer = Data()
        for value in [offset, UInt64(compressed.count), UInt64(toc.count), 1] { footer.append(littleEndian: value) }
        footer.append(contentsOf: ChunkedFrames.footerMagic)
        skippable = ChunkedFrames.skippableHeader(payload: footer.count)
        try writeRaw(skippable + footer)
        let position = "\(offset):\(compressed.count):\(toc.count):1"
        let checksum = Digest.of(compressed).description
        var annotations: [String: String] = [:]
        for key in ChunkedTOC.positionAnnotations { annotations[key] = position }
        for key in ChunkedTOC.checksumAnnotations { annotations[key] = checksum }
        return annotations
    }

    /// Bytes written to the file as they are (the skippable frames of zstd:chunked).
    private func writeRaw(_ data: Data) throws {
        try data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress, fileBytes(base, raw.count) == raw.count else {
                throw error ?? FerryError.failed("cannot write layer")
            }
        }
    }

    // MARK: zstd:chunked frames

    /// Ends the frame being written, if any: the next byte starts a new one.
    private func endFrame() throws {
        guard chunked != nil, let current = compressor else { return }
        compressor = nil
        defer { archive_write_free(current) }
        guard archive_write_close(current) == ARCHIVE_OK else { throw failure(current, "cannot finish a frame") }
    }

    /// A regular file's data starts: it gets frames of its own.
    func beginContent() throws {
        guard let chunked else { return }
        try endFrame()
        chunked.beginContent(at: UInt64(size))
    }

    /// The file's data ended (its padding goes with the next header).
    func endContent() throws {
        guard let chunked else { return }
        try endFrame()
        chunked.endContent(at: UInt64(size))
    }

    func failure(_ archive: OpaquePointer, _ what: String) -> FerryError {
        error ?? FerryError.failed("\(what): \(LibArchive.errorMessage(archive))")
    }

    fileprivate func tarBytes(_ bytes: UnsafeRawPointer, _ count: Int) -> Int {
        if abandoned { return -1 }
        uncompressed.update(UnsafeRawBufferPointer(start: bytes, count: count))
        if let chunked { return chunkedBytes(bytes, count, chunked) }
        guard let compressor else { return fileBytes(bytes, count) }
        let n = archive_write_data(compressor, bytes, count)
        guard n == count else {
            if error == nil { error = FerryError.failed("compression failed: \(LibArchive.errorMessage(compressor))") }
            return -1
        }
        return count
    }

    /// Tar bytes of a zstd:chunked layer: into the current frame (opened on the first byte), cut where a large
    /// file's content-defined chunks end.
    private func chunkedBytes(_ bytes: UnsafeRawPointer, _ count: Int, _ chunked: ChunkedFrames) -> Int {
        var done = 0
        while done < count {
            let take = chunked.bytesBeforeCut(UnsafeRawBufferPointer(start: bytes + done, count: count - done))
            do {
                if compressor == nil { compressor = try LayerSink.makeCompressor(.zstd, context: self) }
            } catch let failure as FerryError {
                if error == nil { error = failure }
                return -1
            } catch {
                return -1
            }
            guard let compressor, archive_write_data(compressor, bytes + done, take) == take else {
                if error == nil {
                    error = FerryError.failed("compression failed: \(LibArchive.errorMessage(compressor))")
                }
                return -1
            }
            chunked.consumed(UnsafeRawBufferPointer(start: bytes + done, count: take))
            done += take
            if chunked.atCut {
                do {
                    try endFrame()
                } catch {
                    return -1
                }
                chunked.cut(at: UInt64(size))
            }
        }
        return count
    }

    fileprivate func fileBytes(_ bytes: UnsafeRawPointer, _ count: Int) -> Int {
        if abandoned { return -1 }
        if compression != .none { compressed.update(UnsafeRawBufferPointer(start: bytes, count: count)) }
        if let err = writeFully(fd: fd, bytes: bytes, count: count) {
            if error == nil {
                let code: FerryError.Code = err == ENOSPC || err == EDQUOT ? .noSpace : .failed
                error = FerryError(code, "cannot write layer: \(errnoString(err))")
            }
            return -1
        }
        size += Int64(count)
        return count
    }
}

func layerSinkWriteTar(
    _ archive: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ bytes: UnsafeRawPointer?, _ count: Int
) -> Int {
    guard let context, let bytes else { return count == 0 ? 0 : -1 }
    return Unmanaged<LayerSink>.fromOpaque(context).takeUnretainedValue().tarBytes(bytes, count)
}

func layerSinkWriteCompressed(
    _ archive: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ bytes: UnsafeRawPointer?, _ count: Int
) -> Int {
    guard let context, let bytes else { return count == 0 ? 0 : -1 }
    return Unmanaged<LayerSink>.fromOpaque(context).takeUnretainedValue().fileBytes(bytes, count)
}
