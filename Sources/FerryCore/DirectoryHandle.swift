#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif
import Foundation

/// An open directory, and safe access to what lies beneath it.
///
/// Every path is walked one component at a time with `openat(2)` and `O_NOFOLLOW`: a symlink anywhere on the way
/// is refused, `..` and empty components are refused before any system call, and files must be regular.
/// This is how the root helper reads a layout a user staged: a user cannot redirect a read with a symlink,
/// a FIFO (opened `O_NONBLOCK`, then refused), or a device node.
public final class DirectoryHandle: @unchecked Sendable {
    public let fd: Int32

    /// Takes ownership of an open directory descriptor; it is closed on deinit.
    public init(adopting fd: Int32) throws {
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw FerryError.invalidArgument("staging descriptor is not a directory")
        }
        self.fd = fd
    }

    /// Opens a directory by path (`O_DIRECTORY | O_NOFOLLOW`; the last component must not be a symlink).
    public convenience init(path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw FerryError.failed("cannot open directory \(path): \(errnoString())") }
        try self.init(adopting: fd)
    }

    deinit { close(fd) }

    /// Splits a relative path into checked components.
    public static func components(of path: String) throws -> [String] {
        guard !path.isEmpty, !path.hasPrefix("/"), !path.utf8.contains(0) else {
            throw FerryError.invalidArgument("unsafe path \(path.prefix(200).debugDescription)")
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for part in parts where part.isEmpty || part == "." || part == ".." {
            throw FerryError.invalidArgument("unsafe path \(path.prefix(200).debugDescription)")
        }
        return parts
    }

    /// Opens the directory at `path` beneath this one, following no symlinks. `nil` when it does not exist.
    public func openDirectory(_ path: String) throws -> DirectoryHandle? {
        var current = try dup(checking: fd)
        for part in try DirectoryHandle.components(of: path) {
            let next = openat(current, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let err = errno
            close(current)
            if next < 0 {
                if err == ENOENT { return nil }
                throw FerryError.invalidArgument("\(path): not a plain directory (\(String(cString: strerror(err))))")
            }
            current = next
        }
        return try DirectoryHandle(adopting: current)
    }

    /// What a file opened beneath the directory must satisfy.
    public struct FilePolicy: Sendable {
        /// Refuse files with more than one hard link (a hard link to a file the caller cannot read is how a
        /// user would make root read it for them).
        public var refuseHardLinks = false
        /// The uid the file must belong to, when set.
        public var owner: uid_t?
        public init(refuseHardLinks: Bool = false, owner: uid_t? = nil) {
            self.refuseHardLinks = refuseHardLinks
            self.owner = owner
        }
        public static let plain = FilePolicy()
    }

    /// Opens a regular file beneath this directory for reading. Returns the descriptor and its size.
    /// Throws `nil`-free: a missing file is `FerryError.failed` with "not found" unless `missingOK`.
    public func openFile(_ path: String, policy: FilePolicy = .plain) throws -> (fd: Int32, size: Int64)? {
        let parts = try DirectoryHandle.components(of: path)
        var dirfd = try dup(checking: fd)
        defer { close(dirfd) }
        for part in parts.dropLast() {
            let next = openat(dirfd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 {
                if errno == ENOENT { return nil }
                throw FerryError.invalidArgument("\(path): \(part) is not a plain directory")
            }
            close(dirfd)
            dirfd = next
        }
        // O_NONBLOCK: opening a FIFO must not hang; O_NOCTTY: a tty must not become ours.
        let file = openat(dirfd, parts[parts.count - 1], O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        if file < 0 {
            let err = errno
            if err == ENOENT { return nil }
            if err == ELOOP { throw FerryError.invalidArgument("\(path) is a symlink") }
            throw FerryError.invalidArgument("\(path): \(String(cString: strerror(err)))")
        }
        var st = stat()
        guard fstat(file, &st) == 0 else {
            close(file)
            throw FerryError.failed("\(path): fstat failed")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(file)
            throw FerryError.invalidArgument("\(path) is not a regular file")
        }
        if policy.refuseHardLinks, st.st_nlink != 1 {
            close(file)
            throw FerryError.invalidArgument("\(path) has \(st.st_nlink) hard links")
        }
        if let owner = policy.owner, st.st_uid != owner {
            close(file)
            throw FerryError.invalidArgument("\(path) is not owned by the caller")
        }
        // Back to blocking reads for the regular file.
        let flags = fcntl(file, F_GETFL)
        _ = fcntl(file, F_SETFL, flags & ~O_NONBLOCK)
        return (file, Int64(st.st_size))
    }

    /// Reads a whole regular file beneath this directory, refusing more than `maxSize` bytes.
    /// Returns `nil` when the file does not exist.
    public func readFile(_ path: String, maxSize: Int, policy: FilePolicy = .plain) throws -> Data? {
        guard let (file, _) = try openFile(path, policy: policy) else { return nil }
        defer { close(file) }
        return try readAll(fd: file, maxSize: maxSize, what: path)
    }

    /// Whether an entry exists beneath this directory (without following a final symlink).
    public func exists(_ path: String) -> Bool {
        guard let parts = try? DirectoryHandle.components(of: path) else { return false }
        var st = stat()
        if parts.count == 1 { return fstatat(fd, parts[0], &st, AT_SYMLINK_NOFOLLOW) == 0 }
        guard let dir = try? openDirectory(parts.dropLast().joined(separator: "/")) else { return false }
        return fstatat(dir.fd, parts[parts.count - 1], &st, AT_SYMLINK_NOFOLLOW) == 0
    }
}

/// Reads from `fd` until EOF; refuses more than `maxSize` bytes (the extra byte is how we notice).
public func readAll(fd: Int32, maxSize: Int, what: String) throws -> Data {
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw FerryError.failed("\(what): read failed: \(errnoString())")
        }
        if n == 0 { return data }
        data.append(contentsOf: buffer[0..<n])
        if data.count > maxSize { throw FerryError.invalidArgument("\(what) is larger than \(maxSize) bytes") }
    }
}

/// Reads `fd` from its current offset to the end in chunks of `chunkSize`, handing each to `body`
/// (`read(2)`, retried on EINTR). `what` names the file in errors.
public func readChunks(fd: Int32, chunkSize: Int = 64 * 1024, what: String,
                       _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, chunkSize), alignment: 16)
    defer { buffer.deallocate() }
    while true {
        let n = read(fd, buffer.baseAddress, buffer.count)
        if n < 0 {
            if errno == EINTR { continue }
            throw ioError("read \(what)")
        }
        if n == 0 { return }
        try body(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
    }
}

func dup(checking fd: Int32) throws -> Int32 {
    let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
    guard copy >= 0 else { throw FerryError.failed("dup failed: \(errnoString())") }
    return copy
}

/// `strerror(errno)` as a String.
public func errnoString(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }
