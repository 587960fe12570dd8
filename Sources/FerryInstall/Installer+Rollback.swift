import FerryCore
import Foundation

/// What a rollback would do: switch `ref` from what is installed to the kept previous deployment.
public struct RollbackPlan: Sendable, Equatable {
    public var ref: Ref
    public var fromRemote: RemoteName
    public var fromDigest: Digest
    public var toRemote: RemoteName
    public var toDigest: Digest
    public var toTimestamp: Int64
    /// The previous deployment, relative to the state root.
    var deployment: String
}

extension Installer {
    /// Decides a rollback of `ref` without writing anything.
    ///
    /// - Throws: `NotInstalled` when `ref` is not installed or no previous deployment is kept; `Failed` when the
    ///   kept deployment is not a complete deployment of `ref` (its record is read through descriptors only).
    public func planRollback(_ ref: Ref) throws -> RollbackPlan {
        guard let current = try state().installed[ref.string] else {
            throw FerryError(.notInstalled, "\(ref) is not installed")
        }
        guard let previous = current.previous else {
            throw FerryError(.notInstalled, "\(ref): no previous deployment is kept; nothing to roll back to")
        }
        guard let record = try StateTree(paths: paths).record(previous, ref: ref) else {
            throw FerryError.failed("\(ref): the kept deployment \(previous) is not complete; cannot roll back")
        }
        return RollbackPlan(ref: ref, fromRemote: current.remote, fromDigest: current.digest, toRemote: record.remote,
                            toDigest: record.digest, toTimestamp: record.timestamp, deployment: previous)
    }

    /// Checks that `plan` leaves a bad release for a good one by `ledger` (a scope's view of `remote`'s log): the
    /// installed release is recalled or signed only by a revoked key, and the kept one, of the same remote, is
    /// neither. Such a rollback is what the publisher asked for, and is authorized as an update.
    public func checkLeavesBadRelease(_ plan: RollbackPlan, remote: Remote, ledger: TrustLedger) throws {
        guard plan.fromRemote == remote.name, plan.toRemote == remote.name else {
            throw FerryError.untrusted("\(plan.ref): the kept deployment is from remote \(plan.toRemote); only a "
                + "rollback within remote \(remote.name) leaves a recalled release as an update")
        }
        let installed = try state().installed[plan.ref.string]
        let from = ReleaseStatus.of(ref: plan.ref, digest: plan.fromDigest,
                                    deployment: paths.root + "/" + (installed?.deployment ?? ""), remote: remote,
                                    ledger: ledger)
        guard !from.isGood else {
            throw FerryError(.downgrade, "\(plan.ref): the installed release \(plan.fromDigest.short) is neither "
                + "recalled nor signed by a revoked key by remote \(remote.name)'s log; a rollback needs "
                + "dev.ferry.downgrade")
        }
        let to = ReleaseStatus.of(ref: plan.ref, digest: plan.toDigest, deployment: paths.root + "/" + plan.deployment,
                                  remote: remote, ledger: ledger)
        guard to.isGood else {
            throw FerryError.untrusted("\(plan.ref): the kept release \(plan.toDigest.short) is not good either "
                + "(\(to.label))")
        }
    }

    /// Switches `ref` to its kept previous deployment; the one it replaces becomes the kept one, so a second
    /// rollback goes forward again. `authorize` sees the plan before anything is written (the helper asks polkit
    /// for `dev.ferry.downgrade` there).
    ///
    /// Timestamp records are left alone: they remember the newest release ever installed, so a later `update`
    /// offers it again and a rollback never lowers what a replayed claim must beat.
    @discardableResult
    public func rollback(_ ref: Ref, uid: UInt32 = getuid(), history action: HistoryEntry.Action = .rollback,
                         authorize: (RollbackPlan) throws -> Void = { _ in })
        throws -> RollbackPlan
    {
        let first = try planRollback(ref)
        try authorize(first)
        let tree = try StateTree(paths: paths)
        let refLock = try tree.lockRef(ref)
        defer { refLock.unlock() }
        let plan = try planRollback(ref)
        guard plan == first else {
            throw FerryError(.busy, "\(ref) changed while the rollback was being authorized; try again")
        }
        let config = try tree.readDeploymentFile(plan.deployment, "config.json", maxSize: Int(ImageConfig.maxSize))
            .map(ImageConfig.parse)
        try AtomicFile.symlink(paths.root + "/" + plan.deployment, in: tree.installed(), name: ref.escapedFileName)
        try tree.update(mode: stateMode) { state in
            guard let current = state.installed[ref.string] else {
                throw FerryError(.notInstalled, "\(ref) is not installed")
            }
            let exported = config.map {
                Exports(tree: tree).export(ref: ref, deployment: plan.deployment, config: $0, in: &state)
            } ?? current.exports
            state.installed[ref.string] = InstallState.Installation(
                remote: plan.toRemote, digest: plan.toDigest, timestamp: plan.toTimestamp,
                deployment: plan.deployment, previous: current.deployment, exports: exported)
        }
        appendHistory(action, uid: uid, remote: plan.toRemote, ref: ref, from: plan.fromDigest, to: plan.toDigest,
                      tree: tree)
        return plan
    }
}
