import FerryBus
import FerryCore
import FerryFetch
import FerryHelper
import Foundation

/// The agent's side of `dev.ferry.Helper1` on the system bus (`DBUS_SYSTEM_BUS_ADDRESS` is honoured), coded
/// through the one contract in ``Helper1``. D-Bus errors come back as the matching ``FerryError``.
struct HelperClient {
    let connection: BusConnection

    init() throws {
        do {
            connection = try BusConnection.system()
        } catch let error as BusError {
            throw FerryError.failed("cannot reach the system bus: \(error.message)")
        }
    }

    /// How long a call refused as `Busy` is retried before the refusal is reported.
    static let busyPatience: TimeInterval = 120

    /// Calls the helper. A `Busy` refusal (too many jobs, in all or of this user) is made before the helper does
    /// any work, so the call is simply tried again, with a growing pause, for up to ``busyPatience`` seconds: many
    /// agents of one user (the timer and a desktop session, a script) are normal and must not fail each other.
    private func call(_ method: Helper1.Method, _ arguments: [BusValue], timeout: Duration = .seconds(60)) throws
        -> [BusValue]
    {
        let deadline = Date().addingTimeInterval(HelperClient.busyPatience)
        var pause: UInt32 = 100_000
        while true {
            do {
                return try callOnce(method, arguments, timeout: timeout)
            } catch let error as FerryError where error.code == .busy && Date() < deadline {
                usleep(pause + UInt32.random(in: 0...pause / 2))
                pause = min(pause * 2, 2_000_000)
            }
        }
    }

    private func callOnce(_ method: Helper1.Method, _ arguments: [BusValue], timeout: Duration) throws
        -> [BusValue]
    {
        precondition(BusValue.signature(of: arguments) == method.signature, "\(method) called with wrong arguments")
        do {
            return try connection.callProcessingEvents(
                destination: Helper1.busName, path: Helper1.objectPath, interface: Helper1.interface,
                member: method.rawValue, arguments: arguments, timeout: timeout)
        } catch let error as BusError {
            throw Helper1.ferryError(error)
        }
    }

    /// The helper's unique name (`:1.42`), activating it first when nobody owns the name yet (a `Peer.Ping`,
    /// which sd-bus answers itself). `nil` when it cannot be found; the call that follows reports why.
    private func helperUniqueName() -> String? {
        if let owner = try? connection.nameOwner(Helper1.busName) { return owner }
        _ = try? connection.call(destination: Helper1.busName, path: Helper1.objectPath,
                                 interface: "org.freedesktop.DBus.Peer", member: "Ping", timeout: .seconds(30))
        return try? connection.nameOwner(Helper1.busName)
    }

    /// Hands a staged layout to the helper. Shows the helper's progress signals for this ref.
    ///
    /// Progress is accepted only from the helper's unique name, resolved before the call: any client may send a
    /// signal with the helper's path and interface, and what the agent shows must be what the helper did. (Should
    /// the helper be replaced between the lookup and the call, its progress is just not shown.)
    func deploy(staging: String, remote: RemoteName, ref: Ref, options: Helper1.DeployOptions,
                progress: ProgressReporter) throws -> Digest {
        let fd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw ioError("open \(staging)") }
        defer { close(fd) }
        let helper = helperUniqueName()
        let subscription = helper.flatMap { helper in
            try? connection.subscribe(
                sender: helper, path: Helper1.objectPath, interface: Helper1.interface,
                member: Helper1.Progress.member
            ) { signal in
                guard signal.sender == helper, let update = Helper1.Progress(arguments: signal.arguments),
                    update.ref == ref
                else { return }
                progress.phase(update.phase, done: update.done, total: update.total)
            }
        }
        defer { subscription?.cancel() }
        let reply = try call(
            .deploy, [.unixFD(fd), .string(remote.string), .string(ref.string), options.encoded],
            timeout: .seconds(6 * 3600))
        progress.endPhase()
        return try Helper1.decodeDigest(reply)
    }

    func uninstall(ref: Ref, interactive: Bool) throws {
        _ = try call(.uninstall, [.string(ref.string), Helper1.CallOptions(interactive: interactive).encoded],
                     timeout: .seconds(600))
    }

    /// Asks the helper to switch `ref` to its kept previous deployment; returns the digest now installed.
    func rollback(ref: Ref, interactive: Bool, recalled: Bool = false) throws -> Digest {
        let options = Helper1.CallOptions(interactive: interactive, recalled: recalled)
        let reply = try call(.rollback, [.string(ref.string), options.encoded], timeout: .seconds(600))
        return try Helper1.decodeDigest(reply)
    }

    /// Hands a staged view of a remote's log (`log/checkpoint`, `log/consistency`, `log/entries`) to the helper,
    /// which moves root's view forward; returns the size root has now read.
    func applyLog(staging: String, remote: RemoteName) throws -> UInt64 {
        let fd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw ioError("open \(staging)") }
        defer { close(fd) }
        let reply = try call(.applyLog, [.unixFD(fd), .string(remote.string), .vardict([:])], timeout: .seconds(600))
        guard reply.count == 1, let size = reply[0].uint64Value else {
            throw FerryError.failed("ferry-helper: malformed ApplyLog reply")
        }
        return size
    }

    func configureRemote(_ name: RemoteName, settings: Helper1.RemoteSettings) throws {
        _ = try call(.configureRemote, [.string(name.string), settings.encoded], timeout: .seconds(600))
    }

    func listInstalled() throws -> [Helper1.Installed] {
        try Helper1.Installed.decode(try call(.listInstalled, []))
    }
}

extension ProgressReporter {
    /// Shows a helper phase (copy, verify, extract, commit), starting a new step when the phase changes.
    func phase(_ name: String, done: UInt64, total: UInt64) {
        if currentLabel != "helper: \(name)" {
            if !currentLabel.isEmpty { finish() }
            begin("helper: \(name)", total: total)
        }
        update(done: done, total: total)
    }

    func endPhase() {
        if !currentLabel.isEmpty { finish() }
    }
}
