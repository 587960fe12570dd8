import FerryCore
import Foundation

/// One entry of a remote's transparency log: a JSON object whose `kind` says what it records.
///
/// Entries are self-authenticating: a `release` entry carries the claim and every signature over it, exactly the
/// files `ferry sign` wrote beside the image, so that the log operator (or a mirror) cannot invent a release: a
/// reader checks the signatures with the remote's keys, as an install does. Encoded with sorted keys and no
/// insignificant whitespace, byte data in base64; at most 65,535 bytes (the tlog-tiles bundle limit).
///
/// Kinds: `release` (``ReleaseEntry``); `key-add`, `key-remove` and `key-revoke` (``KeyEvent``); `recall`
/// (``RecallEntry``). The last two are signed statements (``SignedStatement``); DESIGN.md, "Trust operations".
public enum LogEntry: Sendable, Equatable {
    case release(ReleaseEntry)
    case keyEvent(KeyEvent)
    case recall(RecallEntry)
    /// A kind this version does not know: shown by a monitor, trusted by nobody.
    case other(kind: String)

    /// Parses an entry. A malformed entry of a known kind is an error; an unknown kind is `.other`.
    public init(parsing data: Data) throws {
        guard data.count <= EntryBundle.maxEntrySize else {
            throw FerryError.invalidArgument("log entry of \(data.count) bytes; the limit is \(EntryBundle.maxEntrySize)")
        }
        do {
            try JSONDuplicateKeys.check(data)
        } catch {
            throw FerryError.invalidArgument("log entry has a duplicate key")
        }
        struct Kind: Decodable { var kind: String }
        guard let kind = try? JSONDecoder().decode(Kind.self, from: data).kind else {
            throw FerryError.invalidArgument("log entry is not a JSON object with a kind")
        }
        switch kind {
        case ReleaseEntry.kind: self = .release(try ReleaseEntry(parsing: data))
        case RecallEntry.kind: self = .recall(try RecallEntry(parsing: data))
        case _ where KeyChange(rawValue: kind) != nil: self = .keyEvent(try KeyEvent(parsing: data))
        default: self = .other(kind: String(kind.prefix(64)))
        }
    }
}

/// A release: the image `digest` published as `ref`, with the claim signatures that say so.
public struct ReleaseEntry: Sendable, Equatable {
    public static let kind = "release"

    public var ref: Ref
    public var digest: Digest
    /// The timestamp of the claim this release was signed with (the newest in `signatures`).
    public var timestamp: Int64
    /// The claim files and their signatures, as the layout holds them beside the image.
    public var signatures: SignatureSet

    public init(ref: Ref, digest: Digest, timestamp: Int64, signatures: SignatureSet) {
        self.ref = ref
        self.digest = digest
        self.timestamp = timestamp
        self.signatures = signatures
    }

    private struct Wire: Codable {
        struct Ed25519: Codable {
            var claim: Data
            var minisig: Data
        }
        struct Signatures: Codable {
            var ed25519: [Ed25519]
            var gpg: [Data]
        }
        var kind: String
        var ref: String
        var digest: String
        var timestamp: Int64
        var signatures: Signatures
    }

    /// The entry's bytes.
    public func serialized() throws -> Data {
        let wire = Wire(kind: ReleaseEntry.kind, ref: ref.string, digest: digest.description, timestamp: timestamp,
                        signatures: .init(ed25519: signatures.ed25519.map { .init(claim: $0.claim, minisig: $0.minisig) },
                                          gpg: signatures.gpg))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(wire)
        guard data.count <= EntryBundle.maxEntrySize else {
            throw FerryError.invalidArgument("release entry for \(ref) is \(data.count) bytes; the limit is "
                + "\(EntryBundle.maxEntrySize) (fewer or smaller signatures)")
        }
        return data
    }

    init(parsing data: Data) throws {
        let wire: Wire
        do {
            wire = try JSONDecoder().decode(Wire.self, from: data)
        } catch {
            throw FerryError.invalidArgument("malformed release entry")
        }
        guard wire.signatures.ed25519.count <= SignatureSet.maxCount, wire.signatures.gpg.count <= SignatureSet.maxCount
        else {
            throw FerryError.invalidArgument("release entry has more than \(SignatureSet.maxCount) signatures of a kind")
        }
        ref = try Ref(wire.ref)
        digest = try Digest(parsing: wire.digest)
        timestamp = wire.timestamp
        signatures = SignatureSet(gpg: wire.signatures.gpg,
                                  ed25519: wire.signatures.ed25519.map { .init(claim: $0.claim, minisig: $0.minisig) })
    }
}
