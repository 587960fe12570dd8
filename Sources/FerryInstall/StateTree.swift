import FerryArchive
import FerryCore
import Foundation

/// One scope's state tree, reached only through directory descriptors.
///
/// The root is opened by path once (it is the helper's own `/var/lib/ferry`, or the user's data directory); every
/// entry beneath it is then reached one component at a time with `openat(2)` and `O_NOFOLLOW`, and every ref is one
/// escaped component (``Ref/escapedFileName``). So no operation on the tree (commit, uninstall, recovery, garbage
/// collection, exports) can follow a symlink that an image brought in: deployments hold image content with absolute
/// symlinks, and a path that walked through one could replace another ref's link or any file on the system.
struct StateTree {
    let paths: InstallPaths
    let root: DirectoryHandle

    /// Opens (creating when missing) the state root.
    init(paths: InstallPaths) throws {
        self.paths = paths
        try makeDirectory(paths.root)
        root = try DirectoryHandle(path: paths.root)
    }

    func installed() throws -> DirectoryHandle { try root.makeSubdirectory("installed") }
    func deploy() throws -> DirectoryHandle { try root.makeSubdirectory("deploy") }
    func tmp() throws -> DirectoryHandle { try root.makeSubdirectory("tmp") }
    /// Shared file objects (``ObjectStore``).
    func objects() throws -> DirectoryHandle { try root.makeSubdirectory("objects") }
    func locks() throws -> DirectoryHandle { try root.makeSubdirectory("locks") }
    /// Per-ref lock files live apart from `state.lock`, so no ref's name can stand for the state lock.
    func refLocks() throws -> DirectoryHandle { try locks().makeSubdirectory("refs") }
    func exportsBin() throws -> DirectoryHandle {
        try root.makeSubdirectory("exports").makeSubdirectory("bin")
    }
    func exportsApplications() throws -> DirectoryHandle {
        try root.makeSubdirectory("exports").makeSubdirectory("share").makeSubdirectory("applications")
    }

    /// The exclusive lock on state.json (held for every read-modify-write of it).
    func lockState() throws -> FileLock { try FileLock(in: locks(), name: "state.lock") }

    /// The exclusive lock that serializes deploys and uninstalls of one ref.
    func lockRef(_ ref: Ref) throws -> FileLock { try FileLock(in: refLocks(), name: ref.escapedFileName) }

    /// The one read-modify-write of state.json: under the state lock, loads it, lets `body` change it, writes it
    /// back (atomically) only when it changed, then runs `then` with the new state while the lock is still held
    /// (removing superseded deployments and collecting garbage must not race another writer's commit).
    @discardableResult
    func update<T>(mode: mode_t, _ body: (inout InstallState) throws -> T,
                   then: (InstallState) -> Void = { _ in }) throws -> T {
        let lock = try lockState()
        defer { lock.unlock() }
        var state = try loadState()
        let before = state
        let result = try body(&state)
        if state != before { try save(state, mode: mode) }
        then(state)
        return result
    }

    func loadState() throws -> InstallState {
        guard let data = try root.readFile("state.json", maxSize: InstallState.maxSize) else { return InstallState() }
        return try InstallState.decode(data, shown: paths.stateFile)
    }

    func save(_ state: InstallState, mode: mode_t) throws {
        try AtomicFile.write(try state.encoded(), in: root, name: "state.json", mode: mode)
    }

    // MARK: Deployments

    /// `deploy/<ref>/<hex>` relative to the root, as state.json records it.
    static func relativeDeployment(_ ref: Ref, hex: String) -> String { "deploy/\(ref.escapedFileName)/\(hex)" }

    /// The ref directory name and manifest hex of a recorded deployment, if `relative` has exactly the shape
    /// ``relativeDeployment(_:hex:)`` gives for `ref`.
    static func deploymentHex(_ relative: String, of ref: Ref) -> String? {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "deploy", parts[1] == ref.escapedFileName,
            (try? Digest(algorithm: .sha256, hex: String(parts[2]))) != nil
        else { return nil }
        return String(parts[2])
    }

    /// The deployment an `installed/` link of `ref` names, if the link names exactly one of `ref`'s own
    /// deployments in this tree (an absolute path `ROOT/deploy/<ref>/<hex>`); `nil` for anything else.
    func linkedDeployment(_ ref: Ref, installed: DirectoryHandle) -> String? {
        guard let target = installed.readLink(ref.escapedFileName), target.hasPrefix(paths.root + "/") else {
            return nil
        }
        let relative = String(target.dropFirst(paths.root.count + 1))
        return StateTree.deploymentHex(relative, of: ref) == nil ? nil : relative
    }

    /// Opens the deployment `relative` (`deploy/<ref>/<hex>`) without following any symlink; `nil` when missing.
    func openDeployment(_ relative: String) throws -> DirectoryHandle? {
        try root.openDirectory(relative)
    }

    /// The record of a complete deployment of `ref` from `remote` at `relative`: `nil` when the deployment is
    /// missing, unfinished, or its record names another ref or remote (recovery must never take one ref's state
    /// from a deployment of another).
    func record(_ relative: String, ref: Ref, remote: RemoteName? = nil) -> DeploymentRecord? {
        guard StateTree.deploymentHex(relative, of: ref) != nil,
            let dir = try? openDeployment(relative), let record = DeploymentRecord.load(dir),
            record.ref == ref, remote == nil || record.remote == remote,
            "deploy/\(ref.escapedFileName)/\(record.digest.hex)" == relative
        else { return nil }
        return record
    }

    /// Removes the deployments of `ref` except those in `keep` (relative paths).
    func removeDeployments(of ref: Ref, keeping keep: [String]) {
        guard let deploy = try? deploy(), let dir = try? deploy.openDirectory(ref.escapedFileName) else { return }
        for name in (try? dir.entryNames()) ?? [] {
            guard (try? Digest(algorithm: .sha256, hex: name)) != nil else { continue }
            if !keep.contains(StateTree.relativeDeployment(ref, hex: name)) {
                try? LayerExtractor.removeTree(named: name, in: dir)
            }
        }
        if keep.isEmpty { deploy.removeEmptyDirectory(ref.escapedFileName) }
    }

    /// Reads a file of a kept deployment (manifest.json, for garbage collection).
    func readDeploymentFile(_ relative: String, _ name: String, maxSize: Int) -> Data? {
        guard let dir = try? openDeployment(relative) else { return nil }
        return try? dir.readFile(name, maxSize: maxSize)
    }
}

/// `deployment.json`, written last into a finished deployment: its presence marks the deployment complete.
struct DeploymentRecord: Codable {
    var ref: Ref
    var remote: RemoteName
    var digest: Digest
    var timestamp: Int64

    static let maxSize = 64 * 1024

    func encoded() throws -> Data {
        do {
            return try JSONEncoder.canonicalOCI.encode(self)
        } catch {
            throw FerryError.failed("cannot encode deployment record: \(error)")
        }
    }

    /// The record inside an open deployment directory (a regular file, never through a symlink).
    static func load(_ deployment: DirectoryHandle) -> DeploymentRecord? {
        guard let data = try? deployment.readFile("deployment.json", maxSize: maxSize) else { return nil }
        return try? JSONDecoder().decode(DeploymentRecord.self, from: data)
    }
}
