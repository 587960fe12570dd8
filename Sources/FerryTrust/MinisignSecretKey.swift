import FerryCore
import Foundation

/// A minisign ed25519 secret key, read from and written as `minisign -G` does.
///
/// The file is an `untrusted comment:` line and one base64 line of
/// `"Ed" ‖ kdf ‖ "B2" ‖ salt[32] ‖ opslimit[8] ‖ memlimit[8] ‖ (keynum[8] ‖ sk[64] ‖ checksum[32])`.
/// With kdf `Sc` the parenthesised part is XORed with an scrypt stream derived from the password
/// (`crypto_pwhash_scryptsalsa208sha256` with the file's opslimit and memlimit), and the BLAKE2b-256 checksum over
/// `"Ed" ‖ keynum ‖ sk` detects a wrong password. With kdf `\0\0` (`minisign -G -W`) the key is stored in clear.
public struct MinisignSecretKey: Sendable {
    static let encodedBytes = 2 + 2 + 2 + 32 + 8 + 8 + Minisign.keyNumberBytes + LibSodium.secretKeyBytes + 32
    /// minisign's defaults for new encrypted keys (`OPSLIMIT`, `MEMLIMIT`).
    public static let defaultOpsLimit: UInt64 = 33_554_432
    public static let defaultMemLimit: UInt64 = 1_073_741_824
    /// A hostile key file must not make us burn unbounded CPU or memory deriving its key.
    static let maxOpsLimit: UInt64 = 1 << 32
    static let maxMemLimit: UInt64 = 4 << 30

    let keyNumber: [UInt8]
    /// libsodium layout: seed[32] ‖ public key[32].
    let secretKey: [UInt8]

    /// Reads a secret key file as `minisign -G` (encrypted) or `minisign -G -W` (unencrypted) writes it.
    ///
    /// `password` is needed only for an encrypted key; deriving the key takes seconds with minisign's parameters.
    /// The key pair is checked for consistency (the public half must follow from the seed).
    /// - Throws: `FerryError` `.invalidArgument` for a malformed file, a missing or wrong password.
    public init(parsing text: String, password: String?) throws {
        let lines = try Minisign.lines(text)
        guard lines.count == 2, Minisign.stripping(Minisign.untrustedPrefix, from: lines[0]) != nil else {
            throw FerryError.invalidArgument(
                "not a minisign secret key (expected an \"untrusted comment:\" line and a base64 line)"
            )
        }
        guard var bytes = Minisign.decode(lines[1], count: MinisignSecretKey.encodedBytes) else {
            throw FerryError.invalidArgument("not a minisign secret key (the key line is not 158 bytes of base64)")
        }
        guard Array(bytes[0..<2]) == Minisign.legacyAlgorithm else {
            throw FerryError.invalidArgument("unsupported minisign signature algorithm in secret key")
        }
        guard Array(bytes[4..<6]) == Minisign.blake2Algorithm else {
            throw FerryError.invalidArgument("unsupported minisign checksum algorithm in secret key")
        }
        let kdf = Array(bytes[2..<4])
        let body = 54..<158
        let checksumRange = 126..<158
        if kdf == Minisign.scryptAlgorithm {
            guard let password else {
                throw FerryError.invalidArgument("the minisign secret key is encrypted; a password is needed")
            }
            let salt = Array(bytes[6..<38])
            let opsLimit = littleEndian(bytes[38..<46])
            let memLimit = littleEndian(bytes[46..<54])
            guard opsLimit <= MinisignSecretKey.maxOpsLimit, memLimit <= MinisignSecretKey.maxMemLimit else {
                throw FerryError.invalidArgument("minisign secret key asks for excessive scrypt parameters")
            }
            let stream = try LibSodium.scryptStream(
                length: body.count,
                password: password,
                salt: salt,
                opsLimit: opsLimit,
                memLimit: memLimit
            )
            for (i, index) in body.enumerated() { bytes[index] ^= stream[i] }
            let expected = MinisignSecretKey.checksum(
                keyNumber: Array(bytes[54..<62]),
                secretKey: Array(bytes[62..<126])
            )
            guard LibSodium.constantTimeEqual(expected, Array(bytes[checksumRange])) else {
                throw FerryError.invalidArgument("wrong password for the minisign secret key")
            }
        } else if kdf == Minisign.noKDF {
            // minisign -G -W leaves the checksum zero; other writers fill it in, and then it must match.
            let stored = Array(bytes[checksumRange])
            if stored.contains(where: { $0 != 0 }) {
                let expected = MinisignSecretKey.checksum(
                    keyNumber: Array(bytes[54..<62]),
                    secretKey: Array(bytes[62..<126])
                )
                guard LibSodium.constantTimeEqual(expected, stored) else {
                    throw FerryError.invalidArgument("minisign secret key checksum mismatch (corrupted file)")
                }
            }
        } else {
            throw FerryError.invalidArgument("unsupported minisign key derivation function in secret key")
        }
        keyNumber = Array(bytes[54..<62])
        secretKey = Array(bytes[62..<126])
        let derived = try LibSodium.publicKey(seed: secretKey[0..<32])
        guard derived == Array(secretKey[32..<64]) else {
            throw FerryError.invalidArgument("minisign secret key is inconsistent (public half does not match)")
        }
    }

    init(keyNumber: [UInt8], secretKey: [UInt8]) {
        self.keyNumber = keyNumber
        self.secretKey = secretKey
    }

    /// A new random key pair with a random key number, as `minisign -G` makes one.
    public static func generate() throws -> MinisignSecretKey {
        let pair = try LibSodium.generateKeyPair()
        return MinisignSecretKey(
            keyNumber: try LibSodium.randomBytes(Minisign.keyNumberBytes),
            secretKey: pair.secretKey
        )
    }

    public var publicKey: MinisignPublicKey {
        MinisignPublicKey(keyNumber: keyNumber, key: Array(secretKey[32..<64]))
    }

    /// The unencrypted secret key file exactly as `minisign -G -W` writes it (kdf, salt, limits and checksum
    /// all zero; minisign uses the same comment line for encrypted and unencrypted keys).
    public func fileText() -> String {
        var bytes = Minisign.legacyAlgorithm + Minisign.noKDF + Minisign.blake2Algorithm
        bytes += [UInt8](repeating: 0, count: 32 + 8 + 8)
        bytes += keyNumber + secretKey + [UInt8](repeating: 0, count: 32)
        return "\(Minisign.untrustedPrefix)minisign encrypted secret key\n\(Minisign.encode(bytes))\n"
    }

    /// The password-encrypted secret key file as `minisign -G` writes it, with a fresh random salt.
    /// Lower `opsLimit`/`memLimit` make a faster (weaker) key; minisign reads whatever the file says.
    public func encryptedFileText(
        password: String,
        opsLimit: UInt64 = defaultOpsLimit,
        memLimit: UInt64 = defaultMemLimit
    ) throws -> String {
        let salt = try LibSodium.randomBytes(32)
        var body = keyNumber + secretKey + MinisignSecretKey.checksum(keyNumber: keyNumber, secretKey: secretKey)
        let stream = try LibSodium.scryptStream(
            length: body.count,
            password: password,
            salt: salt,
            opsLimit: opsLimit,
            memLimit: memLimit
        )
        for i in body.indices { body[i] ^= stream[i] }
        let bytes =
            Minisign.legacyAlgorithm + Minisign.scryptAlgorithm + Minisign.blake2Algorithm + salt
            + littleEndianBytes(opsLimit) + littleEndianBytes(memLimit) + body
        return "\(Minisign.untrustedPrefix)minisign encrypted secret key\n\(Minisign.encode(bytes))\n"
    }

    /// Signs `data` and returns the `.minisig` file text, as `minisign -S` writes it.
    ///
    /// `prehashed` (the default, as in minisign ≥ 0.8) signs the BLAKE2b-512 of the data with algorithm `ED`;
    /// `false` signs the data itself with legacy algorithm `Ed` (`minisign -S -l`). The global signature covers
    /// the signature and the trusted comment, so the trusted comment cannot be altered.
    /// - Throws: `.invalidArgument` when a comment contains a line break or is too long for minisign.
    public func sign(
        _ data: Data,
        trustedComment: String,
        untrustedComment: String = "signature from minisign secret key",
        prehashed: Bool = true
    ) throws -> String {
        try Minisign.checkComment(
            untrustedComment,
            maxBytes: Minisign.commentMaxBytes - Minisign.untrustedPrefix.utf8.count,
            what: "untrusted comment"
        )
        try Minisign.checkComment(
            trustedComment,
            maxBytes: Minisign.trustedCommentMaxBytes - Minisign.trustedPrefix.utf8.count,
            what: "trusted comment"
        )
        let signature: [UInt8]
        if prehashed {
            signature = try LibSodium.sign(message: LibSodium.blake2b(data), secretKey: secretKey)
        } else {
            signature = try LibSodium.sign(message: data, secretKey: secretKey)
        }
        let global = try LibSodium.sign(message: signature + Array(trustedComment.utf8), secretKey: secretKey)
        let algorithm = prehashed ? Minisign.prehashedAlgorithm : Minisign.legacyAlgorithm
        return Minisign.untrustedPrefix + untrustedComment + "\n"
            + Minisign.encode(algorithm + keyNumber + signature) + "\n"
            + Minisign.trustedPrefix + trustedComment + "\n"
            + Minisign.encode(global) + "\n"
    }

    /// BLAKE2b-256 over `"Ed" ‖ keynum ‖ sk`: minisign's `seckey_chk`.
    static func checksum(keyNumber: [UInt8], secretKey: [UInt8]) -> [UInt8] {
        LibSodium.blake2b(Minisign.legacyAlgorithm + keyNumber + secretKey, outputLength: 32)
    }
}

private func littleEndian(_ bytes: ArraySlice<UInt8>) -> UInt64 {
    bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) }
}

private func littleEndianBytes(_ value: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}
