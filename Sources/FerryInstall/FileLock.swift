import FerryCore
import Foundation

/// An exclusive `flock(2)` on a lock file, held until ``unlock()`` or deinit.
///
/// flock locks belong to the open file description, so two threads of one process that each open the file
/// exclude each other just as two processes do: deploys of one ref are serialized either way.
public final class FileLock {
    private var fd: Int32

    /// Blocks until the lock is held.
    public init(path: String) throws {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw ioError("open lock \(path)") }
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            let error = ioError("lock \(path)")
            close(fd)
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
