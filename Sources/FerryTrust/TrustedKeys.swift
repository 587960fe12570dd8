import FerryCore
import Foundation

/// The keys a remote trusts, as read from root-owned (or the user's own) configuration, never from staged data.
public struct TrustedKeys: Sendable, Equatable {
    /// minisign public keys for `claim-N.json.minisig` signatures.
    public var ed25519: [MinisignPublicKey]
    /// OpenPGP public key files (armored or binary) for `signature-N` messages.
    public var gpg: [Data]

    /// For ed25519 keys a remote revoked: claims from this time on (Unix seconds) signed by the key do not count.
    public var notAfter: [String: Int64] = [:]
    /// Why a key the remote once trusted does not count here (removed, revoked, added later), by key id; the error
    /// for a signature by such a key says it, instead of "unknown key".
    public var retired: [String: String] = [:]

    public init(ed25519: [MinisignPublicKey] = [], gpg: [Data] = []) {
        self.ed25519 = ed25519
        self.gpg = gpg
    }

    /// No key of either kind: nothing can verify, so nothing may install.
    public var isEmpty: Bool { ed25519.isEmpty && gpg.isEmpty }
}
