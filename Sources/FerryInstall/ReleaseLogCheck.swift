import FerryCore
import FerryLog
import FerryTrust
import Foundation

/// The transparency-log check of a staged release, as the helper (and the `--user` engine) run it before anything
/// is copied, with no network: the staged `log/release.tlog-proof` must prove that exactly this release (ref,
/// manifest digest, claim timestamp, signed by the remote's keys) is in a checkpoint signed by the remote's log key
/// and cosigned by its witness quorum, young enough for its `max-age`, and that checkpoint must extend the one this
/// scope trusted before (`log/REMOTE/checkpoint` under the state directory), with the staged `log/consistency`.
/// The staged `log/entries` (every entry since this scope last read the log) move the scope's ``TrustLedger`` on:
/// key events change the keys the release is checked with, and a recalled release is refused.
///
/// A fork or a shrink is kept as evidence (`log/REMOTE/evidence-TIME/`) and marks the remote refused
/// (`log/REMOTE/refused`) until an administrator configures it again. The trusted checkpoint only moves forward.
public struct ReleaseLogCheck: Sendable {
    public var log: RemoteLog
    public let ref: Ref
    public let layout: ImageLayout
    public var remote: Remote { log.remote }

    /// The check for `remote`, or `nil` when the remote has no log.
    public init?(remote: Remote, ref: Ref, layout: ImageLayout, paths: InstallPaths) throws {
        guard let log = try RemoteLog(remote: remote, paths: paths) else { return nil }
        self.log = log
        self.ref = ref
        self.layout = layout
    }

    /// Where the staged proof lives in a layout, and what the agent stages.
    public static let stagedDirectory = "log"

    /// The staged proof of this release, and the log view it moves this scope to.
    func verified(_ descriptor: Descriptor) throws -> (ReleaseProof, RemoteLog.View) {
        try log.checkNotRefused()
        guard let staged = try layout.root.openDirectory(ReleaseLogCheck.stagedDirectory),
            let proofData = try staged.readFile(ReleaseProof.fileName, maxSize: 256 * 1024, policy: layout.policy)
        else {
            throw FerryError.untrusted("remote \(remote.name) has a transparency log, and the staged release carries "
                + "no proof that it is logged (log/\(ReleaseProof.fileName))")
        }
        let proof = try ReleaseProof(parsing: proofData)
        guard case .release(let entry) = try LogEntry(parsing: proof.entry), entry.ref == ref,
            entry.digest == descriptor.digest
        else {
            throw FerryError.untrusted("the log's entry \(proof.index) is not this release (\(ref), "
                + "\(descriptor.digest.short))")
        }
        let view = try log.view(staged: staged, policy: layout.policy) { trusted, consistency in
            (try proof.verify(policy: log.policy, trusted: trusted, consistency: consistency, now: log.now,
                              allowStale: log.allowStale), proof.checkpoint)
        }
        if let recall = view.ledger.recall(ref: ref, digest: descriptor.digest) {
            throw FerryError.untrusted(RemoteLog.describe(recall, remote: remote.name))
        }
        return (proof, view)
    }

    /// The keys this release may be signed with: those the log made current where the release is logged.
    public func keys(for descriptor: Descriptor) throws -> TrustedKeys {
        let (proof, view) = try verified(descriptor)
        return try view.ledger.trustedKeys(forReleaseAt: proof.index, gpg: remote.gpgKeys)
    }

    /// Checks the release `descriptor` names, whose claims verified as `claim` with `keys`, and moves this scope's
    /// trusted checkpoint and ledger on.
    public func check(_ descriptor: Descriptor, claim: VerifiedClaim, keys: TrustedKeys) throws {
        let (proof, view) = try verified(descriptor)
        try ReleaseLogCheck.checkEntry(of: proof, ref: ref, descriptor: descriptor, remote: remote, keys: keys,
                                       claim: claim)
        try log.commit(view)
    }

    /// Checks the entry `proof` carries: a release of exactly `ref` at `descriptor`, whose own signatures verify with
    /// `keys` for the ref's identity on `remote`. With `claim` (what an install verified), the same keys and rule on
    /// the logged signatures must give the same time: the claim installed is the one logged.
    public static func checkEntry(of proof: ReleaseProof, ref: Ref, descriptor: Descriptor, remote: Remote,
                                  keys: TrustedKeys, claim: VerifiedClaim?) throws {
        let shown = "\(ref), \(descriptor.digest.short)" + (claim.map { ", claim of \($0.timestamp)" } ?? "")
        guard case .release(let entry) = try LogEntry(parsing: proof.entry), entry.ref == ref,
            entry.digest == descriptor.digest
        else {
            throw FerryError.untrusted("the log's entry \(proof.index) is not this release (\(shown))")
        }
        let logged = try ClaimVerifier.verify(entry.signatures, digest: entry.digest,
                                              identity: remote.identity(for: ref), keys: keys)
        if let claim, logged.timestamp != claim.timestamp {
            throw FerryError.untrusted("the log's entry \(proof.index) is not this release (\(shown); the logged "
                + "claims are of \(logged.timestamp))")
        }
    }

    /// Forgets the checkpoint this scope trusted for a remote's log and lifts a fork's refusal; the evidence of a
    /// fork stays (a remote configured anew, or reset by an administrator).
    public static func reset(_ remote: RemoteName, paths: InstallPaths) throws {
        let directory = paths.log(remote)
        for name in ["checkpoint", "refused", TrustLedger.fileName] {
            guard unlink(directory + "/" + name) == 0 || errno == ENOENT else {
                throw ioError("reset \(directory)/\(name)")
            }
        }
    }
}
