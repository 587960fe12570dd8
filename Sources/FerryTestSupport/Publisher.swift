import Foundation

/// A publisher for tests: a minisign key pair made by stock `minisign`, a layout built with `ferry build`
/// and signed with `ferry sign` (or stock tools by the test itself).
public final class Publisher: @unchecked Sendable {
    public let directory: String
    public let layout: String
    public let publicKey: String
    public let secretKey: String

    public init(in scratch: TemporaryDirectory, name: String = "pub") throws {
        directory = scratch.file(name)
        layout = directory + "/layout"
        publicKey = directory + "/minisign.pub"
        secretKey = directory + "/minisign.key"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Command.check(["minisign", "-G", "-W", "-p", publicKey, "-s", secretKey])
        // Readable by the unprivileged test users who add the key to their remotes.
        for path in [scratch.path, directory, publicKey] { chmod(path, path == publicKey ? 0o644 : 0o755) }
    }

    /// Writes an app tree for `version`: `bin/hello` prints "hello <version>", plus a desktop entry and `extra`
    /// files (path → contents).
    public func appTree(version: String, extra: [String: String] = [:]) throws -> String {
        let tree = "\(directory)/tree-\(version)-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: tree + "/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: tree + "/share/applications", withIntermediateDirectories: true)
        try Data("#!/bin/sh\necho \"hello \(version) $*\"\n".utf8).write(to: URL(fileURLWithPath: tree + "/bin/hello"))
        chmod(tree + "/bin/hello", 0o755)
        let desktop = "[Desktop Entry]\nType=Application\nName=Hello\nExec=hello %U\n"
        try Data(desktop.utf8).write(to: URL(fileURLWithPath: tree + "/share/applications/org.example.Hello.desktop"))
        for (path, contents) in extra {
            let full = tree + "/" + path
            try FileManager.default.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(contents.utf8).write(to: URL(fileURLWithPath: full))
        }
        return tree
    }

    /// Builds and signs `version` of `ref`; returns the manifest digest.
    @discardableResult
    public func publish(ref: String, version: String, timestamp: Int64, identity: String? = nil,
                        extra: [String: String] = [:], logKey: String? = nil, signingKey: String? = nil) throws
        -> String
    {
        let tree = try appTree(version: version, extra: extra)
        let built = try Command.check([BuiltProducts.ferry, "build", tree, layout, "--ref", ref, "--command", "/bin/hello"])
        var sign = [BuiltProducts.ferry, "sign", layout, "--ref", ref, "--ed25519-key", signingKey ?? secretKey,
                    "--timestamp", "\(timestamp)"]
        if let identity { sign += ["--identity", identity] }
        if let logKey { sign += ["--log-key", logKey] }
        try Command.check(sign)
        try Command.check(["chmod", "-R", "a+rX", directory])
        return String(built.out.split(separator: " ").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Saves `index.json` under `name` (to serve an old release again later).
    public func saveIndex(_ name: String) throws {
        try? FileManager.default.removeItem(atPath: "\(directory)/index-\(name).json")
        try FileManager.default.copyItem(atPath: layout + "/index.json", toPath: "\(directory)/index-\(name).json")
    }

    /// Serves a saved `index.json` again.
    public func restoreIndex(_ name: String) throws {
        _ = try Command.check(["cp", "\(directory)/index-\(name).json", layout + "/index.json"])
    }

    /// The layer digests ("sha256:...") of the manifest `digest`.
    public func layers(of digest: String) throws -> [String] {
        let data = try Data(contentsOf: URL(fileURLWithPath: blobPath(digest)))
        let manifest = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        return (manifest?["layers"] as? [[String: Any]] ?? []).compactMap { $0["digest"] as? String }
    }

    /// The layout path of blob `digest` ("sha256:...").
    public func blobPath(_ digest: String) -> String {
        layout + "/blobs/" + digest.replacingOccurrences(of: ":", with: "/")
    }
}
