import FerryCore
import Foundation

/// One line of `history.jsonl`: what changed in a scope, when, by whom, from which digest to which.
public struct HistoryEntry: Codable, Sendable, Equatable {
    public enum Action: String, Codable, Sendable {
        case install, update, downgrade, rollback, uninstall
        /// A rollback off a release the remote's log recalled (or whose signing key it revoked).
        case recall
        /// The app ID moved to another remote (`--switch-remote`).
        case switchRemote = "switch-remote"
    }

    /// Unix seconds.
    public var time: Int64
    /// The user who asked (the bus caller for the helper, the user running the agent for `--user`).
    public var uid: UInt32
    public var action: Action
    public var remote: RemoteName
    public var ref: Ref
    /// The manifest digest installed before, if any.
    public var from: Digest?
    /// The manifest digest installed after, if any.
    public var to: Digest?

    public init(time: Int64, uid: UInt32, action: Action, remote: RemoteName, ref: Ref, from: Digest?, to: Digest?) {
        self.time = time
        self.uid = uid
        self.action = action
        self.remote = remote
        self.ref = ref
        self.from = from
        self.to = to
    }
}

/// `history.jsonl` beside `state.json`: one JSON object per line, appended under the state lock after each change
/// is committed, and synced. A reader skips lines it cannot parse (a line cut by a crash is never half-trusted).
///
/// The history is a record for people, not an input to any decision: nothing Ferry decides is read from it.
public enum History {
    static let fileName = "history.jsonl"
    /// The most of the file that ``read(_:)`` reads (the newest lines are at the end).
    public static let maxReadSize = 16 * 1024 * 1024

    /// Appends `entry` to the history file in `root` (created with `mode`, never through a symlink).
    static func append(_ entry: HistoryEntry, in root: DirectoryHandle, mode: mode_t) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var line: Data
        do {
            line = try encoder.encode(entry)
        } catch {
            throw FerryError.failed("cannot encode a history entry: \(error)")
        }
        line.append(0x0a)
        let fd = openat(root.fd, fileName, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw ioError("open \(fileName)") }
        defer { close(fd) }
        // A line cut by a crash must not swallow this one: start on a fresh line.
        var st = stat()
        var last: UInt8 = 0x0a
        if fstat(fd, &st) == 0, st.st_size > 0, pread(fd, &last, 1, off_t(st.st_size - 1)) == 1, last != 0x0a {
            line.insert(0x0a, at: 0)
        }
        try writeAll(fd: fd, data: line, what: fileName)
        guard fsync(fd) == 0 else { throw ioError("fsync \(fileName)") }
    }

    /// The entries of the history file of `paths`, oldest first; a missing file is an empty history.
    public static func read(_ paths: InstallPaths) throws -> [HistoryEntry] {
        guard let root = try? DirectoryHandle(path: paths.root) else { return [] }
        guard let (fd, size) = try root.openFile(fileName) else { return [] }
        defer { close(fd) }
        if size > Int64(maxReadSize) { _ = lseek(fd, off_t(size - Int64(maxReadSize)), SEEK_SET) }
        let data = try readAll(fd: fd, maxSize: maxReadSize, what: fileName)
        let decoder = JSONDecoder()
        return data.split(separator: 0x0a).compactMap { try? decoder.decode(HistoryEntry.self, from: Data($0)) }
    }
}
