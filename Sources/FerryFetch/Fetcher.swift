import FerryArchive
import FerryCore
import Foundation

/// An image fetched, verified by digest, and staged as an OCI layout ready for the install engine or the helper.
public struct StagedImage: Sendable {
    /// The staged layout: `oci-layout`, `index.json` naming the one ref, `blobs/` (hard links into the cache),
    /// `signatures/<ref>@sha256=<hex>/`.
    public var path: String
    public var ref: Ref
    public var descriptor: Descriptor
    public var manifest: Manifest
    public var signatures: SignatureSet

    /// Deletes the staged layout (the cache keeps the blobs).
    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Fetches images from a remote into the user's blob cache (`$XDG_CACHE_HOME/ferry`) and stages them.
///
/// Blobs are cached by digest and shared by every image, so an update downloads only layers it has not seen.
/// Downloads run in parallel, resume from partial files, verify size and digest while streaming, and fall back
/// to the next mirror on any error or bad content.
public final class Fetcher: Sendable {
    public let cacheDirectory: String
    public let transport: HTTPTransport
    public let progress: ProgressReporter
    /// How many blobs download at once.
    public let parallelism: Int

    public init(cacheDirectory: String, transport: HTTPTransport = .shared,
                progress: ProgressReporter = ProgressReporter(style: .quiet), parallelism: Int = 4) {
        self.cacheDirectory = cacheDirectory
        self.transport = transport
        self.progress = progress
        self.parallelism = max(1, parallelism)
    }

    var blobDirectory: String { cacheDirectory + "/blobs/sha256" }
    var partialDirectory: String { cacheDirectory + "/partial" }
    var stagingDirectory: String { cacheDirectory + "/staging" }

    public func cachedBlobPath(_ digest: Digest) -> String { Fetcher.blobPath(digest, in: cacheDirectory) }

    /// Where the cache under `cacheDirectory` keeps `digest`.
    static func blobPath(_ digest: Digest, in cacheDirectory: String) -> String {
        "\(cacheDirectory)/blobs/\(digest.algorithm.rawValue)/\(digest.hex)"
    }

    /// Resolves `ref` on the remote: manifest descriptor, manifest and signatures, without downloading layers.
    public func resolve(remote: Remote, ref: Ref) async throws -> (Descriptor, Manifest, Data, SignatureSet) {
        let source = try remote.source(transport: transport)
        let (descriptor, data) = try await source.resolve(ref)
        let manifest = try Manifest.parse(data)
        let signatures = try await source.signatures(ref: ref, digest: descriptor.digest)
        return (descriptor, manifest, data, signatures)
    }

    /// Downloads what `ref` needs into the cache and stages a layout for it.
    /// `verify` runs on the resolved manifest and signatures before any layer is downloaded (the agent checks
    /// signatures there, so a bad image costs no layer bandwidth).
    /// `resolved` reuses what ``resolve(remote:ref:)`` returned, so the manifest is not fetched twice.
    /// `extraFiles` (relative path → content, e.g. TUF metadata under `tuf/`) are written into the staged layout.
    public func stage(remote: Remote, ref: Ref, resolved: (Descriptor, Manifest, Data, SignatureSet)? = nil,
                      extraFiles: [String: Data] = [:],
                      verify: (Descriptor, Manifest, SignatureSet) throws -> Void = { _, _, _ in }) async throws
        -> StagedImage
    {
        let source = try remote.source(transport: transport)
        let (descriptor, manifest, manifestData, signatures): (Descriptor, Manifest, Data, SignatureSet)
        if let resolved {
            (descriptor, manifest, manifestData, signatures) = resolved
        } else {
            (descriptor, manifest, manifestData, signatures) = try await resolve(remote: remote, ref: ref)
        }
        try verify(descriptor, manifest, signatures)

        try FileManager.default.createDirectory(atPath: blobDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: partialDirectory, withIntermediateDirectories: true)
        try storeVerified(manifestData, descriptor: descriptor)

        let needed = ([manifest.config] + manifest.layers).filter { !isCached($0) }
        var unique: [Descriptor] = []
        for blob in needed where !unique.contains(where: { $0.digest == blob.digest }) { unique.append(blob) }
        let total = UInt64(try unique.totalSize())
        progress.begin("\(ref): downloading", total: total)
        try await withThrowingTaskGroup(of: Void.self) { group in
            var running = 0
            for blob in unique {
                if running >= parallelism {
                    try await group.next()
                    running -= 1
                }
                group.addTask { try await self.fetchBlob(blob, ref: ref, source: source) }
                running += 1
            }
            try await group.waitForAll()
        }
        progress.finish()
        return try makeStaging(ref: ref, descriptor: descriptor, manifest: manifest, signatures: signatures,
                               extraFiles: extraFiles)
    }

    private func isCached(_ descriptor: Descriptor) -> Bool {
        var st = stat()
        return lstat(cachedBlobPath(descriptor.digest), &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
            && Int64(st.st_size) == descriptor.size
    }

    private func storeVerified(_ data: Data, descriptor: Descriptor) throws {
        var verifier = BlobVerifier(descriptor)
        try verifier.consume(data)
        try verifier.finish()
        if !isCached(descriptor) { try AtomicFile.write(data, to: cachedBlobPath(descriptor.digest)) }
    }

    /// Tries each URL in order; a partial file survives transport errors so the next try resumes it.
    private func fetchBlob(_ descriptor: Descriptor, ref: Ref, source: ImageSource) async throws {
        let partial = "\(partialDirectory)/\(descriptor.digest.hex)"
        // Two agents of one user fetching the same blob share its partial file: one waits for the other, then
        // finds the blob cached. Without this they interleave writes and race on the rename.
        let lockPath = partial + ".lock"
        let lock = try await onOwnThread { try FileLock(path: lockPath) }
        defer { lock.unlock() }
        if isCached(descriptor) {
            unlink(partial + ".lock")
            return
        }
        let reuse = ChunkedReuse(cacheDirectory: cacheDirectory, transport: transport)
        let progress = self.progress
        let finish = { [self] in
            guard rename(partial, cachedBlobPath(descriptor.digest)) == 0 else { throw ioError("rename \(partial)") }
            // The lock file goes too, still held: whoever takes it next, or a new one at that path, finds the blob
            // cached and writes nothing. Without this, one empty file per blob ever fetched would stay.
            unlink(partial + ".lock")
            reuse.remember(descriptor)
        }
        // A zstd:chunked layer is first assembled from frames the cache holds, from the first URL that answers
        // ranges; whatever does not work out falls back to the whole download below.
        if (try? ChunkedTOC.announced(by: descriptor)) ?? nil != nil,
            let url = transport.preferReachable(source.blobURLs(descriptor.digest, ref: ref)).first
        {
            do {
                let headers = try await source.headers(for: url, ref: ref)
                if try await reuse.assemble(descriptor, url: url, headers: headers, to: partial,
                                            received: { n in progress.advance(n) }) != nil {
                    try finish()
                    return
                }
            } catch let error as FerryError where error.code == .noSpace {
                unlink(partial)
                throw error
            } catch {
                unlink(partial)
            }
        }
        try await source.downloadBlob(descriptor, ref: ref, to: partial, transport: transport,
                                      received: { n in progress.advance(n) }, finish: finish)
    }

    private func makeStaging(ref: Ref, descriptor: Descriptor, manifest: Manifest, signatures: SignatureSet,
                             extraFiles: [String: Data] = [:]) throws -> StagedImage
    {
        try FileManager.default.createDirectory(atPath: stagingDirectory, withIntermediateDirectories: true)
        let path = "\(stagingDirectory)/\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let writer = try LayoutWriter(path: path)
        for blob in [descriptor, manifest.config] + manifest.layers {
            let target = writer.blobPath(blob.digest)
            if FileManager.default.fileExists(atPath: target) { continue }
            // A hard link costs nothing; fall back to a copy across file systems.
            if link(cachedBlobPath(blob.digest), target) != 0 {
                do {
                    try FileManager.default.copyItem(atPath: cachedBlobPath(blob.digest), toPath: target)
                } catch {
                    throw FerryError.failed("cannot stage blob \(blob.digest.short): \(error.localizedDescription)")
                }
            }
        }
        try writer.setRef(ref, to: descriptor)
        try writer.writeSignatures(signatures, ref: ref, digest: descriptor.digest)
        for (relative, data) in extraFiles.sorted(by: { $0.key < $1.key }) {
            let parts = try DirectoryHandle.components(of: relative)
            if parts.count > 1 {
                try FileManager.default.createDirectory(
                    atPath: path + "/" + parts.dropLast().joined(separator: "/"), withIntermediateDirectories: true)
            }
            try AtomicFile.write(data, to: path + "/" + relative)
        }
        return StagedImage(path: path, ref: ref, descriptor: descriptor, manifest: manifest, signatures: signatures)
    }

    /// Removes staged layouts and partial files of processes that are gone.
    public func sweep() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: stagingDirectory)) ?? [] {
            if let pid = Int32(name.split(separator: "-").first ?? ""), pid != getpid(), kill(pid, 0) == 0 { continue }
            try? FileManager.default.removeItem(atPath: "\(stagingDirectory)/\(name)")
        }
        // Cached small blobs of a killed agent, half written (AtomicFile's temporaries of dead writers).
        AtomicFile.sweep(blobDirectory)
    }
}
