internal import CArchive
import FerryCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Small pieces shared by the reader and the writer around libarchive's C API.
enum LibArchive {
    /// libarchive's last error on `archive`, or `fallback` when it has none.
    static func errorMessage(_ archive: OpaquePointer?, fallback: String = "unknown libarchive error") -> String {
        guard let archive, let cString = archive_error_string(archive) else { return fallback }
        return String(cString: cString)
    }

    /// `AE_IF*` file types (the C macros carry casts Swift does not import).
    static let typeMask: UInt32 = 0o170000
    static let regular: UInt32 = 0o100000
    static let directory: UInt32 = 0o040000
    static let symlink: UInt32 = 0o120000
    static let characterDevice: UInt32 = 0o020000
    static let blockDevice: UInt32 = 0o060000
    static let fifo: UInt32 = 0o010000
    static let socket: UInt32 = 0o140000

    /// Runs `body` with this thread's `LC_CTYPE` set to C.UTF-8 (`uselocale(3)`, thread-local, restored after).
    ///
    /// libarchive converts names between the locale's charset and the UTF-8 of pax headers; in the C locale
    /// a non-ASCII name fails to convert (and libarchive 3.6 dereferences NULL writing one). Under C.UTF-8
    /// names are UTF-8 on both sides and pass through unchanged.
    static func withUTF8Locale<T>(_ body: () throws -> T) throws -> T {
        guard let utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", nil) else {
            throw FerryError.failed("the C.UTF-8 locale is not available: \(errnoString())")
        }
        let previous = uselocale(utf8)
        defer {
            uselocale(previous)
            freelocale(utf8)
        }
        return try body()
    }

    /// Bytes moved per read or write call: large enough to keep syscalls and libarchive overhead low, small
    /// enough that decompressed data is still in the CPU cache when the diff_id hasher and the write read it.
    static let chunkSize = 128 << 10

    /// `data` as one zstd frame (libarchive's raw format with its zstd filter, to memory).
    static func zstdFrame(_ data: Data) throws -> Data {
        final class Collector {
            var output = Data()
        }
        guard let archive = archive_write_new() else { throw FerryError.failed("libarchive: out of memory") }
        defer { archive_write_free(archive) }
        let collector = Collector()
        var ok = archive_write_set_format_raw(archive) == ARCHIVE_OK
        ok = ok && archive_write_add_filter_zstd(archive) == ARCHIVE_OK
        ok = ok && archive_write_set_bytes_per_block(archive, 0) == ARCHIVE_OK
        let context = Unmanaged.passUnretained(collector).toOpaque()
        ok = ok && archive_write_open(archive, context, nil, { _, context, bytes, count in
            guard let context, let bytes else { return count == 0 ? 0 : -1 }
            Unmanaged<Collector>.fromOpaque(context).takeUnretainedValue().output
                .append(bytes.assumingMemoryBound(to: UInt8.self), count: count)
            return count
        }, nil) == ARCHIVE_OK
        if ok, let entry = archive_entry_new() {
            defer { archive_entry_free(entry) }
            archive_entry_set_pathname(entry, "toc.json")
            archive_entry_set_filetype(entry, LibArchive.regular)
            archive_entry_set_size(entry, Int64(data.count))
            ok = archive_write_header(archive, entry) == ARCHIVE_OK
        } else {
            ok = false
        }
        ok = ok && data.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) == $0.count }
        ok = ok && archive_write_close(archive) == ARCHIVE_OK
        guard ok else { throw FerryError.failed("zstd: \(errorMessage(archive))") }
        return collector.output
    }
}

/// Writes all `count` bytes at `bytes` to `fd`, retrying short writes and `EINTR`.
func writeFully(fd: Int32, bytes: UnsafeRawPointer, count: Int) -> Int32? {
    var offset = 0
    while offset < count {
        let n = write(fd, bytes + offset, count - offset)
        if n < 0 {
            if errno == EINTR { continue }
            return errno
        }
        offset += n
    }
    return nil
}
