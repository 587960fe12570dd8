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
public final class DirectoryHandle: Sendable {
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
    ///
    /// The helper reads staged files with `owner` set to the caller's uid: a hard link to a file of root's (or of
    /// another user's), which is how a user would make root read it for them, has that file's owner and is refused,
    /// so a link count check is not needed on top.
    public struct FilePolicy: Sendable {
        /// The uid the file must belong to, when set.
        public var owner: uid_t?
        public init(owner: uid_t? = nil) {
            self.owner = owner
        }
        public static let plain = FilePolicy()
    }

    /// Opens a regular file beneath this directory for reading. Returns the descriptor and its size.
    /// `nil` when the file, or a directory on its path, does not exist; a symlink, a non-regular file or a file
    /// the policy refuses is `InvalidArgument`.
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

// MARK: - One level at a time, never following a symlink (state trees)

extension DirectoryHandle {
    /// Checks that `name` is one plain path component.
    public static func checkComponent(_ name: String) throws {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/"), !name.utf8.contains(0),
            name.utf8.count <= 255
        else { throw FerryError.invalidArgument("unsafe file name \(name.prefix(200).debugDescription)") }
    }

    /// Opens the subdirectory `name` (one component), creating it with `mode` when it is missing.
    /// A symlink or any other kind of entry in its place is refused (`openat` with `O_NOFOLLOW | O_DIRECTORY`).
    public func makeSubdirectory(_ name: String, mode: mode_t = 0o755) throws -> DirectoryHandle {
        try DirectoryHandle.checkComponent(name)
        if mkdirat(fd, name, mode) != 0, errno != EEXIST { throw ioError("create directory \(name)") }
        let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard child >= 0 else {
            throw FerryError.failed("\(name) is not a plain directory: \(errnoString())")
        }
        return try DirectoryHandle(adopting: child)
    }

    /// The names in this directory, without `.` and `..` (names that are not UTF-8 are left out).
    public func entryNames() throws -> [String] { try DirectoryHandle.entries(of: fd).names }

    /// The names in the directory `fd`, without `.` and `..`, in no particular order; names that are not valid
    /// UTF-8 come back as bytes in `undecodable` (a String would not give the same bytes back to the kernel).
    /// The corresponding C functions are `fdopendir` and `readdir`, on a duplicate of the descriptor.
    public static func entries(of fd: Int32) throws -> (names: [String], undecodable: [[UInt8]]) {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0, let dir = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            throw FerryError.failed("cannot list a directory: \(errnoString())")
        }
        defer { closedir(dir) }
        rewinddir(dir)
        var names: [String] = []
        var undecodable: [[UInt8]] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw FerryError.failed("cannot list a directory: \(errnoString())") }
                return (names, undecodable)
            }
            let bytes: [UInt8] = withUnsafeBytes(of: &entry.pointee.d_name) { raw in
                Array(raw.prefix(while: { $0 != 0 }))
            }
            if bytes == [0x2e] || bytes == [0x2e, 0x2e] { continue }
            if let name = String(validating: bytes, as: UTF8.self) {
                names.append(name)
            } else {
                undecodable.append(bytes)
            }
        }
    }

    /// The file type bits (`S_IFMT`) of the entry `name`, not following a symlink; `nil` when it is missing.
    public func entryType(_ name: String) -> mode_t? {
        var st = stat()
        guard (try? DirectoryHandle.checkComponent(name)) != nil,
            fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0
        else { return nil }
        return st.st_mode & S_IFMT
    }

    /// The target of the symlink `name`; `nil` when there is no symlink of that name.
    /// The corresponding C function is `readlinkat`.
    public func readLink(_ name: String) -> String? {
        guard entryType(name) == S_IFLNK else { return nil }
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlinkat(fd, name, &buffer, buffer.count)
        guard n > 0, n < buffer.count else { return nil }
        return String(validating: buffer[0..<n], as: UTF8.self)
    }

    /// Removes the entry `name` if it is not a directory; a missing entry is not an error.
    public func unlinkEntry(_ name: String) throws {
        try DirectoryHandle.checkComponent(name)
        guard unlinkat(fd, name, 0) == 0 || errno == ENOENT else { throw ioError("remove \(name)") }
    }

    /// Removes the directory `name` if it is empty; returns whether it is gone.
    @discardableResult
    public func removeEmptyDirectory(_ name: String) -> Bool {
        guard (try? DirectoryHandle.checkComponent(name)) != nil else { return false }
        return unlinkat(fd, name, AT_REMOVEDIR) == 0 || errno == ENOENT
    }

    /// `fsync` of this directory, making a rename or unlink in it durable.
    public func sync() throws {
        guard fsync(fd) == 0 else { throw ioError("fsync a directory") }
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
            throw ioError("\(what): read failed")
        }
        if n == 0 { return data }
        data.append(contentsOf: buffer[0..<n])
        if data.count > maxSize {
            throw FerryError(.invalidArgument, "\(what) is larger than \(maxSize) bytes", cause: EFBIG)
        }
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
