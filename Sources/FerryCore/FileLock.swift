import Foundation

/// An exclusive `flock(2)` on a lock file, held until ``unlock()`` or deinit.
///
/// flock locks belong to the open file description, so two threads of one process that each open the file
/// exclude each other just as two processes do: deploys of one ref are serialized either way.
public final class FileLock {
    private var fd: Int32

    /// Blocks until the lock is held.
    public convenience init(path: String) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw ioError("open lock \(path)") }
        try self.init(locking: fd, shown: path)
    }

    /// Blocks until the lock file `name` inside `directory` is held (created when missing, never a symlink).
    public convenience init(in directory: DirectoryHandle, name: String) throws {
        try DirectoryHandle.checkComponent(name)
        let fd = openat(directory.fd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw ioError("open lock \(name)") }
        try self.init(locking: fd, shown: name)
    }

    private init(locking fd: Int32, shown: String) throws {
        self.fd = fd
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            let error = ioError("lock \(shown)")
            close(fd)
            self.fd = -1
            throw error
        }
    }

    public func unlock() {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
    }

    deinit { unlock() }
}
