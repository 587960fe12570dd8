internal import CGPGME
import FerryCore
import Foundation
import Synchronization

/// What a verified OpenPGP signed message said, and who said it.
public struct GPGVerification: Sendable, Equatable {
    /// The signed content (for Ferry, a claim).
    public var content: Data
    /// The primary-key fingerprint of the trusted key that signed it (40 upper-case hex digits for v4 keys).
    public var fingerprint: String

    public init(content: Data, fingerprint: String) {
        self.content = content
        self.fingerprint = fingerprint
    }
}

/// OpenPGP signatures through gpgme (the library GnuPG's own front ends use), never by parsing packets ourselves.
///
/// Verification runs in a fresh temporary GnuPG home holding only the trusted keys, so nothing in the caller's or
/// root's keyring, trust database or configuration influences the result. All gpgme use is serialised by one lock:
/// gpgme contexts are not thread-safe.
public enum GPG {
    /// Signed content is a claim; anything much larger is refused while gpg is still writing it.
    public static let defaultMaxContentSize = 1 << 20
    static let maxKeySize = 1 << 20

    private static let lock = Mutex(())

    /// gpgme must be initialised once, before any context exists (`gpgme_check_version`, locale); a Swift
    /// `static let` runs this exactly once, thread-safely.
    private static let initialization: String? = {
        guard gpgme_check_version(nil) != nil else { return "gpgme_check_version failed" }
        if let ctype = setlocale(LC_CTYPE, nil) { gpgme_set_locale(nil, LC_CTYPE, ctype) }
        let err = gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP)
        guard err == 0 else { return "no usable gpg engine: \(describe(err))" }
        return nil
    }()

    static func initializeLibrary() throws {
        if let problem = initialization { throw FerryError.failed(problem) }
    }

    /// Runs `body` while holding the process-wide gpgme lock.
    static func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try lock.withLock { _ throws(E) in try body() }
    }

    /// Verifies an OpenPGP signed message against `keys` only.
    ///
    /// `message` is what `gpg --sign`, `skopeo standalone-sign` or `skopeo copy --sign-by` write (binary), or the
    /// same armored. `keys` are public keys, armored or binary, each file holding one or more keys.
    /// A signature counts only if gpgme reports it good (`GPG_ERR_NO_ERROR`) and it was made by one of `keys`
    /// (primary key or subkey); exactly one signature is expected in the message.
    /// - Returns: the signed content and the signer's primary fingerprint.
    /// - Throws: `.untrusted` ("signed by unknown key <FPR>; trusted keys: …") when the signer is not among
    ///   `keys`; `.signatureInvalid` for a bad, truncated or garbage message; `.invalidArgument` for a bad key.
    public static func verify(
        message: Data,
        keys: [Data],
        maxContentSize: Int = defaultMaxContentSize
    ) throws -> GPGVerification {
        try withLock {
            let keyring = try GPGKeyring(keys: keys)
            defer { keyring.close() }
            return try keyring.verify(message, maxContentSize: maxContentSize)
        }
    }

    /// The primary fingerprints of the keys in `keys`, in order; also validates key files before they are stored.
    /// - Throws: `.invalidArgument` naming the first file that holds no importable OpenPGP key.
    public static func fingerprints(of keys: [Data]) throws -> [String] {
        try withLock {
            let keyring = try GPGKeyring(keys: keys)
            defer { keyring.close() }
            return keyring.primaryFingerprints
        }
    }

    /// Signs `content` with the secret key `fingerprint` and returns the binary OpenPGP signed message
    /// (what `gpg --sign` writes).
    ///
    /// Uses the caller's keyring: `homeDirectory`, else `$GNUPGHOME`, else `~/.gnupg`; gpg-agent asks for a
    /// passphrase through its usual pinentry if the key has one.
    /// - Throws: `.invalidArgument` for a malformed fingerprint or a key that is not there; `.failed` otherwise.
    public static func sign(_ content: Data, fingerprint: String, homeDirectory: String? = nil) throws -> Data {
        let hexDigits = fingerprint.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x46)
                || ($0 >= 0x61 && $0 <= 0x66)
        }
        guard hexDigits, [16, 40, 64].contains(fingerprint.utf8.count) else {
            throw FerryError.invalidArgument(
                "malformed GPG key fingerprint \(String(fingerprint.prefix(80)).debugDescription)"
            )
        }
        return try withLock {
            try initializeLibrary()
            var ctx: gpgme_ctx_t?
            try check(gpgme_new(&ctx), "creating a gpgme context")
            guard let ctx else { throw FerryError.failed("gpgme_new returned no context") }
            defer { gpgme_release(ctx) }
            try check(gpgme_set_protocol(ctx, GPGME_PROTOCOL_OpenPGP), "selecting OpenPGP")
            if let homeDirectory {
                try check(
                    gpgme_ctx_set_engine_info(ctx, GPGME_PROTOCOL_OpenPGP, nil, homeDirectory),
                    "setting the GnuPG home"
                )
            }
            gpgme_set_armor(ctx, 0)
            var key: gpgme_key_t?
            let keyErr = gpgme_get_key(ctx, fingerprint, &key, 1)
            guard keyErr == 0, let key else {
                throw FerryError.invalidArgument("no GPG secret key \(fingerprint): \(describe(keyErr))")
            }
            defer { gpgme_key_unref(key) }
            try check(gpgme_signers_add(ctx, key), "selecting the signing key")
            let plain = try GPGData(copying: content)
            defer { plain.release() }
            var sigHandle: gpgme_data_t?
            try check(gpgme_data_new(&sigHandle), "creating a gpgme data object")
            guard let sigHandle else { throw FerryError.failed("gpgme_data_new returned no object") }
            defer { gpgme_data_release(sigHandle) }
            let err = gpgme_op_sign(ctx, plain.handle, sigHandle, GPGME_SIG_MODE_NORMAL)
            guard err == 0, let result = gpgme_op_sign_result(ctx), result.pointee.invalid_signers == nil,
                result.pointee.signatures != nil
            else {
                throw FerryError.failed("GPG signing with key \(fingerprint) failed: \(describe(err))")
            }
            guard gpgme_data_seek(sigHandle, 0, SEEK_SET) == 0 else {
                throw FerryError.failed("cannot rewind the GPG signature")
            }
            var out = Data()
            var buffer = [UInt8](repeating: 0, count: 16 * 1024)
            while true {
                let n = gpgme_data_read(sigHandle, &buffer, buffer.count)
                guard n >= 0 else { throw FerryError.failed("cannot read the GPG signature") }
                if n == 0 { break }
                out.append(contentsOf: buffer[0..<n])
            }
            return out
        }
    }

    static func check(_ err: gpgme_error_t, _ what: String) throws {
        guard err == 0 else { throw FerryError.failed("gpgme: \(what): \(describe(err))") }
    }

    /// gpgme's own message for an error value. The corresponding C function is `gpgme_strerror`.
    static func describe(_ err: gpgme_error_t) -> String {
        guard err != 0 else { return "no error reported" }
        return gpgme_strerror(err).map { String(cString: $0) } ?? "gpgme error \(err)"
    }
}
