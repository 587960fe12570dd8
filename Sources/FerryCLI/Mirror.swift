import FerryCore
import FerryFetch
import FerryInstall
import FerryLog
import FerryTrust
import Foundation

/// Copies a remote into a directory that is itself a static OCI layout remote (`ferry mirror`), with its TUF
/// metadata and its transparency log.
///
/// The copy is checked as an install would check it, against the *source remote's* trust: every ref's claim must
/// verify with the remote's keys for the ref's identity, every blob must match its digest, and with a TUF root the
/// ref must be listed in TUF targets with that digest. What fails is not copied. The directory then holds
/// everything a client needs to verify it again (blobs, signatures, TUF metadata), so whoever serves it (a LAN
/// host, a USB stick) needs no trust.
///
/// Resumable and incremental: a blob is downloaded into `DEST/.partial/` and renamed into `blobs/` once its digest
/// checks, a blob already in `blobs/` is re-hashed and kept, and `index.json` is written last, so an interrupted run
/// leaves a layout whose index names only complete images, and the next run fetches only what is missing.
struct Mirror {
    let remote: Remote
    let destination: String
    let transport: HTTPTransport
    /// A scratch directory for the TUF chain, replayed from the configured root on every run.
    let scratch: String

    /// What a run did for one ref.
    struct Copied {
        var ref: Ref
        var digest: Digest
        var blobsAdded = 0
        var bytesAdded: Int64 = 0
        var blobsPresent = 0
        var blobsReplaced = 0
    }

    /// What a run did: the refs copied, and the refs that failed with their errors (not copied).
    struct Report {
        var copied: [Copied] = []
        var failed: [(ref: Ref, error: FerryError)] = []
        /// The size of the transparency log copied with the images, when the source has one.
        var logSize: UInt64?
    }

    var partialDirectory: String { destination + "/.partial" }

    func run(refs requested: [Ref]) async throws -> Report {
        let keys = try TrustedKeys(remote: remote)
        guard !keys.isEmpty else {
            throw FerryError.untrusted("remote \(remote.name) has no trusted keys; a mirror copies only what verifies")
        }
        let source = try remote.source(transport: transport)
        var refs = requested
        if refs.isEmpty {
            guard !remote.isRegistry else {
                throw FerryError.invalidArgument("a registry cannot list its images: name the refs to mirror")
            }
            refs = try await source.refs().map(\.ref)
        }
        let writer = try LayoutWriter(path: destination)
        try FileManager.default.createDirectory(atPath: partialDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        var report = Report()
        var entries: [(Ref, Descriptor)] = []
        var tufFiles: [String: Data] = [:]
        for ref in refs {
            do {
                let (copied, descriptor, files) = try await copy(ref, source: source, keys: keys, writer: writer)
                report.copied.append(copied)
                entries.append((ref, descriptor))
                tufFiles.merge(files) { _, new in new }
            } catch let error as FerryError {
                report.failed.append((ref, error))
            }
        }
        // TUF metadata, then the index: a client that reads the new index finds metadata that lists it.
        if !tufFiles.isEmpty {
            try FileManager.default.createDirectory(atPath: destination + "/" + Freshness.stagedDirectory,
                                                    withIntermediateDirectories: true)
            for (name, data) in tufFiles.sorted(by: { $0.key < $1.key }) {
                try AtomicFile.write(data, to: destination + "/" + Freshness.stagedDirectory + "/" + name)
            }
        }
        // The transparency log, whole (its clients verify it; full tiles already here are kept).
        if !remote.isRegistry, let base = remote.baseURLs.first {
            let trimmed = Remote.withoutTrailingSlash(base)
            // A logged remote's checkpoint is checked against its log key before anything is fetched.
            if let data = try await LogDownload(base: trimmed, transport: transport)
                .copy(into: destination + "/log", logKey: try LogPolicy.of(remote)?.logKey)
            {
                report.logSize = try Checkpoint(text: try SignedNote(data).text).size
            }
        }
        if !entries.isEmpty { try writer.setRefs(entries) }
        // Partial downloads stay for the next run to resume; a complete run leaves nothing but the layout.
        if report.failed.isEmpty { try? FileManager.default.removeItem(atPath: partialDirectory) }
        return report
    }

    /// Verifies and copies one ref; returns what it did, the descriptor to list, and the TUF files that list it.
    private func copy(_ ref: Ref, source: ImageSource, keys: TrustedKeys, writer: LayoutWriter) async throws
        -> (Copied, Descriptor, [String: Data])
    {
        do {
            let (descriptor, manifestData) = try await source.resolve(ref)
            let manifest = try Manifest.parse(manifestData)
            let signatures = try await source.signatures(ref: ref, digest: descriptor.digest)
            // A logged remote's release verifies with the keys its log made current where the release is logged.
            var releaseKeys = keys
            if let policy = try LogPolicy.of(remote) {
                releaseKeys = try await checkLogged(ref: ref, descriptor: descriptor, policy: policy)
            }
            _ = try ClaimVerifier.verify(signatures, digest: descriptor.digest, identity: remote.identity(for: ref),
                                         keys: releaseKeys)
            var files: [String: Data] = [:]
            if remote.tufRoot != nil {
                let refresh = FreshnessRefresh(remote: remote, directory: scratch + "/tuf", fetcher: HTTPTUFFetcher(),
                                               order: { transport.preferReachable($0) })
                files = try await refresh.refresh(ref: ref, descriptor: descriptor).files
            }
            var copied = Copied(ref: ref, digest: descriptor.digest)
            var blobs: [Descriptor] = []
            for blob in [descriptor, manifest.config] + manifest.layers
            where !blobs.contains(where: { $0.digest == blob.digest }) {
                blobs.append(blob)
            }
            for blob in blobs {
                switch try present(blob, writer: writer) {
                case .good:
                    copied.blobsPresent += 1
                    continue
                case .bad:
                    copied.blobsReplaced += 1
                case .missing:
                    break
                }
                if blob.digest == descriptor.digest {
                    try AtomicFile.write(manifestData, to: writer.blobPath(blob.digest))
                } else {
                    try await download(blob, ref: ref, source: source, writer: writer)
                }
                copied.blobsAdded += 1
                copied.bytesAdded += blob.size
            }
            try writer.writeSignatures(signatures, ref: ref, digest: descriptor.digest)
            // The log proof beside the signatures (`ferry sign` writes it): clients find the entry's index there.
            if !remote.isRegistry {
                let path = SignatureSet.directory(ref: ref, digest: descriptor.digest) + "/" + ReleaseProof.fileName
                for base in remote.baseURLs {
                    let trimmed = Remote.withoutTrailingSlash(base)
                    if let data = try? await transport.fetch(trimmed + "/" + path, maxSize: 256 * 1024) {
                        try AtomicFile.write(data, to: destination + "/" + path)
                        break
                    }
                }
            }
            return (copied, descriptor, files)
        } catch let error as FerryError {
            throw error.prefixed("\(ref)")
        }
    }

    /// A logged remote's release is copied only when its log holds it, under a checkpoint its policy accepts, and
    /// is not recalled. Returns the keys the log made current where the release is logged.
    private func checkLogged(ref: Ref, descriptor: Descriptor, policy: LogPolicy) async throws -> TrustedKeys {
        let staged = try await ReleaseLogStaging(remote: remote, policy: policy, transport: transport)
            .release(ref: ref, descriptor: descriptor, allowStale: false)
        let proof = try ReleaseProof(parsing: staged.files["log/\(ReleaseProof.fileName)"] ?? Data())
        _ = try proof.verify(policy: policy, trusted: nil, consistency: nil, now: unixNow())
        if let recall = staged.ledger.recall(ref: ref, digest: descriptor.digest) {
            throw FerryError.untrusted(RemoteLog.describe(recall, remote: remote.name))
        }
        let keys = try staged.keys(gpg: remote.gpgKeys)
        try ReleaseLogCheck.checkEntry(of: proof, ref: ref, descriptor: descriptor, remote: remote, keys: keys,
                                       claim: nil)
        return keys
    }

    private enum BlobState { case good, bad, missing }

    /// Whether DEST already holds `blob` intact (re-hashed: a damaged copy is replaced, never spread).
    private func present(_ blob: Descriptor, writer: LayoutWriter) throws -> BlobState {
        let path = writer.blobPath(blob.digest)
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            guard errno == ENOENT else { throw ioError("open \(path)") }
            return .missing
        }
        defer { close(fd) }
        var verifier = BlobVerifier(blob)
        do {
            try readChunks(fd: fd, what: path) { try verifier.consume($0) }
            try verifier.finish()
            return .good
        } catch let error as FerryError where error.code == .digestMismatch || error.code == .invalidArgument {
            return .bad
        }
    }

    /// Downloads a blob into `.partial/` (resuming what an interrupted run left) and moves it into `blobs/`.
    private func download(_ blob: Descriptor, ref: Ref, source: ImageSource, writer: LayoutWriter) async throws {
        let partial = "\(partialDirectory)/\(blob.digest.hex)"
        try await source.downloadBlob(blob, ref: ref, to: partial, transport: transport) {
            try writer.adoptBlob(at: partial, digest: blob.digest)
        }
    }
}
