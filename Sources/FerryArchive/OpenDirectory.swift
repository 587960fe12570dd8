#if canImport(Glibc)
    import Glibc
#endif
import FerryCore

/// An owned directory descriptor, closed on deinit, with the few `*at` calls extraction needs.
///
/// Every open uses `O_NOFOLLOW`: a symlink is never followed, only seen and refused or removed.
final class OpenDirectory {
    let fd: Int32

    init(adopting fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    /// A second descriptor for the same directory (`F_DUPFD_CLOEXEC`).
    static func duplicate(_ fd: Int32) throws -> OpenDirectory {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw FerryError.failed("cannot duplicate a directory descriptor: \(errnoString())") }
        return OpenDirectory(adopting: copy)
    }

    /// What sits at `name` in this directory, without following a symlink.
    enum Kind { case missing, directory, regular, symlink, other }

    func kind(of name: String) throws -> Kind {
        var st = stat()
        if fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 {
            let err = errno
            if err == ENOENT { return .missing }
            throw FerryError.failed("cannot stat \(EntryPath.shown(name)): \(errnoString(err))")
        }
        switch st.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFREG: return .regular
        case S_IFLNK: return .symlink
        default: return .other
        }
    }

    /// Opens the subdirectory `name` (`O_DIRECTORY | O_NOFOLLOW`); the errno when it fails (`ELOOP` for a symlink).
    func openSubdirectory(_ name: String) -> Result<OpenDirectory, Errno> {
        let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard child >= 0 else { return .failure(Errno(code: errno)) }
        return .success(OpenDirectory(adopting: child))
    }

    /// The names in this directory, without `.` and `..`, in no particular order; names that are not valid
    /// UTF-8 come back as bytes in `undecodable` (a String would not give the same bytes back to the kernel).
    func names() throws -> (names: [String], undecodable: [[UInt8]]) { try DirectoryHandle.entries(of: fd) }

    /// `fstat` of this directory.
    func identity() throws -> (dev: UInt, ino: UInt) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FerryError.failed("cannot stat a directory: \(errnoString())") }
        return (UInt(st.st_dev), UInt(st.st_ino))
    }
}

/// An errno value carried in a `Result`.
struct Errno: Error {
    let code: Int32
    var text: String { errnoString(code) }
}

/// Deletes trees without following symlinks, holding at most two descriptors at any depth.
///
/// Descends with `openat(O_NOFOLLOW | O_DIRECTORY)`, climbs back with `openat("..")` and checks that the
/// directory it reached is the one it came from (device and inode), so a tree moved while it is being deleted
/// stops the deletion instead of steering it elsewhere.
/// Stops: a symlink inside an extracted tree (`lib -> /`) making cleanup delete the system.
enum TreeRemover {
    /// Removes `name` inside `parent`: a directory with everything beneath it, or any other entry.
    /// A missing entry is not an error.
    static func remove(_ name: String, in parent: OpenDirectory) throws {
        switch try parent.kind(of: name) {
        case .missing: return
        case .directory: break
        default:
            guard unlinkat(parent.fd, name, 0) == 0 || errno == ENOENT else {
                throw FerryError.failed("cannot remove \(EntryPath.shown(name)): \(errnoString())")
            }
            return
        }
        guard case .success(let top) = parent.openSubdirectory(name) else {
            throw FerryError.failed("cannot open \(EntryPath.shown(name)) for removal: \(errnoString())")
        }
        try emptyDirectory(top)
        guard unlinkat(parent.fd, name, AT_REMOVEDIR) == 0 || errno == ENOENT else {
            throw FerryError.failed("cannot remove directory \(EntryPath.shown(name)): \(errnoString())")
        }
    }

    /// Removes everything inside `root`, leaving `root` itself.
    static func emptyDirectory(_ root: OpenDirectory) throws {
        struct Frame {
            var identity: (dev: UInt, ino: UInt)
            var pending: [String]
            var nameInParent: String
        }
        var current = root
        var frames = [Frame(identity: try root.identity(), pending: try listing(root), nameInParent: "")]
        while let last = frames.indices.last {
            if let name = frames[last].pending.popLast() {
                switch try current.kind(of: name) {
                case .missing:
                    continue
                case .directory:
                    switch current.openSubdirectory(name) {
                    case .success(let child):
                        frames.append(Frame(identity: try child.identity(), pending: try listing(child), nameInParent: name))
                        current = child
                    case .failure(let err):
                        throw FerryError.failed("cannot open \(EntryPath.shown(name)) for removal: \(err.text)")
                    }
                default:
                    guard unlinkat(current.fd, name, 0) == 0 || errno == ENOENT else {
                        throw FerryError.failed("cannot remove \(EntryPath.shown(name)): \(errnoString())")
                    }
                }
                continue
            }
            let done = frames.removeLast()
            guard let parentFrame = frames.last else { return }
            guard case .success(let up) = current.openSubdirectory("..") else {
                throw FerryError.failed("cannot climb back while removing a tree: \(errnoString())")
            }
            let reached = try up.identity()
            guard reached.dev == parentFrame.identity.dev, reached.ino == parentFrame.identity.ino else {
                throw FerryError.failed("a directory moved while its tree was being removed; stopped")
            }
            current = up
            guard unlinkat(current.fd, done.nameInParent, AT_REMOVEDIR) == 0 || errno == ENOENT else {
                throw FerryError.failed(
                    "cannot remove directory \(EntryPath.shown(done.nameInParent)): \(errnoString())")
            }
        }
    }

    private static func listing(_ dir: OpenDirectory) throws -> [String] {
        let (names, undecodable) = try dir.names()
        // Names that are not UTF-8 cannot round-trip through String; remove them by their bytes right away.
        for bytes in undecodable {
            let result = (bytes + [0]).withUnsafeBufferPointer { buffer -> Int32 in
                guard let base = buffer.baseAddress else { return -1 }
                return base.withMemoryRebound(to: CChar.self, capacity: buffer.count) { name in
                    var st = stat()
                    guard fstatat(dir.fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return -1 }
                    if (st.st_mode & S_IFMT) == S_IFDIR {
                        // Rename to a UTF-8 name, then let the walk handle it like any other directory.
                        return renameat(dir.fd, name, dir.fd, ".ferry-remove-\(st.st_ino)")
                    }
                    return unlinkat(dir.fd, name, 0)
                }
            }
            guard result == 0 else {
                throw FerryError.failed("cannot remove an entry with a non-UTF-8 name: \(errnoString())")
            }
        }
        if undecodable.isEmpty { return names }
        return try dir.names().names
    }
}
