import FerryBus
import FerryCore
import FerryTrust
import Foundation

/// Validation of `a{sv}` arguments that arrive over D-Bus, before any use.
enum HelperArguments {
    /// The keys `ConfigureRemote` accepts and their types.
    static let remoteSettings: [String: String] = [
        "url": "s", "registry": "b", "mirrors": "as", "ed25519-keys": "as", "gpg-keys": "aay", "tuf-root": "ay",
        "signature-lookaside": "s", "reset-rollback-state": "b", "interactive": "b",
    ]

    /// Checks an `a{sv}` against the allowed keys and their exact types; returns the unwrapped values.
    /// Unknown keys and wrong types are `InvalidArgument`: an option this helper does not understand might
    /// be one the caller relies on.
    static func options(_ value: BusValue, allowed: [String: String]) throws -> [String: BusValue] {
        guard case .dictionary(let keyType, let valueType, let entries) = value, keyType == "s", valueType == "v" else {
            throw FerryError.invalidArgument("options must be a{sv}")
        }
        var result: [String: BusValue] = [:]
        for (key, wrapped) in entries {
            guard let name = key.stringValue else { throw FerryError.invalidArgument("option key is not a string") }
            let shown = String(name.prefix(64)).debugDescription
            guard let type = allowed[name] else { throw FerryError.invalidArgument("unknown option \(shown)") }
            guard case .variant(let inner) = wrapped, inner.signature == type else {
                throw FerryError.invalidArgument("option \(shown) must have type \(type)")
            }
            guard result[name] == nil else { throw FerryError.invalidArgument("option \(shown) given twice") }
            result[name] = inner
        }
        return result
    }

    static func strings(_ value: BusValue?) -> [String] {
        guard case .array(_, let items)? = value else { return [] }
        return items.compactMap(\.stringValue)
    }

    static func bytes(_ value: BusValue?) -> Data? {
        value?.dataValue
    }

    /// The most a GPG key or a TUF root may weigh.
    static let maxKeyBytes = 1024 * 1024

    /// Builds a remote from `ConfigureRemote` settings and checks what is cheap to check: URL grammar, counts,
    /// sizes, ed25519 keys (a few dozen base64 characters each). GPG keys are only size-checked here; they are
    /// parsed by ``checkGPGKeys(of:)`` after polkit.
    ///
    /// Runs on the bus thread before polkit has answered, for any local user: nothing here may cost more than a
    /// few milliseconds, whatever the caller sends.
    static func remote(name: RemoteName, settings: [String: BusValue]) throws -> Remote {
        guard let url = settings["url"]?.stringValue else {
            throw FerryError.invalidArgument("remote \(name): settings need a url")
        }
        let gpgKeys = (settings["gpg-keys"]?.arrayValue ?? []).compactMap { bytes($0) }
        let ed25519 = strings(settings["ed25519-keys"])
        let remote = Remote(
            name: name, url: url, isRegistry: settings["registry"]?.boolValue ?? false,
            mirrors: strings(settings["mirrors"]), signatureLookaside: settings["signature-lookaside"]?.stringValue,
            ed25519Keys: ed25519, gpgKeys: gpgKeys, tufRoot: bytes(settings["tuf-root"]))
        try remote.validate()
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
