import ArgumentParser
import FerryCore
import FerryFetch
import FerryHelper
import FerryInstall
import FerryLog
import FerryTrust
import Foundation

/// The agent's install path, shared by `install` and `update`: fetch, verify locally, stage, then deploy with the
/// user's engine or hand the staged layout to the helper.
struct Agent {
    var context = AgentContext()
    var progress: ProgressReporter

    init(quiet: Bool = false) {
        progress = ProgressReporter(style: quiet ? .quiet : nil)
    }

    enum Result: Sendable {
        case changed(TimestampPolicy.Decision, Digest)
        case upToDate(Digest)
    }

    /// Installs or updates `ref` from `remote` in `scope`. `installedDigest` short-cuts an update when the remote
    /// still serves what is installed: no download at all, but every freshness check an install runs.
    /// `allowStale` accepts expired TUF metadata, here and on the installing side (system: `dev.ferry.downgrade`).
    func deploy(remote: Remote, ref: Ref, scope: Scope, allowDowngrade: Bool, interactive: Bool,
                switchRemote: Bool = false, allowStale: Bool = false, installedDigest: Digest? = nil) async throws
        -> Result
    {
        let fetcher = context.fetcher(progress: progress)
        fetcher.sweep()
        let resolved = try await fetcher.resolve(remote: remote, ref: ref)
        // TUF first, "up to date" included: a frozen or mixed mirror must not pass for current.
        var tufFiles: [String: Data] = [:]
        var tufTarget: TUFTargetInfo?
        if remote.tufRoot != nil {
            var freshness = FreshnessRefresh(remote: remote, directory: "\(context.cacheDirectory)/tuf/\(remote.name)",
                                             fetcher: HTTPTUFFetcher(),
                                             order: { HTTPTransport.shared.preferReachable($0) })
            freshness.acceptExpired = allowStale
            let found = try await freshness.refresh(ref: ref, descriptor: resolved.0)
            for (name, data) in found.files { tufFiles["\(Freshness.stagedDirectory)/\(name)"] = data }
            tufTarget = found.target
        }
        let logPolicy = try LogPolicy.of(remote)
        // The log view for the installing side, from what it has read (its checkpoint and ledger are
        // world-readable); the agent moves a copy of the ledger on too, to refuse early what the log refuses.
        let scopePaths = scope == .system ? context.systemPaths : context.userPaths
        var logged: ReleaseLogStaging.Staged?
        if let logPolicy {
            let staging = ReleaseLogStaging(remote: remote, policy: logPolicy, transport: .shared,
                                            installing: try RemoteLog(remote: remote, paths: scopePaths))
            logged = try await staging.release(ref: ref, descriptor: resolved.0, allowStale: allowStale)
        }
        let logFiles = logged?.files ?? [:]
        if let installedDigest, resolved.0.digest == installedDigest {
            if tufTarget != nil {
                try await checkInstallingSideFreshness(remote: remote, ref: ref, descriptor: resolved.0,
                                                       files: tufFiles, scope: scope, allowStale: allowStale)
            }
            if let logPolicy {
                // Nothing installs, but "up to date" must not rest on a forked, unwitnessed or stale view of the log.
                let proof = try ReleaseProof(parsing: logFiles["log/\(ReleaseProof.fileName)"] ?? Data())
                do {
                    _ = try proof.verify(policy: logPolicy, trusted: RemoteLog(remote: remote, paths: scopePaths)?
                                            .trustedCheckpoint,
                                         consistency: logFiles["log/\(ReleaseProof.consistencyFileName)"],
                                         now: unixNow(), allowStale: allowStale)
                } catch let fork as LogForkError {
                    throw FerryError.untrusted(fork.message)
                }
            }
            return .upToDate(installedDigest)
        }
        if let logged, let recall = logged.ledger.recall(ref: ref, digest: resolved.0.digest) {
            throw FerryError.untrusted(RemoteLog.describe(recall, remote: remote.name))
        }
        let keys = try logged?.keys(gpg: remote.gpgKeys) ?? TrustedKeys(remote: remote)
        guard !keys.isEmpty else {
            throw FerryError.untrusted("remote \(remote.name) has no trusted keys; nothing can be verified")
        }
        let extraFiles = tufFiles.merging(logFiles) { _, new in new }
        let staged = try await fetcher.stage(remote: remote, ref: ref, resolved: resolved, extraFiles: extraFiles) {
            descriptor, _, signatures in
            // Checked before any layer is downloaded: a forged or mixed-up image costs no bandwidth.
            _ = try ClaimVerifier.verify(signatures, digest: descriptor.digest, identity: remote.identity(for: ref),
                                         keys: keys)
        }
        defer { staged.remove() }
        switch scope {
        case .user:
            let installer = context.userInstaller()
            try installer.recover()
            let layout = try ImageLayout(path: staged.path)
            var request = DeployRequest(remote: remote, ref: ref, allowDowngrade: allowDowngrade,
                                        switchRemote: switchRemote)
            request.allowStale = allowStale
            if remote.tufRoot != nil {
                // The engine's own check against the user's installed-side trusted metadata, run here (async)
                // and compared inside the engine's plan like the helper's.
                var check = FreshnessCheck(remote: remote, ref: ref, layout: layout, paths: installer.paths)
                check.acceptExpired = allowStale
                let target = try await check.targetInfo()
                request.checkManifest = { try Freshness.check($0, against: target, remote: remote.name, ref: ref) }
            }
            if var check = try ReleaseLogCheck(remote: remote, ref: ref, layout: layout, paths: installer.paths) {
                check.log.allowStale = allowStale
                let logCheck = check
                request.releaseKeys = { try logCheck.keys(for: $0) }
                request.checkRelease = { try logCheck.check($0, claim: $1, keys: $2) }
            }
            let outcome = try installer.deploy(source: layout, request: request)
            if outcome.decision == .nothingToDo { return .upToDate(outcome.digest) }
            return .changed(outcome.decision, outcome.digest)
        case .system:
            // The helper reads the staging directory as root through the descriptor; it must be able to
            // reach nothing else, but the directory itself needs no special mode.
            let options = Helper1.DeployOptions(allowDowngrade: allowDowngrade, switchRemote: switchRemote,
                                                allowStale: allowStale, interactive: interactive)
            let (path, name, progress) = (staged.path, remote.name, progress)
            // The call blocks for the whole deploy (polkit may show a dialog): on a thread of its own, never on
            // the cooperative pool.
            return try await onOwnThread {
                let client = try HelperClient()
                let before = try client.listInstalled().first { $0.ref == ref }
                let digest = try client.deploy(staging: path, remote: name, ref: ref, options: options,
                                               progress: progress)
                guard let before else { return .changed(.install, digest) }
                if before.digest == digest { return .upToDate(digest) }
                let after = try client.listInstalled().first { $0.ref == ref }
                return .changed((after?.timestamp ?? 0) < before.timestamp ? .downgrade : .update, digest)
            }
        }
    }
}

extension Agent {
    /// Runs the offline TUF check that the installing side (the helper, or the `--user` engine) runs on a staged
    /// layout, against `files` (the metadata just fetched, keyed `tuf/NAME`), for an update that downloads nothing.
    ///
    /// Without it, "up to date" would rest on the agent's own cache only, which a user may have emptied: a mirror
    /// replaying metadata older than the installing side trusts would pass. `--user`: the user's trusted copy, which
    /// advances as an install would advance it. System: a scratch copy of root's trusted copy (world-readable,
    /// writable by root only), so the agent refuses what the helper would refuse without writing root's state.
    func checkInstallingSideFreshness(remote: Remote, ref: Ref, descriptor: Descriptor, files: [String: Data],
                                      scope: Scope, allowStale: Bool) async throws {
        let scratch = "\(context.cacheDirectory)/tuf-check-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let staged = "\(scratch)/layout/\(Freshness.stagedDirectory)"
        try FileManager.default.createDirectory(atPath: staged, withIntermediateDirectories: true)
        for (name, data) in files { try data.write(to: URL(fileURLWithPath: "\(scratch)/layout/\(name)")) }
        let paths: InstallPaths
        switch scope {
        case .user:
            paths = context.userPaths
        case .system:
            paths = InstallPaths(root: "\(scratch)/trusted")
            // File by file (copyItem would try to keep root's ownership, and fail); the directory holds plain
            // files only. Unreadable: the check starts from the configured root, as the agent's own refresh did.
            let trusted = context.systemPaths.tuf(remote.name)
            let copy = paths.tuf(remote.name)
            try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
            for name in (try? FileManager.default.contentsOfDirectory(atPath: trusted)) ?? [] {
                guard let data = FileManager.default.contents(atPath: "\(trusted)/\(name)") else { continue }
                try data.write(to: URL(fileURLWithPath: "\(copy)/\(name)"))
            }
        }
        let layout = try ImageLayout(path: "\(scratch)/layout")
        var check = FreshnessCheck(remote: remote, ref: ref, layout: layout, paths: paths)
        check.acceptExpired = allowStale
        try await check.verify(descriptor)
    }
}

extension Agent {
    /// Moves the installing side's view of a logged remote's log to what the remote serves now (every entry since
    /// it last read the log: key events, recalls), even when nothing installs: system-wide through the helper's
    /// `ApplyLog`, for the user through the same check the engine runs. Returns the ledger the installing side has
    /// now. The timer's `update` runs this, so recalls and revocations reach a machine that installs nothing.
    func refreshLog(remote: Remote, scope: Scope) async throws -> TrustLedger? {
        guard let policy = try LogPolicy.of(remote) else { return nil }
        let paths = scope == .system ? context.systemPaths : context.userPaths
        guard var installing = try RemoteLog(remote: remote, paths: paths) else { return nil }
        let staged = try await ReleaseLogStaging(remote: remote, policy: policy, transport: .shared,
                                                 installing: installing).view()
        let stored = try installing.storedLedger()
        let trustedSize = try installing.trustedCheckpoint.map {
            try Checkpoint.open($0, logKey: policy.logKey).checkpoint.size
        }
        guard staged.ledger.size > stored.size || trustedSize.map({ staged.checkpoint.size > $0 }) ?? true else {
            return stored
        }
        let directory = "\(context.cacheDirectory)/log-view-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/log", withIntermediateDirectories: true)
        for (name, data) in staged.files { try AtomicFile.write(data, to: "\(directory)/\(name)") }
        switch scope {
        case .system:
            let name = remote.name
            _ = try await onOwnThread { try HelperClient().applyLog(staging: directory, remote: name) }
        case .user:
            installing.allowStale = true
            try installing.commit(try installing.view(staged: ImageLayout(path: directory)))
        }
        return try installing.storedLedger()
    }
}

/// Prints a deploy result in one line.
func report(_ result: Agent.Result, ref: Ref, remote: RemoteName, scope: Scope) {
    switch result {
    case .upToDate(let digest):
        OutcomeLog.success("\(ref): up to date (\(digest.short), \(scope))", ref: ref, remote: remote, digest: digest)
    case .changed(let decision, let digest):
        let verb = [.install: "installed", .update: "updated", .downgrade: "downgraded"][decision] ?? "deployed"
        OutcomeLog.success("\(ref): \(verb) \(digest.short) from \(remote) (\(scope))", ref: ref, remote: remote,
                           digest: digest)
    }
}

struct InstallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "install", abstract: "Install an app from a remote.")

    @OptionGroup var scope: ScopeOptions
    @Argument(help: "The remote to install from.") var remote: String
    @Argument(help: "The ref to install.") var ref: String
    @Flag(help: "Do not ask for confirmation.") var assumeYes = false
    @Flag(help: "Never prompt, not even for polkit authentication.") var noInteraction = false
    @Flag(help: ArgumentHelp(
        "Install an app that is installed from another remote from this one instead.",
        discussion: "The new remote's publisher was never trusted for the app: system-wide this needs "
            + "dev.ferry.downgrade, and an older release than the installed one also needs --allow-downgrade."))
    var switchRemote = false
    @Flag(help: "With --switch-remote: accept a release older than the installed one.") var allowDowngrade = false
    @Flag(help: ArgumentHelp(
        "Accept expired TUF metadata: install from an older view on purpose (a USB stick, a frozen mirror).",
        discussion: "Signatures, timestamps and TUF versions are checked as always. System-wide this needs "
            + "dev.ferry.downgrade (an administrator), never passwordless.")) var allowStale = false

    func run() async throws {
        let ref = try Ref(ref)
        let context = AgentContext()
        // Without a flag: the remote's own scope (a system remote installs system-wide).
        let name = try RemoteName(remote)
        let target = scope.explicit ?? ((try? context.userRemotes.load(name)) != nil ? .user : .system)
        let remote = try context.remote(remote, for: target)
        if !assumeYes && !noInteraction && isatty(0) != 0 {
            FileHandle.standardError.write(Data("Install \(ref) from \(remote.name) (\(target))? [y/N] ".utf8))
            guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
                throw FerryError.failed("\(ref): not installed (declined)")
            }
        }
        do {
            let result = try await Agent().deploy(remote: remote, ref: ref, scope: target,
                                                  allowDowngrade: allowDowngrade, interactive: !noInteraction,
                                                  switchRemote: switchRemote, allowStale: allowStale)
            report(result, ref: ref, remote: remote.name, scope: target)
        } catch let error as FerryError {
            throw error.prefixed("\(remote.name) \(ref)")
        }
    }
}
