#if canImport(Glibc)
    import Glibc
#endif
import Foundation

/// Durable replacement of small files and of symlinks: make the new one beside the target, `rename(2)` it over the
/// target, then `fsync` the directory. A crash at any point leaves the old or the new content.
///
/// The new entry is first `.NAME.tmp-PID-RANDOM` (a dot name, so never a ref component), made and renamed through
/// one descriptor of the directory, so a rename of the directory half way cannot split the two. A crash between
/// its creation and the rename leaves it behind; ``sweep(_:recursive:)`` removes such entries once their process
/// is gone.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String, mode: mode_t = 0o644) throws {
        let (dir, name) = try openParent(path)
        try write(data, in: dir, name: name, mode: mode)
    }

    /// Replaces the file `name` inside the open directory `dir`: the state tree's writes, which never resolve a
    /// path again once the directory is open.
    public static func write(_ data: Data, in dir: DirectoryHandle, name: String, mode: mode_t = 0o644) throws {
        try replace(name, in: dir) { dfd, tmp, shown in
            let fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
            guard fd >= 0 else { throw ioError("cannot create \(shown)") }
            defer { close(fd) }
            try writeAll(fd: fd, data: data, what: shown)
            _ = fchmod(fd, mode)
            guard fsync(fd) == 0 else { throw ioError("fsync \(shown)") }
        }
    }

    /// Points the symlink at `path` to `target`, replacing whatever link is there.
    public static func symlink(_ target: String, at path: String) throws {
        let (dir, name) = try openParent(path)
        try symlink(target, in: dir, name: name)
    }

    /// Points the symlink `name` inside the open directory `dir` to `target`, replacing whatever entry is there.
    public static func symlink(_ target: String, in dir: DirectoryHandle, name: String) throws {
        try replace(name, in: dir) { dfd, tmp, shown in
            guard symlinkat(target, dfd, tmp) == 0 else { throw ioError("symlink \(shown)") }
        }
    }

    private static func openParent(_ path: String) throws -> (DirectoryHandle, String) {
        let dir = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw ioError("open \(dir)") }
        return (try DirectoryHandle(adopting: dfd), name)
    }

    /// The temporary name for `name`: a dot name with the writer's pid, short enough for `NAME_MAX` whatever
    /// the length of `name` (a ref's file name may be 255 bytes).
    static func temporaryName(for name: String) -> String {
        var stem = Substring(name)
        while stem.utf8.count > 160 { stem = stem.dropLast() }
        return ".\(stem)\(marker)\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Lets `create` make the temporary entry in `dir`, renames it over `name` and syncs the directory.
    /// The temporary entry is removed if anything before the rename fails.
    private static func replace(_ name: String, in dir: DirectoryHandle,
                                create: (_ dfd: Int32, _ tmp: String, _ shown: String) throws -> Void) throws {
        try DirectoryHandle.checkComponent(name)
        let tmp = temporaryName(for: name)
        do {
            try create(dir.fd, tmp, tmp)
            guard renameat(dir.fd, tmp, dir.fd, name) == 0 else { throw ioError("rename to \(name)") }
        } catch {
            unlinkat(dir.fd, tmp, 0)
            throw error
        }
        guard fsync(dir.fd) == 0 else { throw ioError("fsync the directory of \(name)") }
    }

    /// `fsync` on a directory, making a rename or unlink in it durable.
    public static func syncDirectory(_ dir: String) throws {
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw ioError("open \(dir)") }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else { throw ioError("fsync \(dir)") }
    }

    static let marker = ".tmp-"

    /// Removes the temporary entries that writers which no longer run left in `dir` (and, with `recursive`, in the
    /// directories below it, not following symlinks). Returns their paths relative to `dir`.
    @discardableResult
    public static func sweep(_ dir: String, recursive: Bool = false) -> [String] {
        let entries: [String]
        if recursive {
            var all: [String] = []
            let walker = FileManager.default.enumerator(atPath: dir)
            while let item = walker?.nextObject() as? String { all.append(item) }
            entries = all
        } else {
            entries = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        }
        var removed: [String] = []
        for entry in entries {
            let name = (entry as NSString).lastPathComponent
            guard name.hasPrefix("."), let range = name.range(of: marker, options: .backwards) else { continue }
            let parts = name[range.upperBound...].split(separator: "-")
            guard parts.count == 2, let pid = Int32(parts[0]), UInt32(parts[1]) != nil else { continue }
            // Only entries of processes that are gone: this process or a live one may be writing still.
            guard pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            if unlink("\(dir)/\(entry)") == 0 { removed.append(entry) }
        }
        return removed
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
    if code == ENOSPC || code == EDQUOT {
        return FerryError(.noSpace, "\(what): no space left on device", cause: code)
    }
    return FerryError(.failed, "\(what): \(errnoString(code))", cause: code)
}

/// `mkdir -p` with mode 0755; errors keep their errno (so a full disk reports `NoSpace`).
public func makeDirectory(_ path: String) throws {
    var current = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/") {
        current += "/" + part
        if mkdir(current, 0o755) != 0 && errno != EEXIST {
            throw ioError("create \(current)")
        }
    }
}
