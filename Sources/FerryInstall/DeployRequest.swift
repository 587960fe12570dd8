import FerryArchive
import FerryCore
import FerryTrust
import Foundation

/// The phases a deploy reports progress in (the helper's `Progress` signal uses the same names).
public enum DeployPhase: String, Sendable {
    case copy, verify, extract, commit
}

/// What the caller asks the engine to deploy.
public struct DeployRequest: Sendable {
    public var remote: Remote
    public var ref: Ref
    public var allowDowngrade: Bool
    /// `--switch-remote`: the app ID may be installed from another remote now (authorized as a downgrade).
    public var switchRemote: Bool
    /// `--allow-stale`: the caller's freshness check accepted expired TUF metadata (authorized as a downgrade).
    public var allowStale = false
    /// The local clock, Unix seconds (claims more than 24 h ahead of it are refused).
    public var now: Int64
    /// Who asks, for the history (the bus caller in the helper).
    public var uid: UInt32 = getuid()
    /// Extra checks on the manifest before anything is copied (TUF freshness): digest and size of the manifest.
    public var checkManifest: (@Sendable (Descriptor) throws -> Void)?
    /// Extra checks on the release once its claim verified (the transparency log): the manifest and the claim.
    public var checkRelease: (@Sendable (Descriptor, VerifiedClaim, TrustedKeys) throws -> Void)?
    /// The keys to verify the release with, when they are not simply the remote's configured ones (a logged remote:
    /// the keys its log made current where the release is logged, ``ReleaseLogCheck/keys(for:)``).
    public var releaseKeys: (@Sendable (Descriptor) throws -> TrustedKeys)?

    public init(remote: Remote, ref: Ref, allowDowngrade: Bool = false, switchRemote: Bool = false,
                now: Int64 = Int64(Date().timeIntervalSince1970),
                checkManifest: (@Sendable (Descriptor) throws -> Void)? = nil) {
        self.remote = remote
        self.ref = ref
        self.allowDowngrade = allowDowngrade
        self.switchRemote = switchRemote
        self.now = now
        self.checkManifest = checkManifest
    }
}

/// The verified facts a deploy is decided on, before anything is written.
public struct DeployPlan: Sendable {
    public var ref: Ref
    public var remote: RemoteName
    public var manifestDescriptor: Descriptor
    public var manifest: Manifest
    public var claim: VerifiedClaim
    /// The signatures the claim was verified from: these are what the deployment keeps, never a second read.
    public var signatures: SignatureSet
    public var decision: TimestampPolicy.Decision
    /// The remote the ref's app ID is installed from now, when this deploy moves it to another (`--switch-remote`).
    public var switchesFrom: RemoteName?
    /// Whether the release was taken from a view older than freshness allows (`--allow-stale`).
    public var allowsStale = false
    public var digest: Digest { manifestDescriptor.digest }

    /// Whether two plans would ask for the same authorization.
    func asksForTheSame(as other: DeployPlan) -> Bool {
        decision == other.decision && digest == other.digest && switchesFrom == other.switchesFrom
    }
}

/// What a deploy did.
public struct DeployOutcome: Sendable, Equatable {
    public var decision: TimestampPolicy.Decision
    public var digest: Digest
    public var deployment: String
}

/// One installed ref as the engine reports it.
public struct InstalledRef: Sendable, Equatable {
    public var ref: Ref
    public var installation: InstallState.Installation
    public var deploymentPath: String
}
