import FerryArchive
import FerryCore
import FerryTrust
import Foundation

/// The phases a deploy reports progress in (the helper's `Progress` signal uses the same names).
public enum DeployPhase: String, Sendable {
    case copy, verify, extract, commit
}

/// What the caller asks the engine to deploy.
public struct DeployRequest: Sendable {
    public var remote: Remote
    public var ref: Ref
    public var allowDowngrade: Bool
    /// The local clock, Unix seconds (claims more than 24 h ahead of it are refused).
    public var now: Int64
    /// Extra checks on the manifest before anything is copied (TUF freshness): digest and size of the manifest.
    public var checkManifest: (@Sendable (Descriptor) throws -> Void)?

    public init(remote: Remote, ref: Ref, allowDowngrade: Bool = false,
                now: Int64 = Int64(Date().timeIntervalSince1970),
                checkManifest: (@Sendable (Descriptor) throws -> Void)? = nil) {
        self.remote = remote
        self.ref = ref
        self.allowDowngrade = allowDowngrade
        self.now = now
        self.checkManifest = checkManifest
    }
}

/// The verified facts a deploy is decided on, before anything is written.
public struct DeployPlan: Sendable {
    public var ref: Ref
    public var remote: RemoteName
    public var manifestDescriptor: Descriptor
    public var manifest: Manifest
    public var claim: VerifiedClaim
    /// The signatures the claim was verified from: these are what the deployment keeps, never a second read.
    public var signatures: SignatureSet
    public var decision: TimestampPolicy.Decision
    public var digest: Digest { manifestDescriptor.digest }
}

/// What a deploy did.
public struct DeployOutcome: Sendable, Equatable {
    public var decision: TimestampPolicy.Decision
    public var digest: Digest
    public var deployment: String
}

/// One installed ref as the engine reports it.
public struct InstalledRef: Sendable, Equatable {
    public var ref: Ref
    public var installation: InstallState.Installation
    public var deploymentPath: String
}

/// The install engine shared by `ferry --user` and `ferry-helper`: staged layout → verified blobs →
/// deployment → atomic switch → durable state.
///
/// Crash safety: everything before the rename of `installed/<ref>` lives in `tmp/` or in a deployment directory
/// nothing points to yet, and is swept by ``recover()``. The rename is the commit point; `state.json` follows it,
/// and ``recover()`` re-derives state from the links when a crash fell between the two.
public final class Installer: @unchecked Sendable {
    public let paths: InstallPaths
    public let ownership: LayerExtractor.Ownership
    public let limits: ExtractionLimits
    public let blobs: BlobStore
    /// The file mode of state.json (the user's is private to them; the system's is world-readable).
    let stateMode: mode_t

    public init(paths: InstallPaths, ownership: LayerExtractor.Ownership, limits: ExtractionLimits = ExtractionLimits()) {
        self.paths = paths
        self.ownership = ownership
        self.limits = limits
        blobs = BlobStore(paths: paths)
        stateMode = 0o644
    }

    // MARK: Reading state

    public func state() throws -> InstallState { try InstallState.load(from: paths.stateFile) }

    public func installations() throws -> [InstalledRef] {
        try state().installed.compactMap { key, value in
            guard let ref = try? Ref(key) else { return nil }
            return InstalledRef(ref: ref, installation: value, deploymentPath: paths.root + "/" + value.deployment)
        }.sorted { $0.ref < $1.ref }
    }

    // MARK: Deploy

    /// Verifies what `source` offers for the request and decides the action, without writing anything.
    ///
    /// Verified here: the manifest against the digest `index.json` names, the signatures against the remote's
    /// keys, the claim's digest and identity (derived from the remote configuration and the ref, never from
    /// anything staged), and the timestamp rules against the recorded state.
    public func plan(source: ImageLayout, request: DeployRequest) throws -> DeployPlan {
        let ref = request.ref
        guard request.remote.hasKeys else {
            throw FerryError.untrusted("remote \(request.remote.name) has no trusted keys; nothing can be verified")
        }
        let descriptor = try source.descriptor(for: ref)
        guard descriptor.size <= Manifest.maxSize else {
            throw FerryError.invalidArgument("manifest is \(descriptor.size) bytes; the limit is \(Manifest.maxSize)")
        }
        try request.checkManifest?(descriptor)
        let manifest = try source.manifest(descriptor)
        let keys = try TrustedKeys(remote: request.remote)
        let signatures = try source.signatures(ref: ref, digest: descriptor.digest)
        let claim = try ClaimVerifier.verify(signatures, digest: descriptor.digest,
                                             identity: request.remote.identity(for: ref), keys: keys)
        let current = try state()
        let recorded = current.record(remote: request.remote.name, ref: ref)
        let installed = current.installed[ref.string]
        let decision = try TimestampPolicy.decide(
            newTimestamp: claim.timestamp, newDigest: descriptor.digest,
            recorded: recorded.map { ($0.timestamp, $0.digest) },
            installed: installed != nil && installed?.digest == recorded?.digest,
            now: request.now, allowDowngrade: request.allowDowngrade)
        return DeployPlan(ref: ref, remote: request.remote.name, manifestDescriptor: descriptor, manifest: manifest,
                          claim: claim, signatures: signatures, decision: decision)
    }

    /// Deploys `request.ref` from `source`. `authorize` sees the plan before anything is written and may throw
    /// (the helper asks polkit there). Deploys of the same ref are serialized across threads and processes.
    @discardableResult
    public func deploy(
        source: ImageLayout, request: DeployRequest,
        authorize: (DeployPlan) throws -> Void = { _ in },
        progress: (DeployPhase, UInt64, UInt64) -> Void = { _, _, _ in }
    ) throws -> DeployOutcome {
        try makeDirectory(paths.locks)
        let refLock = try FileLock(path: "\(paths.locks)/\(request.ref.escapedFileName).lock")
        defer { refLock.unlock() }

        let plan = try plan(source: source, request: request)
        try authorize(plan)
        let target = paths.deployment(ref: request.ref, digest: plan.digest)
        if plan.decision == .nothingToDo {
            return DeployOutcome(decision: .nothingToDo, digest: plan.digest, deployment: target)
        }

        // Copy: each blob once, hashed on the way, into root-owned (or the user's) storage.
        let descriptors = [plan.manifestDescriptor, plan.manifest.config] + plan.manifest.layers
        let digests = descriptors.map(\.digest)
        BlobPins.shared.pin(digests)
        defer { BlobPins.shared.unpin(digests) }
        var added: [Digest] = []
        do {
            return try copyExtractCommit(plan: plan, request: request, source: source, descriptors: descriptors,
                                         target: target, added: &added, progress: progress)
        } catch {
            // Bad input loses nothing and leaves nothing: take back the blobs this deploy added.
            BlobPins.shared.unpin(digests)
            defer { BlobPins.shared.pin(digests) }
            discard(added)
            throw error
        }
    }

    private func copyExtractCommit(
        plan: DeployPlan, request: DeployRequest, source: ImageLayout, descriptors: [Descriptor], target: String,
        added: inout [Digest], progress: (DeployPhase, UInt64, UInt64) -> Void
    ) throws -> DeployOutcome {
        let total = UInt64(descriptors.reduce(Int64(0)) { $0 + $1.size })
        var copied: UInt64 = 0
        progress(.copy, 0, total)
        for descriptor in descriptors {
            let isNew = try blobs.ingest(descriptor, from: source) { n in
                copied += UInt64(n)
                progress(.copy, copied, total)
            }
            if isNew { added.append(descriptor.digest) }
        }

        // Verify: the config from our own copy; layer count against diff_ids.
        progress(.verify, 0, 1)
        let configData = try blobs.read(plan.manifest.config, maxSize: Int(ImageConfig.maxSize))
        let config = try ImageConfig.parse(configData)
        guard config.rootfs.diff_ids.count == plan.manifest.layers.count else {
            throw FerryError.digestMismatch(
                "image config lists \(config.rootfs.diff_ids.count) diff_ids for \(plan.manifest.layers.count) layers")
        }
        progress(.verify, 1, 1)

        // Extract into a fresh directory under tmp/, then move it into deploy/.
        if !isCompleteDeployment(target) {
            try extract(plan: plan, config: configData, diffIDs: config.rootfs.diff_ids, into: target,
                        progress: progress)
        }

        // Commit: the link rename is the switch; state follows.
        progress(.commit, 0, 1)
        let outcome = try commit(plan: plan, target: target, config: config)
        progress(.commit, 1, 1)
        return outcome
    }

    /// Removes blobs a failed deploy added, unless state or another deploy in progress needs them.
    private func discard(_ added: [Digest]) {
        guard !added.isEmpty, let stateLock = try? FileLock(path: "\(paths.locks)/state.lock") else { return }
        defer { stateLock.unlock() }
        let referenced = (try? state()).map(referencedBlobs) ?? Set(added)
        for digest in added where !referenced.contains(digest) && !BlobPins.shared.isPinned(digest) {
            unlink(blobs.path(digest))
        }
    }

    private func isCompleteDeployment(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: path + "/deployment.json")
    }

    private func extract(plan: DeployPlan, config: Data, diffIDs: [Digest],
                         into target: String, progress: (DeployPhase, UInt64, UInt64) -> Void) throws {
        try makeDirectory(paths.tmp)
        let work = "\(paths.tmp)/deploy-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try makeDirectory(work + "/files")
        var finished = false
        defer {
            if !finished { try? LayerExtractor.removeTree(work) }
        }
        let filesDir = try DirectoryHandle(path: work + "/files")
        let extractor = LayerExtractor(target: filesDir, limits: limits, ownership: ownership)
        let total = UInt64(plan.manifest.layers.reduce(Int64(0)) { $0 + $1.size })
        var done: UInt64 = 0
        progress(.extract, 0, total)
        for (layer, diffID) in zip(plan.manifest.layers, diffIDs) {
            let fd = try blobs.open(layer)
            defer { close(fd) }
            _ = try extractor.apply(layerFD: fd, compression: LayerCompression(mediaType: layer.mediaType),
                                    diffID: diffID)
            done += UInt64(layer.size)
            progress(.extract, done, total)
        }
        // The verified metadata beside the tree, so a deployment explains itself (and recover() can rebuild state).
        let manifestData = try blobs.read(plan.manifestDescriptor, maxSize: Manifest.maxSize)
        try AtomicFile.write(manifestData, to: work + "/manifest.json")
        try AtomicFile.write(config, to: work + "/config.json")
        try AtomicFile.write(plan.claim.claim.serialized(), to: work + "/claim.json")
        let sigDir = work + "/signatures"
        try makeDirectory(sigDir)
        for (i, sig) in plan.signatures.gpg.enumerated() {
            try AtomicFile.write(sig, to: "\(sigDir)/\(SignatureSet.gpgFileName(i + 1))")
        }
        for (i, pair) in plan.signatures.ed25519.enumerated() {
            try AtomicFile.write(pair.claim, to: "\(sigDir)/\(SignatureSet.claimFileName(i + 1))")
            try AtomicFile.write(pair.minisig, to: "\(sigDir)/\(SignatureSet.minisigFileName(i + 1))")
        }
        let record = DeploymentRecord(ref: plan.ref, remote: plan.remote, digest: plan.digest,
                                      timestamp: plan.claim.timestamp)
        try AtomicFile.write(record.encoded(), to: work + "/deployment.json")
        _ = chmod(work, 0o755)
        try AtomicFile.syncDirectory(work)

        try makeDirectory((target as NSString).deletingLastPathComponent)
        if FileManager.default.fileExists(atPath: target) {
            // An incomplete deployment from an interrupted run: replace it.
            try LayerExtractor.removeTree(target)
        }
        guard rename(work, target) == 0 else { throw ioError("rename deployment into \(target)") }
        finished = true
        try AtomicFile.syncDirectory((target as NSString).deletingLastPathComponent)
    }

    private func commit(plan: DeployPlan, target: String, config: ImageConfig) throws -> DeployOutcome {
        let link = paths.installedLink(plan.ref)
        try makeDirectory((link as NSString).deletingLastPathComponent)
        try AtomicFile.symlink(target, at: link)

        let stateLock = try FileLock(path: "\(paths.locks)/state.lock")
        defer { stateLock.unlock() }
        var state = try state()
        let relative = String(target.dropFirst(paths.root.count + 1))
        let old = state.installed[plan.ref.string]
        let previous = old.flatMap { $0.deployment == relative ? $0.previous : $0.deployment }
        var exports = Exports(paths: paths)
        let exported = exports.export(ref: plan.ref, deployment: target, config: config,
                                      replacing: old?.exports ?? [])
        state.installed[plan.ref.string] = InstallState.Installation(
            remote: plan.remote, digest: plan.digest, timestamp: plan.claim.timestamp, deployment: relative,
            previous: previous, exports: exported)
        state.records[InstallState.recordKey(remote: plan.remote, ref: plan.ref)] =
            InstallState.Record(timestamp: plan.claim.timestamp, digest: plan.digest)
        try state.save(to: paths.stateFile, mode: stateMode)
        removeDeployments(of: plan.ref, keeping: [relative, previous].compactMap { $0 })
        collectGarbage(state)
        return DeployOutcome(decision: plan.decision, digest: plan.digest, deployment: target)
    }

    // MARK: Uninstall

    /// Removes an installed ref: its link, exports and deployments. Timestamp records stay.
    public func uninstall(_ ref: Ref) throws {
        try makeDirectory(paths.locks)
        let refLock = try FileLock(path: "\(paths.locks)/\(ref.escapedFileName).lock")
        defer { refLock.unlock() }
        let stateLock = try FileLock(path: "\(paths.locks)/state.lock")
        defer { stateLock.unlock() }
        var state = try state()
        guard let installation = state.installed[ref.string] else {
            throw FerryError(.notInstalled, "\(ref) is not installed")
        }
        unlink(paths.installedLink(ref))
        removeEmptyParents((paths.installedLink(ref) as NSString).deletingLastPathComponent, upTo: paths.installed)
        let exports = Exports(paths: paths)
        exports.remove(installation.exports ?? [])
        state.installed[ref.string] = nil
        try state.save(to: paths.stateFile, mode: stateMode)
        removeDeployments(of: ref, keeping: [])
        removeEmptyParents("\(paths.deploy)/\(ref.string)", upTo: paths.deploy)
        collectGarbage(state)
    }

    // MARK: Recovery

    /// Sweeps what an interrupted run left behind and makes state agree with the links on disk.
    /// Called at helper start and before each agent operation; safe to repeat.
    ///
    /// With `collectingGarbage`, it also drops blobs no kept deployment needs, which a crash between the state
    /// write and the garbage collection of a commit leaves. Only a caller that is the sole user of the store may
    /// ask for it: the helper at start, before it takes requests. Agents of one user can run side by side and see
    /// no pins of each other's deploys in progress, so they leave the blobs to the next commit's collection.
    public func recover(collectingGarbage: Bool = false) throws {
        // The skeleton exists from the start, so a refused deploy leaves the tree exactly as it found it.
        for dir in [paths.root, paths.locks, paths.tmp, paths.deploy, paths.installed, "\(paths.blobs)/sha256"] {
            try makeDirectory(dir)
        }
        let stateLock = try FileLock(path: "\(paths.locks)/state.lock")
        defer { stateLock.unlock() }
        sweepTemporary()
        // Half-written state, exports and links (AtomicFile's temporary entries) of a crashed writer.
        for dir in [paths.root, paths.exportsBin, paths.exportsApplications] { AtomicFile.sweep(dir) }
        AtomicFile.sweep(paths.installed, recursive: true)
        var state = try state()
        var changed = false
        for (key, installation) in state.installed {
            guard let ref = try? Ref(key) else { continue }
            let link = paths.installedLink(ref)
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: link),
                target.hasPrefix(paths.root + "/"), let record = DeploymentRecord.load(target)
            else {
                // The link is gone or broken: re-point it at the deployment state names, if that is intact.
                let recorded = paths.root + "/" + installation.deployment
                if DeploymentRecord.load(recorded) != nil {
                    try? makeDirectory((link as NSString).deletingLastPathComponent)
                    try AtomicFile.symlink(recorded, at: link)
                } else {
                    state.installed[key] = nil
                    changed = true
                }
                continue
            }
            let relative = String(target.dropFirst(paths.root.count + 1))
            if relative != installation.deployment {
                // A crash between the link rename and the state write: the link is the truth.
                state.installed[key] = InstallState.Installation(
                    remote: record.remote, digest: record.digest, timestamp: record.timestamp, deployment: relative,
                    previous: installation.deployment, exports: installation.exports)
                let rkey = InstallState.recordKey(remote: record.remote, ref: ref)
                if (state.records[rkey]?.timestamp ?? Int64.min) < record.timestamp {
                    state.records[rkey] = InstallState.Record(timestamp: record.timestamp, digest: record.digest)
                }
                changed = true
            }
        }
        // Links whose state entry never got written (crash right after the first install's rename).
        for ref in linkedRefs() where state.installed[ref.string] == nil {
            let link = paths.installedLink(ref)
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: link),
                target.hasPrefix(paths.root + "/"), let record = DeploymentRecord.load(target)
            else {
                unlink(link)
                continue
            }
            state.installed[ref.string] = InstallState.Installation(
                remote: record.remote, digest: record.digest, timestamp: record.timestamp,
                deployment: String(target.dropFirst(paths.root.count + 1)), previous: nil, exports: nil)
            let rkey = InstallState.recordKey(remote: record.remote, ref: ref)
            if (state.records[rkey]?.timestamp ?? Int64.min) < record.timestamp {
                state.records[rkey] = InstallState.Record(timestamp: record.timestamp, digest: record.digest)
            }
            changed = true
        }
        if changed { try state.save(to: paths.stateFile, mode: stateMode) }
        for (key, installation) in state.installed {
            guard let ref = try? Ref(key) else { continue }
            removeDeployments(of: ref, keeping: [installation.deployment, installation.previous].compactMap { $0 })
        }
        if collectingGarbage { collectGarbage(state) }
    }

    /// Forgets the timestamp records of a remote (`ConfigureRemote` with `reset-rollback-state`).
    public func resetRecords(remote: RemoteName) throws {
        try makeDirectory(paths.locks)
        let stateLock = try FileLock(path: "\(paths.locks)/state.lock")
        defer { stateLock.unlock() }
        var state = try state()
        state.records = state.records.filter { !$0.key.hasPrefix("\(remote) ") }
        try state.save(to: paths.stateFile, mode: stateMode)
    }

    // MARK: Housekeeping

    private func sweepTemporary() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: paths.tmp)) ?? [] {
            // tmp/<kind>-<pid>-…: leave work of live processes alone (another agent may be running).
            let parts = name.split(separator: "-")
            if parts.count >= 2, let pid = Int32(parts[1]), pid != getpid(), kill(pid, 0) == 0 { continue }
            try? LayerExtractor.removeTree("\(paths.tmp)/\(name)")
        }
    }

    /// Refs that have a link under installed/.
    private func linkedRefs() -> [Ref] {
        guard let enumerator = FileManager.default.enumerator(atPath: paths.installed) else { return [] }
        var refs: [Ref] = []
        while let item = enumerator.nextObject() as? String {
            let full = "\(paths.installed)/\(item)"
            var st = stat()
            if lstat(full, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK, let ref = try? Ref(item) {
                refs.append(ref)
            }
        }
        return refs
    }

    private func removeDeployments(of ref: Ref, keeping keep: [String]) {
        let dir = "\(paths.deploy)/\(ref.string)"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            guard (try? Digest(algorithm: .sha256, hex: name)) != nil else { continue }
            let relative = "deploy/\(ref.string)/\(name)"
            if !keep.contains(relative) { try? LayerExtractor.removeTree("\(dir)/\(name)") }
        }
    }

    /// Drops blobs no kept deployment needs.
    private func collectGarbage(_ state: InstallState) {
        blobs.collectGarbage(keeping: referencedBlobs(state))
    }

    /// Every blob of the deployments state keeps (active and previous).
    private func referencedBlobs(_ state: InstallState) -> Set<Digest> {
        var keep = Set<Digest>()
        for installation in state.installed.values {
            for deployment in [installation.deployment, installation.previous].compactMap({ $0 }) {
                guard let data = FileManager.default.contents(atPath: "\(paths.root)/\(deployment)/manifest.json"),
                    let manifest = try? Manifest.parse(data)
                else { continue }
                keep.insert(Digest.of(data))
                keep.insert(manifest.config.digest)
                for layer in manifest.layers { keep.insert(layer.digest) }
            }
        }
        return keep
    }

    /// Removes now-empty directories from `path` up to (not including) `stop`.
    private func removeEmptyParents(_ path: String, upTo stop: String) {
        var current = path
        while current.hasPrefix(stop + "/") {
            guard rmdir(current) == 0 else { return }
            current = (current as NSString).deletingLastPathComponent
        }
    }
}

/// `deployment.json`, written last into a finished deployment: its presence marks the deployment complete.
struct DeploymentRecord: Codable {
    var ref: Ref
    var remote: RemoteName
    var digest: Digest
    var timestamp: Int64

    func encoded() throws -> Data {
        do {
            return try JSONEncoder.canonicalOCI.encode(self)
        } catch {
            throw FerryError.failed("cannot encode deployment record: \(error)")
        }
    }

    static func load(_ deployment: String) -> DeploymentRecord? {
        guard let data = FileManager.default.contents(atPath: deployment + "/deployment.json") else { return nil }
        return try? JSONDecoder().decode(DeploymentRecord.self, from: data)
    }
}
