import Crypto
import FerryCore
import Foundation
import _CryptoExtras

/// A public key in TUF metadata (`{"keytype", "scheme", "keyval": {"public"}}`), as securesystemslib writes it.
///
/// Supported (keytype / scheme / public / signature):
/// - `ed25519` / `ed25519` / 64 hex digits (the raw 32-byte key) / 128 hex digits (raw 64-byte signature);
/// - `ecdsa` or `ecdsa-sha2-nistp256` / `ecdsa-sha2-nistp256` / PEM SubjectPublicKeyInfo / hex of the
///   **DER** `ECDSA-Sig-Value` (SEQUENCE of r and s, as `cryptography` writes it), over SHA-256 of the message;
///   `ecdsa-sha2-nistp384` likewise with P-384 and SHA-384;
/// - `rsa` / `rsassa-pss-sha256` (MGF1-SHA256, salt length = digest length, as securesystemslib signs) or
///   `rsa-pkcs1v15-sha256` (also `-sha384`, `-sha512`) / PEM SubjectPublicKeyInfo / hex of the raw signature.
/// Other key types parse (so that metadata listing them still loads) but verify nothing.
public struct TUFKey: Sendable {
    public let keyType: String
    public let scheme: String
    public let publicValue: String
    private let verifier: Verifier

    private enum Verifier: Sendable {
        case ed25519(Curve25519.Signing.PublicKey)
        case p256(P256.Signing.PublicKey)
        case p384(P384.Signing.PublicKey)
        case rsa(_RSA.Signing.PublicKey, pss: Bool, hash: HashKind)
        case unsupported(String)
    }

    private enum HashKind: Sendable {
        case sha256, sha384, sha512
    }

    /// Parses a key object. Throws only when the object is not a key at all; an unknown key type or an
    /// undecodable public value yields a key that verifies nothing.
    public init(json: TUFJSON) throws {
        guard let keyType = json["keytype"]?.stringValue, let scheme = json["scheme"]?.stringValue,
            let keyval = json["keyval"], keyval.objectValue != nil
        else {
            throw FerryError.untrusted("malformed key: keytype, scheme and keyval are required")
        }
        self.keyType = keyType
        self.scheme = scheme
        let publicValue = keyval["public"]?.stringValue ?? ""
        self.publicValue = publicValue
        verifier = TUFKey.makeVerifier(keyType: keyType, scheme: scheme, publicValue: publicValue)
    }

    private static func makeVerifier(keyType: String, scheme: String, publicValue: String) -> Verifier {
        do {
            switch (keyType, scheme) {
            case ("ed25519", "ed25519"):
                guard let raw = Data(tufHex: publicValue), raw.count == 32 else {
                    return .unsupported("ed25519 public key is not 64 hex digits")
                }
                return .ed25519(try Curve25519.Signing.PublicKey(rawRepresentation: raw))
            case ("ecdsa", "ecdsa-sha2-nistp256"), ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"):
                return .p256(try P256.Signing.PublicKey(pemRepresentation: publicValue))
            case ("ecdsa", "ecdsa-sha2-nistp384"), ("ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384"):
                return .p384(try P384.Signing.PublicKey(pemRepresentation: publicValue))
            case ("rsa", let scheme) where scheme.hasPrefix("rsassa-pss-") || scheme.hasPrefix("rsa-pkcs1v15-"):
                let pss = scheme.hasPrefix("rsassa-pss-")
                let hashName = String(scheme.split(separator: "-").last ?? "")
                let hash: HashKind
                switch hashName {
                case "sha256": hash = .sha256
                case "sha384": hash = .sha384
                case "sha512": hash = .sha512
                default: return .unsupported("RSA scheme \(scheme)")
                }
                return .rsa(try _RSA.Signing.PublicKey(pemRepresentation: publicValue), pss: pss, hash: hash)
            default:
                return .unsupported("key type \(keyType) with scheme \(scheme)")
            }
        } catch {
            return .unsupported("\(keyType) public key does not decode")
        }
    }

    /// Whether the key type and scheme are ones Ferry can verify.
    public var isSupported: Bool {
        if case .unsupported = verifier { return false }
        return true
    }

    /// Verifies `signatureHex` (the `sig` member of a TUF signature) over `message` (canonical JSON of `signed`).
    public func verify(signatureHex: String, message: Data) -> Bool {
        guard let signature = Data(tufHex: signatureHex) else { return false }
        switch verifier {
        case .ed25519(let key):
            return signature.count == 64 && key.isValidSignature(signature, for: message)
        case .p256(let key):
            guard let sig = try? P256.Signing.ECDSASignature(derRepresentation: signature) else { return false }
            return key.isValidSignature(sig, for: SHA256.hash(data: message))
        case .p384(let key):
            guard let sig = try? P384.Signing.ECDSASignature(derRepresentation: signature) else { return false }
            return key.isValidSignature(sig, for: SHA384.hash(data: message))
        case .rsa(let key, let pss, let hash):
            let sig = _RSA.Signing.RSASignature(rawRepresentation: signature)
            let padding: _RSA.Signing.Padding = pss ? .PSS : .insecurePKCS1v1_5
            switch hash {
            case .sha256: return key.isValidSignature(sig, for: SHA256.hash(data: message), padding: padding)
            case .sha384: return key.isValidSignature(sig, for: SHA384.hash(data: message), padding: padding)
            case .sha512: return key.isValidSignature(sig, for: SHA512.hash(data: message), padding: padding)
            }
        case .unsupported:
            return false
        }
    }
}

extension Data {
    /// Decodes lowercase or uppercase hex; nil for odd length or a non-hex character.
    init?(tufHex hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity(utf8.count / 2)
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        var i = 0
        while i < utf8.count {
            guard let high = nibble(utf8[i]), let low = nibble(utf8[i + 1]) else { return nil }
            bytes.append(high << 4 | low)
            i += 2
        }
        self.init(bytes)
    }
}
