import FerryBus
import FerryCore
import FerryLog
import FerryTrust
import Foundation

/// The checks on `ConfigureRemote` settings, split by cost: ``remote(name:settings:)`` runs before polkit on the
/// bus thread, ``checkGPGKeys(of:)`` only for an authorized caller on a worker.
enum RemoteSettingsCheck {
    /// The most a GPG key or a TUF root may weigh.
    static let maxKeyBytes = 1024 * 1024

    /// Builds a remote from decoded settings and checks what is cheap to check: URL grammar, counts, sizes,
    /// ed25519 keys (a few dozen base64 characters each). GPG keys are only size-checked here.
    ///
    /// Runs before polkit has answered, for any local user: nothing here may cost more than a few milliseconds,
    /// whatever the caller sends.
    static func remote(name: RemoteName, settings: [String: BusValue]) throws -> Remote {
        guard let url = settings["url"]?.stringValue else {
            throw FerryError.invalidArgument("remote \(name): settings need a url")
        }
        let gpgKeys = (settings["gpg-keys"]?.arrayValue ?? []).compactMap(\.dataValue)
        let ed25519 = settings["ed25519-keys"]?.stringArrayValue ?? []
        var remote = Remote(
            name: name, url: url, isRegistry: settings["registry"]?.boolValue ?? false,
            mirrors: settings["mirrors"]?.stringArrayValue ?? [],
            signatureLookaside: settings["signature-lookaside"]?.stringValue,
            ed25519Keys: ed25519, gpgKeys: gpgKeys, tufRoot: settings["tuf-root"]?.dataValue,
            signedIdentity: settings["signed-identity"]?.stringValue)
        remote.logKey = settings["log-key"]?.stringValue
        remote.witnessKeys = settings["witness-keys"]?.stringArrayValue ?? []
        remote.witnessQuorum = settings["witness-quorum"]?.uint32Value.map { Int($0) }
        remote.maxAge = settings["max-age"]?.uint64Value.map { Int64(clamping: $0) }
        remote.keyThreshold = settings["key-threshold"]?.uint32Value.map { Int(clamping: $0) }
        try remote.validate()
        // Signed-note keys parse in microseconds: checked here, before polkit, like the ed25519 keys.
        _ = try LogPolicy.of(remote)
        guard remote.hasKeys else {
            throw FerryError.invalidArgument("remote \(name): a system remote needs at least one key")
        }
        for key in ed25519 {
            guard key.utf8.count <= 4096, (try? MinisignPublicKey(parsing: key)) != nil else {
                throw FerryError.invalidArgument("remote \(name): an ed25519 key does not parse")
            }
        }
        guard gpgKeys.allSatisfy({ $0.count <= maxKeyBytes }) else {
            throw FerryError.invalidArgument("remote \(name): GPG key larger than 1 MiB")
        }
        if let root = remote.tufRoot, root.count > maxKeyBytes {
            throw FerryError.invalidArgument("remote \(name): TUF root larger than 1 MiB")
        }
        return remote
    }

    /// Checks that every GPG key of `remote` imports (gpgme, under the process-wide GPG lock).
    ///
    /// Expensive for a crafted key: call it on a worker thread, and only for a caller polkit has authorized.
    static func checkGPGKeys(of remote: Remote) throws {
        guard !remote.gpgKeys.isEmpty else { return }
        _ = try GPG.fingerprints(of: remote.gpgKeys)
    }
}
