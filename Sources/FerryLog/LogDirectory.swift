#if canImport(Glibc)
    import Glibc
#endif
import FerryCore
import Foundation

/// A tiled log on disk (`LAYOUT/log/`): `checkpoint`, `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`,
/// exactly the paths a web host serves (c2sp.org/tlog-tiles).
///
/// Reads go through ``DirectoryHandle`` (no symlinks followed, regular files only, size caps), since the same code
/// reads logs that other people wrote. A partial tile that is gone is read as the prefix of its full tile, as the
/// spec lets a log delete partial tiles once the full one exists.
public final class LogDirectory: @unchecked Sendable {
    public let path: String
    let handle: DirectoryHandle

    /// Opens an existing log directory.
    public init(path: String) throws {
        self.path = path
        handle = try DirectoryHandle(path: path)
    }

    /// The checkpoint's bytes, unverified.
    public func readCheckpoint() throws -> Data {
        guard let data = try handle.readFile("checkpoint", maxSize: SignedNote.maxSize) else {
            throw FerryError.invalidArgument("\(path) has no checkpoint")
        }
        return data
    }

    /// The hashes of `tile`, falling back to the prefix of the full tile when a partial one is missing.
    public func hashes(of tile: Tile) throws -> [MerkleHash] {
        if let data = try read(tile) { return try tile.decodeHashes(data) }
        if tile.isPartial, let level = tile.level, let data = try read(Tile(level: level, index: tile.index)) {
            return Array(try Tile(level: level, index: tile.index).decodeHashes(data).prefix(tile.width))
        }
        throw FerryError.invalidArgument("\(path) has no \(tile.path)")
    }

    /// The entries of the bundle `tile`, falling back to the prefix of the full bundle like ``hashes(of:)``.
    public func entries(of tile: Tile) throws -> [Data] {
        if let data = try read(tile) { return try EntryBundle.decode(data, count: tile.width, what: tile.path) }
        if tile.isPartial, let data = try read(Tile(entriesAt: tile.index)) {
            let full = try EntryBundle.decode(data, count: Tile.fullWidth, what: Tile(entriesAt: tile.index).path)
            return Array(full.prefix(tile.width))
        }
        throw FerryError.invalidArgument("\(path) has no \(tile.path)")
    }

    /// The raw bytes of a tile or bundle; `nil` when there is no such file.
    public func read(_ tile: Tile) throws -> Data? {
        let max = tile.isEntryBundle ? EntryBundle.maxSize : Tile.fullWidth * MerkleHash.size
        return try handle.readFile(tile.path, maxSize: max)
    }

    /// Node hashes of the tree of `size` entries from the tiles in this directory. With `logSize` (the size of a
    /// later checkpoint), each tile is read as the prefix of the tile that the tree of `logSize` has: the partial
    /// tiles of a size no checkpoint was signed for never exist, but their hashes are the prefix of wider ones.
    public func hashReader(treeSize size: UInt64, tilesOf logSize: UInt64? = nil) -> TileHashReader {
        TileHashReader(treeSize: size) { tile in
            guard let logSize, let level = tile.level, logSize > size else { return try self.hashes(of: tile) }
            let width = Tile.width(level: level, index: tile.index, treeSize: logSize)
            guard width >= tile.width else { return try self.hashes(of: tile) }
            return Array(try self.hashes(of: Tile(level: level, index: tile.index, width: width)).prefix(tile.width))
        }
    }

    // MARK: - Writing (the appender, and cosignatures)

    /// Adds witness cosignatures to the checkpoint whose text is `text` (replacing older ones by the same keys),
    /// under the appender's lock. Refused when the checkpoint changed meanwhile (an append signed a new one).
    public func addCosignatures(_ signatures: [NoteSignature], to text: String) throws {
        let lock = try FileLock(in: handle, name: LogAppender.lockName)
        defer { lock.unlock() }
        var note = try SignedNote(try readCheckpoint())
        guard note.text == text else {
            throw FerryError.failed("\(path): the checkpoint changed while it was being witnessed; witness it again")
        }
        for signature in signatures { note = note.adding(signature) }
        try write(note.serialized, to: "checkpoint")
    }

    /// Replaces the file at `relativePath` durably (``AtomicFile``: temporary file, fsync, rename, directory fsync),
    /// creating directories on the way; a directory it creates is synced into its parent before anything is written
    /// in it, so a synced file is never in a directory that a crash can lose.
    func write(_ data: Data, to relativePath: String, mode: mode_t = 0o644) throws {
        let parts = try DirectoryHandle.components(of: relativePath)
        var dir = handle
        for part in parts.dropLast() {
            try DirectoryHandle.checkComponent(part)
            if mkdirat(dir.fd, part, 0o755) == 0 { try dir.sync() }
            dir = try dir.makeSubdirectory(part)
        }
        try AtomicFile.write(data, in: dir, name: parts[parts.count - 1], mode: mode)
    }

    /// Removes the file at `relativePath`, then syncs its directory; a missing file is not an error.
    func remove(_ relativePath: String) throws {
        let parts = try DirectoryHandle.components(of: relativePath)
        let dir = parts.count == 1 ? handle : try handle.openDirectory(parts.dropLast().joined(separator: "/"))
        guard let dir else { return }
        try dir.unlinkEntry(parts[parts.count - 1])
        try dir.sync()
    }

    /// Removes the partial versions (`<N>.p/*`) of a tile that is now full.
    func removePartials(of tile: Tile) throws {
        let partialDirectory = tile.path + ".p"
        guard let dir = try handle.openDirectory(partialDirectory) else { return }
        for name in try dir.entryNames() { try dir.unlinkEntry(name) }
        let parts = try DirectoryHandle.components(of: partialDirectory)
        let parent = parts.count == 1 ? handle : try handle.openDirectory(parts.dropLast().joined(separator: "/"))
        if let parent, parent.removeEmptyDirectory(parts[parts.count - 1]) { try parent.sync() }
    }
}
