import FerryCore
import Foundation

/// A minisign signature file (`.minisig`), as `minisign -S` writes it:
///
/// ```
/// untrusted comment: <anything>
/// base64("ED" or "Ed" ‖ keynum[8] ‖ signature[64])
/// trusted comment: <text>
/// base64(global signature[64] over signature ‖ trusted comment)
/// ```
/// `ED` signs the BLAKE2b-512 of the data (the default since minisign 0.8); `Ed` is the legacy form that signs
/// the data itself.
public struct MinisignSignature: Sendable, Equatable {
    static let encodedBytes = 2 + Minisign.keyNumberBytes + LibSodium.signatureBytes

    /// True for `ED` (prehashed BLAKE2b-512), false for legacy `Ed`.
    public let isPrehashed: Bool
    let keyNumber: [UInt8]
    let signature: [UInt8]
    let globalSignature: [UInt8]
    /// The exact bytes after `trusted comment: `, which the global signature covers.
    let trustedCommentBytes: [UInt8]
    /// Not covered by any signature: for display only, never for decisions.
    public let untrustedComment: String

    /// Parses a `.minisig` file. Only trailing empty lines may follow the four lines.
    /// - Throws: `FerryError` `.signatureInvalid` for anything that is not a well-formed minisign signature.
    public init(parsing text: String) throws {
        let lines: [[UInt8]]
        do {
            lines = try Minisign.lines(text)
        } catch {
            throw FerryError.signatureInvalid("minisign signature file larger than 16 KiB")
        }
        guard lines.count == 4 else {
            throw FerryError.signatureInvalid("malformed minisign signature (expected 4 lines, found \(lines.count))")
        }
        guard let untrusted = Minisign.stripping(Minisign.untrustedPrefix, from: lines[0]) else {
            throw FerryError.signatureInvalid("malformed minisign signature (no \"untrusted comment:\" line)")
        }
        guard let bytes = Minisign.decode(lines[1], count: MinisignSignature.encodedBytes) else {
            throw FerryError.signatureInvalid("malformed minisign signature (signature line is not valid base64)")
        }
        guard let trusted = Minisign.stripping(Minisign.trustedPrefix, from: lines[2]) else {
            throw FerryError.signatureInvalid("malformed minisign signature (no \"trusted comment:\" line)")
        }
        guard trusted.count < Minisign.trustedCommentMaxBytes - Minisign.trustedPrefix.utf8.count else {
            throw FerryError.signatureInvalid("malformed minisign signature (trusted comment too long)")
        }
        guard let global = Minisign.decode(lines[3], count: LibSodium.signatureBytes) else {
            throw FerryError.signatureInvalid(
                "malformed minisign signature (global signature line is not valid base64)"
            )
        }
        let algorithm = Array(bytes[0..<2])
        if algorithm == Minisign.prehashedAlgorithm {
            isPrehashed = true
        } else if algorithm == Minisign.legacyAlgorithm {
            isPrehashed = false
        } else {
            throw FerryError.signatureInvalid("unsupported minisign signature algorithm")
        }
        keyNumber = Array(bytes[2..<10])
        signature = Array(bytes[10...])
        globalSignature = global
        trustedCommentBytes = trusted
        untrustedComment = String(decoding: untrusted, as: UTF8.self)
    }

    /// Parses a `.minisig` file's bytes; they must be UTF-8 text.
    public init(parsing data: Data) throws {
        guard let text = String(data: data, encoding: .utf8) else {
            throw FerryError.signatureInvalid("malformed minisign signature (not UTF-8 text)")
        }
        try self.init(parsing: text)
    }

    /// The id of the key that claims to have made this signature (unverified until ``verify(_:keys:)``).
    public var keyID: String { Minisign.keyID(keyNumber) }

    /// The trusted comment as text. Verified only once ``verify(_:keys:)`` returned.
    public var trustedComment: String { String(decoding: trustedCommentBytes, as: UTF8.self) }

    /// Verifies the signature over `data` and the global signature over the trusted comment, with the one key in
    /// `keys` whose key number matches; returns the trusted comment.
    ///
    /// Checking the global signature too stops an attacker from pairing a valid signature with a rewritten
    /// trusted comment.
    /// - Throws: `.untrusted` when no key in `keys` has the signature's key id; `.signatureInvalid` when the
    ///   signature or the global signature does not verify.
    public func verify(_ data: Data, keys: [MinisignPublicKey]) throws -> String {
        guard let key = keys.first(where: { $0.keyNumber == keyNumber }) else {
            let trusted = keys.isEmpty ? "none" : keys.map(\.keyID).joined(separator: ", ")
            throw FerryError.untrusted("signed by unknown minisign key \(keyID); trusted keys: \(trusted)")
        }
        let valid: Bool
        if isPrehashed {
            valid = LibSodium.verify(signature: signature, message: LibSodium.blake2b(data), publicKey: key.key)
        } else {
            valid = LibSodium.verify(signature: signature, message: data, publicKey: key.key)
        }
        guard valid else {
            throw FerryError.signatureInvalid("minisign signature by key \(keyID) does not match the signed data")
        }
        guard
            LibSodium.verify(
                signature: globalSignature,
                message: signature + trustedCommentBytes,
                publicKey: key.key
            )
        else {
            throw FerryError.signatureInvalid(
                "minisign trusted comment signature by key \(keyID) is invalid (trusted comment altered)"
            )
        }
        return trustedComment
    }
}
