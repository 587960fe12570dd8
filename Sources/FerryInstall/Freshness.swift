import FerryCore
import FerryTrust
import Foundation
import Synchronization

/// TUF freshness for remotes configured with a TUF root (DESIGN.md, "Freshness (TUF)").
///
/// A targets entry's path is the ref; its `sha256` hash and `length` are those of the manifest. A manifest that
/// no trusted targets role lists, or that differs from what targets names, is refused, and so is metadata that
/// expired (freeze), went back in version (rollback), or does not chain to the configured root.
///
/// Trusted metadata lives in one directory per remote and scope: the helper's `/var/lib/ferry/tuf/REMOTE/`, the
/// user's `$XDG_DATA_HOME/ferry/tuf/REMOTE/`, and the agent's own `$XDG_CACHE_HOME/ferry/tuf/REMOTE/`. Each
/// starts from the configured root and only ever advances; it is started afresh when the configured root changes.
public enum Freshness {
    /// Where a staged layout carries the TUF metadata files, under the names the repository serves them by.
    public static let stagedDirectory = "tuf"
    /// The copy of the configured root a trusted directory was started from. No TUF file has this name: the
    /// client only writes `NAME.json`.
    static let configuredRootFile = "configured-root"

    /// Makes `directory` hold trusted metadata that chains from `configuredRoot`: initialised when absent, and
    /// started afresh when the configured root changed since (a new root is the administrator's decision).
    public static func prepare(directory: String, configuredRoot: Data) throws {
        let marker = directory + "/" + configuredRootFile
        if let current = FileManager.default.contents(atPath: marker), current == configuredRoot,
            FileManager.default.fileExists(atPath: directory + "/root.json")
        {
            return
        }
        try reset(directory: directory)
        do {
            try TUFUpdater.initialize(metadataDirectory: directory, trustedRoot: configuredRoot)
        } catch {
            throw described(error)
        }
        try AtomicFile.write(configuredRoot, to: marker)
    }

    /// Forgets the trusted metadata in `directory` (the next use starts again from the configured root).
    public static func reset(directory: String) throws {
        guard FileManager.default.fileExists(atPath: directory) else { return }
        do {
            try FileManager.default.removeItem(atPath: directory)
        } catch {
            throw FerryError.failed("cannot reset trusted TUF metadata in \(directory): \(error.localizedDescription)")
        }
    }

    /// Reads and checks a TUF root file given on the command line (`--tuf-root`).
    public static func loadRoot(_ path: String) throws -> Data {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FerryError.invalidArgument("cannot read \(path)")
        }
        try validateRoot(data)
        return data
    }

    /// Checks that `data` is a TUF root that meets its own signature threshold (for `remote-add --tuf-root`).
    public static func validateRoot(_ data: Data) throws {
        let scratch = NSTemporaryDirectory() + "ferry-tuf-root-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try TUFUpdater.initialize(metadataDirectory: scratch, trustedRoot: data)
        do {
            _ = try TUFUpdater(metadataDirectory: scratch, metadataBaseURL: "", fetcher: NoTUFFetcher())
        } catch let error as FerryError {
            throw error.prefixed("TUF root")
        }
    }

    /// Compares the manifest a remote serves for `ref` with what TUF targets name for it.
    ///
    /// Stops: a mirror mixing releases (index.json naming another manifest than the one the current targets
    /// metadata vouches for), and a ref that the repository's TUF metadata does not list at all.
    /// Returns the entry, known to be there.
    @discardableResult
    public static func check(_ descriptor: Descriptor, against target: TUFTargetInfo?, remote: RemoteName, ref: Ref)
        throws -> TUFTargetInfo
    {
        guard let target else {
            throw FerryError.untrusted("\(ref) is not listed in the TUF targets of remote \(remote)")
        }
        guard let expected = target.sha256 else {
            throw FerryError.untrusted("the TUF targets entry for \(ref) on remote \(remote) has no sha256 hash")
        }
        guard expected == descriptor.digest, Int64(target.length) == descriptor.size else {
            throw FerryError.digestMismatch(
                "TUF targets of remote \(remote) name \(expected) (\(target.length) bytes) for \(ref), the remote "
                    + "serves \(descriptor.digest) (\(descriptor.size) bytes)")
        }
        return target
    }

    /// Runs `body` on the concurrency pool and blocks the calling thread until it finishes.
    ///
    /// For synchronous callers such as the helper's worker threads (`DeployRequest.checkManifest`). Must not be
    /// called from a Swift concurrency thread: blocking one while waiting for another task can starve the pool.
    ///
    /// The TUF client is one async implementation, shared with the agent's refresh over the network; the helper's
    /// offline check (files under a directory descriptor) runs it here rather than in a second, synchronous copy
    /// of the client that could drift from the first.
    public static func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let result = Mutex<Result<T, Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            let outcome: Result<T, Error>
            do {
                outcome = .success(try await body())
            } catch {
                outcome = .failure(error)
            }
            result.withLock { $0 = outcome }
            done.signal()
        }
        done.wait()
        return try result.withLock { $0 }!.get()
    }

    /// Makes an error of the TUF client say where it comes from ("TUF timestamp metadata version 2 expired …").
    /// Wrap only what `TUFUpdater` throws, once.
    static func described(_ error: Error) -> Error {
        guard let error = error as? FerryError else { return error }
        guard error.cause == ESTALE else { return FerryError(error.code, "TUF \(error.message)", cause: error.cause) }
        return FerryError(error.code, "TUF \(error.message); \(FerryError.staleViewHint)", cause: error.cause)
    }
}

/// A repository with no files at all.
struct NoTUFFetcher: TUFFetcher {
    func fetch(_ url: String, maxLength: Int) async throws -> Data? { nil }
}

/// The offline TUF check of a staged layout, as the helper (and the `--user` engine) run it before anything is
/// copied: the client workflow against the scope's own trusted metadata, with the files staged under `tuf/` as
/// its only "network", then the ref looked up in targets and compared with the manifest `index.json` names.
///
/// The staged files are read through the layout's directory handle with the layout's file policy (the caller's
/// files only, no symlinks, size caps). The trusted metadata advances as the TUF workflow says it must, even
/// when the deploy is refused later for another reason: it only ever holds metadata that passed every check.
public struct FreshnessCheck: Sendable {
    public let remote: Remote
    public let ref: Ref
    public let layout: ImageLayout
    /// The trusted metadata directory of this scope and remote (``InstallPaths/tuf(_:)``).
    public let trustedDirectory: String
    /// Serializes updates of the trusted directory, so that two deploys never write metadata out of order.
    public let lockPath: String
    public let now: Date
    /// `--allow-stale`: accept expired metadata (see ``TUFUpdater/acceptExpired``).
    public var acceptExpired = false

    public init(remote: Remote, ref: Ref, layout: ImageLayout, paths: InstallPaths, now: Date = Date()) {
        self.remote = remote
        self.ref = ref
        self.layout = layout
        trustedDirectory = paths.tuf(remote.name)
        lockPath = "\(paths.locks)/tuf-\(remote.name).lock"
        self.now = now
    }

    /// The targets entry for the ref, after the offline refresh. `nil` when no trusted role lists it.
    public func targetInfo() async throws -> TUFTargetInfo? {
        guard let configured = remote.tufRoot else {
            throw FerryError.failed("remote \(remote.name) has no TUF root configured")
        }
        guard let staged = try layout.root.openDirectory(Freshness.stagedDirectory) else {
            throw FerryError.untrusted(
                "remote \(remote.name) requires TUF metadata, and the staged layout carries none (tuf/)")
        }
        try makeDirectory((lockPath as NSString).deletingLastPathComponent)
        let lock = try FileLock(path: lockPath)
        defer { lock.unlock() }
        try Freshness.prepare(directory: trustedDirectory, configuredRoot: configured)
        let base = "staged:/tuf/"
        let fetcher = DirectoryTUFFetcher(directory: staged, baseURL: base, policy: layout.policy)
        do {
            let updater = try TUFUpdater(metadataDirectory: trustedDirectory, metadataBaseURL: base,
                                         fetcher: fetcher, now: now, acceptExpired: acceptExpired)
            return try await updater.targetInfo(path: ref.string)
        } catch {
            throw Freshness.described(error)
        }
    }

    /// Refreshes offline and compares `descriptor` with the targets entry for the ref.
    public func verify(_ descriptor: Descriptor) async throws {
        let target = try await targetInfo()
        try Freshness.check(descriptor, against: target, remote: remote.name, ref: ref)
    }

    /// The check as `DeployRequest.checkManifest` takes it, for callers on plain threads (see
    /// ``Freshness/runBlocking(_:)``).
    public func blockingCheck() -> @Sendable (Descriptor) throws -> Void {
        let check = self
        return { descriptor in
            try Freshness.runBlocking { try await check.verify(descriptor) }
        }
    }
}
