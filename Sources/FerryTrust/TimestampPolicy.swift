import FerryCore
import Foundation

/// No silent downgrade (DESIGN.md, "Timestamps"): compares a verified claim's timestamp with the one recorded for
/// the same (scope, remote, ref).
///
/// The record outlives uninstalls, so reinstalling an older release after an uninstall is still a downgrade.
public enum TimestampPolicy {
    /// What installing the new claim would be.
    public enum Decision: String, Sendable, Equatable {
        /// Not installed, and nothing newer was ever recorded.
        case install
        /// Installed, and the new claim is newer.
        case update
        /// Installed, and the claim is the recorded one (same timestamp, same digest).
        case nothingToDo
        /// Older than the record, and the caller allowed a downgrade (polkit `dev.ferry.downgrade` decides).
        case downgrade
    }

    /// A claim may be at most this far ahead of the local clock.
    public static let maxClockSkew: Int64 = 24 * 60 * 60

    /// Decides what installing a claim with `newTimestamp` and `newDigest` would be.
    ///
    /// - Parameters:
    ///   - recorded: the timestamp and digest recorded for this ref, if any.
    ///   - installed: the digest of the release of this ref installed in this scope from this remote, if any (an
    ///     install from another remote is not this ref's release here: it must never turn a claim into an update).
    ///   - now: the local clock, Unix seconds.
    ///   - allowDowngrade: `--allow-downgrade`; the caller must still get polkit's `dev.ferry.downgrade`.
    /// - Throws: `.signatureInvalid` for a claim more than 24 h in the future (it would block every later update)
    ///   or for the recorded timestamp with another digest (two different releases cannot share a timestamp);
    ///   `.downgrade` for an older claim without `allowDowngrade` (stops a mirror replaying an old, vulnerable
    ///   release).
    public static func decide(
        newTimestamp: Int64,
        newDigest: Digest,
        recorded: (timestamp: Int64, digest: Digest)?,
        installed: Digest?,
        now: Int64,
        allowDowngrade: Bool
    ) throws -> Decision {
        let (limit, overflow) = now.addingReportingOverflow(maxClockSkew)
        if !overflow, newTimestamp > limit {
            throw FerryError.signatureInvalid(
                "claim timestamp \(describe(newTimestamp)) is more than 24 h in the future (local clock \(describe(now)))"
            )
        }
        let isInstalled = installed != nil
        guard let recorded else { return isInstalled ? .update : .install }
        if newTimestamp > recorded.timestamp { return isInstalled ? .update : .install }
        if newTimestamp == recorded.timestamp {
            guard newDigest == recorded.digest else {
                throw FerryError.signatureInvalid(
                    "same timestamp \(describe(newTimestamp)), different digest: \(newDigest.short) "
                        + "vs recorded \(recorded.digest.short)"
                )
            }
            if installed == newDigest { return .nothingToDo }
            // Installed, but not this release (a rollback went back behind it): going forward again is an update.
            return isInstalled ? .update : .install
        }
        guard allowDowngrade else {
            throw FerryError(
                .downgrade,
                "claim from \(describe(newTimestamp)) is older than the recorded "
                    + "\(describe(recorded.timestamp)) (\(recorded.digest.short)); "
                    + "use --allow-downgrade to install it anyway"
            )
        }
        return .downgrade
    }

    /// `2025-11-24T16:00:00Z (1764000000)`: readable, and exact for anyone comparing records.
    public static func describe(_ timestamp: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return "\(formatter.string(from: Date(timeIntervalSince1970: TimeInterval(timestamp)))) (\(timestamp))"
    }
}
