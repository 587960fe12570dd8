import Foundation

/// What is installed in one scope, and the timestamp records that outlive installs.
///
/// Stored as `state.json` (system: `/var/lib/ferry/state.json`; user: `$XDG_DATA_HOME/ferry/state.json`),
/// always replaced with ``AtomicFile`` so a crash leaves the old or the new state, never a mix.
public struct InstallState: Codable, Sendable, Equatable {
    public struct Installation: Codable, Sendable, Equatable {
        public var remote: RemoteName
        public var digest: Digest
        public var timestamp: Int64
        /// The active deployment, relative to the state root (`deploy/<ref>/<hex>`).
        public var deployment: String
        /// The deployment kept for one level of rollback.
        public var previous: String?
        /// Exported files (launchers, .desktop files), relative to the state root.
        public var exports: [String]?

        public init(remote: RemoteName, digest: Digest, timestamp: Int64, deployment: String, previous: String?,
                    exports: [String]? = nil) {
            self.remote = remote
            self.digest = digest
            self.timestamp = timestamp
            self.deployment = deployment
            self.previous = previous
            self.exports = exports
        }
    }

    /// The newest claim installed for a (remote, ref): what a new claim must not go back behind.
    public struct Record: Codable, Sendable, Equatable {
        public var timestamp: Int64
        public var digest: Digest
        public init(timestamp: Int64, digest: Digest) {
            self.timestamp = timestamp
            self.digest = digest
        }
    }

    public var version = 1
    public var installed: [String: Installation] = [:]
    /// Keyed by ``recordKey(remote:ref:)``.
    public var records: [String: Record] = [:]

    public init() {}

    public static func recordKey(remote: RemoteName, ref: Ref) -> String { "\(remote) \(ref)" }

    public func record(remote: RemoteName, ref: Ref) -> Record? { records[InstallState.recordKey(remote: remote, ref: ref)] }

    public static let maxSize = 64 * 1024 * 1024

    /// Loads state; a missing file is empty state. A corrupt file is an error, never silently reset:
    /// resetting would forget the timestamp records and let an old release back in.
    public static func load(from path: String) throws -> InstallState {
        guard let data = FileManager.default.contents(atPath: path) else { return InstallState() }
        return try decode(data, shown: path)
    }

    /// Decodes state read from `shown`; a corrupt file is an error (see ``load(from:)``).
    public static func decode(_ data: Data, shown: String) throws -> InstallState {
        guard data.count <= maxSize else { throw FerryError.failed("\(shown) is larger than 64 MiB") }
        do {
            return try JSONDecoder().decode(InstallState.self, from: data)
        } catch {
            throw FerryError.failed("\(shown) is corrupt: \(error)")
        }
    }

    /// The bytes of state.json: sorted keys, so a rewrite of the same state is the same file.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        do {
            return try encoder.encode(self)
        } catch {
            throw FerryError.failed("cannot encode state: \(error)")
        }
    }

    public func save(to path: String, mode: mode_t = 0o644) throws {
        try AtomicFile.write(try encoded(), to: path, mode: mode)
    }
}
