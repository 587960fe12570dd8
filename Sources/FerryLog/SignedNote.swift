import FerryCore
import Foundation

/// A c2sp.org/signed-note: a text ending in a newline, a blank line, then one or more signature lines.
///
/// ``init(_:)`` checks the structure only and is strict: a note from a web host or a staged directory is attacker
/// input read by the root helper, so every malformation is its own error and nothing in it can crash the parser or
/// make it work without bound (size and signature-count caps). ``verify(by:)`` then checks signatures.
public struct SignedNote: Sendable {
    /// The largest note accepted: a checkpoint with a hundred cosignatures is a few kilobytes.
    public static let maxSize = 128 * 1024
    /// The most signature lines accepted (c2sp requires accepting at least 16; Go's note package stops at 100).
    public static let maxSignatures = 100

    /// The signed text, with its final newline.
    public let text: String
    public let signatures: [NoteSignature]

    /// A note from its text (which must end in a newline) and signatures.
    public init(text: String, signatures: [NoteSignature]) throws {
        guard text.hasSuffix("\n"), !text.isEmpty else {
            throw FerryError.invalidArgument("a signed note's text must end with a newline")
        }
        self.text = text
        self.signatures = signatures
    }

    /// Parses a note, refusing anything the format does not allow.
    public init(_ data: Data) throws {
        func malformed(_ why: String) -> FerryError { FerryError.invalidArgument("signed note " + why) }
        guard data.count <= SignedNote.maxSize else {
            throw malformed("is larger than \(SignedNote.maxSize) bytes")
        }
        guard String(validating: data, as: UTF8.self) != nil else { throw malformed("is not valid UTF-8") }
        guard !data.contains(where: { $0 < 0x20 && $0 != 0x0a }) else {
            throw malformed("contains a control character")
        }
        // The last blank line separates the text (with its newline) from the signatures.
        let bytes = [UInt8](data)
        var split: Int? = nil
        var i = bytes.count - 2
        while i >= 0 {
            if bytes[i] == 0x0a && bytes[i + 1] == 0x0a {
                split = i
                break
            }
            i -= 1
        }
        guard let split else { throw malformed("has no blank line before its signatures") }
        let block = bytes[(split + 2)...]
        guard !block.isEmpty else { throw malformed("has no signatures") }
        guard block.last == 0x0a else { throw malformed("does not end with a newline") }
        var parsed: [NoteSignature] = []
        var seen = Set<String>()
        for rawLine in block.dropLast().split(separator: 0x0a, omittingEmptySubsequences: false) {
            guard parsed.count < SignedNote.maxSignatures else {
                throw malformed("has more than \(SignedNote.maxSignatures) signatures")
            }
            let number = parsed.count + 1
            guard let signature = SignedNote.parseSignatureLine(rawLine) else {
                throw malformed("has a malformed signature line \(number)")
            }
            let key = "\(signature.name)+\(NoteVerifierKey.hex(signature.keyID))"
            guard seen.insert(key).inserted else { throw malformed("has two signatures by \(key)") }
            parsed.append(signature)
        }
        text = String(decoding: bytes[...split], as: UTF8.self)
        signatures = parsed
    }

    /// `— <name> <base64>`, the base64 canonical and at least a key ID and one byte.
    private static func parseSignatureLine(_ line: ArraySlice<UInt8>) -> NoteSignature? {
        let prefix: [UInt8] = Array("— ".utf8)
        guard line.starts(with: prefix) else { return nil }
        let rest = line.dropFirst(prefix.count)
        let fields = rest.split(separator: 0x20, maxSplits: 1, omittingEmptySubsequences: false)
        guard fields.count == 2, let name = String(validating: fields[0], as: UTF8.self),
            (try? NoteVerifierKey.checkName(name)) != nil,
            let b64 = String(validating: fields[1], as: UTF8.self), !b64.isEmpty,
            let raw = Data(base64Encoded: b64), raw.base64EncodedString() == b64, raw.count >= 5
        else { return nil }
        let bytes = [UInt8](raw)
        let id = bytes.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return NoteSignature(name: name, keyID: id, signature: Array(bytes.dropFirst(4)))
    }

    /// The note as it is served: text, blank line, signature lines.
    public var serialized: Data {
        Data((text + "\n" + signatures.map(\.line).joined()).utf8)
    }

    /// A signature by a trusted key that verified.
    public struct Verified: Sendable, Equatable {
        public let key: NoteVerifierKey
        /// A cosignature's time (Unix seconds); 0 for a plain Ed25519 signature.
        public let timestamp: UInt64
    }

    /// Verifies the signatures by `keys` (c2sp.org/signed-note): a signature by an unknown key is ignored (a
    /// witness the reader does not know, a rotated key); a signature by a known key that does not verify rejects
    /// the whole note; a note with no verified signature is rejected.
    public func verify(by keys: [NoteVerifierKey]) throws -> [Verified] {
        let message = Data(text.utf8)
        var verified: [Verified] = []
        for signature in signatures {
            guard let key = keys.first(where: { signature.isBy($0) }) else { continue }
            guard let timestamp = key.verify(signature: signature.signature, text: message) else {
                throw FerryError.signatureInvalid("signed note: the signature by \(key) does not verify")
            }
            verified.append(Verified(key: key, timestamp: timestamp))
        }
        guard !verified.isEmpty else {
            throw FerryError.untrusted(
                "signed note is not signed by a trusted key (trusted: "
                    + keys.map(\.description).joined(separator: ", ") + "; signed by: "
                    + signatures.map { "\($0.name)+\(NoteVerifierKey.hex($0.keyID))" }.joined(separator: ", ") + ")")
        }
        return verified
    }

    /// The note with `signature` added, replacing an earlier signature by the same key (re-signing, a witness
    /// cosigning again).
    public func adding(_ signature: NoteSignature) -> SignedNote {
        var kept = signatures.filter { $0.name != signature.name || $0.keyID != signature.keyID }
        kept.append(signature)
        // The text was checked when this note was made.
        return (try? SignedNote(text: text, signatures: kept)) ?? self
    }

    /// Signs `text` with each of `signers`.
    public static func sign(text: String, with signers: [NoteSignerKey], timestamp: UInt64? = nil) throws
        -> SignedNote
    {
        var note = try SignedNote(text: text, signatures: [])
        for signer in signers {
            note = note.adding(try signer.sign(text: Data(text.utf8), timestamp: timestamp))
        }
        return note
    }
}
