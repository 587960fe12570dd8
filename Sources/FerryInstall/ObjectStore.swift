import FerryCore
import Foundation

/// File objects shared by deployments (DESIGN.md, "Chunked layers and the object store"): `objects/` under a scope's
/// state root holds one hard link per distinct regular file of every kept deployment, named by what the file is:
/// its content digest, its permission bits and its modification time (`<hex>-<mode>-<mtime>`: a hard link shares
/// all three, so two files share an inode only when they agree on all of them).
///
/// A new deployment's files are linked with the store before it is committed: a file whose object exists becomes a
/// link to that object (the copy just extracted is dropped), and a file that is new becomes the object. Two apps
/// (or two releases of one app) that ship the same files keep them on disk once. An object is re-hashed before it
/// is reused, so a file changed behind the store's back (in `--user` scope the user owns every file, and may
/// change one) is never spread: the new copy replaces it as the object instead. System objects are root-owned and
/// the helper alone writes them. Garbage collection drops objects no deployment links any more (link count 1).
///
/// For a `zstd:chunked` layer, whose table of contents gives each file's digest, extraction asks the store first
/// (``existing(_:mode:mtime:size:)``) and links an intact object instead of writing the file: an update then writes
/// only the files that changed (their data is still read and checked against the digest).
///
/// Everything goes through directory descriptors, never a path: the tree walked is the one just extracted, whose
/// names come from an image. What is not a regular file is left alone.
struct ObjectStore {
    let objects: DirectoryHandle

    /// What linking a deployment did.
    struct Linked: Equatable {
        /// Files that became links to existing objects.
        var shared = 0
        /// Files that became new objects.
        var stored = 0
    }

    /// Links the regular files under `files` (a deployment not yet committed) with the store.
    func link(_ files: DirectoryHandle) throws -> Linked {
        var linked = Linked()
        try walk(files, linked: &linked, depth: 0)
        return linked
    }

    private func walk(_ directory: DirectoryHandle, linked: inout Linked, depth: Int) throws {
        guard depth < 256 else { return }
        for name in try directory.entryNames() {
            var st = stat()
            guard fstatat(directory.fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { throw ioError("stat \(name)") }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                guard let sub = try directory.openDirectory(name) else { continue }
                try walk(sub, linked: &linked, depth: depth + 1)
            case S_IFREG where st.st_nlink == 1:
                try link(name, in: directory, st: st, linked: &linked)
            default:
                continue
            }
        }
    }

    private func link(_ name: String, in directory: DirectoryHandle, st: stat, linked: inout Linked) throws {
        guard let digest = try hash(name, in: directory, size: Int64(st.st_size)) else { return }
        let object = "\(digest.hex)-\(String(st.st_mode & 0o7777, radix: 8))-\(st.st_mtim.tv_sec)"
        var existing = stat()
        if fstatat(objects.fd, object, &existing, AT_SYMLINK_NOFOLLOW) == 0 {
            if (existing.st_mode & S_IFMT) == S_IFREG, existing.st_size == st.st_size,
                existing.st_mode & 0o7777 == st.st_mode & 0o7777, existing.st_uid == st.st_uid,
                try hash(object, in: objects, size: Int64(existing.st_size)) == digest
            {
                // The object in place of the file: a link beside it, renamed over it (never a moment without one).
                let temporary = ".object-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
                guard linkat(objects.fd, object, directory.fd, temporary, 0) == 0 else {
                    throw ioError("link object \(object)")
                }
                guard renameat(directory.fd, temporary, directory.fd, name) == 0 else {
                    let failure = ioError("replace \(name) with its object")
                    unlinkat(directory.fd, temporary, 0)
                    throw failure
                }
                linked.shared += 1
                return
            }
            // Changed behind the store's back (or not a file): the verified copy takes its place.
            try objects.unlinkEntry(object)
        }
        guard linkat(directory.fd, name, objects.fd, object, 0) == 0 else { throw ioError("store object \(object)") }
        linked.stored += 1
    }

    /// The object for a file of content `digest`, permission bits `mode`, modification time `mtime` and `size`, when
    /// the store has it intact (re-hashed now): what extraction links instead of writing the file again.
    func existing(_ digest: Digest, mode: UInt32, mtime: Int, size: Int64) -> (directory: Int32, name: String)? {
        let object = "\(digest.hex)-\(String(mode & 0o7777, radix: 8))-\(mtime)"
        var st = stat()
        guard digest.algorithm == .sha256, fstatat(objects.fd, object, &st, AT_SYMLINK_NOFOLLOW) == 0,
            (st.st_mode & S_IFMT) == S_IFREG, st.st_size == size, st.st_mode & 0o7777 == mode & 0o7777,
            st.st_uid == geteuid(), (try? hash(object, in: objects, size: size)) == digest
        else { return nil }
        return (objects.fd, object)
    }

    /// The sha256 of a regular file read through `directory`, which must still have `size` bytes; `nil` when it
    /// cannot be opened as a plain file.
    private func hash(_ name: String, in directory: DirectoryHandle, size: Int64) throws -> Digest? {
        guard let (fd, actual) = try directory.openFile(name), actual == size else { return nil }
        defer { close(fd) }
        var hasher = DigestHasher(.sha256)
        try readChunks(fd: fd, chunkSize: 256 * 1024, what: name) { hasher.update($0) }
        return hasher.finalize()
    }

    /// Removes every object no deployment links any more.
    func collectGarbage() {
        guard let names = try? objects.entryNames() else { return }
        for name in names {
            var st = stat()
            guard fstatat(objects.fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            if (st.st_mode & S_IFMT) != S_IFREG || st.st_nlink == 1 { try? objects.unlinkEntry(name) }
        }
    }
}
