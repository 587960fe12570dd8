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

struct UpdateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "update",
        abstract: "Update installed apps.",
        discussion: """
            Without --system or --user, updates both scopes. Exit status: 0 when every ref is current or was
            updated (including when nothing needed doing), 1 when any ref failed; one line per ref either way.
            """)

    @OptionGroup var scope: ScopeOptions
    @Argument(help: "Refs to update (default: all installed).") var refs: [String] = []
    @Flag(help: "Never prompt, not even for polkit authentication.") var noInteraction = false
    @Flag(help: "Accept an older signed release (system: needs dev.ferry.downgrade).") var allowDowngrade = false
    @Flag(help: ArgumentHelp(
        "Accept expired TUF metadata: install from an older view on purpose (a USB stick, a frozen mirror).",
        discussion: "Signatures, timestamps and TUF versions are checked as always. System-wide this needs "
            + "dev.ferry.downgrade (an administrator), never passwordless.")) var allowStale = false

    func run() async throws {
        let wanted = try Set(refs.map { try Ref($0) })
        let context = AgentContext()
        var failures = 0
        var updated = 0
        var considered = 0
        // Refs found installed in some scope; a named ref counts once however many scopes hold it.
        var found = Set<Ref>()
        var systemUnlisted: FerryError?
        for scope in scope.explicit.map({ [$0] }) ?? [.user, .system] {
            let installed: [(Ref, RemoteName, Digest)]
            do {
                installed = try installedRefs(scope: scope, context: context)
            } catch let error as FerryError {
                if self.scope.explicit == nil && scope == .system {
                    systemUnlisted = error
                    continue
                }
                throw error
            }
            let selected = installed.filter { wanted.isEmpty || wanted.contains($0.0) }
            // One index.json per layout remote, fetched concurrently, answers every up-to-date ref at once.
            let offered = allowDowngrade ? [:] : await offeredDigests(Set(selected.map(\.1)), scope: scope,
                                                                      context: context)
            // Every logged remote's log is read first, installing or not: recalls and key changes arrive this way.
            var ledgers: [RemoteName: TrustLedger] = [:]
            for remoteName in Set(selected.map(\.1)).sorted(by: { $0.string < $1.string }) {
                guard let remote = try? context.remote(remoteName.string, for: scope), remote.logKey != nil else {
                    continue
                }
                do {
                    ledgers[remoteName] = try await Agent(quiet: noInteraction).refreshLog(remote: remote, scope: scope)
                } catch let error as FerryError {
                    printError(error.prefixed("\(remoteName): reading its log").message)
                }
            }
            for (ref, remoteName, digest) in selected {
                considered += 1
                found.insert(ref)
                if offered[remoteName]?[ref] == digest {
                    report(.upToDate(digest), ref: ref, remote: remoteName, scope: scope)
                    continue
                }
                do {
                    let remote = try context.remote(remoteName.string, for: scope)
                    let agent = Agent(quiet: noInteraction)
                    if let ledger = ledgers[remoteName],
                        case let status = installedStatus(ref, digest: digest, remote: remote, ledger: ledger,
                                                          scope: scope, context: context),
                        !status.isGood
                    {
                        try await leave(ref, status: status, remote: remote, scope: scope, agent: agent,
                                        ledger: ledger, digest: digest)
                        updated += 1
                        continue
                    }
                    let result = try await agent.deploy(
                        remote: remote, ref: ref, scope: scope, allowDowngrade: allowDowngrade,
                        interactive: !noInteraction, allowStale: allowStale,
                        installedDigest: allowDowngrade ? nil : digest)
                    if case .changed = result { updated += 1 }
                    report(result, ref: ref, remote: remoteName, scope: scope)
                } catch let error as FerryError {
                    failures += 1
                    OutcomeLog.failure(error.prefixed("\(remoteName) \(ref)").message, ref: ref, remote: remoteName)
                }
            }
        }
        for ref in wanted.subtracting(found).sorted(by: { $0.string < $1.string }) {
            let scope = self.scope.explicit.map { " (\($0))" } ?? ""
            let unlisted = systemUnlisted.map { "; system installs could not be listed: \($0.message)" } ?? ""
            printError("\(ref) is not installed\(scope)\(unlisted)")
            failures += 1
        }
        if considered == 0 && wanted.isEmpty { print("nothing installed; nothing to update") }
        else if failures == 0 && updated == 0 { print("everything is up to date") }
        if failures > 0 { throw ExitCode(1) }
    }

    /// The status of an installed release by the installing side's ledger.
    private func installedStatus(_ ref: Ref, digest: Digest, remote: Remote, ledger: TrustLedger, scope: Scope,
                                 context: AgentContext) -> ReleaseStatus
    {
        let paths = scope == .system ? context.systemPaths : context.userPaths
        let installer = Installer(paths: paths, ownership: scope == .system ? .root : .currentUser)
        guard let installed = (try? installer.installations())?.first(where: { $0.ref == ref }) else { return .good }
        return ReleaseStatus.of(ref: ref, digest: digest, deployment: installed.deploymentPath, remote: remote,
                                ledger: ledger)
    }

    /// Moves `ref` off an installed release its remote's log recalled (or whose key it revoked): to the release the
    /// remote offers when that is newer and good, else back to the kept previous deployment when that one is good
    /// (authorized as an update: the publisher asked for it). Otherwise fails loudly, saying what is installed.
    private func leave(_ ref: Ref, status: ReleaseStatus, remote: Remote, scope: Scope, agent: Agent,
                       ledger: TrustLedger, digest: Digest) async throws
    {
        var offered: String?
        do {
            let result = try await agent.deploy(remote: remote, ref: ref, scope: scope, allowDowngrade: false,
                                                interactive: !noInteraction, allowStale: allowStale,
                                                installedDigest: digest)
            if case .changed = result {
                report(result, ref: ref, remote: remote.name, scope: scope)
                print("\(ref): left the installed \(digest.short) (\(status.label))")
                return
            }
            offered = "the remote still offers it"
        } catch let error as FerryError {
            offered = error.message
        }
        do {
            let moved: Digest
            switch scope {
            case .system:
                let interactive = !noInteraction
                moved = try await onOwnThread {
                    try HelperClient().rollback(ref: ref, interactive: interactive, recalled: true)
                }
            case .user:
                let installer = agent.context.userInstaller()
                moved = try installer.rollback(ref, history: .recall) { plan in
                    try installer.checkLeavesBadRelease(plan, remote: remote, ledger: ledger)
                }.toDigest
            }
            OutcomeLog.success("\(ref): moved off the installed \(digest.short) (\(status.label)) back to the kept "
                + "\(moved.short) (\(scope))", ref: ref, remote: remote.name, digest: moved)
        } catch let error as FerryError {
            throw FerryError(error.code, "the installed release \(digest.short) is \(status.label); there is no good "
                + "release to move to (newer: \(offered ?? "none"); kept: \(error.message)); uninstall it, or wait "
                + "for the publisher's fix")
        }
    }

    /// What each layout remote's `index.json` names for its refs (the last entry per ref, as resolving does).
    /// Registry remotes and remotes that fail here are left out: their refs take the full path, which reports
    /// errors properly. Unverified: it only skips work, so remotes with TUF are left out too, since their
    /// "up to date" must pass the same freshness checks as an install (a frozen mirror serves the same index).
    private func offeredDigests(_ names: Set<RemoteName>, scope: Scope, context: AgentContext) async
        -> [RemoteName: [Ref: Digest]]
    {
        await withTaskGroup(of: (RemoteName, [Ref: Digest])?.self) { group in
            for name in names {
                // TUF and log remotes take the full path: "up to date" must pass their freshness checks too.
                guard let remote = try? context.remote(name.string, for: scope), !remote.isRegistry,
                    remote.tufRoot == nil, remote.logKey == nil, let source = try? remote.source()
                else { continue }
                group.addTask {
                    guard let refs = try? await source.refs() else { return nil }
                    // A ref listed twice with different digests takes the full path.
                    var digests: [Ref: Digest] = [:]
                    var conflicting = Set<Ref>()
                    for item in refs {
                        if let previous = digests.updateValue(item.digest, forKey: item.ref), previous != item.digest {
                            conflicting.insert(item.ref)
                        }
                    }
                    return (name, digests.filter { !conflicting.contains($0.key) })
                }
            }
            var result: [RemoteName: [Ref: Digest]] = [:]
            for await case let (name, digests)? in group { result[name] = digests }
            return result
        }
    }

    private func installedRefs(scope: Scope, context: AgentContext) throws -> [(Ref, RemoteName, Digest)] {
        switch scope {
        case .user:
            return try context.userInstaller().installations().map { ($0.ref, $0.installation.remote, $0.installation.digest) }
        case .system:
            return try HelperClient().listInstalled().map { ($0.ref, $0.remote, $0.digest) }
        }
    }
}

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List installed apps.")

    @OptionGroup var scope: ScopeOptions
    @Flag(help: "JSON output for scripts.") var json = false

    struct Row: Encodable {
        var ref: String
        var remote: String
        var digest: String
        var timestamp: Int64
        var scope: String
        var deployment: String
        /// `good`, or why not (recalled, signing key revoked), by what this scope has read of the remote's log.
        var status: String
    }

    func run() async throws {
        let context = AgentContext()
        var rows: [Row] = []
        for scope in scope.explicit.map({ [$0] }) ?? [.user, .system] {
            switch scope {
            case .user:
                rows += try context.userInstaller().installations().map {
                    Row(ref: $0.ref.string, remote: $0.installation.remote.string,
                        digest: $0.installation.digest.description, timestamp: $0.installation.timestamp,
                        scope: "user", deployment: $0.deploymentPath,
                        status: status(of: $0, scope: .user, context: context).label)
                }
            case .system:
                // Read root-owned state directly: it is world-readable, and listing needs no helper or bus.
                let installer = Installer(paths: context.systemPaths, ownership: .root)
                guard let items = try? installer.installations() else { continue }
                rows += items.map {
                    Row(ref: $0.ref.string, remote: $0.installation.remote.string,
                        digest: $0.installation.digest.description, timestamp: $0.installation.timestamp,
                        scope: "system", deployment: $0.deploymentPath,
                        status: status(of: $0, scope: .system, context: context).label)
                }
            }
        }
        if json {
            try printJSON(rows)
            return
        }
        if rows.isEmpty {
            print("nothing installed")
            return
        }
        let width = max(3, rows.map(\.ref.count).max() ?? 0)
        print("REF".padding(toLength: width, withPad: " ", startingAt: 0) + "  SCOPE   REMOTE        DIGEST               SIGNED AT")
        for row in rows {
            let date = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(row.timestamp)))
            let shortDigest = String(row.digest.prefix(19))
            print(row.ref.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                  + row.scope.padding(toLength: 6, withPad: " ", startingAt: 0) + "  "
                  + row.remote.padding(toLength: 12, withPad: " ", startingAt: 0) + "  " + shortDigest + "  " + date
                  + (row.status == "good" ? "" : "  " + row.status))
        }
    }
}

/// An installed release's status by what its scope has read of its remote's log (`good` without a log).
func status(of installed: InstalledRef, scope: Scope, context: AgentContext) -> ReleaseStatus {
    let remote = try? context.remote(installed.installation.remote.string, for: scope)
    return ReleaseStatus.of(installed, remote: remote,
                            paths: scope == .system ? context.systemPaths : context.userPaths)
}

/// Finds an installed ref, the user's install first.
func findInstalled(_ ref: Ref, context: AgentContext, scope: Scope? = nil) throws -> (Scope, InstalledRef) {
    let candidates: [(Scope, InstallPaths)] = [(.user, context.userPaths), (.system, context.systemPaths)]
    for (candidateScope, paths) in candidates where scope == nil || scope == candidateScope {
        let installer = Installer(paths: paths, ownership: candidateScope == .system ? .root : .currentUser)
        if let found = (try? installer.installations())?.first(where: { $0.ref == ref }) {
            return (candidateScope, found)
        }
    }
    throw FerryError(.notInstalled, "\(ref) is not installed")
}

struct InfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Show an installed app.")

    @Argument(help: "The installed ref.") var ref: String
    @Flag(help: "JSON output for scripts.") var json = false

    func run() async throws {
        let ref = try Ref(ref)
        let context = AgentContext()
        let (scope, item) = try findInstalled(ref, context: context)
        let configData = FileManager.default.contents(atPath: item.deploymentPath + "/config.json") ?? Data()
        let command = (try? ImageConfig.parse(configData))?.command ?? []
        let date = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(item.installation.timestamp)))
        let fields: [(String, String)] = [
            ("ref", ref.string), ("scope", scope.rawValue), ("remote", item.installation.remote.string),
            ("digest", item.installation.digest.description), ("signed", date),
            ("deployment", item.deploymentPath), ("previous", item.installation.previous ?? "none"),
            ("command", command.joined(separator: " ")),
            ("exports", (item.installation.exports ?? []).joined(separator: ", ")),
            ("status", status(of: item, scope: scope, context: context).label),
        ]
        if json {
            let object = Dictionary(uniqueKeysWithValues: fields)
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            for (key, value) in fields { print("\(key.padding(toLength: 11, withPad: " ", startingAt: 0))\(value)") }
        }
    }
}

struct UninstallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "uninstall", abstract: "Remove an installed app.")

    @OptionGroup var scope: ScopeOptions
    @Argument(help: "The installed ref.") var ref: String
    @Flag(help: "Never prompt, not even for polkit authentication.") var noInteraction = false

    func run() async throws {
        let ref = try Ref(ref)
        let context = AgentContext()
        let target = try scope.explicit ?? findInstalled(ref, context: context).0
        switch target {
        case .user: try context.userInstaller().uninstall(ref)
        case .system: try HelperClient().uninstall(ref: ref, interactive: !noInteraction)
        }
        print("\(ref): uninstalled (\(target))")
    }
}

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Start an installed app (the image's command, from its files/).")

    @Argument(help: "The installed ref.") var ref: String
    @Argument(parsing: .postTerminator, help: "Arguments for the app.") var arguments: [String] = []

    func run() async throws {
        let ref = try Ref(ref)
        let (_, item) = try findInstalled(ref, context: AgentContext())
        // The deployment the installed list names; the program is resolved exactly as the launcher resolves it.
        let deployment = item.deploymentPath
        guard let data = FileManager.default.contents(atPath: deployment + "/config.json") else {
            throw FerryError.failed("\(ref): deployment has no config.json")
        }
        let command = try ImageConfig.parse(data).command
        let files = deployment + "/files"
        guard let first = command.first, let program = AppLaunch.program(command: command, files: files) else {
            throw FerryError.failed("\(ref): the image declares no command that stays inside its files")
        }
        guard chdir(files) == 0 else { throw ioError("chdir \(files)") }
        let argv = [program] + command.dropFirst() + arguments
        var cArgs = argv.map { strdup($0) } + [nil]
        execv(program, &cArgs)
        throw FerryError.failed("\(ref): cannot run \(first): \(errnoString())")
    }
}
