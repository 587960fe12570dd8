import FerryCore
import Foundation

/// Checks a whole log directory against its checkpoint, the way a monitor does: every entry bundle and every
/// hash tile of the checkpoint's tree is read, recomputed from the entries and compared, and the recomputed root
/// must be the signed one. Cost is linear in the log; clients use proofs instead.
public enum LogVerifier {
    /// Verifies the log in `directory` with `logKey` and returns its checkpoint. `entry` sees every entry in order
    /// (index, bytes) before the root is compared, so a caller must treat them as unverified until this returns.
    @discardableResult
    public static func verify(_ directory: LogDirectory, logKey: NoteVerifierKey,
                              entry: (UInt64, Data) throws -> Void = { _, _ in }) throws -> Checkpoint
    {
        let checkpoint = try Checkpoint.open(try directory.readCheckpoint(), logKey: logKey).checkpoint
        let size = checkpoint.size
        var leaves: [MerkleHash] = []
        var index: UInt64 = 0
        var bundle: UInt64 = 0
        while index < size {
            let width = Tile.width(level: 0, index: bundle, treeSize: size)
            for data in try directory.entries(of: Tile(entriesAt: bundle, width: width)) {
                try entry(index, data)
                leaves.append(.leaf(data))
                index += 1
            }
            bundle += 1
        }
        var levels: [[MerkleHash]] = []
        var hashes = leaves
        var level = 0
        while !hashes.isEmpty {
            levels.append(hashes)
            var tileIndex: UInt64 = 0
            var start = 0
            var parents: [MerkleHash] = []
            while start < hashes.count {
                let end = min(start + Tile.fullWidth, hashes.count)
                let tile = try Tile(level: level, index: tileIndex, width: end - start)
                guard try directory.hashes(of: tile) == Array(hashes[start..<end]) else {
                    throw FerryError.untrusted("\(directory.path): \(tile.path) does not match the log's entries")
                }
                if end - start == Tile.fullWidth { parents.append(MerkleHash.perfectRoot(hashes[start..<end])) }
                start = end
                tileIndex += 1
            }
            hashes = parents
            level += 1
        }
        let root = try MerkleTree.rootHash(size: size, reader: TileHashReader(treeSize: size, levels: levels))
        guard root == checkpoint.rootHash else {
            throw FerryError.untrusted(
                "\(directory.path): the entries hash to \(root.base64), the checkpoint signs "
                    + checkpoint.rootHash.base64)
        }
        return checkpoint
    }
}
