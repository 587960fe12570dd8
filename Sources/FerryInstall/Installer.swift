import FerryArchive
import FerryCore
import FerryTrust
import Foundation

/// The install engine shared by `ferry --user` and `ferry-helper`: staged layout → verified blobs →
/// deployment → atomic switch → durable state.
///
/// Every operation on the state tree goes through ``StateTree``: directory descriptors, one escaped component
/// per ref, no symlink followed. Crash safety: everything before the rename of `installed/<ref>` lives in `tmp/`
/// or in a deployment directory nothing points to yet, and is swept by ``recover()``. The rename is the commit
/// point; `state.json` follows it, and ``recover()`` re-derives state from the links when a crash fell between.
public final class Installer: Sendable {
    public let paths: InstallPaths
    public let ownership: LayerExtractor.Ownership
    public let limits: ExtractionLimits
    public let blobs: BlobStore
    /// The file mode of state.json: world-readable in both scopes (it names refs, remotes and digests, which
    /// `ferry list` shows any user for the system; a user's lives in their own data directory).
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
    /// anything staged), the timestamp rules against the recorded state, and that the ref's app ID is not
    /// installed from another remote (unless the request switches remotes, which is authorized as a downgrade).
    public func plan(source: ImageLayout, request: DeployRequest) throws -> DeployPlan {
        let ref = request.ref
        guard request.remote.hasKeys else {
            throw FerryError.untrusted("remote \(request.remote.name) has no trusted keys; nothing can be verified")
        }
        let current = try state()
        // One app ID, one remote: a publisher blessed for remote B must not reach an app installed from A through
        // another branch of the same app ID, nor by a claim that happens to match A's record.
        let foreign = current.installed.compactMap { key, installation -> (Ref, InstallState.Installation)? in
            guard let other = try? Ref(key), other.appID == ref.appID, installation.remote != request.remote.name
            else { return nil }
            return (other, installation)
        }.sorted { $0.0 < $1.0 }
        if let (other, installation) = foreign.first, !request.switchRemote {
            throw FerryError.untrusted(
                "\(ref.appID) is installed from remote \(installation.remote) (\(other)); installing it from "
                    + "\(request.remote.name) needs --switch-remote")
        }
        let descriptor = try source.descriptor(for: ref)
        guard descriptor.size <= Manifest.maxSize else {
            throw FerryError.invalidArgument("manifest is \(descriptor.size) bytes; the limit is \(Manifest.maxSize)")
        }
        try request.checkManifest?(descriptor)
        let manifest = try source.manifest(descriptor)
        let keys = try request.releaseKeys?(descriptor) ?? TrustedKeys(remote: request.remote)
        let signatures = try source.signatures(ref: ref, digest: descriptor.digest)
        let claim = try ClaimVerifier.verify(signatures, digest: descriptor.digest,
                                             identity: request.remote.identity(for: ref), keys: keys)
        try request.checkRelease?(descriptor, claim, keys)
        let recorded = current.record(remote: request.remote.name, ref: ref)
        let installed = current.installed[ref.string]
        let installedFromHere = installed.map { $0.remote == request.remote.name } ?? false
        let decision = try TimestampPolicy.decide(
            newTimestamp: claim.timestamp, newDigest: descriptor.digest,
            recorded: recorded.map { ($0.timestamp, $0.digest) },
            installed: installedFromHere ? installed?.digest : nil,
            now: request.now, allowDowngrade: request.allowDowngrade)
        var switchesFrom: RemoteName?
        if let (_, installation) = foreign.first {
            switchesFrom = installation.remote
            // A switch never goes back in time silently either: the claim must not be older than the one installed.
            if let installed, installed.remote != request.remote.name, claim.timestamp < installed.timestamp,
                !request.allowDowngrade
            {
                throw FerryError(
                    .downgrade,
                    "claim from \(TimestampPolicy.describe(claim.timestamp)) of remote \(request.remote.name) is older "
                        + "than the installed \(TimestampPolicy.describe(installed.timestamp)) from remote "
                        + "\(installed.remote); use --allow-downgrade to switch anyway")
            }
        }
        return DeployPlan(ref: ref, remote: request.remote.name, manifestDescriptor: descriptor, manifest: manifest,
                          claim: claim, signatures: signatures, decision: decision, switchesFrom: switchesFrom,
                          allowsStale: request.allowStale)
    }

    /// Deploys `request.ref` from `source`. `authorize` sees the plan before anything is written and may throw
    /// (the helper asks polkit there). Deploys of the same ref are serialized across threads and processes.
    ///
    /// Nothing is created before `authorize` returns, not even the ref's lock file (a caller who may not install
    /// must not be able to fill the disk with inodes), and no lock is held while it runs (an authentication
    /// dialog can take minutes). Under the lock the plan is made again, and asked for again if it changed.
    @discardableResult
    public func deploy(
        source: ImageLayout, request: DeployRequest,
        authorize: (DeployPlan) throws -> Void = { _ in },
        progress: (DeployPhase, UInt64, UInt64) -> Void = { _, _, _ in }
    ) throws -> DeployOutcome {
        let first = try plan(source: source, request: request)
        try authorize(first)
        let tree = try StateTree(paths: paths)
        let refLock = try tree.lockRef(request.ref)
        defer { refLock.unlock() }
        let plan = try self.plan(source: source, request: request)
        if !plan.asksForTheSame(as: first) { try authorize(plan) }

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
            return try copyExtractCommit(plan: plan, uid: request.uid, tree: tree, source: source,
                                         descriptors: descriptors, target: target, added: &added, progress: progress)
        } catch {
            // Bad input loses nothing and leaves nothing: take back the blobs this deploy added.
            BlobPins.shared.unpin(digests)
            defer { BlobPins.shared.pin(digests) }
            discard(added, tree: tree)
            throw error
        }
    }

    private func copyExtractCommit(
        plan: DeployPlan, uid: UInt32, tree: StateTree, source: ImageLayout, descriptors: [Descriptor], target: String,
        added: inout [Digest], progress: (DeployPhase, UInt64, UInt64) -> Void
    ) throws -> DeployOutcome {
        let total = UInt64(try descriptors.totalSize())
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

        // Extract into a fresh directory under tmp/, then move it into deploy/. A deployment is reused only when
        // its record says it is this ref's, from this remote, of this digest.
        let relative = StateTree.relativeDeployment(plan.ref, hex: plan.digest.hex)
        if tree.record(relative, ref: plan.ref, remote: plan.remote)?.digest != plan.digest {
            try extract(plan: plan, tree: tree, config: configData, diffIDs: config.rootfs.diff_ids,
                        progress: progress)
        }

        // Commit: the link rename is the switch; state follows.
        progress(.commit, 0, 1)
        let outcome = try commit(plan: plan, uid: uid, tree: tree, target: target, config: config)
        progress(.commit, 1, 1)
        return outcome
    }

    /// Removes blobs a failed deploy added, unless state or another deploy in progress needs them.
    private func discard(_ added: [Digest], tree: StateTree) {
        guard !added.isEmpty else { return }
        // Under the state lock (read only), so a concurrent commit's new references are seen.
        _ = try? tree.update(mode: stateMode) { state in
            let referenced = referencedBlobs(state, tree: tree)
            blobs.remove(added.filter { !referenced.contains($0) && !BlobPins.shared.isPinned($0) })
        }
    }

    private func extract(plan: DeployPlan, tree: StateTree, config: Data, diffIDs: [Digest],
                         progress: (DeployPhase, UInt64, UInt64) -> Void) throws {
        let tmp = try tree.tmp()
        let workName = "deploy-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let work = try tmp.makeSubdirectory(workName, mode: 0o700)
        var finished = false
        defer {
            if !finished { try? LayerExtractor.removeTree(named: workName, in: tmp) }
        }
        let filesDir = try work.makeSubdirectory("files")
        let store = ObjectStore(objects: try tree.objects())
        let extractor = LayerExtractor(target: filesDir, limits: limits, ownership: ownership)
        extractor.existingFile = { store.existing($0, mode: $1, mtime: $2, size: $3) }
        let total = UInt64(try plan.manifest.layers.totalSize())
        var done: UInt64 = 0
        progress(.extract, 0, total)
        for (layer, diffID) in zip(plan.manifest.layers, diffIDs) {
            let fd = try blobs.open(layer)
            defer { close(fd) }
            _ = try extractor.apply(layerFD: fd, compression: LayerCompression(mediaType: layer.mediaType),
                                    diffID: diffID, contentDigests: Installer.contentDigests(of: layer, fd: fd))
            done += UInt64(layer.size)
            progress(.extract, done, total)
        }
        // Files the store already holds become links to them; new ones become objects (before the commit, so a
        // crash leaves at most objects no deployment links, which garbage collection drops).
        _ = try store.link(filesDir)
        // The verified metadata beside the tree, so a deployment explains itself (and recover() can rebuild state).
        let manifestData = try blobs.read(plan.manifestDescriptor, maxSize: Manifest.maxSize)
        try AtomicFile.write(manifestData, in: work, name: "manifest.json")
        try AtomicFile.write(config, in: work, name: "config.json")
        try AtomicFile.write(plan.claim.claim.serialized(), in: work, name: "claim.json")
        let signatures = try work.makeSubdirectory("signatures")
        for (i, sig) in plan.signatures.gpg.enumerated() {
            try AtomicFile.write(sig, in: signatures, name: SignatureSet.gpgFileName(i + 1))
        }
        for (i, pair) in plan.signatures.ed25519.enumerated() {
            try AtomicFile.write(pair.claim, in: signatures, name: SignatureSet.claimFileName(i + 1))
            try AtomicFile.write(pair.minisig, in: signatures, name: SignatureSet.minisigFileName(i + 1))
        }
        let record = DeploymentRecord(ref: plan.ref, remote: plan.remote, digest: plan.digest,
                                      timestamp: plan.claim.timestamp)
        try AtomicFile.write(record.encoded(), in: work, name: "deployment.json")
        _ = fchmod(work.fd, 0o755)
        try work.sync()

        let refDir = try tree.deploy().makeSubdirectory(plan.ref.escapedFileName)
        let hex = plan.digest.hex
        // An incomplete deployment from an interrupted run, or one of another remote: replace it.
        if refDir.entryType(hex) != nil { try LayerExtractor.removeTree(named: hex, in: refDir) }
        guard renameat(tmp.fd, workName, refDir.fd, hex) == 0 else {
            throw ioError("rename deployment into deploy/\(plan.ref.escapedFileName)/\(hex)")
        }
        finished = true
        try refDir.sync()
    }

    private func commit(plan: DeployPlan, uid: UInt32, tree: StateTree, target: String, config: ImageConfig) throws
        -> DeployOutcome
    {
        try AtomicFile.symlink(target, in: tree.installed(), name: plan.ref.escapedFileName)

        let relative = StateTree.relativeDeployment(plan.ref, hex: plan.digest.hex)
        var before: Digest?
        try tree.update(mode: stateMode) { state in
            before = state.installed[plan.ref.string]?.digest
            record(plan, deployment: relative, config: config, tree: tree, in: &state)
        } then: { state in
            let kept = state.installed[plan.ref.string].map { [$0.deployment, $0.previous].compactMap { $0 } } ?? []
            tree.removeDeployments(of: plan.ref, keeping: kept)
            collectGarbage(state, tree: tree)
            let action: HistoryEntry.Action =
                plan.switchesFrom != nil ? .switchRemote
                : plan.decision == .downgrade ? .downgrade : plan.decision == .update ? .update : .install
            appendHistory(action, uid: uid, remote: plan.remote, ref: plan.ref, from: before, to: plan.digest,
                          tree: tree)
        }
        return DeployOutcome(decision: plan.decision, digest: plan.digest, deployment: target)
    }

    /// Records a committed deploy in `state`: the installation (the deployment it replaces kept as previous), its
    /// exports, and the timestamp record.
    private func record(_ plan: DeployPlan, deployment relative: String, config: ImageConfig, tree: StateTree,
                        in state: inout InstallState) {
        let old = state.installed[plan.ref.string]
        let previous = old.flatMap { $0.deployment == relative ? $0.previous : $0.deployment }
        let exported = Exports(tree: tree).export(ref: plan.ref, deployment: relative, config: config, in: &state)
        state.installed[plan.ref.string] = InstallState.Installation(
            remote: plan.remote, digest: plan.digest, timestamp: plan.claim.timestamp, deployment: relative,
            previous: previous, exports: exported)
        state.records[InstallState.recordKey(remote: plan.remote, ref: plan.ref)] =
            InstallState.Record(timestamp: plan.claim.timestamp, digest: plan.digest)
    }

    // MARK: Uninstall

    /// Removes an installed ref: its link, the exports it owns and its deployments. Timestamp records stay.
    public func uninstall(_ ref: Ref, uid: UInt32 = getuid()) throws {
        // Checked before any lock file exists: a ref that was never installed leaves nothing behind.
        guard try state().installed[ref.string] != nil else {
            throw FerryError(.notInstalled, "\(ref) is not installed")
        }
        let tree = try StateTree(paths: paths)
        let refLock = try tree.lockRef(ref)
        defer { refLock.unlock() }
        let removed = try tree.update(mode: stateMode) { state in
            guard let installation = state.installed[ref.string] else {
                throw FerryError(.notInstalled, "\(ref) is not installed")
            }
            try tree.installed().unlinkEntry(ref.escapedFileName)
            Exports(tree: tree).remove(installation.exports ?? [])
            state.installed[ref.string] = nil
            return installation
        } then: { state in
            tree.removeDeployments(of: ref, keeping: [])
            collectGarbage(state, tree: tree)
        }
        appendHistory(.uninstall, uid: uid, remote: removed.remote, ref: ref, from: removed.digest, to: nil, tree: tree)
    }

    /// Records a committed change in `history.jsonl`. The change is done: a history that cannot be written is not
    /// a reason to report it failed, so this never throws.
    func appendHistory(_ action: HistoryEntry.Action, uid: UInt32, remote: RemoteName, ref: Ref, from: Digest?,
                       to: Digest?, tree: StateTree) {
        let entry = HistoryEntry(time: Int64(Date().timeIntervalSince1970), uid: uid, action: action, remote: remote,
                                 ref: ref, from: from, to: to)
        try? History.append(entry, in: tree.root, mode: stateMode)
    }

    /// The content digest of each file a zstd:chunked layer's table of contents announces, by path; empty for a
    /// plain layer or a TOC that does not read (it is only a hint: extraction checks each file's data against it).
    /// The TOC is read from the verified blob with `pread`, leaving `fd`'s offset for the extractor.
    static func contentDigests(of layer: Descriptor, fd: Int32) -> [String: Digest] {
        guard let (toc, _) = (try? ChunkedTOC.read(layer: layer, fd: fd)) ?? nil else { return [:] }
        var digests: [String: Digest] = [:]
        for file in toc.files {
            let name = file.name.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
            digests[name] = file.digest
        }
        return digests
    }

    // MARK: Housekeeping

    /// Drops blobs no kept deployment needs.
    func collectGarbage(_ state: InstallState, tree: StateTree) {
        blobs.collectGarbage(keeping: referencedBlobs(state, tree: tree))
        if let objects = try? tree.objects() { ObjectStore(objects: objects).collectGarbage() }
    }

    /// Every blob of the deployments state keeps (active and previous).
    private func referencedBlobs(_ state: InstallState, tree: StateTree) -> Set<Digest> {
        var keep = Set<Digest>()
        for installation in state.installed.values {
            for deployment in [installation.deployment, installation.previous].compactMap({ $0 }) {
                guard let data = tree.readDeploymentFile(deployment, "manifest.json", maxSize: Manifest.maxSize),
                    let manifest = try? Manifest.parse(data)
                else { continue }
                keep.insert(Digest.of(data))
                keep.insert(manifest.config.digest)
                for layer in manifest.layers { keep.insert(layer.digest) }
            }
        }
        return keep
    }
}
