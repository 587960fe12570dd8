import FerryCore
import FerryLog
import FerryTrust
import Foundation

/// Signs the claim that binds a ref's manifest digest to its identity (`ferry sign`), adding the new signatures
/// after the ones the layout already holds, and logs the release when the layout has a transparency log.
public struct ReleaseSigner {
    public var ed25519Key: MinisignSecretKey?
    public var gpgFingerprint: String?
    /// The log's signer key: required when the layout has a log (`LAYOUT/log/checkpoint`), refused when it has none.
    public var logKey: NoteSignerKey?

    public init(ed25519Key: MinisignSecretKey? = nil, gpgFingerprint: String? = nil, logKey: NoteSignerKey? = nil) {
        self.ed25519Key = ed25519Key
        self.gpgFingerprint = gpgFingerprint
        self.logKey = logKey
    }

    /// What one `sign` call added: the claim and one line per new signature, for the publisher to read.
    public struct Result: Sendable {
        public var claim: Claim
        public var digest: Digest
        public var added: [String]
        /// The release entry's index in the log and the new checkpoint, when the layout has a log.
        public var logged: (index: UInt64, checkpoint: Checkpoint)?
    }

    /// Signs `ref` in the layout at `layout`. The identity defaults to the ref; the timestamp to now.
    ///
    /// With a log, the signatures are written first and the release entry (the claim and every signature over it)
    /// is appended after: a kill in between leaves a signed image that is not logged yet, which clients of a
    /// logged remote refuse, and signing again logs it.
    public func sign(layout: String, ref: Ref, identity: String? = nil, timestamp: Int64? = nil) throws -> Result {
        let logPath = layout + "/log"
        let hasLog = FileManager.default.fileExists(atPath: logPath + "/checkpoint")
        if hasLog && logKey == nil {
            throw FerryError.invalidArgument("\(layout) has a transparency log: give its signer key (--log-key) so "
                + "that the release is logged")
        }
        if !hasLog, logKey != nil {
            throw FerryError.invalidArgument("\(layout) has no transparency log (start one with ferry log init)")
        }
        let appender = try logKey.map { try LogAppender(path: logPath, signer: $0) }
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
        var result = Result(claim: claim, digest: descriptor.digest, added: added)
        if let appender {
            // The newest claim in the set, as a client takes it (the claims of GPG signatures, wrapped in their
            // OpenPGP packets, are the ones this call signed or older ones; the entry's time is informative).
            let newest = merged.ed25519.compactMap { try? Claim(parsing: $0.claim).timestamp }.compactMap { $0 }.max()
            let entry = ReleaseEntry(ref: ref, digest: descriptor.digest,
                                     timestamp: max(newest ?? 0, claim.timestamp ?? 0), signatures: merged)
            let bytes = try entry.serialized()
            let checkpoint = try appender.append([bytes])
            let index = checkpoint.size - 1
            result.logged = (index, checkpoint)
            // The proof beside the signatures tells clients where the entry is (they prove it afresh against the
            // checkpoint they fetch, witnessed by then).
            let proof = try MerkleTree.inclusionProof(index: index, size: checkpoint.size,
                                                      reader: appender.directory.hashReader(treeSize: checkpoint.size))
            let file = ReleaseProof(entry: bytes, index: index, proof: proof,
                                    checkpoint: try appender.directory.readCheckpoint())
            let directory = try LayoutWriter(path: layout).signatureDirectory(ref: ref, digest: descriptor.digest)
            try AtomicFile.write(file.serialized, to: directory + "/" + ReleaseProof.fileName)
        }
        return result
    }
}
