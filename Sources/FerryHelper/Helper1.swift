import FerryBus
import FerryCore
import Foundation

/// The wire contract of `dev.ferry.Helper1`, the one definition both ends use: names, methods and their argument
/// signatures, the schema of every `a{sv}`, how values are coded, the `Progress` signal, and how a ``FerryError``
/// crosses the bus as `dev.ferry.Error.<Code>`.
///
/// The agent (`HelperClient`) encodes with it and the helper (``HelperService``) decodes with it, so a name or an
/// option cannot drift between them; the introspection document is `dbus/dev.ferry.Helper1.xml` itself, embedded
/// at build time (``introspectionXML``).
public enum Helper1 {
    public static let busName = "dev.ferry.Helper1"
    public static let objectPath = "/dev/ferry/Helper1"
    public static let interface = "dev.ferry.Helper1"
    /// The `Version` property.
    public static let version: UInt32 = 1

    /// The methods, each with the signature of its input arguments and the options its `a{sv}` accepts.
    public enum Method: String, CaseIterable, Sendable {
        case deploy = "Deploy"
        case uninstall = "Uninstall"
        case rollback = "Rollback"
        case configureRemote = "ConfigureRemote"
        case listInstalled = "ListInstalled"
        case applyLog = "ApplyLog"

        /// The D-Bus signature of the input arguments.
        public var signature: String {
            switch self {
            case .deploy: "hssa{sv}"
            case .applyLog: "hsa{sv}"
            case .uninstall, .rollback, .configureRemote: "sa{sv}"
            case .listInstalled: ""
            }
        }

        /// The keys its `a{sv}` may hold, each with its one allowed type.
        public var options: [String: String] {
            switch self {
            case .deploy: ["allow-downgrade": "b", "allow-stale": "b", "interactive": "b", "switch-remote": "b"]
            case .uninstall: ["interactive": "b"]
            case .rollback: ["interactive": "b", "recalled": "b"]
            case .applyLog: [:]
            case .configureRemote:
                [
                    "url": "s", "registry": "b", "mirrors": "as", "ed25519-keys": "as", "gpg-keys": "aay",
                    "tuf-root": "ay", "signature-lookaside": "s", "signed-identity": "s", "reset-rollback-state": "b",
                    "interactive": "b", "log-key": "s", "witness-keys": "as", "witness-quorum": "u", "max-age": "t",
                    "key-threshold": "u",
                ]
            case .listInstalled: [:]
            }
        }

        /// Checks an `a{sv}` against ``options``: an unknown key or a wrong type is `InvalidArgument`, since an
        /// option this helper does not understand might be one the caller relies on. Returns the unwrapped values.
        public func decodeOptions(_ value: BusValue) throws -> [String: BusValue] {
            guard case .dictionary(let keyType, let valueType, let entries) = value, keyType == "s", valueType == "v"
            else { throw FerryError.invalidArgument("options must be a{sv}") }
            let allowed = options
            var result: [String: BusValue] = [:]
            for (key, wrapped) in entries {
                guard let name = key.stringValue else { throw FerryError.invalidArgument("option key is not a string") }
                let shown = String(name.prefix(64)).debugDescription
                guard let type = allowed[name] else { throw FerryError.invalidArgument("unknown option \(shown)") }
                guard case .variant(let inner) = wrapped, inner.signature == type else {
                    throw FerryError.invalidArgument("option \(shown) must have type \(type)")
                }
                guard result[name] == nil else { throw FerryError.invalidArgument("option \(shown) given twice") }
                result[name] = inner
            }
            return result
        }
    }

    // MARK: Options

    /// `Deploy`'s options.
    public struct DeployOptions: Equatable, Sendable {
        /// Install a release older than the installed one (polkit `dev.ferry.downgrade`).
        public var allowDowngrade = false
        /// Move the app ID from the remote it was installed from to this one (polkit `dev.ferry.downgrade`).
        public var switchRemote = false
        /// Accept expired TUF metadata, an older view taken on purpose (polkit `dev.ferry.downgrade`).
        public var allowStale = false
        /// Let polkit show an authentication dialog.
        public var interactive = false

        public init(allowDowngrade: Bool = false, switchRemote: Bool = false, allowStale: Bool = false,
                    interactive: Bool = false) {
            self.allowDowngrade = allowDowngrade
            self.switchRemote = switchRemote
            self.allowStale = allowStale
            self.interactive = interactive
        }

        public var encoded: BusValue {
            var options: [String: BusValue] = ["allow-downgrade": .bool(allowDowngrade), "interactive": .bool(interactive)]
            if switchRemote { options["switch-remote"] = .bool(true) }
            if allowStale { options["allow-stale"] = .bool(true) }
            return .vardict(options)
        }

        public init(decoding value: BusValue) throws {
            let options = try Method.deploy.decodeOptions(value)
            allowDowngrade = options["allow-downgrade"]?.boolValue ?? false
            switchRemote = options["switch-remote"]?.boolValue ?? false
            allowStale = options["allow-stale"]?.boolValue ?? false
            interactive = options["interactive"]?.boolValue ?? false
        }
    }

    /// The options of `Uninstall` and `Rollback`: whether polkit may ask, and (`Rollback`) whether the caller
    /// asks to leave a recalled release, which the helper checks against its own view of the remote's log.
    public struct CallOptions: Equatable, Sendable {
        public var interactive = false
        /// `Rollback` only: the installed release is recalled (or signed by a revoked key); authorized as an update
        /// when the helper's view of the log says so and the kept release is good.
        public var recalled = false

        public init(interactive: Bool = false, recalled: Bool = false) {
            self.interactive = interactive
            self.recalled = recalled
        }

        public var encoded: BusValue {
            var options: [String: BusValue] = ["interactive": .bool(interactive)]
            if recalled { options["recalled"] = .bool(true) }
            return .vardict(options)
        }

        public init(decoding value: BusValue, for method: Method) throws {
            let options = try method.decodeOptions(value)
            interactive = options["interactive"]?.boolValue ?? false
            recalled = options["recalled"]?.boolValue ?? false
        }
    }

    /// `ConfigureRemote`'s settings: a remote to write, or none (an empty dictionary removes the remote), and
    /// whether to forget its rollback records.
    public struct RemoteSettings: Sendable {
        public var remote: Remote?
        public var resetRollbackState = false
        public var interactive = false

        public init(remote: Remote?, resetRollbackState: Bool = false, interactive: Bool = false) {
            self.remote = remote
            self.resetRollbackState = resetRollbackState
            self.interactive = interactive
        }

        public var encoded: BusValue {
            var settings: [String: BusValue] = [:]
            if let remote {
                settings["url"] = .string(remote.url)
                settings["registry"] = .bool(remote.isRegistry)
                settings["mirrors"] = .stringArray(remote.mirrors)
                settings["ed25519-keys"] = .stringArray(remote.ed25519Keys)
                settings["gpg-keys"] = .array(elementSignature: "ay", remote.gpgKeys.map { .bytes($0) })
                if let lookaside = remote.signatureLookaside { settings["signature-lookaside"] = .string(lookaside) }
                if let root = remote.tufRoot { settings["tuf-root"] = .bytes(root) }
                if let identity = remote.signedIdentity { settings["signed-identity"] = .string(identity) }
                if let logKey = remote.logKey { settings["log-key"] = .string(logKey) }
                if !remote.witnessKeys.isEmpty { settings["witness-keys"] = .stringArray(remote.witnessKeys) }
                if let quorum = remote.witnessQuorum { settings["witness-quorum"] = .uint32(UInt32(clamping: quorum)) }
                if let maxAge = remote.maxAge { settings["max-age"] = .uint64(UInt64(clamping: maxAge)) }
                if let threshold = remote.keyThreshold {
                    settings["key-threshold"] = .uint32(UInt32(clamping: threshold))
                }
            }
            if resetRollbackState { settings["reset-rollback-state"] = .bool(true) }
            if remote != nil || resetRollbackState { settings["interactive"] = .bool(interactive) }
            return .vardict(settings)
        }

        /// Decodes the settings for remote `name`. Only grammar, counts and sizes are checked (see
        /// ``RemoteSettingsCheck``): this runs before polkit has answered, for any local user.
        public init(decoding value: BusValue, name: RemoteName) throws {
            let settings = try Method.configureRemote.decodeOptions(value)
            interactive = settings["interactive"]?.boolValue ?? false
            resetRollbackState = settings["reset-rollback-state"]?.boolValue ?? false
            let configuring = settings.keys.contains { !["interactive", "reset-rollback-state"].contains($0) }
            remote = configuring ? try RemoteSettingsCheck.remote(name: name, settings: settings) : nil
        }
    }

    // MARK: ListInstalled

    /// One row of `ListInstalled`: `(s ref, s remote, s digest, s deployment, t timestamp)`.
    public struct Installed: Equatable, Sendable {
        public var ref: Ref
        public var remote: RemoteName
        public var digest: Digest
        public var deployment: String
        public var timestamp: UInt64

        public init(ref: Ref, remote: RemoteName, digest: Digest, deployment: String, timestamp: UInt64) {
            self.ref = ref
            self.remote = remote
            self.digest = digest
            self.deployment = deployment
            self.timestamp = timestamp
        }

        static let signature = "(sssst)"

        public static func encode(_ rows: [Installed]) -> [BusValue] {
            let items: [BusValue] = rows.map {
                .structure([
                    .string($0.ref.string), .string($0.remote.string), .string($0.digest.description),
                    .string($0.deployment), .uint64($0.timestamp),
                ])
            }
            return [.array(elementSignature: signature, items)]
        }

        public static func decode(_ reply: [BusValue]) throws -> [Installed] {
            guard reply.count == 1, case .array(signature, let items) = reply[0] else {
                throw FerryError.failed("ferry-helper: malformed ListInstalled reply")
            }
            return try items.map { item in
                guard let fields = item.structureValue, fields.count == 5,
                    let ref = fields[0].stringValue.flatMap({ try? Ref($0) }),
                    let remote = fields[1].stringValue.flatMap({ try? RemoteName($0) }),
                    let digest = fields[2].stringValue.flatMap({ try? Digest(parsing: $0) }),
                    let path = fields[3].stringValue, let timestamp = fields[4].uint64Value
                else { throw FerryError.failed("ferry-helper: malformed ListInstalled row") }
                return Installed(ref: ref, remote: remote, digest: digest, deployment: path, timestamp: timestamp)
            }
        }
    }

    /// The single `s digest` reply of `Deploy` and `Rollback`.
    public static func decodeDigest(_ reply: [BusValue]) throws -> Digest {
        guard reply.count == 1, let text = reply[0].stringValue, let digest = try? Digest(parsing: text) else {
            throw FerryError.failed("ferry-helper: malformed reply")
        }
        return digest
    }

    // MARK: Progress

    /// `Progress(s ref, s phase, t done, t total)`, sent to the caller of a `Deploy` only.
    public struct Progress: Equatable, Sendable {
        public static let member = "Progress"
        public var ref: Ref
        /// `copy`, `verify`, `extract` or `commit`.
        public var phase: String
        public var done: UInt64
        public var total: UInt64

        public init(ref: Ref, phase: String, done: UInt64, total: UInt64) {
            self.ref = ref
            self.phase = phase
            self.done = done
            self.total = total
        }

        public var arguments: [BusValue] { [.string(ref.string), .string(phase), .uint64(done), .uint64(total)] }

        /// `nil` for anything that is not a well-formed `Progress`.
        public init?(arguments: [BusValue]) {
            guard arguments.count == 4, let ref = arguments[0].stringValue.flatMap({ try? Ref($0) }),
                let phase = arguments[1].stringValue, let done = arguments[2].uint64Value,
                let total = arguments[3].uint64Value
            else { return nil }
            self.init(ref: ref, phase: phase, done: done, total: total)
        }
    }

    // MARK: Errors

    static let errorPrefix = "dev.ferry.Error."

    /// The D-Bus error a failure leaves the helper as: a ``FerryError`` as `dev.ferry.Error.<Code>` with its
    /// one-line message; bus-level argument errors as `InvalidArgument`; anything else as `Failed`.
    public static func busError(_ error: Error) -> BusError {
        switch error {
        case let error as FerryError: return BusError(name: errorPrefix + error.code.rawValue, message: error.message)
        case let error as BusError where error.name.hasPrefix(errorPrefix): return error
        case let error as BusError where error.name == BusError.Names.invalidArgs:
            return BusError(name: errorPrefix + FerryError.Code.invalidArgument.rawValue, message: error.message)
        case let error as BusError where error.name == BusError.Names.unknownMethod: return error
        default: return BusError(name: errorPrefix + FerryError.Code.failed.rawValue, message: "\(error)")
        }
    }

    /// The ``FerryError`` a D-Bus error reply stands for: `dev.ferry.Error.<Code>` back to its code and message,
    /// the bus refusing the call to `NotAuthorized`, anything else to `Failed` naming the D-Bus error.
    public static func ferryError(_ error: BusError) -> FerryError {
        if error.name.hasPrefix(errorPrefix),
            let code = FerryError.Code(rawValue: String(error.name.dropFirst(errorPrefix.count)))
        {
            return FerryError(code, error.message)
        }
        if error.name == BusError.Names.accessDenied {
            return FerryError(.notAuthorized, "the system bus refused the call: \(error.message)")
        }
        return FerryError.failed("ferry-helper: \(error.message) (\(error.name))")
    }

    // MARK: Introspection

    /// The document `Introspect` returns: `dbus/dev.ferry.Helper1.xml`, embedded when the module is built.
    public static let introspectionXML = String(decoding: PackageResources.dev_ferry_Helper1_xml, as: UTF8.self)
}
