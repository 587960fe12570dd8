import FerryCore
import FerryLog
import FerryTrust
import Foundation

/// One scope's view of a remote's transparency log: the checkpoint it trusts (`log/REMOTE/checkpoint`) and the
/// ledger of keys and recalls it has read (`log/REMOTE/ledger.json`), and how a staged view moves them on, offline.
///
/// Used by ``ReleaseLogCheck`` for a deploy, and on its own for `ApplyLog` (an `update` that installs nothing still
/// reads the log, so recalls and revocations reach the installing side).
public struct RemoteLog: Sendable {
    public let remote: Remote
    public let policy: LogPolicy
    /// `log/REMOTE` under the scope's state directory.
    public let directory: String
    public let lockPath: String
    /// `--allow-stale`: the cosignatures' age is not checked (authorized as a downgrade by the helper).
    public var allowStale = false
    public var now = Int64(Date().timeIntervalSince1970)
    /// Told about a fork before the error is thrown (the helper logs it at error level, with both tree heads).
    public var onFork: @Sendable (String) -> Void = { _ in }

    /// The view of `remote`'s log in the scope of `paths`; `nil` when the remote has no log.
    public init?(remote: Remote, paths: InstallPaths) throws {
        guard let policy = try LogPolicy.of(remote) else { return nil }
        self.remote = remote
        self.policy = policy
        directory = paths.log(remote.name)
        lockPath = "\(paths.locks)/log-\(remote.name).lock"
    }

    /// A verified checkpoint and the ledger moved on to it, not yet stored.
    public struct View: Sendable {
        public var checkpoint: Checkpoint
        public var checkpointData: Data
        public var ledger: TrustLedger
    }

    /// The checkpoint this scope trusts, if any.
    public var trustedCheckpoint: Data? { FileManager.default.contents(atPath: directory + "/checkpoint") }

    /// The ledger this scope has stored (a new one when there is none).
    public func storedLedger() throws -> TrustLedger {
        try TrustLedger.load(directory: directory, remote: remote, origin: policy.logKey.name)
    }

    public func checkNotRefused() throws {
        if let refused = FileManager.default.contents(atPath: directory + "/refused") {
            throw FerryError.untrusted("remote \(remote.name) is refused: \(String(decoding: refused, as: UTF8.self)) "
                + "(an administrator lifts this with ferry remote-add --reset-trust)")
        }
    }

    /// Verifies a staged view: `open` checks the offered checkpoint against the trusted one (and the consistency
    /// file) and returns it; then the staged entries must lead the stored ledger to it. A fork is kept as evidence
    /// and refuses the remote.
    func view(staged: DirectoryHandle, policy filePolicy: DirectoryHandle.FilePolicy,
              open: (_ trusted: Data?, _ consistency: Data?) throws -> (Checkpoint, Data)) throws -> View
    {
        let consistency = try staged.readFile(ReleaseProof.consistencyFileName, maxSize: 8192, policy: filePolicy)
        let trusted = trustedCheckpoint
        let checkpoint: Checkpoint
        let checkpointData: Data
        do {
            (checkpoint, checkpointData) = try open(trusted, consistency)
        } catch let fork as LogForkError {
            try keepEvidence(fork)
        }
        var ledger = try storedLedger()
        if ledger.size < checkpoint.size {
            guard let data = try staged.readFile(StagedEntries.fileName, maxSize: StagedEntries.maxSize,
                                                 policy: filePolicy)
            else {
                throw FerryError.untrusted("remote \(remote.name): the staged view of the log carries no entries "
                    + "since the \(ledger.size) this scope has read (log/\(StagedEntries.fileName))")
            }
            let (from, entries) = try StagedEntries.decode(data)
            let before = try trusted.map { try Checkpoint.open($0, logKey: policy.logKey).checkpoint }
            try ledger.advance(with: entries, from: from, to: checkpoint,
                               through: before.flatMap { $0.size >= ledger.size ? $0 : nil })
        } else if ledger.size > checkpoint.size {
            throw FerryError.untrusted("the log of \(checkpoint.origin) offered has \(checkpoint.size) entries, fewer "
                + "than the \(ledger.size) read before (a stale mirror)")
        }
        return View(checkpoint: checkpoint, checkpointData: checkpointData, ledger: ledger)
    }

    private func keepEvidence(_ fork: LogForkError) throws -> Never {
        try makeDirectory((lockPath as NSString).deletingLastPathComponent)
        let lock = try FileLock(path: lockPath)
        defer { lock.unlock() }
        let evidence = "\(directory)/evidence-\(now)"
        try makeDirectory(evidence)
        try AtomicFile.write(fork.trusted, to: evidence + "/checkpoint-trusted")
        try AtomicFile.write(fork.offered, to: evidence + "/checkpoint-offered")
        try AtomicFile.write(Data("\(fork.message); evidence in \(evidence)".utf8), to: directory + "/refused")
        onFork("remote \(remote.name): \(fork.message); evidence in \(evidence)")
        throw FerryError.untrusted("\(fork.message); both checkpoints kept in \(evidence), and the remote is "
            + "refused until an administrator resets it (ferry remote-add --reset-trust)")
    }

    /// Stores a verified view: the checkpoint and the ledger move forward only.
    public func commit(_ view: View) throws {
        try makeDirectory((lockPath as NSString).deletingLastPathComponent)
        let lock = try FileLock(path: lockPath)
        defer { lock.unlock() }
        let trustedSize = try trustedCheckpoint.map { try Checkpoint.open($0, logKey: policy.logKey).checkpoint.size }
        try makeDirectory(directory)
        if trustedSize.map({ view.checkpoint.size > $0 }) ?? true {
            try AtomicFile.write(view.checkpointData, to: directory + "/checkpoint")
        }
        if view.ledger.size > (try storedLedger()).size || !FileManager.default.fileExists(
            atPath: directory + "/" + TrustLedger.fileName)
        {
            try view.ledger.save(directory: directory)
        }
    }

    /// Verifies a staged view of the log with no release in it (`log/checkpoint`, `log/consistency`,
    /// `log/entries`), for `ApplyLog`: the checkpoint is checked as an install checks it, but not for its age (a
    /// view older than `max-age` still moves this scope forward; installing from it is what freshness forbids).
    public func view(staged layout: ImageLayout) throws -> View {
        try checkNotRefused()
        guard let staged = try layout.root.openDirectory(ReleaseLogCheck.stagedDirectory),
            let data = try staged.readFile("checkpoint", maxSize: SignedNote.maxSize, policy: layout.policy)
        else {
            throw FerryError.invalidArgument("the staged view of the log has no log/checkpoint")
        }
        return try view(staged: staged, policy: layout.policy) { trusted, consistency in
            let checkpoint = try policy.open(data, now: now, allowStale: true)
            // Without a consistency proof, growth is proven by the entries themselves (they must pass through the
            // trusted root); a shrink or the same size with another root is judged here.
            let trustedSize = try trusted.map { try Checkpoint.open($0, logKey: policy.logKey).checkpoint.size }
            if consistency != nil || trustedSize.map({ $0 >= checkpoint.size }) ?? false {
                try policy.checkExtends(trusted: trusted, offered: checkpoint, offeredData: data,
                                        consistency: consistency)
            }
            return (checkpoint, data)
        }
    }

    /// The message for a recalled release.
    public static func describe(_ recall: TrustLedger.RecallRecord, remote: RemoteName) -> String {
        "\(recall.ref) \(recall.digest.prefix(19)) is recalled by remote \(remote) (log entry \(recall.index), "
            + "\(TimestampPolicy.describe(recall.timestamp))): \(recall.reason)"
    }
}
