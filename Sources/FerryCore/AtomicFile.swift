#if canImport(Glibc)
    import Glibc
#endif
import Foundation

/// Durable replacement of small files: write a temporary file beside the target, `fsync` it, `rename(2)` it
/// over the target, then `fsync` the directory. A crash at any point leaves the old or the new content.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String, mode: mode_t = 0o644) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let tmp = "\(dir)/.\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw ioError("cannot create \(tmp)") }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        do {
            defer { close(fd) }
            try writeAll(fd: fd, data: data, what: tmp)
            _ = fchmod(fd, mode)
            guard fsync(fd) == 0 else { throw ioError("fsync \(tmp)") }
        }
        guard rename(tmp, path) == 0 else { throw ioError("rename to \(path)") }
        ok = true
        try syncDirectory(dir)
    }

    /// `fsync` on a directory, making a rename or unlink in it durable.
    public static func syncDirectory(_ dir: String) throws {
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw ioError("open \(dir)") }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else { throw ioError("fsync \(dir)") }
    }
}

/// Writes all of `data` to `fd`.
public func writeAll(fd: Int32, data: some DataProtocol, what: String) throws {
    for region in data.regions {
        try region.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ioError("write \(what)")
                }
                offset += n
            }
        }
    }
}

/// An I/O failure as a FerryError: `NoSpace` for ENOSPC and EDQUOT, `Failed` otherwise.
public func ioError(_ what: String, _ code: Int32 = errno) -> FerryError {
    if code == ENOSPC || code == EDQUOT { return FerryError(.noSpace, "\(what): no space left on device") }
    return FerryError(.failed, "\(what): \(errnoString(code))")
}
