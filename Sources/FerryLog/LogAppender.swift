#if canImport(Glibc)
    import Glibc
#endif
import FerryCore
import Foundation

/// Appends entries to a tiled log on disk and signs the new checkpoint: the publisher's side of the log.
///
/// Crash safety: the checkpoint is the commit point and is written last, by an atomic rename. Before it, the
/// append writes a journal (`.append-last`: the old size and the new entries), then the entry bundles, then the
/// hash tiles level by level, each file complete or absent (``AtomicFile``). A kill at any point leaves the old
/// checkpoint, whose tiles are all still there, so the log verifies; the next append finishes the journalled one
/// first, writing exactly the same files (a full tile, once written, never changes). The journal stays after the
/// commit, so a retry of the same entries, after a kill at any point, finishes or recognises that append instead
/// of adding the entries twice (appending exactly the last append's entries again is therefore a no-op). Appends
/// are serialized by `flock` on `.append-lock`.
public final class LogAppender {
    /// The journal of the last append, finished or not.
    static let journalName = ".append-last"
    static let lockName = ".append-lock"
    static let journalMagic = "ferry log append v1\n"
    /// Entries one append may add (a journal of at most this many maximal entries stays well below memory limits).
    public static let maxEntriesPerAppend = 1 << 16

    public let directory: LogDirectory
    public let signer: NoteSignerKey

    /// Called after each durable step with the path it wrote or removed (tests stop the append there, as a kill
    /// would).
    var afterWrite: ((String) throws -> Void)?

    /// Opens the log in `path` (`LAYOUT/log`), which `create(at:signer:)` made, for appends signed by `signer`.
    public init(path: String, signer: NoteSignerKey) throws {
        guard signer.type == .ed25519 else {
            throw FerryError.invalidArgument("\(signer.name): a log signs with an Ed25519 (type 0x01) key, "
                + "not a witness key")
        }
        directory = try LogDirectory(path: path)
        self.signer = signer
    }

    /// Starts an empty log in `path` (created when missing): the checkpoint of size 0 with the empty tree's root,
    /// origin the signer's name. Refuses a directory that already has a checkpoint.
    @discardableResult
    public static func create(at path: String, signer: NoteSignerKey) throws -> Checkpoint {
        guard signer.type == .ed25519 else {
            throw FerryError.invalidArgument("\(signer.name): a log signs with an Ed25519 (type 0x01) key, "
                + "not a witness key")
        }
        if mkdir(path, 0o755) == 0 {
            try AtomicFile.syncDirectory((path as NSString).deletingLastPathComponent.isEmpty
                ? "." : (path as NSString).deletingLastPathComponent)
        } else if errno != EEXIST {
            throw ioError("create \(path)")
        }
        let directory = try LogDirectory(path: path)
        let lock = try FileLock(in: directory.handle, name: lockName)
        defer { lock.unlock() }
        if directory.handle.exists("checkpoint") {
            throw FerryError.invalidArgument("\(path) already has a log (checkpoint exists)")
        }
        let checkpoint = try Checkpoint(origin: signer.name, size: 0, rootHash: .emptyTree)
        let note = try SignedNote.sign(text: checkpoint.text, with: [signer])
        try directory.write(note.serialized, to: "checkpoint")
        return checkpoint
    }

    /// The current checkpoint, verified with the signer's own key.
    public func checkpoint() throws -> Checkpoint {
        try Checkpoint.open(try directory.readCheckpoint(), logKey: signer.verifierKey).checkpoint
    }

    /// Appends `entries` (each at most 65,535 bytes) and returns the new checkpoint. An interrupted append is
    /// finished first; if the last append (finished or not) was of these same entries, this call only finishes it.
    @discardableResult
    public func append(_ entries: [Data]) throws -> Checkpoint {
        guard entries.count <= LogAppender.maxEntriesPerAppend else {
            throw FerryError.invalidArgument("at most \(LogAppender.maxEntriesPerAppend) entries per append")
        }
        for entry in entries where entry.count > EntryBundle.maxEntrySize {
            throw FerryError.invalidArgument("log entry of \(entry.count) bytes; at most \(EntryBundle.maxEntrySize)")
        }
        let lock = try FileLock(in: directory.handle, name: LogAppender.lockName)
        defer { lock.unlock() }
        var current = try checkpoint()
        if let pending = try readJournal() {
            if pending.base == current.size {
                // Interrupted before its checkpoint: finish it, writing exactly the files it would have written.
                current = try apply(pending.entries, to: current)
            } else if pending.base + UInt64(pending.entries.count) != current.size {
                throw FerryError.failed(
                    "\(directory.path): the last append (from size \(pending.base), \(pending.entries.count) "
                        + "entries) does not match the checkpoint (size \(current.size))")
            }
            try removePartials(from: pending.base, to: current.size)
            // A retry of the last append (its caller was killed before it heard back) adds nothing twice.
            if pending.entries == entries { return current }
        }
        if entries.isEmpty { return current }
        try writeJournal(base: current.size, entries: entries)
        let next = try apply(entries, to: current)
        try removePartials(from: current.size, to: next.size)
        return next
    }

    // MARK: - The steps

    /// Writes the bundles and tiles of `entries` after the tree of `current`, then the signed checkpoint.
    private func apply(_ entries: [Data], to current: Checkpoint) throws -> Checkpoint {
        let oldSize = current.size
        let (newSize, overflow) = oldSize.addingReportingOverflow(UInt64(entries.count))
        guard !overflow, newSize <= UInt64(Int64.max) else { throw FerryError.invalidArgument("log is full") }

        // The tree so far must be the one the checkpoint signs: never extend tiles that do not match it.
        let oldReader = directory.hashReader(treeSize: oldSize)
        guard try MerkleTree.rootHash(size: oldSize, reader: oldReader) == current.rootHash else {
            throw FerryError.failed("\(directory.path): the tiles do not match the checkpoint's root hash")
        }

        // Entry bundles: the old partial bundle's entries, then the new ones.
        let firstBundle = oldSize / UInt64(Tile.fullWidth)
        let oldInBundle = Int(oldSize % UInt64(Tile.fullWidth))
        var bundleEntries: [Data] = []
        if oldInBundle > 0 {
            bundleEntries = try directory.entries(of: Tile(entriesAt: firstBundle, width: oldInBundle))
            let leaves = try directory.hashes(of: Tile(level: 0, index: firstBundle, width: oldInBundle))
            guard bundleEntries.map({ MerkleHash.leaf($0) }) == leaves else {
                throw FerryError.failed("\(directory.path): entry bundle \(firstBundle) does not match its tile")
            }
        }
        bundleEntries += entries
        try writeChunks(bundleEntries, startingAt: firstBundle, isFull: { $0 == Tile.fullWidth }) { index, chunk in
            let tile = try Tile(entriesAt: index, width: chunk.count)
            return (tile, try EntryBundle.encode(chunk))
        }

        // Hash tiles, level by level: each level's hashes start at its old partial tile; every full tile adds its
        // root to the level above.
        var level = 0
        var hashes = try oldPartialHashes(level: 0, oldSize: oldSize) + entries.map { MerkleHash.leaf($0) }
        while true {
            let firstTile = (oldSize >> UInt64(Tile.height * level)) / UInt64(Tile.fullWidth)
            try writeChunks(hashes, startingAt: firstTile, isFull: { $0 == Tile.fullWidth }) { index, chunk in
                let tile = try Tile(level: level, index: index, width: chunk.count)
                return (tile, Tile.encode(chunk))
            }
            let nextShift = UInt64(Tile.height * (level + 1))
            guard nextShift < 64, newSize >> nextShift > 0 else { break }
            var parents = try oldPartialHashes(level: level + 1, oldSize: oldSize)
            var start = 0
            while start + Tile.fullWidth <= hashes.count {
                parents.append(MerkleHash.perfectRoot(hashes[start..<(start + Tile.fullWidth)]))
                start += Tile.fullWidth
            }
            hashes = parents
            level += 1
        }

        // Read back what was written: the root comes from the files a client will fetch, not from memory.
        let root = try MerkleTree.rootHash(size: newSize, reader: directory.hashReader(treeSize: newSize))
        let next = try Checkpoint(origin: current.origin, size: newSize, rootHash: root)
        let note = try SignedNote.sign(text: next.text, with: [signer])
        try directory.write(note.serialized, to: "checkpoint")
        try afterWrite?("checkpoint")
        return next
    }

    /// The hashes of the partial tile at `level` in the tree of `oldSize` entries (none when it would be empty).
    private func oldPartialHashes(level: Int, oldSize: UInt64) throws -> [MerkleHash] {
        let shift = UInt64(Tile.height * level)
        guard shift < 64 else { return [] }
        let count = Int((oldSize >> shift) % UInt64(Tile.fullWidth))
        guard count > 0 else { return [] }
        let index = (oldSize >> shift) / UInt64(Tile.fullWidth)
        return try directory.hashes(of: Tile(level: level, index: index, width: count))
    }

    /// Writes `items` as consecutive tiles from tile `first`: full tiles only when absent (and refused when present
    /// with other bytes: a full tile is immutable), the last partial tile always.
    private func writeChunks<T>(_ items: [T], startingAt first: UInt64, isFull: (Int) -> Bool,
                                encode: (UInt64, ArraySlice<T>) throws -> (Tile, Data)) throws {
        var start = 0
        var index = first
        while start < items.count {
            let end = min(start + Tile.fullWidth, items.count)
            let (tile, data) = try encode(index, items[start..<end])
            if !tile.isPartial, let existing = try directory.read(tile) {
                guard existing == data else {
                    throw FerryError.failed(
                        "\(directory.path)/\(tile.path) exists with other content; a full tile is never rewritten")
                }
            } else {
                try directory.write(data, to: tile.path)
                try afterWrite?(tile.path)
            }
            start = end
            index += 1
        }
    }

    /// Removes partial tiles and bundles that the append from `oldSize` to `newSize` made full (the spec allows it
    /// once the full tile exists; it keeps the directory from growing by one file per append forever).
    private func removePartials(from oldSize: UInt64, to newSize: UInt64) throws {
        var level = 0
        while level <= Tile.maxLevel {
            let shift = UInt64(Tile.height * level)
            guard shift < 64, newSize >> shift > 0 else { break }
            let firstTile = (oldSize >> shift) / UInt64(Tile.fullWidth)
            let fullTiles = (newSize >> shift) / UInt64(Tile.fullWidth)
            var index = firstTile
            while index < fullTiles {
                try directory.removePartials(of: Tile(level: level, index: index))
                if level == 0 { try directory.removePartials(of: Tile(entriesAt: index)) }
                index += 1
            }
            level += 1
        }
    }

    // MARK: - Journal and lock

    private func writeJournal(base: UInt64, entries: [Data]) throws {
        var data = Data("\(LogAppender.journalMagic)\(base)\n\(entries.count)\n".utf8)
        data += try EntryBundle.encode(entries)
        try directory.write(data, to: LogAppender.journalName, mode: 0o600)
        try afterWrite?(LogAppender.journalName)
    }

    private func readJournal() throws -> (base: UInt64, entries: [Data])? {
        let max = 64 + LogAppender.maxEntriesPerAppend * (2 + EntryBundle.maxEntrySize)
        guard let data = try directory.handle.readFile(LogAppender.journalName, maxSize: max) else { return nil }
        let refused = FerryError.failed("\(directory.path)/\(LogAppender.journalName) is not an append journal")
        let magic = Data(LogAppender.journalMagic.utf8)
        guard data.starts(with: magic) else { throw refused }
        var rest = data.dropFirst(magic.count)
        var numbers: [UInt64] = []
        for _ in 0..<2 {
            guard let newline = rest.firstIndex(of: 0x0a),
                let value = Tile.decimal(String(decoding: rest[..<newline], as: UTF8.self), max: UInt64(Int64.max))
            else { throw refused }
            numbers.append(value)
            rest = rest[(newline + 1)...]
        }
        guard numbers[1] <= UInt64(LogAppender.maxEntriesPerAppend) else { throw refused }
        let entries = try EntryBundle.decode(Data(rest), count: Int(numbers[1]), what: LogAppender.journalName,
                                             maxBytes: max)
        return (numbers[0], entries)
    }
}
