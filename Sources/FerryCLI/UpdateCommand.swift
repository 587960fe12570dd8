import ArgumentParser
import FerryCore
import FerryFetch
import FerryHelper
import FerryInstall
import FerryLog
import FerryTrust
import Foundation

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
