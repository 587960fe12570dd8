import FerryBus
import FerryCore
import FerryInstall
import FerryTrust
import Foundation
import Logging

/// `dev.ferry.Helper1` on the system bus: validates every argument, asks polkit for exactly the action it
/// decided on, and runs the shared install engine as root against root-owned configuration and state.
///
/// Threading: the bus loop runs on the main thread and answers every call; Deploy, Uninstall and
/// ConfigureRemote run on a thread each (at most 64, at most 8 per uid) and reply later, so ListInstalled and
/// Version stay answered while a long deploy runs. Deploys of one ref are serialized by the engine's lock file.
final class HelperService: @unchecked Sendable {
    static let busName = "dev.ferry.Helper1"
    static let objectPath = "/dev/ferry/Helper1"
    static let interface = "dev.ferry.Helper1"
    static let version: UInt32 = 1
    /// More deploys than this at once are refused as Busy rather than queued without bound.
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
    private let jobs = NSLock()
    private var runningJobs = 0
    private var runningJobsByUID: [UInt32: Int] = [:]

    init(root: String, busAddress: String?) throws {
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

    func run(idleTimeout: Duration?) throws {
        try connection.exportObject(
            path: HelperService.objectPath, interface: HelperService.interface,
            properties: ["Version": .uint32(HelperService.version)], introspectionXML: Introspection.xml
        ) { [self] call in
            do {
                return try handle(call)
            } catch {
                return .error(busError(error))
            }
        }
        try connection.requestName(HelperService.busName)
        _ = ServiceNotifier.ready()
        _ = ServiceNotifier.status("Waiting for requests")
        logger.info("ferry-helper ready", metadata: ["root": "\(root)"])
        var exit = try connection.run(idleTimeout: idleTimeout)
        if exit == .idle {
            // Give the name up first, then answer whatever was already queued for us, then leave: a caller
            // racing the exit gets its answer or activates a fresh helper, never a dropped call.
            try? connection.releaseName(HelperService.busName)
            exit = try connection.run(idleTimeout: .milliseconds(200))
        }
        _ = ServiceNotifier.stopping()
        logger.info("ferry-helper exiting (\(exit))")
    }

    // MARK: Dispatch

    private func handle(_ call: BusMethodCall) throws -> BusReply {
        switch call.member {
        case "Deploy": return try deploy(call)
        case "Uninstall": return try uninstall(call)
        case "Rollback": return try rollback(call)
        case "ConfigureRemote": return try configureRemote(call)
        case "ListInstalled": return try listInstalled(call)
        default:
            throw BusError(name: BusError.Names.unknownMethod, message: "no method \(call.member.prefix(100))")
        }
    }

    /// Runs `body` on a worker thread and answers the call with its result, counted against the global limit and
    /// the limit of the caller's `uid`.
    private func later(_ call: BusMethodCall, uid: UInt32, _ body: @escaping @Sendable () throws -> [BusValue]) throws
        -> BusReply
    {
        jobs.lock()
        guard runningJobsByUID[uid, default: 0] < HelperService.maxJobsPerUID else {
            jobs.unlock()
            throw FerryError(.busy, "too many requests of uid \(uid) in progress (at most "
                                 + "\(HelperService.maxJobsPerUID)); try again")
        }
        guard runningJobs < HelperService.maxConcurrentJobs else {
            jobs.unlock()
            throw FerryError(.busy, "too many requests in progress; try again")
        }
        runningJobs += 1
        runningJobsByUID[uid, default: 0] += 1
        jobs.unlock()
        // A thread of its own per job (at most maxConcurrentJobs): jobs block for long (polkit dialogs, locks,
        // large copies), and a dispatch queue's pool, a few threads wide, would make later callers wait for them.
        let worker = Thread { [self] in
            defer {
                jobs.lock()
                runningJobs -= 1
                runningJobsByUID[uid, default: 1] -= 1
                if runningJobsByUID[uid] == 0 { runningJobsByUID[uid] = nil }
                jobs.unlock()
            }
            do {
                call.reply(try body())
            } catch {
                call.replyError(busError(error))
            }
        }
        worker.name = "ferry-helper job \(call.member)"
        worker.start()
        return .deferred
    }

    // MARK: Deploy

    private func deploy(_ call: BusMethodCall) throws -> BusReply {
        try requireSignature(call, "hssa{sv}")
        let remoteName = try RemoteName(call.arguments[1].stringValue ?? "")
        let ref = try Ref(call.arguments[2].stringValue ?? "")
        let options = try HelperArguments.options(call.arguments[3], allowed: ["allow-downgrade": "b", "interactive": "b", "switch-remote": "b"])
        let allowDowngrade = options["allow-downgrade"]?.boolValue ?? false
        let switchRemote = options["switch-remote"]?.boolValue ?? false
        let interactive = options["interactive"]?.boolValue ?? false
        let fd = try call.takeUnixFD(at: 0)
        let staging: DirectoryHandle
        do {
            staging = try DirectoryHandle(adopting: fd)
        } catch {
            close(fd)
            throw error
        }
        let uid = try call.senderUID()
        guard let remote = try remotes.load(remoteName) else {
            throw FerryError.untrusted("remote \(remoteName) is not configured system-wide")
        }
        let sender = call.sender
        return try later(call, uid: uid) { [self] in
            // Staged files must belong to the caller: a hard link to a file of root's is not theirs to hand over.
            let source = ImageLayout(root: staging, policy: .init(owner: uid))
            var request = DeployRequest(remote: remote, ref: ref, allowDowngrade: allowDowngrade,
                                        switchRemote: switchRemote)
            request.uid = uid
            if remote.tufRoot != nil {
                // Offline, against root's own trusted metadata in tuf/REMOTE; the staged tuf/ is the only network.
                request.checkManifest = FreshnessCheck(remote: remote, ref: ref, layout: source, paths: paths)
                    .blockingCheck()
            }
            let progress = ProgressSignal(connection: connection, ref: ref, destination: sender)
            let meta: Logger.Metadata = ["remote": "\(remoteName)", "ref": "\(ref)", "uid": "\(uid)"]
            do {
                let outcome = try installer.deploy(
                    source: source, request: request,
                    authorize: { plan in
                        try self.authorize(plan, sender: sender, interactive: interactive)
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

    /// The polkit action for what the engine decided; `nil` when there is nothing to do.
    ///
    /// Moving an app ID to another remote is asked as `dev.ferry.downgrade` whatever its timestamps say: the new
    /// remote's publisher was never trusted for this app, so it is never passwordless (the timer's rule grants
    /// only `dev.ferry.update`).
    static func polkitAction(decision: TimestampPolicy.Decision, switchingRemote: Bool) -> String? {
        if decision == .nothingToDo { return nil }
        if switchingRemote { return "dev.ferry.downgrade" }
        switch decision {
        case .install: return "dev.ferry.install"
        case .update: return "dev.ferry.update"
        case .downgrade: return "dev.ferry.downgrade"
        case .nothingToDo: return nil
        }
    }

    /// Asks polkit for the action that matches what the engine decided; nothing to do needs no authorization.
    private func authorize(_ plan: DeployPlan, sender: String, interactive: Bool) throws {
        guard let action = HelperService.polkitAction(decision: plan.decision,
                                                      switchingRemote: plan.switchesFrom != nil)
        else { return }
        var details = ["remote": plan.remote.string, "ref": plan.ref.string, "digest": plan.digest.description]
        if let from = plan.switchesFrom { details["previous-remote"] = from.string }
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
        try requireSignature(call, "sa{sv}")
        let ref = try Ref(call.arguments[0].stringValue ?? "")
        let options = try HelperArguments.options(call.arguments[1], allowed: ["interactive": "b"])
        let interactive = options["interactive"]?.boolValue ?? false
        guard let installed = try installer.installations().first(where: { $0.ref == ref }) else {
            throw FerryError(.notInstalled, "\(ref) is not installed")
        }
        let sender = call.sender
        let uid = try call.senderUID()
        return try later(call, uid: uid) { [self] in
            try checkPolkit("dev.ferry.uninstall", sender: sender,
                            details: ["ref": ref.string, "remote": installed.installation.remote.string],
                            interactive: interactive)
            try installer.uninstall(ref, uid: uid)
            logger.info("\(ref): uninstalled", metadata: ["ref": "\(ref)", "uid": "\(uid)"])
            return []
        }
    }

    // MARK: Rollback

    /// Switches a ref to its kept previous deployment, asked as `dev.ferry.downgrade`: it installs an older
    /// release than the one the publisher's newest claim brought, so it is never passwordless.
    private func rollback(_ call: BusMethodCall) throws -> BusReply {
        try requireSignature(call, "sa{sv}")
        let ref = try Ref(call.arguments[0].stringValue ?? "")
        let options = try HelperArguments.options(call.arguments[1], allowed: ["interactive": "b"])
        let interactive = options["interactive"]?.boolValue ?? false
        let sender = call.sender
        let uid = try call.senderUID()
        // Refused before a job starts when there is nothing to roll back to.
        _ = try installer.planRollback(ref)
        return try later(call, uid: uid) { [self] in
            let plan = try installer.rollback(ref, uid: uid) { plan in
                try checkPolkit("dev.ferry.downgrade", sender: sender,
                                details: ["ref": ref.string, "remote": plan.toRemote.string,
                                          "digest": plan.toDigest.description],
                                interactive: interactive)
            }
            logger.notice("\(ref): rolled back to \(plan.toDigest.short) from \(plan.toRemote)",
                          metadata: ["ref": "\(ref)", "remote": "\(plan.toRemote)", "digest": "\(plan.toDigest)",
                                     "uid": "\(uid)"])
            return [.string(plan.toDigest.description)]
        }
    }

    // MARK: ConfigureRemote

    private func configureRemote(_ call: BusMethodCall) throws -> BusReply {
        try requireSignature(call, "sa{sv}")
        let name = try RemoteName(call.arguments[0].stringValue ?? "")
        let settings = try HelperArguments.options(call.arguments[1], allowed: HelperArguments.remoteSettings)
        let interactive = settings["interactive"]?.boolValue ?? false
        let reset = settings["reset-rollback-state"]?.boolValue ?? false
        let configuring = settings.keys.contains { !["interactive", "reset-rollback-state"].contains($0) }
        // Only grammar, counts and sizes here, on the bus thread that every caller waits for.
        let remote: Remote? = configuring ? try HelperArguments.remote(name: name, settings: settings) : nil
        let sender = call.sender
        let uid = try call.senderUID()
        return try later(call, uid: uid) { [self] in
            try checkPolkit("dev.ferry.configure-remote", sender: sender, details: ["remote": name.string],
                            interactive: interactive)
            if let remote {
                // Keys are parsed only once polkit said yes, on this worker: a crafted 1 MiB key costs gpgme
                // seconds as root under the process-wide GPG lock, which no unauthorized caller may spend.
                try HelperArguments.checkGPGKeys(of: remote)
                // A new (or removed) TUF root starts trust afresh from it; the old chain means nothing for it.
                let previous = (try? remotes.load(name)) ?? nil
                if previous?.tufRoot != remote.tufRoot { try Freshness.reset(directory: paths.tuf(name)) }
                try remotes.save(remote)
                logger.info("remote \(name) configured: \(remote.url)", metadata: ["remote": "\(name)"])
            } else if !reset {
                try remotes.delete(name)
                try Freshness.reset(directory: paths.tuf(name))
                logger.info("remote \(name) removed", metadata: ["remote": "\(name)"])
            }
            if reset {
                try installer.resetRecords(remote: name)
                logger.notice("remote \(name): rollback records reset", metadata: ["remote": "\(name)"])
            }
            return []
        }
    }

    // MARK: ListInstalled

    private func listInstalled(_ call: BusMethodCall) throws -> BusReply {
        try requireSignature(call, "")
        let items: [BusValue] = try installer.installations().map {
            .structure([
                .string($0.ref.string), .string($0.installation.remote.string),
                .string($0.installation.digest.description), .string($0.deploymentPath),
                .uint64(UInt64(max(0, $0.installation.timestamp))),
            ])
        }
        return .values([.array(elementSignature: "(sssst)", items)])
    }

    // MARK: Errors

    private func requireSignature(_ call: BusMethodCall, _ expected: String) throws {
        guard call.signature == expected else {
            throw FerryError.invalidArgument("\(call.member) expects (\(expected)), got (\(call.signature.prefix(64)))")
        }
    }

    /// Every error leaves as a `dev.ferry.Error.*` name with a one-line message.
    private func busError(_ error: Error) -> BusError {
        switch error {
        case let error as FerryError: return BusError(name: error.dbusName, message: error.message)
        case let error as BusError where error.name.hasPrefix("dev.ferry.Error."): return error
        case let error as BusError where error.name == BusError.Names.invalidArgs:
            return BusError(name: FerryError(.invalidArgument, "").dbusName, message: error.message)
        case let error as BusError where error.name == BusError.Names.unknownMethod: return error
        default: return BusError(name: FerryError(.failed, "").dbusName, message: "\(error)")
        }
    }
}

/// Emits `Progress(s ref, s phase, t done, t total)`, at most ten times a second per phase, to the caller only.
///
/// Unicast (the signal's destination is the caller's unique name): what one user installs, and when, is none of
/// the other bus clients' business, and a broadcast would reach every one of them that adds a match rule.
final class ProgressSignal: @unchecked Sendable {
    let connection: BusConnection
    let ref: Ref
    /// The caller's unique name (`:1.42`).
    let destination: String
    private var lastPhase: DeployPhase?
    private var lastSent = Date.distantPast

    init(connection: BusConnection, ref: Ref, destination: String) {
        self.connection = connection
        self.ref = ref
        self.destination = destination
    }

    func report(_ phase: DeployPhase, _ done: UInt64, _ total: UInt64) {
        let now = Date()
        guard phase != lastPhase || done >= total || now.timeIntervalSince(lastSent) >= 0.1 else { return }
        lastPhase = phase
        lastSent = now
        _ = ServiceNotifier.status("\(ref): \(phase.rawValue) \(done)/\(total)")
        try? connection.emitSignal(
            path: HelperService.objectPath, interface: HelperService.interface, member: "Progress",
            arguments: [.string(ref.string), .string(phase.rawValue), .uint64(done), .uint64(total)],
            destination: destination)
    }
}
