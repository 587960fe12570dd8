import FerryCore
import Foundation

/// A minisign ed25519 public key: an 8-byte key number and 32 key bytes.
///
/// Parses what `minisign -G` writes as `.pub` (an `untrusted comment:` line then the base64 line), or the base64
/// line alone (what `minisign -P` takes). Only algorithm `Ed` exists for keys; anything else is refused.
public struct MinisignPublicKey: Sendable, Hashable, CustomStringConvertible {
    static let encodedBytes = 2 + Minisign.keyNumberBytes + LibSodium.publicKeyBytes

    /// The key number, as stored (little-endian).
    let keyNumber: [UInt8]
    /// The raw ed25519 public key.
    let key: [UInt8]

    init(keyNumber: [UInt8], key: [UInt8]) {
        self.keyNumber = keyNumber
        self.key = key
    }

    /// Parses a `.pub` file's text or the bare base64 line.
    /// - Throws: `FerryError` `.invalidArgument` naming what is wrong.
    public init(parsing text: String) throws {
        let lines = try Minisign.lines(text)
        let base64Line: [UInt8]
        switch lines.count {
        case 1:
            base64Line = lines[0]
        case 2 where Minisign.stripping(Minisign.untrustedPrefix, from: lines[0]) != nil:
            base64Line = lines[1]
        default:
            throw FerryError.invalidArgument(
                "not a minisign public key (expected an \"untrusted comment:\" line and a base64 line)"
            )
        }
        guard let bytes = Minisign.decode(base64Line, count: MinisignPublicKey.encodedBytes) else {
            throw FerryError.invalidArgument("not a minisign public key (the key line is not 42 bytes of base64)")
        }
        guard Array(bytes[0..<2]) == Minisign.legacyAlgorithm else {
            throw FerryError.invalidArgument("unsupported minisign key algorithm")
        }
        keyNumber = Array(bytes[2..<10])
        key = Array(bytes[10...])
    }

    /// The key id as minisign prints it: 16 upper-case hex digits (`891B740A2AB6A14D`).
    public var keyID: String { Minisign.keyID(keyNumber) }

    /// The base64 line alone, as `minisign -P` takes it.
    public var base64: String { Minisign.encode(Minisign.legacyAlgorithm + keyNumber + key) }

    /// The `.pub` file exactly as `minisign -G` writes it.
    public var fileText: String {
        "\(Minisign.untrustedPrefix)minisign public key \(keyID)\n\(base64)\n"
    }

    public var description: String { "minisign key \(keyID)" }
}
