import FerryCore
@testable import FerryLog
import XCTest

/// RFC 6962 hashing and proofs: known vectors, and every proof of small trees against the RFC's own recursive
/// definitions (``NaiveMerkleTree``).
final class MerkleTreeTests: XCTestCase {
    /// The eight leaves of the Certificate Transparency test vectors (certificate-transparency's merkle tree tests;
    /// the roots below were recomputed with golang.org/x/mod/sumdb/tlog's TreeHash).
    static let vectorLeaves = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                               "606162636465666768696a6b6c6d6e6f"]
    static let vectorRoots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]

    static func hex(_ text: String) -> Data {
        var bytes: [UInt8] = []
        var chars = Array(text.utf8)
        while chars.count >= 2 {
            bytes.append(UInt8(String(decoding: chars[0..<2], as: UTF8.self), radix: 16) ?? 0)
            chars.removeFirst(2)
        }
        return Data(bytes)
    }

    /// A tile reader over the tree of `entries` at `size`, from tiles computed the long way.
    func reader(_ tree: NaiveMerkleTree, size: Int) -> TileHashReader {
        TileHashReader(treeSize: UInt64(size), levels: tree.tileLevels())
    }

    func testEmptyTreeRootIsSHA256OfTheEmptyString() {
        XCTAssertEqual(MerkleHash.emptyTree.description,
                       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(MerkleHash.emptyTree.base64, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
    }

    func testLeafAndNodeHashesAreDomainSeparated() {
        // SHA-256(0x00) and SHA-256(0x01 || 0x00...0 || 0x00...0): a leaf never hashes like a node.
        XCTAssertEqual(MerkleHash.leaf(Data()).description,
                       "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
        let zero = MerkleHash(bytes: [UInt8](repeating: 0, count: 32))!
        XCTAssertNotEqual(MerkleHash.node(zero, zero), MerkleHash.leaf(Data(zero.bytes + zero.bytes)))
    }

    func testRootsOfTheCertificateTransparencyVectors() throws {
        let entries = MerkleTreeTests.vectorLeaves.map(MerkleTreeTests.hex)
        let tree = NaiveMerkleTree(entries: entries)
        for size in 1...entries.count {
            let root = try MerkleTree.rootHash(size: UInt64(size), reader: reader(tree, size: size))
            XCTAssertEqual(root.description, MerkleTreeTests.vectorRoots[size - 1], "size \(size)")
        }
    }

    func testRootsOfEverySizeUpTo70MatchTheRFCDefinition() throws {
        let tree = NaiveMerkleTree(entries: testEntries(70))
        for size in 0...70 {
            XCTAssertEqual(try MerkleTree.rootHash(size: UInt64(size), reader: reader(tree, size: size)),
                           tree.hash(0, size), "size \(size)")
        }
    }

    func testInclusionProofOfEveryEntryOfEverySizeUpTo70() throws {
        let tree = NaiveMerkleTree(entries: testEntries(70))
        for size in 1...70 {
            let tiles = reader(tree, size: size)
            let root = tree.hash(0, size)
            for index in 0..<size {
                let proof = try MerkleTree.inclusionProof(index: UInt64(index), size: UInt64(size), reader: tiles)
                XCTAssertEqual(proof, tree.inclusion(index, size: size), "entry \(index) of \(size)")
                XCTAssertNoThrow(try MerkleTree.verifyInclusion(
                    leaf: tree.leaves[index], index: UInt64(index), size: UInt64(size), proof: proof, root: root))
                // The same proof must not prove another entry, another position or another tree.
                let other = tree.leaves[(index + 1) % 70]
                XCTAssertThrowsError(try MerkleTree.verifyInclusion(
                    leaf: other, index: UInt64(index), size: UInt64(size), proof: proof, root: root))
                if size > 1 {
                    XCTAssertThrowsError(try MerkleTree.verifyInclusion(
                        leaf: tree.leaves[index], index: UInt64((index + 1) % size), size: UInt64(size),
                        proof: proof, root: root))
                }
                XCTAssertThrowsError(try MerkleTree.verifyInclusion(
                    leaf: tree.leaves[index], index: UInt64(index), size: UInt64(size), proof: proof + [root],
                    root: root))
            }
        }
    }

    func testConsistencyProofOfEveryPairOfSizesUpTo70() throws {
        let tree = NaiveMerkleTree(entries: testEntries(70))
        for new in 1...70 {
            let tiles = reader(tree, size: new)
            let newRoot = tree.hash(0, new)
            for old in 1...new {
                let oldRoot = tree.hash(0, old)
                let proof = try MerkleTree.consistencyProof(from: UInt64(old), to: UInt64(new), reader: tiles)
                XCTAssertEqual(proof, tree.consistency(old, new), "\(old) to \(new)")
                XCTAssertNoThrow(try MerkleTree.verifyConsistency(
                    oldSize: UInt64(old), newSize: UInt64(new), oldRoot: oldRoot, newRoot: newRoot, proof: proof),
                    "\(old) to \(new)")
                // A fork: an old tree with another root is not extended by the new one.
                XCTAssertThrowsError(try MerkleTree.verifyConsistency(
                    oldSize: UInt64(old), newSize: UInt64(new), oldRoot: MerkleHash.leaf(Data("fork".utf8)),
                    newRoot: newRoot, proof: proof))
                if old < new {
                    XCTAssertThrowsError(try MerkleTree.verifyConsistency(
                        oldSize: UInt64(old), newSize: UInt64(new), oldRoot: oldRoot, newRoot: oldRoot,
                        proof: proof))
                    var tampered = proof
                    tampered[tampered.count - 1] = MerkleHash.leaf(Data("tampered".utf8))
                    XCTAssertThrowsError(try MerkleTree.verifyConsistency(
                        oldSize: UInt64(old), newSize: UInt64(new), oldRoot: oldRoot, newRoot: newRoot,
                        proof: tampered))
                }
            }
        }
    }

    func testProofsReachIntoHigherTileLevels() throws {
        // 65,536 + 700 entries: full level-0 and level-1 tiles, partial tiles at levels 0, 1 and 2.
        let size = 65_536 + 700
        let tree = NaiveMerkleTree(entries: testEntries(size))
        let tiles = reader(tree, size: size)
        let root = tree.hash(0, size)
        XCTAssertEqual(try MerkleTree.rootHash(size: UInt64(size), reader: tiles), root)
        for index in [0, 255, 256, 511, 65_535, 65_536, 65_536 + 255, 65_536 + 256, size - 1] {
            let proof = try MerkleTree.inclusionProof(index: UInt64(index), size: UInt64(size), reader: tiles)
            XCTAssertEqual(proof, tree.inclusion(index, size: size), "entry \(index)")
            try MerkleTree.verifyInclusion(leaf: tree.leaves[index], index: UInt64(index), size: UInt64(size),
                                           proof: proof, root: root)
        }
        for old in [1, 256, 257, 65_535, 65_536, 65_537, size - 1] {
            let proof = try MerkleTree.consistencyProof(from: UInt64(old), to: UInt64(size), reader: tiles)
            XCTAssertEqual(proof, tree.consistency(old, size), "\(old) to \(size)")
            try MerkleTree.verifyConsistency(oldSize: UInt64(old), newSize: UInt64(size),
                                             oldRoot: tree.hash(0, old), newRoot: root, proof: proof)
        }
    }

    func testAShrinkIsRefusedWithItsOwnError() {
        let a = MerkleHash.leaf(Data("a".utf8))
        XCTAssertThrowsError(try MerkleTree.verifyConsistency(oldSize: 5, newSize: 4, oldRoot: a, newRoot: a,
                                                              proof: [])) { error in
            XCTAssertEqual(error as? FerryError, .untrusted("the tree shrank from 5 to 4 entries"))
        }
    }

    func testEveryTreeExtendsTheEmptyTreeOnly() throws {
        let a = MerkleHash.leaf(Data("a".utf8))
        try MerkleTree.verifyConsistency(oldSize: 0, newSize: 1, oldRoot: .emptyTree, newRoot: a, proof: [])
        XCTAssertThrowsError(try MerkleTree.verifyConsistency(oldSize: 0, newSize: 1, oldRoot: a, newRoot: a,
                                                              proof: []))
    }

    func testInclusionOfAnEntryBeyondTheTreeIsRefused() {
        let a = MerkleHash.leaf(Data("a".utf8))
        XCTAssertThrowsError(try MerkleTree.verifyInclusion(leaf: a, index: 1, size: 1, proof: [], root: a)) {
            XCTAssertEqual($0 as? FerryError, .untrusted("entry 1 is not in a tree of 1 entries"))
        }
    }
}
