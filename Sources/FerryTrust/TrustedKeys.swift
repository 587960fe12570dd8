import FerryCore
import Foundation

/// The keys a remote trusts, as read from root-owned (or the user's own) configuration, never from staged data.
public struct TrustedKeys: Sendable, Equatable {
    /// minisign public keys for `claim-N.json.minisig` signatures.
    public var ed25519: [MinisignPublicKey]
    /// OpenPGP public key files (armored or binary) for `signature-N` messages.
    public var gpg: [Data]

    public init(ed25519: [MinisignPublicKey] = [], gpg: [Data] = []) {
        self.ed25519 = ed25519
        self.gpg = gpg
    }

    /// No key of either kind: nothing can verify, so nothing may install.
    public var isEmpty: Bool { ed25519.isEmpty && gpg.isEmpty }
}
