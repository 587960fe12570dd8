internal import CGPGME
import FerryCore
import Foundation

/// A throw-away GnuPG home holding only the given public keys, driven through gpgme.
///
/// Lives in a fresh `mkdtemp` directory (`/tmp/g.XXXXXX`, mode 0700, short so no socket path overflows) with a
/// `gpg.conf` that forbids starting gpg-agent or dirmngr and fetching keys, and is removed by ``close()``.
/// Not thread-safe: create and use it only inside ``GPG/withLock(_:)``.
final class GPGKeyring {
    /// What `gpg.conf` says: no agent, no network key lookups, nothing from the user's own configuration.
    static let configuration = "no-autostart\nno-auto-key-retrieve\nno-auto-key-locate\n"

    let directory: String
    let context: gpgme_ctx_t
    /// Primary fingerprints, in import order.
    private(set) var primaryFingerprints: [String] = []
    /// Every primary and subkey fingerprint in the keyring → its primary fingerprint.
    private(set) var owners: [String: String] = [:]
    private var closed = false

    /// Creates the home and imports `keys` (armored or binary OpenPGP public keys).
    /// - Throws: `.invalidArgument` when a key file holds no usable OpenPGP key; `.failed` when gpgme cannot run.
    init(keys: [Data]) throws {
        try GPG.initializeLibrary()
        var template = Array("/tmp/g.XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ $0.baseAddress.flatMap { mkdtemp($0) } }) else {
            throw FerryError.failed("cannot create a temporary GnuPG home: \(String(cString: strerror(errno)))")
        }
        directory = String(cString: made)
        do {
            try Data(GPGKeyring.configuration.utf8).write(to: URL(fileURLWithPath: directory + "/gpg.conf"))
            var ctx: gpgme_ctx_t?
            try GPG.check(gpgme_new(&ctx), "creating a gpgme context")
            guard let ctx else { throw FerryError.failed("gpgme_new returned no context") }
            context = ctx
        } catch {
            GPGKeyring.removeTree(directory)
            throw error
        }
        do {
            try GPG.check(gpgme_set_protocol(context, GPGME_PROTOCOL_OpenPGP), "selecting OpenPGP")
            try GPG.check(
                gpgme_ctx_set_engine_info(context, GPGME_PROTOCOL_OpenPGP, nil, directory),
                "setting the GnuPG home"
            )
            gpgme_set_offline(context, 1)
            gpgme_set_armor(context, 0)
            for (index, key) in keys.enumerated() {
                try importKey(key, number: index + 1)
            }
            try listKeys()
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Releases the context and removes the directory. Safe to call twice.
    func close() {
        guard !closed else { return }
        closed = true
        gpgme_release(context)
        GPGKeyring.removeTree(directory)
    }

    /// Removes the home even while a gpg that gpgme gave up on is still exiting: such a gpg drops its lock files
    /// while we delete, which makes `FileManager.removeItem` stop half-way, so vanished entries are ignored and
    /// the removal is retried for up to a second.
    static func removeTree(_ path: String) {
        for _ in 0..<50 {
            removeContents(path)
            if rmdir(path) == 0 || errno == ENOENT { return }
            usleep(20_000)
        }
    }

    private static func removeContents(_ path: String) {
        guard let dir = opendir(path) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            let child = path + "/" + name
            if unlink(child) != 0, errno == EISDIR || errno == EPERM {
                removeContents(child)
                rmdir(child)
            }
        }
    }

    private func importKey(_ key: Data, number: Int) throws {
        guard !key.isEmpty, key.count <= GPG.maxKeySize else {
            throw FerryError.invalidArgument("GPG key #\(number) is empty or larger than 1 MiB")
        }
        let data = try GPGData(copying: key)
        defer { data.release() }
        let err = gpgme_op_import(context, data.handle)
        guard err == 0, let result = gpgme_op_import_result(context) else {
            throw FerryError.invalidArgument("GPG key #\(number) could not be imported: \(GPG.describe(err))")
        }
        var imported: [String] = []
        var status = result.pointee.imports
        while let entry = status {
            if entry.pointee.result == 0, let fpr = entry.pointee.fpr {
                let fingerprint = String(cString: fpr).uppercased()
                if !imported.contains(fingerprint) { imported.append(fingerprint) }
            }
            status = entry.pointee.next
        }
        guard result.pointee.considered > 0, !imported.isEmpty else {
            throw FerryError.invalidArgument("GPG key #\(number) is not an OpenPGP public key")
        }
        for fingerprint in imported where !primaryFingerprints.contains(fingerprint) {
            primaryFingerprints.append(fingerprint)
        }
    }

    /// Maps every subkey to its primary: gpgme reports the fingerprint of the (sub)key that made a signature.
    private func listKeys() throws {
        try GPG.check(gpgme_op_keylist_start(context, nil, 0), "listing keys")
        defer { gpgme_op_keylist_end(context) }
        while true {
            var key: gpgme_key_t?
            let err = gpgme_op_keylist_next(context, &key)
            if gpgme_err_code(err) == GPG_ERR_EOF { break }
            try GPG.check(err, "listing keys")
            guard let key else { break }
            defer { gpgme_key_unref(key) }
            var subkey = key.pointee.subkeys
            var primary: String?
            while let current = subkey {
                if let fpr = current.pointee.fpr {
                    let fingerprint = String(cString: fpr).uppercased()
                    if primary == nil { primary = fingerprint }
                    if let primary { owners[fingerprint] = primary }
                }
                subkey = current.pointee.next
            }
        }
    }

    /// Verifies an OpenPGP signed message (binary or armored) and returns its content and signer.
    ///
    /// Exactly one signature is expected (as containers/image does); it counts only when gpgme reports
    /// `GPG_ERR_NO_ERROR` for it and its fingerprint belongs to a key in this keyring. The signature summary is not
    /// consulted: keys here have no ownertrust, so gpgme reports summary 0 even for good signatures.
    func verify(_ message: Data, maxContentSize: Int) throws -> GPGVerification {
        guard !message.isEmpty else { throw FerryError.signatureInvalid("empty GPG signature") }
        let input = try GPGData(copying: message)
        defer { input.release() }
        let output = try GPGData(writingAtMost: maxContentSize)
        defer { output.release() }
        let err = gpgme_op_verify(context, input.handle, nil, output.handle)
        if output.overflowed {
            // A compressed message can expand enormously; stop a compression bomb before it fills memory.
            throw FerryError.signatureInvalid("GPG signed content larger than \(maxContentSize) bytes")
        }
        guard err == 0, let result = gpgme_op_verify_result(context) else {
            throw FerryError.signatureInvalid("not a valid OpenPGP signed message (\(GPG.describe(err)))")
        }
        var signatures: [gpgme_signature_t] = []
        var next = result.pointee.signatures
        while let signature = next {
            signatures.append(signature)
            next = signature.pointee.next
        }
        guard let signature = signatures.first else {
            throw FerryError.signatureInvalid("OpenPGP message carries no signature")
        }
        guard signatures.count == 1 else {
            throw FerryError.signatureInvalid(
                "OpenPGP message carries \(signatures.count) signatures; exactly one is expected"
            )
        }
        let fingerprint = signature.pointee.fpr.map { String(cString: $0).uppercased() } ?? "(none)"
        let status = signature.pointee.status
        let code = gpgme_err_code(status)
        if code == GPG_ERR_NO_ERROR {
            guard let owner = owners[fingerprint] else {
                throw untrustedSigner(fingerprint)
            }
            return GPGVerification(content: output.contents, fingerprint: owner)
        }
        if code == GPG_ERR_NO_PUBKEY { throw untrustedSigner(fingerprint) }
        if code == GPG_ERR_BAD_SIGNATURE {
            throw FerryError.signatureInvalid("bad GPG signature by key \(fingerprint) (signed content altered)")
        }
        throw FerryError.signatureInvalid("GPG signature by key \(fingerprint) not accepted: \(GPG.describe(status))")
    }

    private func untrustedSigner(_ fingerprint: String) -> FerryError {
        let trusted = primaryFingerprints.isEmpty ? "none" : primaryFingerprints.joined(separator: ", ")
        return FerryError.untrusted("signed by unknown key \(fingerprint); trusted keys: \(trusted)")
    }
}

/// A gpgme data object: either a copy of bytes to read, or a capped in-memory sink.
final class GPGData {
    private(set) var handle: gpgme_data_t?
    private var callbacks: UnsafeMutablePointer<gpgme_data_cbs>?
    private var sink: Unmanaged<Sink>?

    final class Sink {
        var bytes = Data()
        let limit: Int
        var overflowed = false
        init(limit: Int) { self.limit = limit }
    }

    /// Reads from a private copy of `data`. The corresponding C function is `gpgme_data_new_from_mem`.
    init(copying data: Data) throws {
        var dh: gpgme_data_t?
        let err = data.withUnsafeBytes { raw -> gpgme_error_t in
            guard let base = raw.baseAddress else { return gpgme_data_new(&dh) }
            return gpgme_data_new_from_mem(&dh, base.assumingMemoryBound(to: CChar.self), raw.count, 1)
        }
        try GPG.check(err, "creating a gpgme data object")
        handle = dh
    }

    /// A sink that fails the operation once more than `limit` bytes are written.
    /// The corresponding C function is `gpgme_data_new_from_cbs`, which keeps the callbacks pointer.
    init(writingAtMost limit: Int) throws {
        let sink = Unmanaged.passRetained(Sink(limit: limit))
        let callbacks = UnsafeMutablePointer<gpgme_data_cbs>.allocate(capacity: 1)
        callbacks.initialize(
            to: gpgme_data_cbs(
                read: nil,
                write: { handle, buffer, size in
                    guard let handle else { return -1 }
                    let sink = Unmanaged<Sink>.fromOpaque(handle).takeUnretainedValue()
                    guard sink.bytes.count + size <= sink.limit else {
                        sink.overflowed = true
                        errno = EFBIG
                        return -1
                    }
                    if let buffer, size > 0 {
                        sink.bytes.append(buffer.assumingMemoryBound(to: UInt8.self), count: size)
                    }
                    return size
                },
                seek: nil,
                release: nil
            )
        )
        var dh: gpgme_data_t?
        let err = gpgme_data_new_from_cbs(&dh, callbacks, sink.toOpaque())
        self.callbacks = callbacks
        self.sink = sink
        handle = dh
        if err != 0 { release() }
        try GPG.check(err, "creating a gpgme data sink")
    }

    var overflowed: Bool { sink?.takeUnretainedValue().overflowed ?? false }
    var contents: Data { sink?.takeUnretainedValue().bytes ?? Data() }

    /// Releases the data object, then the callbacks and sink it points to. Safe to call twice.
    func release() {
        if let handle { gpgme_data_release(handle) }
        handle = nil
        if let callbacks {
            callbacks.deinitialize(count: 1)
            callbacks.deallocate()
        }
        callbacks = nil
    }

    deinit {
        release()
        sink?.release()
    }
}
