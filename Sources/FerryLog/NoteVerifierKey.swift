import Crypto
import FerryCore
import Foundation

/// The signature algorithms of c2sp.org/signed-note that Ferry uses.
public enum NoteKeyType: UInt8, Sendable {
    /// Ed25519 over the note text: a log's checkpoint signature.
    case ed25519 = 0x01
    /// Timestamped Ed25519 cosignature (c2sp.org/tlog-cosignature `cosignature/v1`): a witness's.
    case cosignature = 0x04
}

/// A signed-note verifier key: `<name>+<hash8>+<base64(type ‖ public key)>`, the format golang.org/x/mod/sumdb/note
/// and other C2SP implementations read (`ferry log keygen` writes it as `NAME.vkey`).
///
/// The key ID is the first four bytes of SHA-256(name ‖ 0x0A ‖ type ‖ public key); a key string whose ID does not
/// match its name and key is refused, so a key cannot be relabelled under another name.
public struct NoteVerifierKey: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public let keyID: UInt32
    public let type: NoteKeyType
    /// The 32-byte Ed25519 public key.
    public let publicKey: [UInt8]

    /// Builds a key from its parts, computing the key ID.
    public init(name: String, type: NoteKeyType, publicKey: [UInt8]) throws {
        try NoteVerifierKey.checkName(name)
        guard publicKey.count == 32, (try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey)) != nil else {
            throw FerryError.invalidArgument("\(name): not an Ed25519 public key")
        }
        self.name = name
        self.type = type
        self.publicKey = publicKey
        keyID = NoteVerifierKey.keyID(name: name, type: type, publicKey: publicKey)
    }

    /// Parses a verifier key string (a `.vkey` file's contents; one trailing newline is allowed).
    public init(_ text: String) throws {
        let line = NoteVerifierKey.trimmingNewline(text)
        let parts = line.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard line.utf8.count <= 512, parts.count == 3 else {
            throw FerryError.invalidArgument("not a signed-note verifier key (NAME+HASH+KEY)")
        }
        let name = String(parts[0])
        guard let id = NoteVerifierKey.parseKeyID(parts[1]) else {
            throw FerryError.invalidArgument("\(name.prefix(100)): verifier key ID is not 8 hex digits")
        }
        let (type, key) = try NoteVerifierKey.decodeKey(parts[2], name: name)
        try self.init(name: name, type: type, publicKey: key)
        guard keyID == id else {
            throw FerryError.invalidArgument(
                "\(name): verifier key ID \(NoteVerifierKey.hex(id)) does not match its key "
                    + "(\(NoteVerifierKey.hex(keyID)))")
        }
    }

    /// The key as a verifier key string, without a newline.
    public var text: String {
        "\(name)+\(NoteVerifierKey.hex(keyID))+" + Data([type.rawValue] + publicKey).base64EncodedString()
    }

    public var description: String { "\(name)+\(NoteVerifierKey.hex(keyID))" }

    /// Checks `signature` (the bytes after the key ID) over a note's `text`. Returns `nil` when it does not verify;
    /// otherwise the cosignature's timestamp (Unix seconds), or 0 for a plain Ed25519 signature.
    public func verify(signature: [UInt8], text: Data) -> UInt64? {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) else { return nil }
        switch type {
        case .ed25519:
            guard signature.count == 64, key.isValidSignature(signature, for: text) else { return nil }
            return 0
        case .cosignature:
            guard signature.count == 72 else { return nil }
            let timestamp = signature.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard timestamp <= UInt64(Int64.max),
                key.isValidSignature(signature.dropFirst(8), for: NoteVerifierKey.cosignedMessage(text, timestamp))
            else { return nil }
            return timestamp
        }
    }

    /// What a `cosignature/v1` signs (c2sp.org/tlog-cosignature): a header line, the time line, then the note text.
    static func cosignedMessage(_ text: Data, _ timestamp: UInt64) -> Data {
        Data("cosignature/v1\ntime \(timestamp)\n".utf8) + text
    }

    // MARK: - Shared by both key formats

    /// SHA-256(name ‖ 0x0A ‖ type ‖ key)[:4], big-endian.
    static func keyID(name: String, type: NoteKeyType, publicKey: [UInt8]) -> UInt32 {
        var hasher = SHA256()
        hasher.update(data: Data(name.utf8))
        hasher.update(data: [0x0a, type.rawValue])
        hasher.update(data: publicKey)
        return hasher.finalize().prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }

    /// Key names are non-empty, at most 256 bytes, without Unicode spaces, `+` or control characters
    /// (c2sp.org/signed-note): they appear in signature lines that are split at spaces, and in key strings split at
    /// `+`.
    public static func checkName(_ name: String) throws {
        let bad = name.unicodeScalars.contains { $0.properties.isWhitespace || $0 == "+" || $0.value < 0x20 }
        guard !name.isEmpty, name.utf8.count <= 256, !bad else {
            throw FerryError.invalidArgument(
                "invalid key name \(name.prefix(100).debugDescription): it must be non-empty, at most 256 bytes, "
                    + "with no spaces or +")
        }
    }

    static func hex(_ id: UInt32) -> String {
        let digits = String(id, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    static func parseKeyID(_ text: Substring) -> UInt32? {
        guard text.utf8.count == 8, text.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        else { return nil }
        return UInt32(text, radix: 16)
    }

    /// Decodes `base64(type ‖ 32-byte key)` in its canonical spelling.
    static func decodeKey(_ text: Substring, name: String) throws -> (NoteKeyType, [UInt8]) {
        guard let data = Data(base64Encoded: String(text)), data.base64EncodedString() == text, data.count == 33
        else {
            throw FerryError.invalidArgument("\(name.prefix(100)): key is not base64 of a type byte and 32 bytes")
        }
        let typeByte = data[data.startIndex]
        guard let type = NoteKeyType(rawValue: typeByte) else {
            let shown = (typeByte < 16 ? "0" : "") + String(typeByte, radix: 16)
            throw FerryError.invalidArgument(
                "\(name.prefix(100)): unsupported key type 0x\(shown); "
                    + "Ferry knows 0x01 (Ed25519) and 0x04 (cosignature/v1)")
        }
        return (type, Array(data.dropFirst()))
    }

    /// The text without one final `\n` or `\r\n` (by scalars: `"\r\n"` is one `Character`).
    static func trimmingNewline(_ text: String) -> Substring {
        var scalars = Substring(text).unicodeScalars
        if scalars.last == "\n" { scalars.removeLast() }
        if scalars.last == "\r" { scalars.removeLast() }
        return Substring(scalars)
    }
}
