import FerryCore
import FerryTrust
import Foundation
import Synchronization

/// The agent's side of TUF freshness: refresh a remote's metadata from `BASE/tuf/` against the user's trusted
/// copy, look the ref up in targets, and collect the files to stage for the helper.
///
/// The files to stage are those a client starting from the *configured* root needs, whatever the helper (or the
/// `--user` engine) already trusts: every root version, timestamp, the snapshot and targets versions, delegated
/// roles on the way to the ref. They are found by replaying the refresh from the configured root in a scratch
/// directory, against the files the first refresh fetched (and the repository for what it did not need, such as
/// snapshot when the user's copy already trusted the current timestamp). The helper verifies all of them again.
public struct FreshnessRefresh: Sendable {
    /// What a refresh found.
    public struct Result: Sendable {
        /// The targets entry for the ref (never `nil`: an unlisted ref is an error).
        public var target: TUFTargetInfo
        /// File name (as served under `tuf/`) → content, to stage under `tuf/`.
        public var files: [String: Data]
    }

    public let remote: Remote
    /// The user's trusted metadata for this remote (`$XDG_CACHE_HOME/ferry/tuf/REMOTE`).
    public let directory: String
    public let fetcher: any TUFFetcher
    public let now: Date
    /// Reorders the metadata URLs before they are tried (the agent puts origins known to be down last).
    public let order: @Sendable ([String]) -> [String]
    /// `--allow-stale`: accept expired metadata (see ``TUFUpdater/acceptExpired``).
    public var acceptExpired = false

    public init(remote: Remote, directory: String, fetcher: any TUFFetcher, now: Date = Date(),
                order: @escaping @Sendable ([String]) -> [String] = { $0 }) {
        self.remote = remote
        self.directory = directory
        self.fetcher = fetcher
        self.now = now
        self.order = order
    }

    /// The metadata base URLs, one per base URL of the remote, in order.
    public var metadataURLs: [String] {
        remote.baseURLs.map { Remote.withoutTrailingSlash($0) + "/\(Freshness.stagedDirectory)/" }
    }

    /// Refreshes, looks `ref` up and checks `descriptor` (what the remote's index names) against it.
    /// Tries the remote's base URLs in order; the first one whose metadata passes wins. Throws the first
    /// URL's error when none does.
    public func refresh(ref: Ref, descriptor: Descriptor) async throws -> Result {
        guard let configured = remote.tufRoot else {
            throw FerryError.failed("remote \(remote.name) has no TUF root configured")
        }
        let parent = (directory as NSString).deletingLastPathComponent
        try makeDirectory(parent)
        let lock = try FileLock(path: directory + ".lock")
        defer { lock.unlock() }
        var firstError: Error?
        for base in order(metadataURLs) {
            do {
                try Freshness.prepare(directory: directory, configuredRoot: configured)
                return try await refresh(from: base, configuredRoot: configured, ref: ref, descriptor: descriptor)
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        throw firstError ?? FerryError.failed("remote \(remote.name) has no URL")
    }

    private func refresh(from base: String, configuredRoot: Data, ref: Ref, descriptor: Descriptor) async throws
        -> Result
    {
        let live = RecordingTUFFetcher(base: base, upstream: fetcher)
        let listed: TUFTargetInfo?
        do {
            let updater = try TUFUpdater(metadataDirectory: directory, metadataBaseURL: base, fetcher: live, now: now,
                                         acceptExpired: acceptExpired)
            listed = try await updater.targetInfo(path: ref.string)
        } catch {
            throw Freshness.described(error)
        }
        let target = try Freshness.check(descriptor, against: listed, remote: remote.name, ref: ref)

        // Replay from the configured root: what it reads is exactly what a verifier starting there needs.
        let scratch = "\(directory).replay-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let replay = RecordingTUFFetcher(base: base, upstream: live, preferRecorded: true)
        let replayed: TUFTargetInfo?
        do {
            try TUFUpdater.initialize(metadataDirectory: scratch, trustedRoot: configuredRoot)
            replayed = try await TUFUpdater(metadataDirectory: scratch, metadataBaseURL: base, fetcher: replay,
                                            now: now, acceptExpired: acceptExpired).targetInfo(path: ref.string)
        } catch {
            throw Freshness.described(error)
        }
        guard let replayed, replayed.length == target.length, replayed.sha256 == target.sha256 else {
            throw FerryError.failed("TUF metadata of remote \(remote.name) changed during the refresh; try again")
        }
        return Result(target: target, files: replay.fetched())
    }
}

/// Fetches through `upstream` and remembers every answer by its name relative to `base` (`2.root.json`,
/// `timestamp.json`, `3.snapshot.json`, `1.ROLE.json`, …); with `preferRecorded`, answers what `upstream`
/// (itself recording) already answered without asking again.
final class RecordingTUFFetcher: TUFFetcher, Sendable {
    let base: String
    let upstream: any TUFFetcher
    let preferRecorded: Bool
    private let answers = Mutex<[String: Data?]>([:])

    init(base: String, upstream: any TUFFetcher, preferRecorded: Bool = false) {
        self.base = base
        self.upstream = upstream
        self.preferRecorded = preferRecorded
    }

    func fetch(_ url: String, maxLength: Int) async throws -> Data? {
        let name = url.hasPrefix(base) ? String(url.dropFirst(base.count)) : nil
        if preferRecorded, let name, let recorded = (upstream as? RecordingTUFFetcher)?.answer(name) {
            if let data = recorded, data.count > maxLength {
                throw FerryError.failed("\(name) is longer than the \(maxLength) bytes allowed")
            }
            record(name, recorded)
            return recorded
        }
        let data = try await upstream.fetch(url, maxLength: maxLength)
        if let name { record(name, data) }
        return data
    }

    /// What was answered for `name`: `.some(nil)` for "no such file", `nil` when never asked.
    func answer(_ name: String) -> Data?? {
        answers.withLock { $0[name] }
    }

    private func record(_ name: String, _ data: Data?) {
        answers.withLock { $0[name] = data }
    }

    /// The files that exist, by name. Only plain names (no `/`) are returned: they become files under `tuf/`.
    func fetched() -> [String: Data] {
        var files: [String: Data] = [:]
        for (name, data) in answers.withLock({ $0 }) {
            guard let data, !name.contains("/"), (try? DirectoryHandle.components(of: name)) != nil else { continue }
            files[name] = data
        }
        return files
    }
}
