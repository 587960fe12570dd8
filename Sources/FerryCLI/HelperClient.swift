import FerryBus
import FerryCore
import FerryFetch
import Foundation

/// The agent's side of `dev.ferry.Helper1` on the system bus (`DBUS_SYSTEM_BUS_ADDRESS` is honoured).
/// D-Bus errors come back as the matching ``FerryError``.
struct HelperClient {
    static let busName = "dev.ferry.Helper1"
    static let path = "/dev/ferry/Helper1"
    static let interface = "dev.ferry.Helper1"

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
    private func call(_ member: String, _ arguments: [BusValue], timeout: Duration = .seconds(60)) throws
        -> [BusValue]
    {
        let deadline = Date().addingTimeInterval(HelperClient.busyPatience)
        var pause: UInt32 = 100_000
        while true {
            do {
                return try callOnce(member, arguments, timeout: timeout)
            } catch let error as FerryError where error.code == .busy && Date() < deadline {
                usleep(pause + UInt32.random(in: 0...pause / 2))
                pause = min(pause * 2, 2_000_000)
            }
        }
    }

    private func callOnce(_ member: String, _ arguments: [BusValue], timeout: Duration) throws -> [BusValue] {
        do {
            return try connection.callProcessingEvents(
                destination: HelperClient.busName, path: HelperClient.path, interface: HelperClient.interface,
                member: member, arguments: arguments, timeout: timeout)
        } catch let error as BusError {
            if error.name.hasPrefix("dev.ferry.Error.") {
                throw FerryError(dbusName: error.name, message: error.message)
            }
            if error.name == BusError.Names.accessDenied {
                throw FerryError(.notAuthorized, "the system bus refused the call: \(error.message)")
            }
            throw FerryError.failed("ferry-helper: \(error.message) (\(error.name))")
        }
    }

    /// The helper's unique name (`:1.42`), activating it first when nobody owns the name yet (a `Peer.Ping`,
    /// which sd-bus answers itself). `nil` when it cannot be found; the call that follows reports why.
    private func helperUniqueName() -> String? {
        if let owner = try? connection.nameOwner(HelperClient.busName) { return owner }
        _ = try? connection.call(destination: HelperClient.busName, path: HelperClient.path,
                                 interface: "org.freedesktop.DBus.Peer", member: "Ping", timeout: .seconds(30))
        return try? connection.nameOwner(HelperClient.busName)
    }

    /// Hands a staged layout to the helper. Shows the helper's progress signals for this ref.
    ///
    /// Progress is accepted only from the helper's unique name, resolved before the call: any client may send a
    /// signal with the helper's path and interface, and what the agent shows must be what the helper did. (Should
    /// the helper be replaced between the lookup and the call, its progress is just not shown.)
    func deploy(staging: String, remote: RemoteName, ref: Ref, allowDowngrade: Bool, switchRemote: Bool = false,
                interactive: Bool, progress: ProgressReporter) throws -> Digest {
        let fd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw ioError("open \(staging)") }
        defer { close(fd) }
        let helper = helperUniqueName()
        let subscription = helper.flatMap { helper in
            try? connection.subscribe(
                sender: helper, path: HelperClient.path, interface: HelperClient.interface, member: "Progress"
            ) { signal in
                guard signal.sender == helper else { return }
                HelperClient.show(signal, ref: ref, progress: progress)
            }
        }
        defer { subscription?.cancel() }
        var options: [String: BusValue] = ["allow-downgrade": .bool(allowDowngrade), "interactive": .bool(interactive)]
        if switchRemote { options["switch-remote"] = .bool(true) }
        let reply = try call(
            "Deploy", [.unixFD(fd), .string(remote.string), .string(ref.string), .vardict(options)],
            timeout: .seconds(6 * 3600))
        progress.endPhase()
        guard let text = reply.first?.stringValue else { throw FerryError.failed("ferry-helper: malformed reply") }
        return try Digest(parsing: text)
    }

    /// Shows one `Progress(s ref, s phase, t done, t total)` signal about `ref`; anything else is ignored.
    private static func show(_ signal: BusSignal, ref: Ref, progress: ProgressReporter) {
        guard signal.arguments.count == 4, signal.arguments[0].stringValue == ref.string,
            let phase = signal.arguments[1].stringValue, let done = signal.arguments[2].uint64Value,
            let total = signal.arguments[3].uint64Value
        else { return }
        progress.phase(phase, done: done, total: total)
    }

    func uninstall(ref: Ref, interactive: Bool) throws {
        _ = try call("Uninstall", [.string(ref.string), .vardict(["interactive": .bool(interactive)])],
                     timeout: .seconds(600))
    }

    /// Asks the helper to switch `ref` to its kept previous deployment; returns the digest now installed.
    func rollback(ref: Ref, interactive: Bool) throws -> Digest {
        let reply = try call("Rollback", [.string(ref.string), .vardict(["interactive": .bool(interactive)])],
                             timeout: .seconds(600))
        guard let text = reply.first?.stringValue else { throw FerryError.failed("ferry-helper: malformed reply") }
        return try Digest(parsing: text)
    }

    func configureRemote(_ name: RemoteName, settings: [String: BusValue]) throws {
        _ = try call("ConfigureRemote", [.string(name.string), .vardict(settings)], timeout: .seconds(600))
    }

    struct Installed {
        var ref: Ref
        var remote: String
        var digest: Digest
        var deployment: String
        var timestamp: UInt64
    }

    func listInstalled() throws -> [Installed] {
        let reply = try call("ListInstalled", [])
        guard case .array(_, let items)? = reply.first else { throw FerryError.failed("ferry-helper: malformed reply") }
        return items.compactMap { item in
            guard let fields = item.structureValue, fields.count == 5,
                let ref = fields[0].stringValue.flatMap({ try? Ref($0) }), let remote = fields[1].stringValue,
                let digest = fields[2].stringValue.flatMap({ try? Digest(parsing: $0) }),
                let path = fields[3].stringValue, let timestamp = fields[4].uint64Value
            else { return nil }
            return Installed(ref: ref, remote: remote, digest: digest, deployment: path, timestamp: timestamp)
        }
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
