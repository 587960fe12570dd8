import FerryTrust

/// Which polkit action each request is asked as. Pure: what the engine decided in, an action name out.
public enum PolkitPolicy {
    public static let install = "dev.ferry.install"
    public static let update = "dev.ferry.update"
    public static let downgrade = "dev.ferry.downgrade"
    public static let uninstall = "dev.ferry.uninstall"
    public static let configureRemote = "dev.ferry.configure-remote"

    /// The action for a deploy the engine decided on; `nil` when there is nothing to do.
    ///
    /// Moving an app ID to another remote is asked as `dev.ferry.downgrade` whatever its timestamps say: the new
    /// remote's publisher was never trusted for this app, so it is never passwordless (the timer's rule grants
    /// only `dev.ferry.update`). So is a deploy that accepted an expired view (`--allow-stale`): freshness is what
    /// stops a mirror from freezing a machine on an old release.
    public static func deployAction(decision: TimestampPolicy.Decision, switchingRemote: Bool,
                                    acceptingStale: Bool = false) -> String? {
        switch decision {
        case .nothingToDo: nil
        case _ where switchingRemote || acceptingStale: downgrade
        case .install: install
        case .update: update
        case .downgrade: downgrade
        }
    }

    /// A rollback installs an older release than the publisher's newest claim brought: never passwordless.
    public static let rollback = downgrade

    /// The action for a rollback: `dev.ferry.update` when it moves off a release the remote's log recalled (or
    /// whose key it revoked) to a kept release that is good, since the publisher asked for it; otherwise
    /// ``rollback``.
    public static func rollbackAction(leavingBadRelease: Bool) -> String {
        leavingBadRelease ? update : rollback
    }
}
