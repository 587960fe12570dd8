import FerryCore
import FerryLog
import FerryTrust
import Foundation

/// The transparency-log check of a staged release, as the helper (and the `--user` engine) run it before anything
/// is copied, with no network: the staged `log/release.tlog-proof` must prove that exactly this release (ref,
/// manifest digest, claim timestamp, signed by the remote's keys) is in a checkpoint signed by the remote's log key
/// and cosigned by its witness quorum, young enough for its `max-age`, and that checkpoint must extend the one this
/// scope trusted before (`log/REMOTE/checkpoint` under the state directory), with the staged `log/consistency`.
///
/// A fork or a shrink is kept as evidence (`log/REMOTE/evidence-TIME/`) and marks the remote refused
/// (`log/REMOTE/refused`) until an administrator configures it again. The trusted checkpoint only moves forward.
public struct ReleaseLogCheck: Sendable {
    public let remote: Remote
    public let policy: LogPolicy
    public let ref: Ref
    public let layout: ImageLayout
    /// `log/REMOTE` under the scope's state directory.
    public let directory: String
    public let lockPath: String
    /// `--allow-stale`: the cosignatures' age is not checked (authorized as a downgrade by the helper).
    public var allowStale = false
    public var now = Int64(Date().timeIntervalSince1970)
    /// Told about a fork before the error is thrown (the helper logs it at error level, with both tree heads).
    public var onFork: @Sendable (String) -> Void = { _ in }

    /// The check for `remote`, or `nil` when the remote has no log.
    public init?(remote: Remote, ref: Ref, layout: ImageLayout, paths: InstallPaths) throws {
        guard let policy = try LogPolicy.of(remote) else { return nil }
        self.remote = remote
        self.policy = policy
        self.ref = ref
        self.layout = layout
        directory = paths.log(remote.name)
        lockPath = "\(paths.locks)/log-\(remote.name).lock"
    }

    /// Where the staged proof lives in a layout, and what the agent stages.
    public static let stagedDirectory = "log"

    /// Checks the release `descriptor` names, whose claims verified as `claim`, and advances the trusted checkpoint.
    public func check(_ descriptor: Descriptor, claim: VerifiedClaim, keys: TrustedKeys) throws {
        if let refused = FileManager.default.contents(atPath: directory + "/refused") {
            throw FerryError.untrusted("remote \(remote.name) is refused: \(String(decoding: refused, as: UTF8.self)) "
                + "(an administrator lifts this with ferry remote-add --reset-trust)")
        }
        guard let staged = try layout.root.openDirectory(ReleaseLogCheck.stagedDirectory),
            let proofData = try staged.readFile(ReleaseProof.fileName, maxSize: 256 * 1024, policy: layout.policy)
        else {
            throw FerryError.untrusted("remote \(remote.name) has a transparency log, and the staged release carries "
                + "no proof that it is logged (log/\(ReleaseProof.fileName))")
        }
        let consistency = try staged.readFile(ReleaseProof.consistencyFileName, maxSize: 8192, policy: layout.policy)
        let proof = try ReleaseProof(parsing: proofData)

        try ReleaseLogCheck.checkEntry(of: proof, ref: ref, descriptor: descriptor, remote: remote, keys: keys,
                                       claim: claim)

        try makeDirectory((lockPath as NSString).deletingLastPathComponent)
        let lock = try FileLock(path: lockPath)
        defer { lock.unlock() }
        let trusted = FileManager.default.contents(atPath: directory + "/checkpoint")
        let checkpoint: Checkpoint
        do {
            checkpoint = try proof.verify(policy: policy, trusted: trusted, consistency: consistency, now: now,
                                          allowStale: allowStale)
        } catch let fork as LogForkError {
            let evidence = "\(directory)/evidence-\(now)"
            try makeDirectory(evidence)
            try AtomicFile.write(fork.trusted, to: evidence + "/checkpoint-trusted")
            try AtomicFile.write(fork.offered, to: evidence + "/checkpoint-offered")
            try AtomicFile.write(Data("\(fork.message); evidence in \(evidence)".utf8), to: directory + "/refused")
            onFork("remote \(remote.name): \(fork.message); evidence in \(evidence)")
            throw FerryError.untrusted("\(fork.message); both checkpoints kept in \(evidence), and the remote is "
                + "refused until an administrator resets it (ferry remote-add --reset-trust)")
        }
        let trustedSize = try trusted.map { try Checkpoint.open($0, logKey: policy.logKey).checkpoint.size }
        if trustedSize.map({ checkpoint.size > $0 }) ?? true {
            try makeDirectory(directory)
            try AtomicFile.write(proof.checkpoint, to: directory + "/checkpoint")
        }
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
        for name in ["checkpoint", "refused"] {
            guard unlink(directory + "/" + name) == 0 || errno == ENOENT else {
                throw ioError("reset \(directory)/\(name)")
            }
        }
    }
}
