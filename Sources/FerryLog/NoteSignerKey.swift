import Crypto
import FerryCore
import Foundation

/// A signed-note signer key: `PRIVATE+KEY+<name>+<hash8>+<base64(type ‖ 32-byte Ed25519 seed)>`, the format
/// golang.org/x/mod/sumdb/note reads and writes (`ferry log keygen` writes it as `NAME.key`, mode 0600).
///
/// Type 0x01 signs checkpoints as a log; type 0x04 makes `cosignature/v1` witness cosignatures, which carry the
/// time of signing.
public struct NoteSignerKey: Sendable {
    public let verifierKey: NoteVerifierKey
    private let seed: [UInt8]

    public var name: String { verifierKey.name }
    public var type: NoteKeyType { verifierKey.type }

    /// A new random key.
    public static func generate(name: String, type: NoteKeyType = .ed25519) throws -> NoteSignerKey {
        let key = Curve25519.Signing.PrivateKey()
        return try NoteSignerKey(name: name, type: type, seed: Array(key.rawRepresentation))
    }

    init(name: String, type: NoteKeyType, seed: [UInt8]) throws {
        guard seed.count == 32, let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else {
            throw FerryError.invalidArgument("\(name): not an Ed25519 seed")
        }
        verifierKey = try NoteVerifierKey(name: name, type: type, publicKey: Array(key.publicKey.rawRepresentation))
        self.seed = seed
    }

    /// Parses a signer key string (a `.key` file's contents; one trailing newline is allowed). The key ID must
    /// match the public key derived from the seed.
    public init(_ text: String) throws {
        let line = NoteVerifierKey.trimmingNewline(text)
        let parts = line.split(separator: "+", maxSplits: 4, omittingEmptySubsequences: false)
        guard line.utf8.count <= 512, parts.count == 5, parts[0] == "PRIVATE", parts[1] == "KEY" else {
            throw FerryError.invalidArgument("not a signed-note signer key (PRIVATE+KEY+NAME+HASH+KEY)")
        }
        let name = String(parts[2])
        guard let id = NoteVerifierKey.parseKeyID(parts[3]) else {
            throw FerryError.invalidArgument("\(name.prefix(100)): signer key ID is not 8 hex digits")
        }
        let (type, seed) = try NoteVerifierKey.decodeKey(parts[4], name: name)
        try self.init(name: name, type: type, seed: seed)
        guard verifierKey.keyID == id else {
            throw FerryError.invalidArgument(
                "\(name): signer key ID \(NoteVerifierKey.hex(id)) does not match its key "
                    + "(\(NoteVerifierKey.hex(verifierKey.keyID)))")
        }
    }

    /// The key as a signer key string, without a newline. It is the secret: keep it out of logs and errors.
    public var text: String {
        "PRIVATE+KEY+\(name)+\(NoteVerifierKey.hex(verifierKey.keyID))+"
            + Data([type.rawValue] + seed).base64EncodedString()
    }

    /// Signs a note's text. A cosignature key signs `cosignature/v1` with `timestamp` (Unix seconds, default now);
    /// an Ed25519 key ignores it.
    public func sign(text: Data, timestamp: UInt64? = nil) throws -> NoteSignature {
        guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else {
            throw FerryError.failed("\(name): unusable signing key")
        }
        switch type {
        case .ed25519:
            let signature = try key.signature(for: text)
            return NoteSignature(name: name, keyID: verifierKey.keyID, signature: Array(signature))
        case .cosignature:
            let time = timestamp ?? UInt64(max(0, Date().timeIntervalSince1970))
            guard time <= UInt64(Int64.max) else { throw FerryError.invalidArgument("cosignature time \(time)") }
            let signature = try key.signature(for: NoteVerifierKey.cosignedMessage(text, time))
            let timeBytes = (0..<8).reversed().map { UInt8(truncatingIfNeeded: time >> (8 * UInt64($0))) }
            return NoteSignature(name: name, keyID: verifierKey.keyID, signature: timeBytes + Array(signature))
        }
    }
}
