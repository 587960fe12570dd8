/// An error Ferry reports to a person or across D-Bus.
///
/// Each ``Code`` maps one-to-one onto a D-Bus error name `dev.ferry.Error.<Name>` (`Helper1.busError` and
/// `Helper1.ferryError` in FerryHelper), so the agent turns a helper reply back into the same error and message.
public struct FerryError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Code: String, CaseIterable, Sendable {
        case notAuthorized = "NotAuthorized"
        case invalidArgument = "InvalidArgument"
        case signatureInvalid = "SignatureInvalid"
        case untrusted = "Untrusted"
        case downgrade = "Downgrade"
        case digestMismatch = "DigestMismatch"
        case unsafeArchive = "UnsafeArchive"
        case notInstalled = "NotInstalled"
        case busy = "Busy"
        case noSpace = "NoSpace"
        case failed = "Failed"
    }

    public var code: Code
    /// One line in the user's words: what was refused and why.
    public var message: String
    /// The `errno` behind an I/O failure, when there was one (`EFBIG` also marks a size limit refused), so callers
    /// decide on it rather than on the message's words. Not part of equality: two errors that say the same thing
    /// are the same error.
    public var cause: Int32?

    public init(_ code: Code, _ message: String, cause: Int32? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public static func == (lhs: FerryError, rhs: FerryError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message
    }

    public var description: String { message }

    public static func invalidArgument(_ message: String) -> FerryError { FerryError(.invalidArgument, message) }
    public static func digestMismatch(_ message: String) -> FerryError { FerryError(.digestMismatch, message) }
    public static func signatureInvalid(_ message: String) -> FerryError { FerryError(.signatureInvalid, message) }
    public static func untrusted(_ message: String) -> FerryError { FerryError(.untrusted, message) }
    public static func unsafeArchive(_ message: String) -> FerryError { FerryError(.unsafeArchive, message) }
    public static func failed(_ message: String) -> FerryError { FerryError(.failed, message) }

    /// Adds context in front of the message ("org.example.App: ..."), keeping the code.
    /// Idempotent: a message that already starts with the context is left as it is.
    /// What an error about an expired view (cause `ESTALE`: TUF metadata, a log's `max-age`) adds, so that the user
    /// knows how to take an older view on purpose.
    public static let staleViewHint = "to install from this older view on purpose, use --allow-stale (system "
        + "installs then need dev.ferry.downgrade, an administrator)"

    public func prefixed(_ context: String) -> FerryError {
        if message.hasPrefix(context + ":") { return self }
        return FerryError(code, "\(context): \(message)", cause: cause)
    }
}
