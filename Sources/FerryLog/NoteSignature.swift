import FerryCore
import Foundation

/// One signature line of a signed note: `— <name> <base64(key ID ‖ signature)>`.
public struct NoteSignature: Hashable, Sendable {
    public let name: String
    public let keyID: UInt32
    /// The signature bytes after the key ID (for a cosignature: the 8-byte timestamp, then the Ed25519 signature).
    public let signature: [UInt8]

    public init(name: String, keyID: UInt32, signature: [UInt8]) {
        self.name = name
        self.keyID = keyID
        self.signature = signature
    }

    /// The line, with its final newline.
    public var line: String {
        let id = (0..<4).reversed().map { UInt8(truncatingIfNeeded: keyID >> (8 * UInt32($0))) }
        return "— \(name) " + Data(id + signature).base64EncodedString() + "\n"
    }

    /// Whether this is a signature by `key` (same name and key ID; the signature itself is not checked).
    public func isBy(_ key: NoteVerifierKey) -> Bool { name == key.name && keyID == key.keyID }
}
