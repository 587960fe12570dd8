internal import CArchive
import FerryCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Walks a directory tree through descriptors (`O_NOFOLLOW`) and writes its entries to the tar.
final class TreeWriter {
    let tar: OpaquePointer
    let sink: LayerSink
    /// First entry name of each multiply-linked inode, for hard links.
    private var firstNames: [FileIdentity: String] = [:]
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: LibArchive.chunkSize, alignment: 16)

    struct FileIdentity: Hashable {
        var dev: UInt
        var ino: UInt
    }

    init(tar: OpaquePointer, sink: LayerSink) {
        self.tar = tar
        self.sink = sink
    }

    deinit { buffer.deallocate() }

    func add(directory: OpenDirectory, prefix: String) throws {
        let (names, undecodable) = try directory.names()
        guard undecodable.isEmpty else {
            throw FerryError.invalidArgument("\(EntryPath.shown(prefix.isEmpty ? "." : prefix)) holds a name that is not UTF-8")
        }
        for name in names.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let path = prefix + name
            var st = stat()
            guard fstatat(directory.fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw FerryError.failed("cannot stat \(EntryPath.shown(path)): \(errnoString())")
            }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                try header(path, type: LibArchive.directory, st: st)
                switch directory.openSubdirectory(name) {
                case .success(let sub): try add(directory: sub, prefix: path + "/")
                case .failure(let err): throw FerryError.failed("cannot open \(EntryPath.shown(path)): \(err.text)")
                }
            case S_IFREG:
                let identity = FileIdentity(dev: UInt(st.st_dev), ino: UInt(st.st_ino))
                if st.st_nlink > 1, let first = firstNames[identity] {
                    try header(path, type: LibArchive.regular, st: st, hardlink: first)
                } else {
                    if st.st_nlink > 1 { firstNames[identity] = path }
                    try file(name, path: path, in: directory, st: st)
                }
            case S_IFLNK:
                try header(path, type: LibArchive.symlink, st: st, symlink: try linkTarget(name, path: path, in: directory))
            default:
                throw FerryError.invalidArgument(
                    "\(EntryPath.shown(path)) is a device, FIFO or socket; a layer holds only files, directories and links")
            }
        }
    }

    private func linkTarget(_ name: String, path: String, in directory: OpenDirectory) throws -> String {
        var bytes = [UInt8](repeating: 0, count: 4097)
        let n = bytes.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress?.assumingMemoryBound(to: CChar.self) else { return -1 }
            return readlinkat(directory.fd, name, base, raw.count)
        }
        guard n >= 0, n < bytes.count else {
            throw FerryError.failed("cannot read symlink \(EntryPath.shown(path)): \(errnoString())")
        }
        guard let target = String(validating: bytes[0..<n], as: UTF8.self) else {
            throw FerryError.invalidArgument("symlink \(EntryPath.shown(path)) has a target that is not UTF-8")
        }
        return target
    }

    private func file(_ name: String, path: String, in directory: OpenDirectory, st: stat) throws {
        let fd = openat(directory.fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { throw FerryError.failed("cannot open \(EntryPath.shown(path)): \(errnoString())") }
        defer { close(fd) }
        try header(path, type: LibArchive.regular, st: st, size: Int64(st.st_size))
        if st.st_size > 0 { try sink.beginContent() }
        var remaining = Int64(st.st_size)
        while true {
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw FerryError.failed("cannot read \(EntryPath.shown(path)): \(errnoString())")
            }
            if n == 0 { break }
            guard Int64(n) <= remaining else {
                throw FerryError.failed("\(EntryPath.shown(path)) grew while it was being written")
            }
            remaining -= Int64(n)
            guard let base = buffer.baseAddress, archive_write_data(tar, base, n) == n else {
                throw sink.failure(tar, "cannot write \(EntryPath.shown(path))")
            }
        }
        guard remaining == 0 else { throw FerryError.failed("\(EntryPath.shown(path)) shrank while it was being written") }
        if st.st_size > 0 { try sink.endContent() }
        guard archive_write_finish_entry(tar) == ARCHIVE_OK else {
            throw sink.failure(tar, "cannot write \(EntryPath.shown(path))")
        }
    }

    private func header(
        _ path: String, type: UInt32, st: stat, size: Int64 = 0, hardlink: String? = nil, symlink: String? = nil
    ) throws {
        guard let entry = archive_entry_new() else { throw FerryError.failed("libarchive: out of memory") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname_utf8(entry, path)
        archive_entry_set_filetype(entry, type)
        archive_entry_set_perm(entry, st.st_mode & 0o7777)
        archive_entry_set_uid(entry, 0)
        archive_entry_set_gid(entry, 0)
        archive_entry_set_mtime(entry, st.st_mtim.tv_sec, 0)
        archive_entry_set_size(entry, size)
        if let hardlink { archive_entry_set_hardlink_utf8(entry, hardlink) }
        if let symlink { archive_entry_set_symlink_utf8(entry, symlink) }
        // A warning means libarchive changed something (a name it could not convert): refuse, never mangle.
        guard archive_write_header(tar, entry) == ARCHIVE_OK else {
            throw sink.failure(tar, "cannot write \(EntryPath.shown(path))")
        }
        sink.chunked?.entry(type: type, name: path, mode: st.st_mode & 0o7777, mtime: st.st_mtim.tv_sec, size: size,
                            hardlink: hardlink, symlink: symlink)
    }
}
