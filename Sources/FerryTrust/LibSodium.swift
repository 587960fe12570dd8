internal import CSodium
import FerryCore
import Foundation

/// The few libsodium calls Ferry makes, with Swift buffers. Internal: C types never leave this module.
enum LibSodium {
    static let publicKeyBytes = 32
    static let secretKeyBytes = 64
    static let signatureBytes = 64
    static let seedBytes = 32

    /// `sodium_init` picks implementations and seeds the RNG; a Swift `static let` runs it exactly once,
    /// thread-safely, before the first use.
    private static let initialized: Bool = sodium_init() >= 0

    static func ensureInitialized() throws {
        guard initialized else { throw FerryError.failed("libsodium could not be initialised") }
    }

    /// BLAKE2b with `outputLength` bytes (16...64) and no key. The corresponding C function is `crypto_generichash`.
    static func blake2b(_ data: some ContiguousBytes, outputLength: Int = 64) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: outputLength)
        data.withUnsafeBytes { input in
            _ = crypto_generichash(
                &out,
                outputLength,
                input.baseAddress?.assumingMemoryBound(to: UInt8.self),
                UInt64(input.count),
                nil,
                0
            )
        }
        return out
    }

    /// Ed25519 detached signature verification. The corresponding C function is `crypto_sign_verify_detached`.
    static func verify(signature: [UInt8], message: some ContiguousBytes, publicKey: [UInt8]) -> Bool {
        guard signature.count == signatureBytes, publicKey.count == publicKeyBytes, initialized else { return false }
        return message.withUnsafeBytes { input in
            crypto_sign_verify_detached(
                signature,
                input.baseAddress?.assumingMemoryBound(to: UInt8.self),
                UInt64(input.count),
                publicKey
            ) == 0
        }
    }

    /// Ed25519 detached signature with a 64-byte libsodium secret key (seed ‖ public key).
    /// The corresponding C function is `crypto_sign_detached`.
    static func sign(message: some ContiguousBytes, secretKey: [UInt8]) throws -> [UInt8] {
        try ensureInitialized()
        guard secretKey.count == secretKeyBytes else {
            throw FerryError.invalidArgument("malformed ed25519 secret key")
        }
        var signature = [UInt8](repeating: 0, count: signatureBytes)
        let status = message.withUnsafeBytes { input in
            crypto_sign_detached(
                &signature,
                nil,
                input.baseAddress?.assumingMemoryBound(to: UInt8.self),
                UInt64(input.count),
                secretKey
            )
        }
        guard status == 0 else { throw FerryError.failed("ed25519 signing failed") }
        return signature
    }

    /// A fresh key pair from the system RNG. The corresponding C function is `crypto_sign_keypair`.
    static func generateKeyPair() throws -> (publicKey: [UInt8], secretKey: [UInt8]) {
        try ensureInitialized()
        var pk = [UInt8](repeating: 0, count: publicKeyBytes)
        var sk = [UInt8](repeating: 0, count: secretKeyBytes)
        guard crypto_sign_keypair(&pk, &sk) == 0 else { throw FerryError.failed("ed25519 key generation failed") }
        return (pk, sk)
    }

    /// The public key that belongs to a seed. The corresponding C function is `crypto_sign_seed_keypair`.
    static func publicKey(seed: ArraySlice<UInt8>) throws -> [UInt8] {
        try ensureInitialized()
        guard seed.count == seedBytes else { throw FerryError.invalidArgument("malformed ed25519 seed") }
        let seedBytes = Array(seed)
        var pk = [UInt8](repeating: 0, count: publicKeyBytes)
        var sk = [UInt8](repeating: 0, count: secretKeyBytes)
        guard crypto_sign_seed_keypair(&pk, &sk, seedBytes) == 0 else {
            throw FerryError.failed("ed25519 key derivation failed")
        }
        sodium_memzero(&sk, sk.count)
        return pk
    }

    /// `count` random bytes. The corresponding C function is `randombytes_buf`.
    static func randomBytes(_ count: Int) throws -> [UInt8] {
        try ensureInitialized()
        var out = [UInt8](repeating: 0, count: count)
        randombytes_buf(&out, count)
        return out
    }

    /// scrypt key stream as minisign derives it. The corresponding C function is
    /// `crypto_pwhash_scryptsalsa208sha256`.
    static func scryptStream(
        length: Int,
        password: String,
        salt: [UInt8],
        opsLimit: UInt64,
        memLimit: UInt64
    ) throws -> [UInt8] {
        try ensureInitialized()
        var out = [UInt8](repeating: 0, count: length)
        // utf8CString ends in NUL, so even an empty password has a non-null pointer (the C parameter is nonnull).
        let passwordChars = Array(password.utf8CString)
        let status = passwordChars.withUnsafeBufferPointer { pw -> Int32 in
            guard let base = pw.baseAddress else { return -1 }
            return crypto_pwhash_scryptsalsa208sha256(
                &out,
                UInt64(length),
                base,
                UInt64(pw.count - 1),
                salt,
                opsLimit,
                Int(memLimit)
            )
        }
        guard status == 0 else {
            throw FerryError.failed("deriving the key from the password failed (out of memory?)")
        }
        return out
    }

    /// Compares without an early exit, so timing says nothing about where two secrets differ.
    /// The corresponding C function is `sodium_memcmp`.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.count == b.count && sodium_memcmp(a, b, a.count) == 0
    }
}
