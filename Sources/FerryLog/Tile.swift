import FerryCore
import Foundation

/// One tile of a tiled log (c2sp.org/tlog-tiles): 256 consecutive hashes at one level of the tree, or the entry
/// bundle beside the level-0 tile. Tiles have height 8: a hash at tile level `L` is the node 8·L levels above the
/// leaves, and a full tile at level `L` hashes to one hash of the tile above it.
///
/// A tile that is not full (the right edge of the tree) is *partial*: it has `width` < 256 hashes and its own path
/// (`.p/<W>`), so a full tile, once written, never changes and can be cached forever.
public struct Tile: Hashable, Sendable, CustomStringConvertible {
    /// Hashes (or entries) in a full tile.
    public static let fullWidth = 256
    /// Levels of the tree that one tile spans.
    public static let height = 8
    /// Tile levels a path may name (the spec's bound).
    public static let maxLevel = 63

    /// The tile level, 0 for leaf hashes; `nil` for an entry bundle.
    public let level: Int?
    /// The tile's index within its level.
    public let index: UInt64
    /// Hashes or entries in the tile: 1...256.
    public let width: Int

    /// A hash tile. Level 0...63, width 1...256.
    public init(level: Int, index: UInt64, width: Int = Tile.fullWidth) throws {
        guard (0...Tile.maxLevel).contains(level) else { throw FerryError.invalidArgument("tile level \(level)") }
        guard (1...Tile.fullWidth).contains(width) else { throw FerryError.invalidArgument("tile width \(width)") }
        self.level = level
        self.index = index
        self.width = width
    }

    /// An entry bundle. Width 1...256.
    public init(entriesAt index: UInt64, width: Int = Tile.fullWidth) throws {
        guard (1...Tile.fullWidth).contains(width) else { throw FerryError.invalidArgument("bundle width \(width)") }
        self.level = nil
        self.index = index
        self.width = width
    }

    public var isPartial: Bool { width < Tile.fullWidth }
    public var isEntryBundle: Bool { level == nil }

    /// `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`, relative to the log's prefix.
    public var path: String {
        let levelName = level.map { String($0) } ?? "entries"
        return "tile/\(levelName)/\(Tile.encodeIndex(index))" + (isPartial ? ".p/\(width)" : "")
    }

    public var description: String { path }

    /// `N` as zero-padded three-digit path elements, all but the last prefixed with `x` (1234067 →
    /// `x001/x234/067`), so that a directory and a file never share a name.
    public static func encodeIndex(_ index: UInt64) -> String {
        var groups = [index % 1000]
        var rest = index / 1000
        while rest > 0 {
            groups.append(rest % 1000)
            rest /= 1000
        }
        let padded = groups.reversed().map { group -> String in
            let digits = String(group)
            return String(repeating: "0", count: 3 - digits.count) + digits
        }
        return padded.dropLast().map { "x" + $0 }.joined(separator: "/")
            + (padded.count > 1 ? "/" : "") + (padded.last ?? "000")
    }

    /// Parses a tile or entry bundle path. Only the canonical spelling is accepted (no leading zeros in the level
    /// or width, no `x000` leading group, no width 256 spelled as partial), so one tile has exactly one path.
    public init(path: String) throws {
        let refused = FerryError.invalidArgument("not a tile path: \(path.prefix(120).debugDescription)")
        guard path.utf8.count <= 128 else { throw refused }
        var parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 3, parts[0] == "tile" else { throw refused }
        var width = Tile.fullWidth
        if parts.count >= 4, parts[parts.count - 2].hasSuffix(".p") {
            guard let w = Tile.decimal(parts[parts.count - 1], max: UInt64(Tile.fullWidth - 1)), w >= 1
            else { throw refused }
            width = Int(w)
            parts.removeLast()
            parts[parts.count - 1].removeLast(2)
        }
        let groups = parts[2...]
        guard groups.count <= 7 else { throw refused }
        var index: UInt64 = 0
        for (i, group) in groups.enumerated() {
            let last = i == groups.count - 1
            var digits = Substring(group)
            if !last {
                guard digits.first == "x" else { throw refused }
                digits = digits.dropFirst()
            }
            guard digits.utf8.count == 3, digits.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
                let value = UInt64(digits)
            else { throw refused }
            let (shifted, overflow1) = index.multipliedReportingOverflow(by: 1000)
            let (sum, overflow2) = shifted.addingReportingOverflow(value)
            guard !overflow1, !overflow2 else { throw refused }
            index = sum
        }
        if parts[1] == "entries" {
            try self.init(entriesAt: index, width: width)
        } else {
            guard let level = Tile.decimal(parts[1], max: UInt64(Tile.maxLevel)) else { throw refused }
            try self.init(level: Int(level), index: index, width: width)
        }
        guard self.path == path else { throw refused }
    }

    /// A decimal with no sign and no leading zero, at most `max`.
    static func decimal(_ text: String, max: UInt64) -> UInt64? {
        guard !text.isEmpty, text.utf8.count <= 20, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
            text == "0" || !text.hasPrefix("0"), let value = UInt64(text), value <= max
        else { return nil }
        return value
    }

    // MARK: - Which tiles a tree has

    /// The width of the tile at `level` and `index` in a tree of `size` entries; 0 when the tree does not reach it.
    public static func width(level: Int, index: UInt64, treeSize size: UInt64) -> Int {
        let shift = UInt64(Tile.height * level)
        guard shift < 64 else { return 0 }
        let hashes = size >> shift
        let start = index.multipliedReportingOverflow(by: UInt64(Tile.fullWidth))
        guard !start.overflow, hashes > start.partialValue else { return 0 }
        return Int(min(UInt64(Tile.fullWidth), hashes - start.partialValue))
    }

    // MARK: - Tile data

    /// The bytes of a hash tile: its hashes, concatenated.
    public static func encode(_ hashes: some Collection<MerkleHash>) -> Data {
        var data = Data(capacity: hashes.count * MerkleHash.size)
        for hash in hashes { data.append(contentsOf: hash.bytes) }
        return data
    }

    /// Splits the bytes of this hash tile into its hashes; the length must be exactly `width` × 32.
    public func decodeHashes(_ data: Data) throws -> [MerkleHash] {
        guard data.count == width * MerkleHash.size else {
            throw FerryError.invalidArgument("\(path): \(data.count) bytes, a tile of width \(width) has "
                + "\(width * MerkleHash.size)")
        }
        var hashes: [MerkleHash] = []
        hashes.reserveCapacity(width)
        var offset = data.startIndex
        while offset < data.endIndex {
            let next = offset + MerkleHash.size
            if let hash = MerkleHash(bytes: data[offset..<next]) { hashes.append(hash) }
            offset = next
        }
        return hashes
    }
}
