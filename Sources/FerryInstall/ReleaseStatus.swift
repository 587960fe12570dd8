import FerryCore
import FerryTrust
import Foundation

/// Whether an installed (or kept) release is still good by what a scope has read of its remote's log: not
/// recalled, and still signed by a key the remote has not revoked for claims that new. `list`, `info` and `update`
/// ask; the helper asks before a rollback it authorizes as an update.
public enum ReleaseStatus: Sendable, Equatable {
    case good
    case recalled(TrustLedger.RecallRecord)
    /// Its signatures no longer verify: the message says which key and since when.
    case revoked(String)

    public var isGood: Bool { self == .good }

    /// One phrase for `list` and `info`.
    public var label: String {
        switch self {
        case .good: "good"
        case .recalled(let recall): "RECALLED: \(recall.reason)"
        case .revoked(let why): "SIGNING KEY REVOKED: \(why)"
        }
    }

    /// The status of `digest` of `ref`, whose deployment (holding `signatures/`) is `deployment`, by `ledger`.
    public static func of(ref: Ref, digest: Digest, deployment: String, remote: Remote, ledger: TrustLedger)
        -> ReleaseStatus
    {
        if let recall = ledger.recall(ref: ref, digest: digest) { return .recalled(recall) }
        guard !ledger.keys.allSatisfy({ $0.revokedSince == nil }) else { return .good }
        do {
            let dir = try DirectoryHandle(path: deployment + "/signatures")
            let signatures = try SignatureSet.read(from: dir)
            _ = try ClaimVerifier.verify(signatures, digest: digest, identity: remote.identity(for: ref),
                                         keys: try ledger.keysForInstalled(gpg: remote.gpgKeys))
            return .good
        } catch let error as FerryError {
            return .revoked(error.message)
        } catch {
            return .revoked("\(error)")
        }
    }

    /// The status of an installed ref in the scope of `paths`, by the ledger that scope stored; `.good` when the
    /// remote has no log (or is not configured any more).
    public static func of(_ installed: InstalledRef, remote: Remote?, paths: InstallPaths) -> ReleaseStatus {
        guard let remote, let log = try? RemoteLog(remote: remote, paths: paths), let ledger = try? log.storedLedger()
        else { return .good }
        return of(ref: installed.ref, digest: installed.installation.digest, deployment: installed.deploymentPath,
                  remote: remote, ledger: ledger)
    }
}
