import FerryArchive
import FerryCore
import Foundation

/// Recovery: what the engine does after a crash, at helper start and before each agent operation.
extension Installer {
    /// Sweeps what an interrupted run left behind and makes state agree with the links on disk.
    /// Called at helper start and before each agent operation; safe to repeat.
    ///
    /// A link is believed only when it names one of its own ref's deployments whose record names that ref and the
    /// remote state has for it: recovery never takes one ref's state from another ref's or another remote's image.
    ///
    /// With `collectingGarbage`, it also drops blobs no kept deployment needs, which a crash between the state
    /// write and the garbage collection of a commit leaves. Only a caller that is the sole user of the store may
    /// ask for it: the helper at start, before it takes requests. Agents of one user can run side by side and see
    /// no pins of each other's deploys in progress, so they leave the blobs to the next commit's collection.
    public func recover(collectingGarbage: Bool = false) throws {
        // The skeleton exists from the start, so a refused deploy leaves the tree exactly as it found it.
        let tree = try StateTree(paths: paths)
        let installed = try tree.installed()
        _ = try tree.deploy()
        _ = try tree.refLocks()
        try makeDirectory("\(paths.blobs)/sha256")
        try tree.update(mode: stateMode) { state in
            sweepTemporary(tree)
            // Half-written state, exports and links (AtomicFile's temporary entries) of a crashed writer.
            for dir in [paths.root, paths.exportsBin, paths.exportsApplications, paths.installed] {
                AtomicFile.sweep(dir)
            }
            try reconcile(&state, tree: tree, installed: installed)
        } then: { state in
            for (key, installation) in state.installed {
                guard let ref = try? Ref(key) else { continue }
                tree.removeDeployments(of: ref,
                                       keeping: [installation.deployment, installation.previous].compactMap { $0 })
            }
            if collectingGarbage { collectGarbage(state, tree: tree) }
        }
    }

    /// Makes `state` agree with the links under `installed/`, believing only links to a ref's own deployments.
    private func reconcile(_ state: inout InstallState, tree: StateTree, installed: DirectoryHandle) throws {
        for (key, installation) in state.installed {
            guard let ref = try? Ref(key) else { continue }
            if let relative = tree.linkedDeployment(ref, installed: installed),
                let record = tree.record(relative, ref: ref, remote: installation.remote)
            {
                if relative != installation.deployment {
                    // A crash between the link rename and the state write: the link is the truth.
                    state.installed[key] = InstallState.Installation(
                        remote: record.remote, digest: record.digest, timestamp: record.timestamp,
                        deployment: relative, previous: installation.deployment, exports: installation.exports)
                    raiseRecord(&state, record)
                }
                continue
            }
            // The link is gone, broken, or names what it must not: re-point it at the deployment state names, if
            // that one is intact and this ref's; otherwise the ref is no longer installed.
            if tree.record(installation.deployment, ref: ref, remote: installation.remote) != nil {
                try AtomicFile.symlink(paths.root + "/" + installation.deployment, in: installed,
                                       name: ref.escapedFileName)
            } else {
                try installed.unlinkEntry(ref.escapedFileName)
                Exports(tree: tree).remove(installation.exports ?? [])
                state.installed[key] = nil
            }
        }
        // Links whose state entry never got written (crash right after the first install's rename).
        for name in try installed.entryNames() where installed.entryType(name) == S_IFLNK {
            guard let ref = Ref(escapedFileName: name), state.installed[ref.string] == nil else { continue }
            guard let relative = tree.linkedDeployment(ref, installed: installed),
                let record = tree.record(relative, ref: ref)
            else {
                try installed.unlinkEntry(name)
                continue
            }
            state.installed[ref.string] = InstallState.Installation(
                remote: record.remote, digest: record.digest, timestamp: record.timestamp,
                deployment: relative, previous: nil, exports: nil)
            raiseRecord(&state, record)
        }
    }

    /// Records `record`'s claim as the newest of its (remote, ref) when it is newer than the one recorded.
    private func raiseRecord(_ state: inout InstallState, _ record: DeploymentRecord) {
        let key = InstallState.recordKey(remote: record.remote, ref: record.ref)
        if (state.records[key]?.timestamp ?? Int64.min) < record.timestamp {
            state.records[key] = InstallState.Record(timestamp: record.timestamp, digest: record.digest)
        }
    }

    /// Forgets the timestamp records of a remote (`ConfigureRemote` with `reset-rollback-state`).
    public func resetRecords(remote: RemoteName) throws {
        let tree = try StateTree(paths: paths)
        try tree.update(mode: stateMode) { state in
            state.records = state.records.filter { !$0.key.hasPrefix("\(remote) ") }
        }
    }

    private func sweepTemporary(_ tree: StateTree) {
        guard let tmp = try? tree.tmp() else { return }
        for name in (try? tmp.entryNames()) ?? [] {
            // tmp/<kind>-<pid>-…: leave work of live processes alone (another agent may be running).
            let parts = name.split(separator: "-")
            if parts.count >= 2, let pid = Int32(parts[1]), pid != getpid(), kill(pid, 0) == 0 { continue }
            try? LayerExtractor.removeTree(named: name, in: tmp)
        }
    }
}
