import FerryCore
import FerryFetch
import FerryLog
import Foundation

/// Copies a remote's whole transparency log (`BASE/log/`: checkpoint, every hash tile and entry bundle of the
/// checkpoint's tree) into a local directory, for `ferry log audit` and `ferry mirror`.
///
/// Full tiles never change, so one already in the directory is kept (whoever reads the copy verifies it against the
/// checkpoint: ``LogVerifier``); partial tiles and the checkpoint are fetched every time. The checkpoint is written
/// last, so an interrupted copy leaves the previous checkpoint with all its tiles, and the copy is a log by itself.
struct LogDownload: Sendable {
    let base: String
    let transport: HTTPTransport

    /// The signed checkpoint the remote serves, unverified; `nil` when the remote has no log.
    func checkpointData() async throws -> Data? {
        try await transport.fetch(base + "/log/checkpoint", maxSize: SignedNote.maxSize)
    }

    /// Copies the log into `directory` (created if needed) and returns the checkpoint's bytes; `nil` when the remote
    /// has no log. `logKey` verifies the checkpoint before anything is fetched; without it, the size is read
    /// unverified (a mirror copies what is there; its clients verify).
    func copy(into directory: String, logKey: NoteVerifierKey?) async throws -> Data? {
        guard let data = try await checkpointData() else { return nil }
        let checkpoint = try logKey.map { try Checkpoint.open(data, logKey: $0).checkpoint }
            ?? Checkpoint(text: try SignedNote(data).text)
        let needed = LogDownload.tiles(treeSize: checkpoint.size).filter { tile in
            tile.isPartial || !FileManager.default.fileExists(atPath: directory + "/" + tile.path)
        }
        // A few requests in flight: a log of a million entries is thousands of small files.
        try await withThrowingTaskGroup(of: Void.self) { group in
            var running = 0
            for tile in needed {
                if running >= LogDownload.parallelism {
                    try await group.next()
                    running -= 1
                }
                group.addTask { try await self.fetch(tile, into: directory, size: checkpoint.size) }
                running += 1
            }
            try await group.waitForAll()
        }
        try AtomicFile.write(data, to: directory + "/checkpoint")
        return data
    }

    static let parallelism = 8

    private func fetch(_ tile: Tile, into directory: String, size: UInt64) async throws {
        let path = directory + "/" + tile.path
        let limit = tile.isEntryBundle ? EntryBundle.maxSize : Tile.fullWidth * MerkleHash.size
        guard let bytes = try await transport.fetch(base + "/log/" + tile.path, maxSize: limit) else {
            throw FerryError.failed("\(base)/log/\(tile.path): not found (the checkpoint has \(size) entries)")
        }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try AtomicFile.write(bytes, to: path)
    }

    /// Every hash tile and entry bundle of a tree of `size` entries, leaves first.
    static func tiles(treeSize size: UInt64) -> [Tile] {
        var tiles: [Tile] = []
        var level = 0
        while level <= Tile.maxLevel {
            let hashes = size >> UInt64(Tile.height * level)
            if hashes == 0 { break }
            let full = hashes / UInt64(Tile.fullWidth)
            let rest = Int(hashes % UInt64(Tile.fullWidth))
            for index in 0..<full {
                if level == 0, let bundle = try? Tile(entriesAt: index) { tiles.append(bundle) }
                if let tile = try? Tile(level: level, index: index) { tiles.append(tile) }
            }
            if rest > 0 {
                if level == 0, let bundle = try? Tile(entriesAt: full, width: rest) { tiles.append(bundle) }
                if let tile = try? Tile(level: level, index: full, width: rest) { tiles.append(tile) }
            }
            level += 1
        }
        return tiles
    }
}
