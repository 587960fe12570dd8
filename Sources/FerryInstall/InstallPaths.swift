import FerryCore
import Foundation

/// The on-disk layout of one install scope (DESIGN.md, "System state"); `--user` mirrors it.
///
/// ```
/// blobs/sha256/<hex>                 verified blobs, content-addressed
/// deploy/<ref>/<manifest-hex>/files/ extracted tree; beside it manifest.json, config.json, claim.json, signatures/
/// installed/<ref>                    symlink to the active deployment, replaced by rename()
/// locks/state.lock, locks/refs/<ref> lock files
/// exports/bin/, exports/share/       launchers and .desktop files
/// state.json                         installed refs and timestamp records
/// tuf/<remote>/                      trusted TUF metadata
/// tmp/                               work in progress (swept at start)
/// ```
/// `<ref>` is always ``Ref/escapedFileName``: one component, never nested directories.
public struct InstallPaths: Sendable, Equatable {
    public let root: String

    public init(root: String) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    /// `PREFIX/var/lib/ferry`; PREFIX is `/` on a real system and a test directory under `--root`.
    public static func system(prefix: String = "/") -> InstallPaths {
        InstallPaths(root: joinPath(prefix, "var/lib/ferry"))
    }

    /// `$XDG_DATA_HOME/ferry`, defaulting to `~/.local/share/ferry`.
    public static func user(environment: [String: String] = ProcessInfo.processInfo.environment) -> InstallPaths {
        InstallPaths(root: XDG.dataHome(environment) + "/ferry")
    }

    public var blobs: String { root + "/blobs" }
    public var deploy: String { root + "/deploy" }
    public var installed: String { root + "/installed" }
    public var exports: String { root + "/exports" }
    public var exportsBin: String { root + "/exports/bin" }
    public var exportsApplications: String { root + "/exports/share/applications" }
    public var stateFile: String { root + "/state.json" }
    public var tmp: String { root + "/tmp" }
    public var locks: String { root + "/locks" }
    public func tuf(_ remote: RemoteName) -> String { root + "/tuf/\(remote)" }
    /// The trusted transparency-log checkpoint of a remote, and evidence of a fork (``ReleaseLogCheck``).
    public func log(_ remote: RemoteName) -> String { root + "/log/\(remote)" }

    public func deployment(ref: Ref, digest: Digest) -> String { "\(deploy)/\(ref.escapedFileName)/\(digest.hex)" }
    public func installedLink(_ ref: Ref) -> String { "\(installed)/\(ref.escapedFileName)" }
    public func blob(_ digest: Digest) -> String { "\(blobs)/\(digest.algorithm.rawValue)/\(digest.hex)" }
}
