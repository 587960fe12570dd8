import FerryCore
import Foundation

/// A log entry that states something in the name of a remote's keys: the `statement` (canonical JSON: sorted keys,
/// no insignificant whitespace) and minisign signatures over exactly those bytes. The entry is
/// `{"kind":K,"signatures":[base64 .minisig…],"statement":base64}`, and the statement names the same kind.
///
/// The statement names the log's `origin`, so an entry signed for one remote's log means nothing in another's,
/// even when both trust the same key. Who must have signed is the reader's rule (``KeyEvent``, ``RecallEntry``);
/// this type only parses.
public struct SignedStatement: Sendable, Equatable {
    public var kind: String
    /// The signed bytes.
    public var statement: Data
    /// `.minisig` files over `statement`.
    public var signatures: [Data]

    /// At most this many signatures (as many as a remote may have keys).
    public static let maxSignatures = 32

    private struct Wire: Codable {
        var kind: String
        var statement: Data
        var signatures: [Data]
    }

    public init(kind: String, statement: Data, signatures: [Data]) {
        self.kind = kind
        self.statement = statement
        self.signatures = signatures
    }

    public func serialized() throws -> Data {
        let data = try LogJSON.encode(Wire(kind: kind, statement: statement, signatures: signatures))
        guard data.count <= EntryBundle.maxEntrySize else {
            throw FerryError.invalidArgument("\(kind) entry is \(data.count) bytes; the limit is "
                + "\(EntryBundle.maxEntrySize)")
        }
        return data
    }

    /// Parses the entry and decodes its statement as `T`, strictly: duplicate keys are refused in both, and the
    /// statement's `kind` must be the entry's.
    static func parse<T: Decodable>(_ data: Data, as: T.Type, kind: (T) -> String) throws -> (SignedStatement, T) {
        let wire: Wire
        do {
            wire = try JSONDecoder().decode(Wire.self, from: data)
        } catch {
            throw FerryError.invalidArgument("malformed signed log entry")
        }
        guard wire.signatures.count <= maxSignatures else {
            throw FerryError.invalidArgument("\(wire.kind.prefix(64)) entry has more than \(maxSignatures) signatures")
        }
        let body: T
        do {
            try JSONDuplicateKeys.check(wire.statement)
            body = try JSONDecoder().decode(T.self, from: wire.statement)
        } catch {
            throw FerryError.invalidArgument("\(wire.kind.prefix(64)) entry: malformed statement")
        }
        guard kind(body) == wire.kind else {
            throw FerryError.invalidArgument("\(wire.kind.prefix(64)) entry: its statement is of another kind")
        }
        return (SignedStatement(kind: wire.kind, statement: wire.statement, signatures: wire.signatures), body)
    }
}

/// JSON as log entries and statements are written: sorted keys, no escaped slashes, no whitespace.
enum LogJSON {
    static func encode(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }
}

/// What a key event does to the remote's keyset.
public enum KeyChange: String, Sendable, Codable, CaseIterable {
    /// The key becomes one of the remote's current keys.
    case add = "key-add"
    /// The key stops being current: what it signed before stays valid, nothing logged after counts.
    case remove = "key-remove"
    /// As `remove`, and what it signed with a claim from `since` on is invalid even if logged before.
    case revoke = "key-revoke"
}

/// A change to a remote's keyset (DESIGN.md, "Trust operations"), signed by `key-threshold` of the keys current
/// where it is logged. Clients apply key events in log order only: an event signed before the last one applied,
/// or one already applied, is refused, so an old event appended again (by the log operator, or a thief replaying
/// it) is never applied twice or out of turn.
public struct KeyEvent: Sendable, Equatable {
    public var change: KeyChange
    /// The log's origin (its key's name).
    public var origin: String
    /// The minisign public key concerned: the base64 line of its `.pub` file.
    public var key: String
    /// When the event was signed (Unix seconds); never before the last event applied.
    public var timestamp: Int64
    /// `key-revoke` only: signatures whose claim is from this time on are invalid (default: `timestamp`).
    public var since: Int64?
    /// The exact bytes signed and the signatures; set by ``init(parsing:)`` and ``sign(with:)``.
    public var signed: SignedStatement?

    public init(change: KeyChange, origin: String, key: String, timestamp: Int64, since: Int64? = nil) {
        self.change = change
        self.origin = origin
        self.key = key
        self.timestamp = timestamp
        self.since = since
    }

    private struct Statement: Codable {
        var kind: String
        var origin: String
        var key: String
        var timestamp: Int64
        var since: Int64?
    }

    /// The bytes the keys sign.
    public func statement() throws -> Data {
        try LogJSON.encode(Statement(kind: change.rawValue, origin: origin, key: key, timestamp: timestamp, since: change == .revoke ? since ?? timestamp : nil))
    }

    init(parsing data: Data) throws {
        let (signed, body) = try SignedStatement.parse(data, as: Statement.self) { $0.kind }
        guard let change = KeyChange(rawValue: body.kind) else {
            throw FerryError.invalidArgument("unknown key event \(body.kind.prefix(64))")
        }
        try LogText.check(body.origin, what: "origin", max: 256)
        try LogText.check(body.key, what: "key", max: 128)
        guard body.timestamp >= 0, (body.since == nil) == (change != .revoke),
            (body.since ?? 0) >= 0
        else {
            throw FerryError.invalidArgument("\(body.kind) entry: bad timestamp or since")
        }
        self.init(change: change, origin: body.origin, key: body.key, timestamp: body.timestamp, since: body.since)
        self.signed = signed
    }
}

/// A recall: the publisher says the release `digest` of `ref` must not be installed, and why. Signed by one key
/// current where it is logged, like a release.
public struct RecallEntry: Sendable, Equatable {
    public static let kind = "recall"

    public var origin: String
    public var ref: Ref
    public var digest: Digest
    /// One line, at most 512 bytes, shown to users.
    public var reason: String
    public var timestamp: Int64
    public var signed: SignedStatement?

    public init(origin: String, ref: Ref, digest: Digest, reason: String, timestamp: Int64) {
        self.origin = origin
        self.ref = ref
        self.digest = digest
        self.reason = reason
        self.timestamp = timestamp
    }

    private struct Statement: Codable {
        var kind: String
        var origin: String
        var ref: String
        var digest: String
        var reason: String
        var timestamp: Int64
    }

    public func statement() throws -> Data {
        try LogText.check(reason, what: "reason", max: 512)
        return try LogJSON.encode(Statement(kind: RecallEntry.kind, origin: origin, ref: ref.string,
                                            digest: digest.description, reason: reason, timestamp: timestamp))
    }

    init(parsing data: Data) throws {
        let (signed, body) = try SignedStatement.parse(data, as: Statement.self) { $0.kind }
        try LogText.check(body.origin, what: "origin", max: 256)
        try LogText.check(body.reason, what: "reason", max: 512)
        guard body.timestamp >= 0 else { throw FerryError.invalidArgument("recall entry: bad timestamp") }
        self.init(origin: body.origin, ref: try Ref(body.ref), digest: try Digest(parsing: body.digest),
                  reason: body.reason, timestamp: body.timestamp)
        self.signed = signed
    }
}

/// Text fields of statements: one line of printable characters, bounded.
enum LogText {
    static func check(_ text: String, what: String, max: Int) throws {
        guard !text.isEmpty, text.utf8.count <= max,
            !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f })
        else {
            throw FerryError.invalidArgument("\(what) must be one line of 1 to \(max) bytes without control characters")
        }
    }
}
