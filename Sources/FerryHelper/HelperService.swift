import FerryBus
import FerryCore
import FerryInstall
import FerryTrust
import Foundation
import Logging
import Synchronization

/// `dev.ferry.Helper1` on the system bus: decodes every argument through ``Helper1``, asks polkit for exactly the
/// action it decided on (``PolkitPolicy``), and runs the shared install engine as root against root-owned
/// configuration and state.
///
/// Threading: the bus loop runs on the calling thread and answers every call; Deploy, Uninstall, Rollback and
/// ConfigureRemote run on a thread each (at most 64, at most 8 per uid) and reply later, so ListInstalled and
/// Version stay answered while a long deploy runs. Deploys of one ref are serialized by the engine's lock file.
public final class HelperService: Sendable {
    /// More jobs than this at once are refused as Busy rather than queued without bound.
    static let maxConcurrentJobs = 64
    /// More jobs than this from one uid at once are refused as Busy: without it, one local user holding 64 slow
    /// calls (a deploy waiting for an authentication dialog, a large staging) would make every other user Busy.
    static let maxJobsPerUID = 8

    let root: String
    let paths: InstallPaths
    let remotes: RemoteStore
    let installer: Installer
    let connection: BusConnection
    let busAddress: String?
    let logger = Logger(label: "ferry-helper")
    /// Jobs running, in all and per uid.
    private let jobs = Mutex<(total: Int, byUID: [UInt32: Int])>((0, [:]))

    /// Recovers the state under `root` (a crash may have left it half-committed) and connects to the bus at
    /// `busAddress`, or to the system bus.
    public init(root: String, busAddress: String?) throws {
        self.root = root
        self.busAddress = busAddress
        paths = InstallPaths.system(prefix: root)
        remotes = RemoteStore(directory: joinPath(root, "etc/ferry/remotes.d"), scope: .system)
        installer = Installer(paths: paths, ownership: .root)
        // Sweep what a crash left and make state agree with the links before answering anyone.
        try installer.recover(collectingGarbage: true)
        AtomicFile.sweep(remotes.directory)
        connection = try HelperService.connect(busAddress)
    }

    static func connect(_ address: String?) throws -> BusConnection {
        if let address { return try BusConnection(address: address) }
        return try BusConnection.system()
    }

    /// Serves until `idleTimeout` passes without calls (never, when `nil`).
    public func run(idleTimeout: Duration?) throws {
        try connection.exportObject(
            path: Helper1.objectPath, interface: Helper1.interface,
            properties: ["Version": .uint32(Helper1.version)], introspectionXML: Helper1.introspectionXML
        ) { [self] call in
            do {
                return try handle(call)
            } catch {
                return .error(Helper1.busError(error))
            }
        }
        try connection.requestName(Helper1.busName)
        _ = ServiceNotifier.ready()
        _ = ServiceNotifier.status("Waiting for requests")
        logger.info("ferry-helper ready", metadata: ["root": "\(root)"])
        var exit = try connection.run(idleTimeout: idleTimeout)
        if exit == .idle {
            // Give the name up first, then answer whatever was already queued for us, then leave: a caller
            // racing the exit gets its answer or activates a fresh helper, never a dropped call.
            try? connection.releaseName(Helper1.busName)
            exit = try connection.run(idleTimeout: .milliseconds(200))
        }
        _ = ServiceNotifier.stopping()
        logger.info("ferry-helper exiting (\(exit))")
    }

    // MARK: Dispatch

    private func handle(_ call: BusMethodCall) throws -> BusReply {
        guard let method = Helper1.Method(rawValue: call.member) else {
            throw BusError(name: BusError.Names.unknownMethod, message: "no method \(call.member.prefix(100))")
        }
        guard call.signature == method.signature else {
            throw FerryError.invalidArgument(
                "\(call.member) expects (\(method.signature)), got (\(call.signature.prefix(64)))")
        }
        switch method {
        case .deploy: return try deploy(call)
        case .uninstall: return try uninstall(call)
        case .rollback: return try rollback(call)
        case .configureRemote: return try configureRemote(call)
        case .listInstalled: return .values(Helper1.Installed.encode(try listInstalled()))
        case .applyLog: return try applyLog(call)
        }
    }

    /// Runs `body` on a thread of its own and answers the call with its result, counted against the global limit
    /// and the limit of the caller's `uid`.
    ///
    /// A thread per job (at most ``maxConcurrentJobs``): jobs block for long (polkit dialogs, locks, large copies),
    /// and a dispatch queue's pool, a few threads wide, would make later callers wait for them.
    private func later(_ call: BusMethodCall, uid: UInt32, _ body: @escaping @Sendable () throws -> [BusValue]) throws
        -> BusReply
    {
        try jobs.withLock { jobs in
            guard jobs.byUID[uid, default: 0] < HelperService.maxJobsPerUID else {
                throw FerryError(.busy, "too many requests of uid \(uid) in progress (at most "
                                     + "\(HelperService.maxJobsPerUID)); try again")
            }
            guard jobs.total < HelperService.maxConcurrentJobs else {
                throw FerryError(.busy, "too many requests in progress; try again")
            }
            jobs.total += 1
            jobs.byUID[uid, default: 0] += 1
        }
        let worker = Thread { [self] in
            defer {
                jobs.withLock { jobs in
                    jobs.total -= 1
                    jobs.byUID[uid, default: 1] -= 1
                    if jobs.byUID[uid] == 0 { jobs.byUID[uid] = nil }
                }
            }
            do {
                call.reply(try body())
            } catch {
                call.replyError(Helper1.busError(error))
            }
        }
        worker.name = "ferry-helper job \(call.member)"
        worker.start()
        return .deferred
    }

    // MARK: Deploy

    private func deploy(_ call: BusMethodCall) throws -> BusReply {
        let remoteName = try RemoteName(call.arguments[1].stringValue ?? "")
        let ref = try Ref(call.arguments[2].stringValue ?? "")
        let options = try Helper1.DeployOptions(decoding: call.arguments[3])
        let (staging, uid, remote) = try stagedCall(call, remote: remoteName)
        let sender = call.sender
        return try later(call, uid: uid) { [self] in
            // Staged files must belong to the caller: a hard link to a file of root's is not theirs to hand over.
            let source = ImageLayout(root: staging, policy: .init(owner: uid))
            var request = DeployRequest(remote: remote, ref: ref, allowDowngrade: options.allowDowngrade,
                                        switchRemote: options.switchRemote)
            request.uid = uid
            request.allowStale = options.allowStale
            if remote.tufRoot != nil {
                // Offline, against root's own trusted metadata in tuf/REMOTE; the staged tuf/ is the only network.
                var check = FreshnessCheck(remote: remote, ref: ref, layout: source, paths: paths)
                check.acceptExpired = options.allowStale
                request.checkManifest = check.blockingCheck()
            }
            if var check = try ReleaseLogCheck(remote: remote, ref: ref, layout: source, paths: paths) {
                // Offline, against root's trusted checkpoint in log/REMOTE; the staged log/ is the only network.
                check.log.allowStale = options.allowStale
                check.log.onFork = { [logger] message in
                    logger.error("\(message)", metadata: ["remote": "\(remoteName)", "ref": "\(ref)"])
                }
                let logCheck = check
                request.releaseKeys = { try logCheck.keys(for: $0) }
                request.checkRelease = { try logCheck.check($0, claim: $1, keys: $2) }
            }
            let progress = ProgressSignal(connection: connection, ref: ref, destination: sender)
            let meta: Logger.Metadata = ["remote": "\(remoteName)", "ref": "\(ref)", "uid": "\(uid)"]
            do {
                let outcome = try installer.deploy(
                    source: source, request: request,
                    authorize: { plan in
                        try self.authorize(plan, sender: sender, interactive: options.interactive)
                    },
                    progress: progress.report)
                var done = meta
                done["digest"] = "\(outcome.digest)"
                logger.info("\(ref): \(outcome.decision) \(outcome.digest.short) from \(remoteName)", metadata: done)
                return [.string(outcome.digest.description)]
            } catch let error as FerryError {
                logger.warning("\(ref): deploy refused: \(error.message)", metadata: meta)
                throw error.prefixed("\(remoteName) \(ref)")
            }
        }
    }

    /// What a call that hands over a staged directory (argument 0) for a remote carries: the directory, adopted,
    /// the caller's uid, and the remote as root configured it.
    private func stagedCall(_ call: BusMethodCall, remote name: RemoteName) throws
        -> (DirectoryHandle, UInt32, Remote)
    {
        let fd = try call.takeUnixFD(at: 0)
        let staging: DirectoryHandle
        do {
            staging = try DirectoryHandle(adopting: fd)
        } catch {
            close(fd)
            throw error
        }
        let uid = try call.senderUID()
        guard let remote = try remotes.load(name) else {
            throw FerryError.untrusted("remote \(name) is not configured system-wide")
        }
        return (staging, uid, remote)
    }

    /// Asks polkit for the action that matches what the engine decided; nothing to do needs no authorization.
    private func authorize(_ plan: DeployPlan, sender: String, interactive: Bool) throws {
        guard let action = PolkitPolicy.deployAction(decision: plan.decision, switchingRemote: plan.switchesFrom != nil,
                                                     acceptingStale: plan.allowsStale)
        else { return }
        var details = ["remote": plan.remote.string, "ref": plan.ref.string, "digest": plan.digest.description]
        if let from = plan.switchesFrom { details["previous-remote"] = from.string }
        if plan.allowsStale { details["allow-stale"] = "true" }
        try checkPolkit(action, sender: sender, details: details, interactive: interactive)
    }

    private func checkPolkit(_ action: String, sender: String, details: [String: String], interactive: Bool) throws {
        // A connection of the worker's own: an authentication dialog can take minutes, and the main
        // connection must keep answering other callers meanwhile.
        let bus = try HelperService.connect(busAddress)
        let result: PolkitResult
        do {
            result = try PolkitAuthority(connection: bus).checkAuthorization(
                action: action, busName: sender, details: details, allowInteraction: interactive)
        } catch let error as BusError {
            throw FerryError(.notAuthorized, "cannot ask polkit for \(action): \(error.message)")
        }
        guard result.isAuthorized else {
            let why = result.isChallenge ? " (authentication required; run interactively)" : ""
            throw FerryError(.notAuthorized, "not authorized for \(action)\(why)")
        }
    }

    // MARK: Uninstall

    private func uninstall(_ call: BusMethodCall) throws -> BusReply {
        let ref = try Ref(call.arguments[0].stringValue ?? "")
        let options = try Helper1.CallOptions(decoding: call.arguments[1], for: .uninstall)
        guard let installed = try installer.installations().first(where: { $0.ref == ref }) else {
            throw FerryError(.notInstalled, "\(ref) is not installed")
        }
        let sender = call.sender
        let uid = try call.senderUID()
        return try later(call, uid: uid) { [self] in
            try checkPolkit(PolkitPolicy.uninstall, sender: sender,
                            details: ["ref": ref.string, "remote": installed.installation.remote.string],
                            interactive: options.interactive)
            try installer.uninstall(ref, uid: uid)
            logger.info("\(ref): uninstalled", metadata: ["ref": "\(ref)", "uid": "\(uid)"])
            return []
        }
    }

    // MARK: Rollback

    /// Switches a ref to its kept previous deployment, asked as ``PolkitPolicy/rollback``.
    private func rollback(_ call: BusMethodCall) throws -> BusReply {
        let ref = try Ref(call.arguments[0].stringValue ?? "")
        let options = try Helper1.CallOptions(decoding: call.arguments[1], for: .rollback)
        let sender = call.sender
        let uid = try call.senderUID()
        // Refused before a job starts when there is nothing to roll back to.
        let first = try installer.planRollback(ref)
        // Leaving a recalled release: judged by root's own view of the remote's log (moved on by ApplyLog).
        let leaving: (Remote, TrustLedger)?
        if options.recalled {
            guard let remote = try remotes.load(first.fromRemote),
                let ledger = try RemoteLog(remote: remote, paths: paths)?.storedLedger()
            else {
                throw FerryError.untrusted("\(ref): remote \(first.fromRemote) has no transparency log here, so "
                    + "nothing it installed can be recalled")
            }
            leaving = (remote, ledger)
        } else {
            leaving = nil
        }
        return try later(call, uid: uid) { [self] in
            let plan = try installer.rollback(ref, uid: uid, history: leaving == nil ? .rollback : .recall) { plan in
                if let (remote, ledger) = leaving {
                    try installer.checkLeavesBadRelease(plan, remote: remote, ledger: ledger)
                }
                try checkPolkit(PolkitPolicy.rollbackAction(leavingBadRelease: leaving != nil), sender: sender,
                                details: ["ref": ref.string, "remote": plan.toRemote.string,
                                          "digest": plan.toDigest.description],
                                interactive: options.interactive)
            }
            let verb = leaving == nil ? "rolled back" : "moved off a recalled release"
            logger.notice("\(ref): \(verb) to \(plan.toDigest.short) from \(plan.toRemote)",
                          metadata: ["ref": "\(ref)", "remote": "\(plan.toRemote)", "digest": "\(plan.toDigest)",
                                     "uid": "\(uid)"])
            return [.string(plan.toDigest.description)]
        }
    }

    // MARK: ApplyLog

    /// Moves root's view of a remote's log forward from a staged view. No polkit: only a checkpoint signed by the
    /// log key and cosigned by the quorum, extending the trusted one, with every entry since, is accepted, so a
    /// caller can only bring root closer to what the log says (and a fork is evidence, whoever brings it).
    private func applyLog(_ call: BusMethodCall) throws -> BusReply {
        let remoteName = try RemoteName(call.arguments[1].stringValue ?? "")
        _ = try Helper1.Method.applyLog.decodeOptions(call.arguments[2])
        let (staging, uid, remote) = try stagedCall(call, remote: remoteName)
        guard var log = try RemoteLog(remote: remote, paths: paths) else {
            throw FerryError.invalidArgument("remote \(remoteName) has no transparency log")
        }
        log.onFork = { [logger] message in logger.error("\(message)", metadata: ["remote": "\(remoteName)"]) }
        return try later(call, uid: uid) { [self, log] in
            let view = try log.view(staged: ImageLayout(root: staging, policy: .init(owner: uid)))
            let before = try log.storedLedger()
            try log.commit(view)
            for recall in view.ledger.recalls where !before.recalls.contains(recall) {
                logger.notice("remote \(remoteName): \(RemoteLog.describe(recall, remote: remoteName))",
                              metadata: ["remote": "\(remoteName)"])
            }
            for record in view.ledger.keys where !before.keys.contains(record) {
                logger.notice("remote \(remoteName): key \(record.id) \(record.status)",
                              metadata: ["remote": "\(remoteName)"])
            }
            return [.uint64(view.ledger.size)]
        }
    }

    // MARK: ConfigureRemote

    private func configureRemote(_ call: BusMethodCall) throws -> BusReply {
        let name = try RemoteName(call.arguments[0].stringValue ?? "")
        // Only grammar, counts and sizes here, on the bus thread that every caller waits for.
        let settings = try Helper1.RemoteSettings(decoding: call.arguments[1], name: name)
        let sender = call.sender
        let uid = try call.senderUID()
        return try later(call, uid: uid) { [self] in
            try checkPolkit(PolkitPolicy.configureRemote, sender: sender, details: ["remote": name.string],
                            interactive: settings.interactive)
            if let remote = settings.remote {
                // Keys are parsed only once polkit said yes, on this worker: a crafted 1 MiB key costs gpgme
                // seconds as root under the process-wide GPG lock, which no unauthorized caller may spend.
                try RemoteSettingsCheck.checkGPGKeys(of: remote)
                // A new (or removed) TUF root starts trust afresh from it; the old chain means nothing for it.
                let previous = (try? remotes.load(name)) ?? nil
                if previous?.tufRoot != remote.tufRoot { try Freshness.reset(directory: paths.tuf(name)) }
                // Another log (or witness set) starts its trust afresh; so does an explicit reset, which also lifts
                // the refusal a fork left (the evidence stays).
                if previous?.logKey != remote.logKey || previous?.witnessKeys != remote.witnessKeys
                    || settings.resetRollbackState
                {
                    try ReleaseLogCheck.reset(name, paths: paths)
                }
                try remotes.save(remote)
                logger.info("remote \(name) configured: \(remote.url)", metadata: ["remote": "\(name)"])
            } else if !settings.resetRollbackState {
                try remotes.delete(name)
                try Freshness.reset(directory: paths.tuf(name))
                try ReleaseLogCheck.reset(name, paths: paths)
                logger.info("remote \(name) removed", metadata: ["remote": "\(name)"])
            }
            if settings.resetRollbackState {
                try installer.resetRecords(remote: name)
                logger.notice("remote \(name): rollback records reset", metadata: ["remote": "\(name)"])
            }
            return []
        }
    }

    // MARK: ListInstalled

    private func listInstalled() throws -> [Helper1.Installed] {
        try installer.installations().map {
            Helper1.Installed(
                ref: $0.ref, remote: $0.installation.remote, digest: $0.installation.digest,
                deployment: $0.deploymentPath, timestamp: UInt64(max(0, $0.installation.timestamp)))
        }
    }
}
