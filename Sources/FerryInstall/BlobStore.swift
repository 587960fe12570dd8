import FerryCore
import Glibc
import Foundation
import Synchronization

/// Verified, content-addressed blobs of one scope.
///
/// A blob enters only through ``ingest(_:from:progress:)``, which copies it once from the source while hashing
/// and renames it into place only when size and digest match. Nothing is read from the source again afterwards:
/// a user who swaps a staged file after the check changes nothing (the check and the copy are one read).
public struct BlobStore: Sendable {
    public let paths: InstallPaths

    public init(paths: InstallPaths) { self.paths = paths }

    /// Bytes per read while copying and hashing: small enough that each chunk is still in the CPU cache when the
    /// hasher and the write reach it (1 MiB chunks hashed about 25% slower here; see docs/performance.md).
    static let chunkSize = 64 << 10

    public func path(_ digest: Digest) -> String { paths.blob(digest) }

    public func contains(_ descriptor: Descriptor) -> Bool {
        var st = stat()
        return lstat(path(descriptor.digest), &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
            && Int64(st.st_size) == descriptor.size
    }

    /// Copies a blob from `source` into the store, verifying it on the way. A blob already stored is kept.
    /// Returns whether the blob is new (so a failed deploy can take back exactly what it added).
    @discardableResult
    public func ingest(_ descriptor: Descriptor, from source: ImageLayout,
                       progress: (Int) -> Void = { _ in }) throws -> Bool {
        if contains(descriptor) {
            progress(Int(descriptor.size))
            return false
        }
        let dir = "\(paths.blobs)/\(descriptor.digest.algorithm.rawValue)"
        try makeDirectory(dir)
        try makeDirectory(paths.tmp)
        let tmp = "\(paths.tmp)/blob-\(getpid())-\(descriptor.digest.hex.prefix(16))-\(UInt32.random(in: 0...UInt32.max))"
        let fd = Glibc.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw ioError("create \(tmp)") }
        var done = false
        defer {
            if !done { unlink(tmp) }
        }
        do {
            defer { close(fd) }
            guard let (sourceFD, _) = try source.openBlob(descriptor.digest) else {
                throw FerryError.digestMismatch("blob \(descriptor.digest.short) is missing")
            }
            defer { close(sourceFD) }
            _ = posix_fadvise(sourceFD, 0, 0, POSIX_FADV_SEQUENTIAL)
            var behind = WriteBehind(fd: fd)
            try BlobVerifier.stream(fd: sourceFD, expecting: descriptor, chunkSize: BlobStore.chunkSize) { chunk in
                try writeAll(fd: fd, data: chunk, what: tmp)
                behind.wrote(chunk.count)
                progress(chunk.count)
            }
            guard fsync(fd) == 0 else { throw ioError("fsync \(tmp)") }
        }
        guard rename(tmp, path(descriptor.digest)) == 0 else { throw ioError("rename \(tmp)") }
        done = true
        return true
    }

    /// Reads a small stored blob whole.
    public func read(_ descriptor: Descriptor, maxSize: Int) throws -> Data {
        guard descriptor.size <= maxSize else {
            throw FerryError.invalidArgument("blob \(descriptor.digest.short) exceeds \(maxSize) bytes")
        }
        let fd = Glibc.open(path(descriptor.digest), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw ioError("open blob \(descriptor.digest.short)") }
        defer { close(fd) }
        return try readAll(fd: fd, maxSize: maxSize, what: "blob \(descriptor.digest.short)")
    }

    /// Opens a stored blob for reading.
    public func open(_ descriptor: Descriptor) throws -> Int32 {
        let fd = Glibc.open(path(descriptor.digest), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw ioError("open blob \(descriptor.digest.short)") }
        return fd
    }

    /// Removes every stored blob not in `keep` and not pinned by a deploy in progress.
    public func collectGarbage(keeping keep: Set<Digest>) {
        for algorithm in [Digest.Algorithm.sha256, .sha512] {
            guard let dir = try? DirectoryHandle(path: paths.blobs).openDirectory(algorithm.rawValue) else { continue }
            for name in (try? dir.entryNames()) ?? [] {
                guard let digest = try? Digest(algorithm: algorithm, hex: name), !keep.contains(digest),
                    !BlobPins.shared.isPinned(digest)
                else { continue }
                try? dir.unlinkEntry(name)
            }
        }
    }

    /// Removes the given blobs (a failed deploy taking back what it added).
    func remove(_ digests: [Digest]) {
        guard !digests.isEmpty, let store = try? DirectoryHandle(path: paths.blobs) else { return }
        for digest in digests {
            try? store.openDirectory(digest.algorithm.rawValue)?.unlinkEntry(digest.hex)
        }
    }
}

/// Blobs that deploys in this process are using: garbage collection by one deploy must not delete what a
/// concurrent deploy of another ref has just copied and is about to extract.
final class BlobPins: Sendable {
    static let shared = BlobPins()
    private let counts = Mutex<[Digest: Int]>([:])

    func pin(_ digests: [Digest]) {
        counts.withLock { counts in
            for d in digests { counts[d, default: 0] += 1 }
        }
    }

    func unpin(_ digests: [Digest]) {
        counts.withLock { counts in
            for d in digests {
                let n = (counts[d] ?? 1) - 1
                counts[d] = n > 0 ? n : nil
            }
        }
    }

    func isPinned(_ digest: Digest) -> Bool {
        counts.withLock { $0[digest] != nil }
    }
}
