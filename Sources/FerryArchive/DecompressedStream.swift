internal import CArchive
import FerryCore

#if canImport(Glibc)
    import Glibc
#endif

/// A layer file decompressed once, hashed as it is read.
///
/// libarchive's raw format with exactly the filter the media type names reads the descriptor; a second archive
/// object parses the tar from ``read()``. Every uncompressed byte passes through the hasher, including what
/// follows the tar's end-of-archive marker (``drain()``), so the digest is the layer's diff_id.
final class DecompressedStream {
    private let archive: OpaquePointer
    private let buffer: UnsafeMutableRawPointer
    private var hasher: DigestHasher
    private var total: Int64 = 0
    private let maxSize: Int64
    private var atEnd = false
    /// The first failure seen inside the read callback, reported instead of the tar reader's generic error.
    private(set) var failure: FerryError?

    init(fd: Int32, compression: LayerCompression, algorithm: Digest.Algorithm, maxSize: Int64) throws {
        guard let archive = archive_read_new() else { throw FerryError.failed("libarchive: out of memory") }
        self.archive = archive
        self.buffer = UnsafeMutableRawPointer.allocate(byteCount: LibArchive.chunkSize, alignment: 16)
        self.hasher = DigestHasher(algorithm)
        self.maxSize = maxSize
        // Only the filter the media type names: "all" would also enable filters that run external programs.
        let expected: [Int32]
        switch compression {
        case .none:
            expected = [ARCHIVE_FILTER_NONE]
        case .gzip:
            archive_read_support_filter_gzip(archive)
            expected = [ARCHIVE_FILTER_GZIP, ARCHIVE_FILTER_NONE]
        case .zstd:
            archive_read_support_filter_zstd(archive)
            expected = [ARCHIVE_FILTER_ZSTD, ARCHIVE_FILTER_NONE]
        }
        archive_read_support_format_raw(archive)
        guard archive_read_open_fd(archive, fd, LibArchive.chunkSize) == ARCHIVE_OK else {
            throw FerryError.unsafeArchive("cannot read layer: \(LibArchive.errorMessage(archive))")
        }
        var entry: OpaquePointer?
        switch archive_read_next_header(archive, &entry) {
        case ARCHIVE_OK, ARCHIVE_WARN: break
        case ARCHIVE_EOF: atEnd = true
        default: throw FerryError.unsafeArchive("cannot read layer: \(LibArchive.errorMessage(archive))")
        }
        let chain = (0..<archive_filter_count(archive)).map { archive_filter_code(archive, $0) }
        if !atEnd, chain != expected {
            throw FerryError.unsafeArchive("layer is not \(compression.rawValue)-compressed as its media type says")
        }
    }

    deinit {
        archive_read_free(archive)
        buffer.deallocate()
    }

    /// Reads the next uncompressed chunk into the internal buffer. Returns its size, 0 at the end, -1 on error
    /// (``failure`` says why).
    func read() -> (UnsafeRawPointer, Int) {
        if atEnd || failure != nil { return (UnsafeRawPointer(buffer), failure == nil ? 0 : -1) }
        let n = archive_read_data(archive, buffer, LibArchive.chunkSize)
        if n < 0 {
            failure = FerryError.unsafeArchive("cannot decompress layer: \(LibArchive.errorMessage(archive))")
            return (UnsafeRawPointer(buffer), -1)
        }
        if n == 0 {
            atEnd = true
            return (UnsafeRawPointer(buffer), 0)
        }
        total += Int64(n)
        if total > maxSize {
            failure = FerryError.unsafeArchive("layer decompresses to more than \(maxSize) bytes")
            return (UnsafeRawPointer(buffer), -1)
        }
        hasher.update(UnsafeRawBufferPointer(start: buffer, count: n))
        return (UnsafeRawPointer(buffer), n)
    }

    /// Reads (and hashes) whatever the tar parser did not consume: the end-of-archive blocks and padding.
    func drain() throws {
        while true {
            let (_, n) = read()
            if n == 0 { return }
            if n < 0 { throw failure ?? FerryError.unsafeArchive("cannot decompress layer") }
        }
    }

    /// The digest of every uncompressed byte read so far.
    func digest() -> Digest { hasher.finalize() }
}

/// libarchive read callback for the tar parser: pulls the next chunk from the ``DecompressedStream``.
func decompressedStreamRead(
    _ archive: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ bufferOut: UnsafeMutablePointer<UnsafeRawPointer?>?
) -> Int {
    guard let context, let bufferOut else { return -1 }
    let stream = Unmanaged<DecompressedStream>.fromOpaque(context).takeUnretainedValue()
    let (bytes, count) = stream.read()
    bufferOut.pointee = bytes
    return count
}
