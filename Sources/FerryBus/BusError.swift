internal import CSystemd
import Glibc

/// A D-Bus error: the error name (`org.freedesktop.DBus.Error.InvalidArgs`, `dev.ferry.Error.Downgrade`, …)
/// and a human-readable message.
///
/// Errors returned by a peer arrive with the peer's name and message unchanged; local failures of libsystemd
/// calls are reported under the name sd-bus maps their errno to (`EINVAL` →
/// `org.freedesktop.DBus.Error.InvalidArgs`, `ETIMEDOUT` → `org.freedesktop.DBus.Error.Timeout`, …).
public struct BusError: Error, Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var message: String

    public init(name: String, message: String) {
        self.name = name
        self.message = message
    }

    public var description: String { "\(name): \(message)" }

    /// `org.freedesktop.DBus.Error.InvalidArgs` with `message`: a value of the wrong type or shape.
    public static func invalidArgs(_ message: String) -> BusError {
        BusError(name: Names.invalidArgs, message: message)
    }

    /// `org.freedesktop.DBus.Error.Failed` with `message`.
    public static func failed(_ message: String) -> BusError {
        BusError(name: Names.failed, message: message)
    }

    /// Well-known error names of the D-Bus specification used by this module.
    public enum Names {
        public static let failed = "org.freedesktop.DBus.Error.Failed"
        public static let invalidArgs = "org.freedesktop.DBus.Error.InvalidArgs"
        public static let timeout = "org.freedesktop.DBus.Error.Timeout"
        public static let noReply = "org.freedesktop.DBus.Error.NoReply"
        public static let unknownMethod = "org.freedesktop.DBus.Error.UnknownMethod"
        public static let unknownInterface = "org.freedesktop.DBus.Error.UnknownInterface"
        public static let unknownProperty = "org.freedesktop.DBus.Error.UnknownProperty"
        public static let propertyReadOnly = "org.freedesktop.DBus.Error.PropertyReadOnly"
        public static let accessDenied = "org.freedesktop.DBus.Error.AccessDenied"
        public static let disconnected = "org.freedesktop.DBus.Error.Disconnected"
        public static let nameHasNoOwner = "org.freedesktop.DBus.Error.NameHasNoOwner"
        public static let addressInUse = "org.freedesktop.DBus.Error.AddressInUse"
    }

    /// The error a libsystemd call returning `-errno` stands for; `context` says which operation failed.
    static func fromErrno(_ negativeErrno: Int32, _ context: String) -> BusError {
        let code = negativeErrno < 0 ? -negativeErrno : negativeErrno
        var error = sd_bus_error(name: nil, message: nil, _need_free: 0)
        defer { sd_bus_error_free(&error) }
        _ = sd_bus_error_set_errno(&error, code)
        let name = error.name.map { String(cString: $0) } ?? Names.failed
        return BusError(name: name, message: "\(context): \(String(cString: strerror(code)))")
    }

    /// The error sd-bus filled in, or (when it filled in nothing) the one `negativeErrno` stands for.
    static func from(_ error: sd_bus_error, _ negativeErrno: Int32, _ context: String) -> BusError {
        if let name = error.name {
            let message = error.message.map { String(cString: $0) } ?? ""
            return BusError(name: String(cString: name), message: message)
        }
        return fromErrno(negativeErrno, context)
    }
}

/// Throws the error for a negative libsystemd return value and passes non-negative ones through.
@discardableResult
func check(_ result: Int32, _ context: @autoclosure () -> String) throws(BusError) -> Int32 {
    if result < 0 { throw BusError.fromErrno(result, context()) }
    return result
}
