import FerryCore
import Foundation

/// Node hashes of the tree of `treeSize` entries, computed from its tiles: a node 8·L + k levels up is the root of
/// 2^k consecutive hashes of one tile at tile level L. Tiles are read once each (through `readTile`, which must
/// return exactly the tile's width of hashes) and kept for the life of the reader.
///
/// Nothing read is trusted here: a root or proof computed from tiles means something only once it matches a
/// checkpoint signed by the log key (``MerkleTree``'s verification functions).
public final class TileHashReader: NodeHashReader {
    public let treeSize: UInt64
    private let readTile: (Tile) throws -> [MerkleHash]
    private var cache: [Tile: [MerkleHash]] = [:]

    public init(treeSize: UInt64, readTile: @escaping (Tile) throws -> [MerkleHash]) {
        self.treeSize = treeSize
        self.readTile = readTile
    }

    /// The tiles of the tree held in memory: `levels[L]` is every hash at tile level L, from position 0.
    public convenience init(treeSize: UInt64, levels: [[MerkleHash]]) {
        self.init(treeSize: treeSize) { tile in
            let level = tile.level ?? 0
            guard let index = Int(exactly: tile.index), index < Int.max / Tile.fullWidth - 1, level < levels.count,
                index * Tile.fullWidth + tile.width <= levels[level].count
            else {
                throw FerryError.failed("\(tile.path) is not in memory")
            }
            let start = index * Tile.fullWidth
            return Array(levels[level][start..<(start + tile.width)])
        }
    }

    public func nodeHash(level: Int, index: UInt64) throws -> MerkleHash {
        let tileLevel = level / Tile.height
        let k = level % Tile.height
        guard level >= 0, tileLevel <= Tile.maxLevel, index <= UInt64.max >> k else {
            throw FerryError.invalidArgument("no node at level \(level), index \(index)")
        }
        let first = index << k
        let tileIndex = first / UInt64(Tile.fullWidth)
        let offset = Int(first % UInt64(Tile.fullWidth))
        let count = 1 << k
        let width = Tile.width(level: tileLevel, index: tileIndex, treeSize: treeSize)
        guard width >= offset + count else {
            throw FerryError.invalidArgument(
                "node at level \(level), index \(index) is not in the tree of \(treeSize) entries")
        }
        let tile = try Tile(level: tileLevel, index: tileIndex, width: width)
        let hashes: [MerkleHash]
        if let cached = cache[tile] {
            hashes = cached
        } else {
            hashes = try readTile(tile)
            guard hashes.count == width else {
                throw FerryError.invalidArgument("\(tile.path): \(hashes.count) hashes, expected \(width)")
            }
            cache[tile] = hashes
        }
        return MerkleHash.perfectRoot(hashes[offset..<(offset + count)])
    }
}
