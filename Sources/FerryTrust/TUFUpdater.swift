#if canImport(Glibc)
    import Glibc
#endif
import FerryCore
import Foundation

/// Caps on what a TUF repository may make the client read or walk. The defaults are python-tuf's.
public struct TUFLimits: Sendable {
    public var rootMaxLength = 512_000
    public var timestampMaxLength = 16_384
    /// Used when timestamp lists no length for snapshot.
    public var snapshotMaxLength = 2_000_000
    /// Used when snapshot lists no length for a targets role.
    public var targetsMaxLength = 5_000_000
    /// Root versions fetched in one refresh at most.
    public var maxRootRotations = 256
    /// Targets roles visited in one target search at most.
    public var maxDelegations = 32
    /// With consistent snapshots, fetch targets as `DIR/HASH.NAME`.
    public var prefixTargetsWithHash = true

    public init() {}
}

/// A TUF 1.0 client (specification section 5, "Detailed client workflow"), as python-tuf's `ngclient` runs it.
///
/// Trusted metadata lives in `metadataDirectory` under non-versioned names (`root.json`, `timestamp.json`,
/// `snapshot.json`, `targets.json`, `ROLE.json` with the role name percent-encoded), written atomically; only
/// metadata that passed every check is written. Every expiry is checked against the one time `now` given at
/// creation.
///
/// Errors (``FerryError``), each naming the role and the reason:
/// - `.untrusted`: a signature threshold is not met, or metadata is malformed or not delegated;
/// - `.downgrade`: a version older than the trusted one (rollback), or older than the version listed for it;
/// - `.digestMismatch`: length or hashes differ from those timestamp, snapshot or targets list;
/// - `.failed`: expired metadata (the message says "expired at", the cause is `ESTALE`), a missing file, a network
///   error.
public actor TUFUpdater {
    public let metadataDirectory: String
    public let metadataBaseURL: String
    public let now: Date
    /// Accept expired metadata (`--allow-stale`: an older view taken on purpose). Signatures, thresholds, versions
    /// and hashes are checked as always, and rollback stays refused; only the expiry checks are skipped.
    public let acceptExpired: Bool
    public let limits: TUFLimits
    private let fetcher: any TUFFetcher

    private var root: TUFRoot
    private var timestamp: TUFTimestamp?
    private var snapshot: TUFSnapshot?
    /// Trusted targets roles by name bytes, "targets" included.
    private var targets: [[UInt8]: TUFTargets] = [:]
    private var refreshed = false

    /// Loads the trusted root from `metadataDirectory/root.json` and checks that it meets its own threshold.
    ///
    /// - Parameters:
    ///   - metadataBaseURL: the repository's metadata URL; a `/` is added when missing.
    ///   - now: the time every expiry is compared with (fixed for the whole run).
    public init(metadataDirectory: String, metadataBaseURL: String, fetcher: any TUFFetcher, now: Date = Date(),
                acceptExpired: Bool = false, limits: TUFLimits = TUFLimits()) throws {
        self.metadataDirectory = metadataDirectory
        self.metadataBaseURL = metadataBaseURL.hasSuffix("/") ? metadataBaseURL : metadataBaseURL + "/"
        self.fetcher = fetcher
        self.now = now
        self.acceptExpired = acceptExpired
        self.limits = limits
        guard let data = try TUFUpdater.readLocal(directory: metadataDirectory, role: TUFRoleName.root,
                                                  maxLength: limits.rootMaxLength)
        else {
            throw FerryError.failed("no trusted root metadata in \(metadataDirectory)")
        }
        let root = try TUFRoot(data: data)
        try root.verify(root.envelope, as: TUFRoleName.root)
        self.root = root
    }

    /// Stores `trustedRoot` as the trusted root in `metadataDirectory` (created if missing). Makes no request and
    /// performs no check beyond the size cap: the caller vouches for this root (it came from configuration).
    public static func initialize(metadataDirectory: String, trustedRoot: Data,
                                  limits: TUFLimits = TUFLimits()) throws {
        guard trustedRoot.count <= limits.rootMaxLength else {
            throw FerryError.invalidArgument("trusted root is larger than \(limits.rootMaxLength) bytes")
        }
        do {
            try FileManager.default.createDirectory(atPath: metadataDirectory, withIntermediateDirectories: true)
        } catch {
            throw FerryError.failed("cannot create \(metadataDirectory): \(error.localizedDescription)")
        }
        try AtomicFile.write(trustedRoot, to: metadataDirectory + "/root.json")
    }

    /// The version of the trusted root.
    public var rootVersion: Int { root.version }

    /// Runs the client workflow once: root rotations, timestamp, snapshot, top-level targets.
    /// A second call does nothing.
    public func refresh() async throws {
        guard !refreshed else { return }
        try await loadRoot()
        try await loadTimestamp()
        try await loadSnapshot()
        _ = try await loadTargets(role: TUFRoleName.targets, parent: TUFRoleName.root)
        refreshed = true
    }

    /// Finds `path` by a pre-order depth-first walk of the delegation graph (refreshing first if needed).
    /// Returns nil when no role trusted for the path lists it.
    ///
    /// Stops: a delegated role vouching for paths outside its delegation; cycles and endless delegation
    /// chains (a visited set and ``TUFLimits/maxDelegations``).
    public func targetInfo(path: String) async throws -> TUFTargetInfo? {
        try await refresh()
        var toVisit: [(role: String, parent: String)] = [(TUFRoleName.targets, TUFRoleName.root)]
        var visited = Set<[UInt8]>()
        while visited.count <= limits.maxDelegations, let (role, parent) = toVisit.popLast() {
            let name = Array(role.utf8)
            if visited.contains(name) { continue }
            let metadata = try await loadTargets(role: role, parent: parent)
            if let info = metadata.targets[Array(path.utf8)] { return info }
            visited.insert(name)
            guard let delegations = metadata.delegations else { continue }
            var children: [(role: String, parent: String)] = []
            for (child, terminating) in delegations.roles(for: path) {
                children.append((child, role))
                if terminating {
                    // A terminating role is the last word on these paths: backtracking stops here.
                    toVisit.removeAll()
                    break
                }
            }
            toVisit.append(contentsOf: children.reversed())
        }
        return nil
    }

    /// The bytes of `target`, from `baseURL`, checked against its length and hashes. `fetcher` defaults to the
    /// updater's own.
    public func fetchTarget(_ target: TUFTargetInfo, baseURL: String, fetcher: (any TUFFetcher)? = nil)
        async throws -> Data
    {
        var targetPath = target.path
        if root.consistentSnapshot, limits.prefixTargetsWithHash, let first = target.hashes.first {
            if let slash = targetPath.lastIndex(of: "/") {
                targetPath = "\(targetPath[...slash])\(first.hex).\(targetPath[targetPath.index(after: slash)...])"
            } else {
                targetPath = "\(first.hex).\(targetPath)"
            }
        }
        let base = baseURL.hasSuffix("/") ? baseURL : baseURL + "/"
        let url = base + TUFUpdater.percentEncode(targetPath, keepSlash: true)
        guard let data = try await (fetcher ?? self.fetcher).fetch(url, maxLength: target.length) else {
            throw FerryError.failed("target \(target.path.prefix(200).debugDescription) not found at \(url)")
        }
        try target.verify(data)
        return data
    }

    /// Downloads `target` into `directory` under its percent-encoded path (one flat file name) and returns the
    /// file's path. A file already there with the right length and hashes is kept and not fetched again;
    /// anything else is replaced atomically, only after the new content verified.
    @discardableResult
    public func download(target: TUFTargetInfo, baseURL: String, to directory: String,
                         fetcher: (any TUFFetcher)? = nil) async throws -> String {
        let path = directory + "/" + TUFUpdater.percentEncode(target.path, keepSlash: false)
        if let cached = try? TUFUpdater.readFile(path, maxLength: target.length), (try? target.verify(cached)) != nil {
            return path
        }
        let data = try await fetchTarget(target, baseURL: baseURL, fetcher: fetcher)
        try AtomicFile.write(data, to: path)
        return path
    }

    // MARK: - Root

    private func loadRoot() async throws {
        let lower = root.version + 1
        for version in lower..<(lower + limits.maxRootRotations) {
            guard let data = try await fetchMetadata(TUFRoleName.root, version: version,
                                                     maxLength: limits.rootMaxLength)
            else { break }
            try updateRoot(data)
            try persist(TUFRoleName.root, data)
        }
    }

    /// Accepts root version N+1 only when the current root's threshold AND its own threshold sign it.
    ///
    /// Stops: a root rotation forged with fewer keys than either the old or the new root requires.
    private func updateRoot(_ data: Data) throws {
        let new = try TUFRoot(data: data)
        try root.verify(new.envelope, as: TUFRoleName.root)
        guard new.version == root.version + 1 else {
            let code: FerryError.Code = new.version <= root.version ? .downgrade : .untrusted
            throw FerryError(code, "root metadata: expected version \(root.version + 1), found \(new.version)")
        }
        try new.verify(new.envelope, as: TUFRoleName.root)
        root = new
    }

    // MARK: - Timestamp

    /// Thrown when the repository's timestamp is the one already trusted: nothing new, not an error.
    private struct SameVersion: Error {}

    private func loadTimestamp() async throws {
        // A local timestamp that no longer verifies under the new root (its keys rotated) is simply not
        // loaded: that is fast-forward recovery. An expired one still guards against rollback.
        if let local = try? readLocal(TUFRoleName.timestamp, maxLength: limits.timestampMaxLength) {
            try? updateTimestamp(local)
        }
        guard let data = try await fetchMetadata(TUFRoleName.timestamp, version: nil,
                                                 maxLength: limits.timestampMaxLength)
        else {
            throw FerryError.failed("timestamp metadata not found at \(metadataBaseURL)timestamp.json")
        }
        do {
            try updateTimestamp(data)
        } catch is SameVersion {
            return
        }
        try persist(TUFRoleName.timestamp, data)
    }

    private func updateTimestamp(_ data: Data) throws {
        try checkNotExpired("root", root.envelope)
        let new = try TUFTimestamp(data: data)
        try root.verify(new.envelope, as: TUFRoleName.timestamp)
        if let old = timestamp {
            // Stops: a mirror replaying an older timestamp (rollback) to hide newer releases.
            if new.envelope.version < old.envelope.version {
                throw FerryError(.downgrade, "timestamp metadata version \(new.envelope.version) is older than "
                                    + "the trusted version \(old.envelope.version)")
            }
            if new.envelope.version == old.envelope.version { throw SameVersion() }
            if new.snapshotMeta.version < old.snapshotMeta.version {
                throw FerryError(.downgrade, "timestamp metadata version \(new.envelope.version) lists snapshot "
                                    + "version \(new.snapshotMeta.version), older than the trusted "
                                    + "\(old.snapshotMeta.version)")
            }
        }
        // Kept even when expired, so that it still refuses rollback of the next one.
        timestamp = new
        try checkNotExpired("timestamp", new.envelope)
    }

    // MARK: - Snapshot

    private func loadSnapshot() async throws {
        do {
            guard let local = try readLocal(TUFRoleName.snapshot, maxLength: limits.snapshotMaxLength) else {
                throw FerryError.failed("no local snapshot")
            }
            try updateSnapshot(local, trusted: true)
            return
        } catch {
            // Missing, stale or no longer signed by the current keys: fetch the one timestamp names.
        }
        guard let timestamp else { throw FerryError.failed("timestamp metadata is not loaded") }
        let meta = timestamp.snapshotMeta
        guard let data = try await fetchMetadata(
            TUFRoleName.snapshot, version: root.consistentSnapshot ? meta.version : nil,
            maxLength: meta.length ?? limits.snapshotMaxLength)
        else {
            throw FerryError.failed("snapshot metadata version \(meta.version) not found")
        }
        try updateSnapshot(data, trusted: false)
        try persist(TUFRoleName.snapshot, data)
    }

    private func updateSnapshot(_ data: Data, trusted: Bool) throws {
        guard let timestamp else { throw FerryError.failed("timestamp metadata is not loaded") }
        try checkNotExpired("timestamp", timestamp.envelope)
        let meta = timestamp.snapshotMeta
        // Stops: a mirror swapping the snapshot timestamp vouches for (mix-and-match).
        if !trusted { try meta.verify(data, what: "snapshot metadata") }
        let new = try TUFSnapshot(data: data)
        try root.verify(new.envelope, as: TUFRoleName.snapshot)
        if let old = snapshot {
            for name in old.metaNames {
                let key = Array(name.utf8)
                guard let oldEntry = old.meta[key] else { continue }
                guard let newEntry = new.meta[key] else {
                    throw FerryError.untrusted("snapshot metadata version \(new.envelope.version) no longer lists "
                                               + name.prefix(120))
                }
                // Stops: rollback of any targets role to an older version.
                if newEntry.version < oldEntry.version {
                    throw FerryError(.downgrade, "snapshot metadata version \(new.envelope.version) lists "
                                        + "\(name.prefix(120)) version \(newEntry.version), older than the "
                                        + "trusted \(oldEntry.version)")
                }
            }
        }
        snapshot = new
        try checkFinalSnapshot()
    }

    private func checkFinalSnapshot() throws {
        guard let snapshot, let timestamp else { throw FerryError.failed("snapshot metadata is not loaded") }
        try checkNotExpired("snapshot", snapshot.envelope)
        let expected = timestamp.snapshotMeta.version
        if snapshot.envelope.version != expected {
            let code: FerryError.Code = snapshot.envelope.version < expected ? .downgrade : .untrusted
            throw FerryError(code, "snapshot metadata version \(snapshot.envelope.version) is not the version "
                                + "\(expected) that timestamp lists")
        }
    }

    // MARK: - Targets

    private func loadTargets(role: String, parent: String) async throws -> TUFTargets {
        if let loaded = targets[Array(role.utf8)] {
            // A role reached again through another delegator (a "diamond": two delegators name the same role, with
            // different keys) carries no authority from the first path. Stops: metadata signed only by keys that
            // parent A trusts being used for the paths parent B delegates, because A's search loaded it first.
            try verifyDelegated(loaded.envelope, role: role, parent: parent)
            return loaded
        }
        do {
            if let local = try readLocal(role, maxLength: limits.targetsMaxLength) {
                return try updateTargets(local, role: role, parent: parent)
            }
        } catch {
            // Missing, stale or no longer valid: fetch the version snapshot lists.
        }
        guard let snapshot else { throw FerryError.failed("snapshot metadata is not loaded") }
        guard let meta = snapshot.entry(for: role) else {
            throw FerryError.untrusted("role \(role.prefix(120)) is delegated but not listed in snapshot metadata")
        }
        guard let data = try await fetchMetadata(
            role, version: root.consistentSnapshot ? meta.version : nil,
            maxLength: meta.length ?? limits.targetsMaxLength)
        else {
            throw FerryError.failed("\(role.prefix(120)) metadata version \(meta.version) not found")
        }
        let loaded = try updateTargets(data, role: role, parent: parent)
        try persist(role, data)
        return loaded
    }

    private func updateTargets(_ data: Data, role: String, parent: String) throws -> TUFTargets {
        try checkFinalSnapshot()
        guard let snapshot else { throw FerryError.failed("snapshot metadata is not loaded") }
        guard let meta = snapshot.entry(for: role) else {
            throw FerryError.untrusted("snapshot metadata does not list \(role.prefix(120)).json")
        }
        try meta.verify(data, what: "\(role.prefix(120)) metadata")
        let new = try TUFTargets(data: data, role: String(role.prefix(120)))
        try verifyDelegated(new.envelope, role: role, parent: parent)
        if new.envelope.version != meta.version {
            let code: FerryError.Code = new.envelope.version < meta.version ? .downgrade : .untrusted
            throw FerryError(code, "\(role.prefix(120)) metadata version \(new.envelope.version) is not the version "
                                + "\(meta.version) that snapshot lists")
        }
        try checkNotExpired(String(role.prefix(120)), new.envelope)
        targets[Array(role.utf8)] = new
        return new
    }

    /// Checks `envelope` as `role` against the keys and threshold that `parent` (the role whose delegation led
    /// here, or root for top-level targets) gives it. Run on every visit, not once per role name.
    private func verifyDelegated(_ envelope: TUFEnvelope, role: String, parent: String) throws {
        if parent == TUFRoleName.root {
            try root.verify(envelope, as: TUFRoleName.targets)
            return
        }
        guard let delegator = targets[Array(parent.utf8)] else {
            throw FerryError.failed("delegating role \(parent.prefix(120)) is not loaded")
        }
        try delegator.verify(envelope, as: role, delegator: "\(parent.prefix(120)) metadata")
    }

    // MARK: - Files and requests

    /// Stops: a freeze attack, where a mirror keeps serving old, validly signed metadata.
    /// The error's cause is `ESTALE`, so that callers can say how to accept an older view on purpose.
    private func checkNotExpired(_ role: String, _ envelope: TUFEnvelope) throws {
        if envelope.isExpired(at: now) && !acceptExpired {
            throw FerryError(.failed, "\(role) metadata version \(envelope.version) expired at \(envelope.expiresText)",
                             cause: ESTALE)
        }
    }

    private func fetchMetadata(_ role: String, version: Int?, maxLength: Int) async throws -> Data? {
        let name = TUFUpdater.percentEncode(role, keepSlash: false)
        let url = metadataBaseURL + (version.map { "\($0).\(name).json" } ?? "\(name).json")
        do {
            return try await fetcher.fetch(url, maxLength: maxLength)
        } catch let error as FerryError {
            throw error.prefixed("\(role.prefix(120)) metadata")
        } catch {
            throw FerryError.failed("\(role.prefix(120)) metadata: cannot fetch \(url): \(error)")
        }
    }

    private func persist(_ role: String, _ data: Data) throws {
        try AtomicFile.write(data, to: TUFUpdater.localPath(directory: metadataDirectory, role: role))
    }

    private func readLocal(_ role: String, maxLength: Int) throws -> Data? {
        try TUFUpdater.readLocal(directory: metadataDirectory, role: role, maxLength: maxLength)
    }

    static func localPath(directory: String, role: String) -> String {
        directory + "/" + percentEncode(role, keepSlash: false) + ".json"
    }

    static func readLocal(directory: String, role: String, maxLength: Int) throws -> Data? {
        try readFile(localPath(directory: directory, role: role), maxLength: maxLength)
    }

    /// Reads a regular file (no symlink as the last component), nil when it does not exist.
    static func readFile(_ path: String, maxLength: Int) throws -> Data? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw FerryError.failed("cannot open \(path): \(errnoString())")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw FerryError.failed("\(path) is not a regular file")
        }
        return try readAll(fd: fd, maxSize: maxLength, what: path)
    }

    /// Python's `urllib.parse.quote(s, safe="")` (or `safe="/"`): UTF-8 bytes other than letters, digits and
    /// `_.-~` become `%XX`. Role names go into URLs and file names this way, so `/` or `..` in a role name
    /// cannot name another file.
    public static func percentEncode(_ s: String, keepSlash: Bool) -> String {
        var out = ""
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}
