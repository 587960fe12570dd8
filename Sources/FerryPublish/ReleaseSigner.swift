import FerryCore
import FerryTrust
import Foundation

/// Signs the claim that binds a ref's manifest digest to its identity (`ferry sign`), adding the new signatures
/// after the ones the layout already holds.
public struct ReleaseSigner {
    public var ed25519Key: MinisignSecretKey?
    public var gpgFingerprint: String?

    public init(ed25519Key: MinisignSecretKey? = nil, gpgFingerprint: String? = nil) {
        self.ed25519Key = ed25519Key
        self.gpgFingerprint = gpgFingerprint
    }

    /// What one `sign` call added: the claim and one line per new signature, for the publisher to read.
    public struct Result: Sendable {
        public var claim: Claim
        public var digest: Digest
        public var added: [String]
    }

    /// Signs `ref` in the layout at `layout`. The identity defaults to the ref; the timestamp to now.
    public func sign(layout: String, ref: Ref, identity: String? = nil, timestamp: Int64? = nil) throws -> Result {
        let image = try ImageLayout(path: layout)
        let descriptor = try image.descriptor(for: ref)
        let claim = Claim(digest: descriptor.digest, identity: identity ?? ref.string,
                          timestamp: timestamp ?? Int64(Date().timeIntervalSince1970))
        let existing = try image.signatures(ref: ref, digest: descriptor.digest)
        var merged = existing
        var added: [String] = []
        let claimBytes = claim.serialized()
        if let key = ed25519Key {
            let text = try key.sign(
                claimBytes,
                trustedComment: "ferry claim \(claim.identity) \(claim.digest) timestamp:\(claim.timestamp ?? 0)")
            merged.ed25519.append(.init(claim: claimBytes, minisig: Data(text.utf8)))
            added.append("ed25519 signature claim-\(merged.ed25519.count).json by key \(key.publicKey.keyID)")
        }
        if let gpgFingerprint {
            merged.gpg.append(try GPG.sign(claimBytes, fingerprint: gpgFingerprint))
            added.append("GPG signature signature-\(merged.gpg.count) by \(gpgFingerprint)")
        }
        try LayoutWriter(path: layout).writeSignatures(merged, ref: ref, digest: descriptor.digest)
        return Result(claim: claim, digest: descriptor.digest, added: added)
    }
}
