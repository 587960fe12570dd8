import FerryCore
import FerryLog
import XCTest

/// Tile and entry bundle paths and encodings (c2sp.org/tlog-tiles), with the spec's own examples.
final class TileTests: XCTestCase {
    func testIndexIsThreeDigitGroupsWithXPrefixes() throws {
        // The spec's example: index 1234067 is x001/x234/067.
        XCTAssertEqual(Tile.encodeIndex(1_234_067), "x001/x234/067")
        XCTAssertEqual(Tile.encodeIndex(0), "000")
        XCTAssertEqual(Tile.encodeIndex(999), "999")
        XCTAssertEqual(Tile.encodeIndex(1000), "x001/000")
        XCTAssertEqual(Tile.encodeIndex(UInt64.max), "x018/x446/x744/x073/x709/x551/615")
        XCTAssertEqual(try Tile(level: 0, index: 1_234_067).path, "tile/0/x001/x234/067")
        XCTAssertEqual(try Tile(level: 2, index: 5, width: 17).path, "tile/2/005.p/17")
        XCTAssertEqual(try Tile(entriesAt: 1_234_067, width: 1).path, "tile/entries/x001/x234/067.p/1")
    }

    func testTreeOf70000HasTheTilesTheSpecLists() {
        // "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0 tile of width
        // 112, one full level 1 tile, one partial level 1 tile of width 17, and one partial level 2 tile of width 1"
        XCTAssertEqual(Tile.width(level: 0, index: 272, treeSize: 70_000), 256)
        XCTAssertEqual(Tile.width(level: 0, index: 273, treeSize: 70_000), 112)
        XCTAssertEqual(Tile.width(level: 0, index: 274, treeSize: 70_000), 0)
        XCTAssertEqual(Tile.width(level: 1, index: 0, treeSize: 70_000), 256)
        XCTAssertEqual(Tile.width(level: 1, index: 1, treeSize: 70_000), 17)
        XCTAssertEqual(Tile.width(level: 2, index: 0, treeSize: 70_000), 1)
        XCTAssertEqual(Tile.width(level: 3, index: 0, treeSize: 70_000), 0)
        // "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile of width 1"
        XCTAssertEqual(Tile.width(level: 0, index: 0, treeSize: 256), 256)
        XCTAssertEqual(Tile.width(level: 0, index: 1, treeSize: 256), 0)
        XCTAssertEqual(Tile.width(level: 1, index: 0, treeSize: 256), 1)
    }

    func testPathsParseBackToTheirTiles() throws {
        for tile in [try Tile(level: 0, index: 0), try Tile(level: 63, index: 1_234_067, width: 255),
                     try Tile(entriesAt: 1000, width: 3), try Tile(level: 1, index: UInt64.max)]
        {
            XCTAssertEqual(try Tile(path: tile.path), tile)
        }
    }

    func testNonCanonicalOrInvalidPathsAreRefused() {
        for path in ["tile/00/000", "tile/64/000", "tile/-1/000", "tile/0/00", "tile/0/0000", "tile/0/001/002",
                     "tile/0/x000/001", "tile/0/000.p/256", "tile/0/000.p/0", "tile/0/000.p/05", "tile/0/000.p/",
                     "tile/0/000.p", "tile/data/000", "tile/0", "tiles/0/000", "tile/0/000/", "/tile/0/000",
                     "tile/0/x999/x999/x999/x999/x999/x999/999", "tile/0/x001/x001/x001/x001/x001/x001/x001/001",
                     "tile/0/+01", "tile/0/x00a/000", "tile/entries/000.p/1/2"]
        {
            XCTAssertThrowsError(try Tile(path: path), path) { error in
                XCTAssertEqual(error as? FerryError, .invalidArgument("not a tile path: \(path.debugDescription)"))
            }
        }
    }

    func testTileDataMustBeExactlyItsWidthOfHashes() throws {
        let tile = try Tile(level: 0, index: 0, width: 2)
        let hashes = [MerkleHash.leaf(Data("a".utf8)), MerkleHash.leaf(Data("b".utf8))]
        XCTAssertEqual(try tile.decodeHashes(Tile.encode(hashes)), hashes)
        XCTAssertThrowsError(try tile.decodeHashes(Tile.encode(hashes).dropLast())) {
            XCTAssertEqual($0 as? FerryError, .invalidArgument("tile/0/000.p/2: 63 bytes, a tile of width 2 has 64"))
        }
        XCTAssertThrowsError(try tile.decodeHashes(Tile.encode(hashes + hashes)))
    }

    func testEntryBundlesAreBigEndianLengthPrefixed() throws {
        let entries = [Data("a".utf8), Data(), Data(repeating: 7, count: 300)]
        let bundle = try EntryBundle.encode(entries)
        XCTAssertEqual(Array(bundle.prefix(6)), [0x00, 0x01, 0x61, 0x00, 0x00, 0x01])
        XCTAssertEqual(bundle.count, 2 + 1 + 2 + 2 + 300)
        XCTAssertEqual(try EntryBundle.decode(bundle, count: 3, what: "b"), entries)
    }

    func testMalformedBundlesAreRefusedWithTheirReason() throws {
        let bundle = try EntryBundle.encode([Data("abc".utf8), Data("de".utf8)])
        let cases: [(Data, Int, String)] = [
            (bundle.dropLast(), 2, "b: entry bundle ends inside entry 1"),
            (bundle + Data([0x00]), 2, "b: entry bundle has more than 2 entries"),
            (bundle + Data([0x00]), 3, "b: entry bundle ends inside a length prefix"),
            (bundle, 3, "b: entry bundle has 2 entries, expected 3"),
            (bundle, 1, "b: entry bundle has more than 1 entries"),
        ]
        for (data, count, message) in cases {
            XCTAssertThrowsError(try EntryBundle.decode(data, count: count, what: "b")) {
                XCTAssertEqual($0 as? FerryError, .invalidArgument(message))
            }
        }
    }

    func testAnEntryLongerThan65535BytesCannotBeEncoded() {
        XCTAssertNoThrow(try EntryBundle.encode([Data(count: 65_535)]))
        XCTAssertThrowsError(try EntryBundle.encode([Data(count: 65_536)])) {
            XCTAssertEqual($0 as? FerryError, .invalidArgument("log entry of 65536 bytes; at most 65535 fit"))
        }
    }
}
