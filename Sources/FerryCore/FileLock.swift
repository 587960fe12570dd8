import Foundation
import Synchronization

/// An exclusive `flock(2)` on a lock file, held until ``unlock()`` or deinit.
///
/// flock locks belong to the open file description, so two threads of one process that each open the file
/// exclude each other just as two processes do: deploys of one ref are serialized either way. Taking the lock
/// blocks: async code takes it through ``onOwnThread(_:)``.
public final class FileLock: Sendable {
    private let fd: Mutex<Int32>

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
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            let error = ioError("lock \(shown)")
            close(fd)
            throw error
        }
        self.fd = Mutex(fd)
    }

    public func unlock() {
        fd.withLock { fd in
            if fd >= 0 {
                close(fd)
                fd = -1
            }
        }
    }

    deinit { unlock() }
}

/// Runs a blocking `body` (a D-Bus call that waits for a whole deploy, a file lock) on a thread of its own and
/// returns its result, so that it never holds one of the few threads of Swift's cooperative pool.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
