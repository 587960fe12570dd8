internal import CArchive
import FerryCore

#if canImport(Glibc)
    import Glibc
#endif

/// What one ``LayerExtractor/apply(layerFD:compression:diffID:)`` call extracted.
public struct ExtractionStats: Sendable, Equatable {
    /// Tar entries read, whiteouts included.
    public var entries: Int
    /// Regular file bytes written.
    public var bytes: Int64

    public init(entries: Int = 0, bytes: Int64 = 0) {
        self.entries = entries
        self.bytes = bytes
    }
}

/// Applies an image's layers, in order, to a directory: safe extraction of attacker-supplied tars.
///
/// The caller creates a fresh, empty directory that no other user can write, opens it, and hands it over as
/// `target`; on any thrown error the caller deletes the whole directory (``removeTree(_:)``) and does not use
/// it: a failed `apply` leaves a partial tree, and a diff_id mismatch is only known once the layer has been
/// read to its end. Nothing is ever written outside `target`.
///
/// Every filesystem call is relative to a directory descriptor walked down from `target` one component at a
/// time with `O_NOFOLLOW | O_DIRECTORY`; paths are never joined into strings for the kernel to resolve.
/// Refused with ``FerryError/Code/unsafeArchive`` (the message names the entry):
/// absolute paths, `..` components, entries whose parent is a symlink or not a directory, hard links whose
/// target is missing, not a regular file, or outside the tree, character and block devices, FIFOs, sockets,
/// names that are not UTF-8, paths over `maxPathLength`, files over `maxEntrySize`, totals over `maxTotalSize`,
/// more than `maxEntries` entries, a compression other than the one declared.
/// Neutralised without error: setuid, setgid and sticky bits on files (`mode & 0o777`), setgid on directories
/// (`mode & 0o1777`), ownership in the archive (see ``Ownership``); with `.root`, group and other write bits
/// too, so no user can write inside a system deployment.
///
/// Whiteouts follow the OCI image spec: `.wh.NAME` removes NAME as lower layers (earlier `apply` calls) left
/// it, `.wh..wh..opq` in a directory removes everything lower layers put in it; neither touches what the
/// current layer writes, and whiteout files are never written. Other `.wh..wh.` names (AUFS metadata) are
/// skipped. Directory permissions are set when the layer ends, so a read-only directory can still be filled.
/// Limits on total size and entry count add up over every layer applied with one extractor.
public final class LayerExtractor {
    /// Who owns what extraction writes.
    public enum Ownership: Sendable, Equatable {
        /// Everything is owned by uid 0 / gid 0 (`fchown`); the process must be root. System deployments.
        case root
        /// Everything is owned by the extracting user; nothing is ever `chown`ed. `--user` deployments.
        /// Directories keep the owner's `rwx` bits so later layers and removal keep working.
        case currentUser
    }

    private let target: DirectoryHandle
    public let limits: ExtractionLimits
    public let ownership: Ownership
    private var totalEntries = 0
    private var totalBytes: Int64 = 0
    /// The parent directory of the previous entry: tar order puts siblings together.
    private var parentCache: (path: EntryPath, dir: OpenDirectory)?
    /// The content digests the layer being applied announces for its regular files, by path (a zstd:chunked
    /// layer's table of contents): hints, each checked against the data before it is relied on.
    private var contentDigests: [String: Digest] = [:]

    /// An identical file already on disk to link instead of writing one: asked with the content digest a file
    /// announces, its final permission bits, modification time and size; answers a directory and a name in it.
    /// A file linked this way is still read from the archive and hashed: its data must have that digest, or the
    /// layer is refused. (The engine answers from its object store.)
    public var existingFile: ((Digest, UInt32, Int, Int64) -> (directory: Int32, name: String)?)?

    /// Extracts into `target` (an open directory; see the type's documentation for what the caller owes).
    public init(target: DirectoryHandle, limits: ExtractionLimits = .standard, ownership: Ownership) {
        self.target = target
        self.limits = limits
        self.ownership = ownership
    }

    /// Applies one layer on top of what earlier calls extracted.
    ///
    /// Reads `layerFD` (not closed; read from its current offset) once: it is decompressed as `compression`
    /// says, and the uncompressed tar stream, trailing padding included, must hash to `diffID`
    /// (``FerryError/Code/digestMismatch`` otherwise, "layer diff_id mismatch").
    /// Memory stays bounded whatever the layer's size: data streams through 128 KiB buffers.
    ///
    /// `contentDigests` (paths relative to the layer's root, as a chunked layer's TOC gives them) lets a file be
    /// linked from ``existingFile`` instead of written, once its data proved to have that digest.
    public func apply(layerFD: Int32, compression: LayerCompression, diffID: Digest,
                      contentDigests: [String: Digest] = [:]) throws -> ExtractionStats {
        self.contentDigests = contentDigests
        defer { self.contentDigests = [:] }
        return try LibArchive.withUTF8Locale {
            try applyLayer(layerFD: layerFD, compression: compression, diffID: diffID)
        }
    }

    private func applyLayer(layerFD: Int32, compression: LayerCompression, diffID: Digest) throws -> ExtractionStats {
        parentCache = nil
        defer { parentCache = nil }
        let stream = try DecompressedStream(
            fd: layerFD, compression: compression, algorithm: diffID.algorithm, maxSize: limits.maxStreamSize)
        guard let tar = archive_read_new() else { throw FerryError.failed("libarchive: out of memory") }
        defer { archive_read_free(tar) }
        archive_read_support_format_tar(tar)
        let context = Unmanaged.passUnretained(stream).toOpaque()
        guard archive_read_open(tar, context, nil, decompressedStreamRead, nil) == ARCHIVE_OK else {
            throw stream.failure
                ?? FerryError.unsafeArchive("layer is not a tar archive: \(LibArchive.errorMessage(tar))")
        }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: LibArchive.chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        var layer = LayerState()
        var stats = ExtractionStats()
        while true {
            var entry: OpaquePointer?
            let status = archive_read_next_header(tar, &entry)
            if status == ARCHIVE_EOF { break }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
                throw stream.failure
                    ?? FerryError.unsafeArchive("layer is not a readable tar archive: \(LibArchive.errorMessage(tar))")
            }
            let reader = EntryReader(tar: tar, entry: entry, stream: stream, buffer: buffer)
            try extract(reader, layer: &layer, stats: &stats)
        }
        try stream.drain()
        let actual = stream.digest()
        guard actual == diffID else {
            throw FerryError.digestMismatch("layer diff_id mismatch: expected \(diffID), got \(actual)")
        }
        try finish(layer)
        return stats
    }

    /// Deletes `path` and everything beneath it without following any symlink inside it.
    ///
    /// The last component is removed as what it is: a symlink is unlinked, never followed; a directory is
    /// emptied through descriptors (see `unlinkat(2)`). A missing path is not an error. The path up to the
    /// last component is the caller's and is resolved normally.
    public static func removeTree(_ path: String) throws {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        let name: Substring
        let parentPath: String
        if let slash = trimmed.lastIndex(of: "/") {
            name = trimmed[trimmed.index(after: slash)...]
            parentPath = slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
        } else {
            name = trimmed
            parentPath = "."
        }
        guard !name.isEmpty, name != ".", name != ".." else {
            throw FerryError.invalidArgument("refusing to remove \(EntryPath.shown(path))")
        }
        let fd = open(parentPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return }
            throw FerryError.failed("cannot open \(EntryPath.shown(parentPath)): \(errnoString())")
        }
        try TreeRemover.remove(String(name), in: OpenDirectory(adopting: fd))
    }

    /// Removes `name` (a tree or any other entry) inside the open directory `parent`, never following a symlink.
    public static func removeTree(named name: String, in parent: DirectoryHandle) throws {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/") else {
            throw FerryError.invalidArgument("refusing to remove \(EntryPath.shown(name))")
        }
        try TreeRemover.remove(name, in: OpenDirectory.duplicate(parent.fd))
    }

    // MARK: - Entries

    private func extract(_ reader: EntryReader, layer: inout LayerState, stats: inout ExtractionStats) throws {
        stats.entries += 1
        totalEntries += 1
        guard totalEntries <= limits.maxEntries else {
            throw FerryError.unsafeArchive("layer has too many entries (limit \(limits.maxEntries))")
        }
        let raw = try reader.pathname()
        let shown = EntryPath.shown(raw)
        let path = try EntryPath(raw, what: "entry", limits: limits)
        let type = reader.fileType
        let hardlink = try reader.hardlink()
        if path.isRoot {
            // "./" is the target itself, which belongs to the caller.
            guard type == LibArchive.directory, hardlink == nil else {
                throw FerryError.unsafeArchive("entry \(shown) would replace the extraction root")
            }
            return
        }
        if path.name.hasPrefix(".wh.") {
            try whiteout(path, shown: shown, layer: &layer)
            return
        }
        if let link = hardlink {
            try hardLink(path, to: link, shown: shown, layer: &layer)
            return
        }
        switch type {
        case LibArchive.regular:
            try regularFile(path, reader: reader, shown: shown, layer: &layer, stats: &stats)
        case LibArchive.directory:
            try directory(path, mode: reader.permissions & 0o1777, shown: shown, layer: &layer)
        case LibArchive.symlink:
            try symlink(path, to: reader.symlink, shown: shown, layer: &layer)
        case LibArchive.characterDevice, LibArchive.blockDevice:
            throw FerryError.unsafeArchive("entry \(shown): device nodes are not allowed")
        case LibArchive.fifo:
            throw FerryError.unsafeArchive("entry \(shown): FIFOs are not allowed")
        case LibArchive.socket:
            throw FerryError.unsafeArchive("entry \(shown): sockets are not allowed")
        default:
            throw FerryError.unsafeArchive("entry \(shown): unsupported entry type \(String(type, radix: 8))")
        }
    }

    private func regularFile(
        _ path: EntryPath, reader: EntryReader, shown: String, layer: inout LayerState, stats: inout ExtractionStats
    ) throws {
        let size = reader.size
        guard size <= limits.maxEntrySize else {
            throw FerryError.unsafeArchive(
                "entry \(shown): \(size) bytes is over the \(limits.maxEntrySize)-byte limit per file")
        }
        guard size <= limits.maxTotalSize - totalBytes else {
            throw FerryError.unsafeArchive(
                "entry \(shown): layers exceed the \(limits.maxTotalSize)-byte total size limit")
        }
        let dir = try parent(of: path, shown: shown, layer: &layer)
        try clearSlot(path.name, in: dir, keepDirectory: false)
        // Setuid, setgid and sticky bits are dropped: a setuid-root binary must not come out of an archive.
        let fileMode = ownership == .root ? reader.permissions & 0o755 : reader.permissions & 0o777
        if size > 0, let digest = contentDigests[path.components.joined(separator: "/")],
            let existing = existingFile?(digest, UInt32(fileMode), reader.mtime, size)
        {
            // The same file is on disk: the data is read and checked, and the file linked instead of written.
            var hasher = DigestHasher(digest.algorithm)
            var read: Int64 = 0
            while true {
                let n = try reader.readData()
                if n == 0 { break }
                read += Int64(n)
                guard read <= size else {
                    throw FerryError.unsafeArchive("entry \(shown): more data than its header declares")
                }
                hasher.update(UnsafeRawBufferPointer(start: reader.buffer, count: n))
            }
            guard read == size, hasher.finalize() == digest else {
                throw FerryError.unsafeArchive("entry \(shown): its data is not what the layer's table of contents "
                    + "says (\(digest.short))")
            }
            guard linkat(existing.directory, existing.name, dir.fd, path.name, 0) == 0 else {
                throw ioError("cannot link \(shown)", errno)
            }
            totalBytes += read
            stats.bytes += read
            layer.recordCreated(path)
            return
        }
        // O_EXCL | O_NOFOLLOW: a new inode every time, never a write through a link planted earlier.
        let fd = openat(dir.fd, path.name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ioError("cannot create \(shown)", errno) }
        defer { close(fd) }
        var written: Int64 = 0
        while true {
            let n = try reader.readData()
            if n == 0 { break }
            written += Int64(n)
            guard written <= size else {
                throw FerryError.unsafeArchive("entry \(shown): more data than its header declares")
            }
            if let err = writeFully(fd: fd, bytes: reader.buffer, count: n) {
                throw ioError("cannot write \(shown)", err)
            }
        }
        totalBytes += written
        stats.bytes += written
        try own(fd: fd, shown: shown)
        guard fchmod(fd, fileMode) == 0 else { throw ioError("cannot chmod \(shown)", errno) }
        var times = [timespec(tv_sec: 0, tv_nsec: (1 << 30) - 2 /* UTIME_OMIT */), timespec(tv_sec: reader.mtime, tv_nsec: 0)]
        _ = futimens(fd, &times)
        layer.recordCreated(path)
    }

    private func directory(_ path: EntryPath, mode: mode_t, shown: String, layer: inout LayerState) throws {
        let dir = try parent(of: path, shown: shown, layer: &layer)
        if try !clearSlot(path.name, in: dir, keepDirectory: true) {
            try makeDirectory(path.name, in: dir, shown: shown)
        }
        layer.directoryModes[path] = mode
        layer.recordCreated(path)
    }

    private func symlink(_ path: EntryPath, to target: String?, shown: String, layer: inout LayerState) throws {
        guard let target, !target.isEmpty, target.utf8.count <= limits.maxPathLength else {
            throw FerryError.unsafeArchive("entry \(shown): symlink target missing, not UTF-8, or too long")
        }
        let dir = try parent(of: path, shown: shown, layer: &layer)
        try clearSlot(path.name, in: dir, keepDirectory: false)
        // The link is created, never followed: every later walk opens with O_NOFOLLOW.
        guard symlinkat(target, dir.fd, path.name) == 0 else { throw ioError("cannot create symlink \(shown)", errno) }
        if ownership == .root, fchownat(dir.fd, path.name, 0, 0, AT_SYMLINK_NOFOLLOW) != 0 {
            throw ioError("cannot chown \(shown)", errno)
        }
        layer.recordCreated(path)
    }

    private func hardLink(_ path: EntryPath, to raw: String, shown: String, layer: inout LayerState) throws {
        let linked: EntryPath
        do {
            linked = try EntryPath(raw, what: "hard link target", limits: limits)
        } catch let error as FerryError {
            throw error.prefixed("entry \(shown)")
        }
        let linkedShown = EntryPath.shown(raw)
        guard !linked.isRoot else {
            throw FerryError.unsafeArchive("entry \(shown): hard link to the extraction root")
        }
        if linked == path {
            layer.recordCreated(path)
            return
        }
        // Resolved beneath the target like any entry: a link cannot reach /etc/shadow or a file behind a symlink.
        guard let linkedDir = try walk(to: linked.parent, create: false, shown: shown, layer: &layer),
            try linkedDir.kind(of: linked.name) == .regular
        else {
            throw FerryError.unsafeArchive(
                "entry \(shown): hard link target \(linkedShown) is not a regular file extracted before it")
        }
        let dir = try parent(of: path, shown: shown, layer: &layer)
        try clearSlot(path.name, in: dir, keepDirectory: false)
        guard linkat(linkedDir.fd, linked.name, dir.fd, path.name, 0) == 0 else {
            throw ioError("cannot create hard link \(shown) to \(linkedShown)", errno)
        }
        layer.recordCreated(path)
    }

    // MARK: - Whiteouts

    private static let opaqueMarker = ".wh..wh..opq"

    private func whiteout(_ path: EntryPath, shown: String, layer: inout LayerState) throws {
        // A whiteout may delete the directory the cache holds open.
        parentCache = nil
        let name = path.name
        if name == LayerExtractor.opaqueMarker {
            // Applied when the layer ends, so that entries of this layer, before or after the marker, stay.
            _ = try walk(to: path.parent, create: true, shown: shown, layer: &layer)
            layer.opaqueDirectories.insert(path.parent)
            return
        }
        if name.hasPrefix(".wh..wh.") { return }
        let hidden = String(name.dropFirst(4))
        guard !hidden.isEmpty, hidden != ".", hidden != "..", hidden.utf8.count <= 255 else {
            throw FerryError.unsafeArchive("entry \(shown): whiteout names no valid entry")
        }
        // A whiteout reached through a symlink is refused like any entry: it would delete outside the tree.
        guard let dir = try walk(to: path.parent, create: false, shown: shown, layer: &layer) else { return }
        try hideLower(path.parent.appending(hidden), name: hidden, in: dir, layer: layer)
    }

    /// Removes what lower layers left at `path` (`name` in `dir`); what the current layer wrote stays.
    private func hideLower(_ path: EntryPath, name: String, in dir: OpenDirectory, layer: LayerState) throws {
        if layer.created.contains(path) { return }
        if layer.ancestors.contains(path) {
            if case .success(let sub) = dir.openSubdirectory(name) { try prune(path, dir: sub, layer: layer) }
            return
        }
        try TreeRemover.remove(name, in: dir)
    }

    /// Removes everything in `dir` (at `path`) that lower layers put there, keeping the current layer's entries.
    private func prune(_ path: EntryPath, dir: OpenDirectory, layer: LayerState) throws {
        for name in try dir.names().names {
            let child = path.appending(name)
            if layer.created.contains(child) || layer.ancestors.contains(child) {
                if case .success(let sub) = dir.openSubdirectory(name) { try prune(child, dir: sub, layer: layer) }
            } else {
                try TreeRemover.remove(name, in: dir)
            }
        }
    }

    private func finish(_ layer: LayerState) throws {
        parentCache = nil
        for path in layer.opaqueDirectories {
            guard let dir = find(path) else { continue }
            try prune(path, dir: dir, layer: layer)
        }
        for (path, mode) in layer.directoryModes {
            guard let dir = find(path) else { continue }
            // A system deployment is writable by nobody but root: group and other write bits are dropped,
            // so an image cannot hand users a directory inside root-owned software.
            let final = ownership == .currentUser ? mode | 0o700 : mode & ~0o022
            guard fchmod(dir.fd, final) == 0 else { throw ioError("cannot chmod \(path.string)", errno) }
        }
    }

    // MARK: - Walking

    /// The parent directory of `path`, created (0755) where missing; refuses symlinks and non-directories.
    private func parent(of path: EntryPath, shown: String, layer: inout LayerState) throws -> OpenDirectory {
        let parentPath = path.parent
        if let cached = parentCache, cached.path == parentPath { return cached.dir }
        parentCache = nil
        guard let dir = try walk(to: parentPath, create: true, shown: shown, layer: &layer) else {
            throw FerryError.failed("entry \(shown): cannot create its parent directory")
        }
        parentCache = (parentPath, dir)
        return dir
    }

    /// Opens `path` beneath the target one component at a time with `O_NOFOLLOW`. Missing directories are
    /// created when `create` is set (and recorded in `layer`), otherwise the result is `nil`.
    /// Stops: `evil -> /etc` followed by `evil/passwd`, or any entry steered out of the tree through a symlink.
    private func walk(
        to path: EntryPath, create: Bool, shown: String, layer: inout LayerState
    ) throws -> OpenDirectory? {
        var current = try OpenDirectory.duplicate(target.fd)
        var walked = EntryPath(components: [])
        for part in path.components {
            walked = walked.appending(part)
            switch current.openSubdirectory(part) {
            case .success(let next):
                current = next
            case .failure(let failure):
                switch try current.kind(of: part) {
                case .missing where create:
                    try makeDirectory(part, in: current, shown: shown)
                    guard case .success(let made) = current.openSubdirectory(part) else {
                        throw ioError("entry \(shown): cannot open new directory \(walked.string)", errno)
                    }
                    layer.recordCreated(walked)
                    layer.directoryModes[walked] = 0o755
                    current = made
                case .missing:
                    return nil
                case .symlink:
                    throw FerryError.unsafeArchive(
                        "entry \(shown): parent \(EntryPath.shown(walked.string)) is a symlink")
                case .directory:
                    throw ioError("entry \(shown): cannot open \(walked.string)", failure.code)
                case .regular, .other:
                    throw FerryError.unsafeArchive(
                        "entry \(shown): parent \(EntryPath.shown(walked.string)) is not a directory")
                }
            }
        }
        return current
    }

    /// The directory at `path` if it is one, reached without symlinks; `nil` otherwise.
    private func find(_ path: EntryPath) -> OpenDirectory? {
        guard var current = try? OpenDirectory.duplicate(target.fd) else { return nil }
        for part in path.components {
            guard case .success(let next) = current.openSubdirectory(part) else { return nil }
            current = next
        }
        return current
    }

    /// Makes room for a new entry `name` in `dir`: a lower entry there is removed (a directory with all it
    /// holds), except a directory when `keepDirectory` (directories merge). Returns whether one was kept.
    @discardableResult
    private func clearSlot(_ name: String, in dir: OpenDirectory, keepDirectory: Bool) throws -> Bool {
        switch try dir.kind(of: name) {
        case .missing:
            return false
        case .directory where keepDirectory:
            return true
        case .directory:
            try TreeRemover.remove(name, in: dir)
        default:
            guard unlinkat(dir.fd, name, 0) == 0 else { throw ioError("cannot replace \(EntryPath.shown(name))", errno) }
        }
        return false
    }

    private func makeDirectory(_ name: String, in dir: OpenDirectory, shown: String) throws {
        // 0700 until the layer ends; the archive's mode is applied then.
        guard mkdirat(dir.fd, name, 0o700) == 0 else { throw ioError("entry \(shown): cannot create directory", errno) }
        if ownership == .root {
            guard case .success(let made) = dir.openSubdirectory(name) else {
                throw ioError("entry \(shown): cannot open new directory", errno)
            }
            try own(fd: made.fd, shown: shown)
        }
    }

    private func own(fd: Int32, shown: String) throws {
        // Archive uids and gids are ignored: a file owned by some user id in a system deployment is a backdoor.
        guard ownership == .root else { return }
        guard fchown(fd, 0, 0) == 0 else { throw ioError("cannot chown \(shown)", errno) }
    }

    private func ioError(_ what: String, _ code: Int32) -> FerryError {
        if code == ENOSPC || code == EDQUOT { return FerryError(.noSpace, "\(what): \(errnoString(code))") }
        return FerryError.failed("\(what): \(errnoString(code))")
    }
}

/// What the layer being applied has written so far, for whiteouts and final directory modes.
struct LayerState {
    /// Paths this layer created or wrote over (entries, and parents it had to create).
    var created: Set<EntryPath> = []
    /// Proper ancestors of `created` paths.
    var ancestors: Set<EntryPath> = []
    var opaqueDirectories: Set<EntryPath> = []
    var directoryModes: [EntryPath: mode_t] = [:]

    mutating func recordCreated(_ path: EntryPath) {
        created.insert(path)
        var prefix = path.components
        while !prefix.isEmpty {
            prefix.removeLast()
            if !ancestors.insert(EntryPath(components: prefix)).inserted { break }
        }
    }
}

/// The current tar header and its data, read through libarchive.
struct EntryReader {
    let tar: OpaquePointer
    let entry: OpaquePointer
    let stream: DecompressedStream
    let buffer: UnsafeMutableRawPointer

    func pathname() throws -> String {
        guard let raw = archive_entry_pathname_utf8(entry) ?? archive_entry_pathname(entry) else {
            throw FerryError.unsafeArchive("entry without a usable name (not UTF-8?)")
        }
        guard let name = String(validatingCString: raw) else {
            throw FerryError.unsafeArchive("entry \(String(cString: raw).debugDescription): name is not UTF-8")
        }
        return name
    }

    func hardlink() throws -> String? {
        guard let raw = archive_entry_hardlink_utf8(entry) ?? archive_entry_hardlink(entry) else { return nil }
        guard let target = String(validatingCString: raw) else {
            throw FerryError.unsafeArchive("hard link target \(String(cString: raw).debugDescription) is not UTF-8")
        }
        return target
    }

    var symlink: String? {
        guard let raw = archive_entry_symlink_utf8(entry) ?? archive_entry_symlink(entry) else { return nil }
        return String(validatingCString: raw)
    }

    var fileType: UInt32 { UInt32(archive_entry_filetype(entry)) & LibArchive.typeMask }
    var permissions: mode_t { mode_t(archive_entry_perm(entry)) }
    var size: Int64 { max(0, archive_entry_size(entry)) }
    var mtime: Int { Int(archive_entry_mtime(entry)) }

    /// Reads the next chunk of the entry's data into `buffer`; 0 at its end.
    func readData() throws -> Int {
        let n = archive_read_data(tar, buffer, LibArchive.chunkSize)
        if n < 0 {
            throw stream.failure
                ?? FerryError.unsafeArchive("cannot read entry data: \(LibArchive.errorMessage(tar))")
        }
        return n
    }
}
