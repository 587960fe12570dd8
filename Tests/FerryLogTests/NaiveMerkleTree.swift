@testable import FerryLog
import Foundation

/// RFC 6962 section 2.1 written out literally over the list of entries (MTH, PATH, PROOF/SUBPROOF), with no tiles
/// and no shared code with ``MerkleTree``'s proof makers: the reference the tile-based proofs must equal.
struct NaiveMerkleTree {
    let leaves: [MerkleHash]

    init(entries: [Data]) { leaves = entries.map { MerkleHash.leaf($0) } }

    /// MTH(D[lo..<hi]).
    func hash(_ lo: Int, _ hi: Int) -> MerkleHash {
        let n = hi - lo
        if n == 0 { return .emptyTree }
        if n == 1 { return leaves[lo] }
        let k = NaiveMerkleTree.split(n)
        return .node(hash(lo, lo + k), hash(lo + k, hi))
    }

    /// The largest power of two smaller than n.
    static func split(_ n: Int) -> Int {
        var k = 1
        while k * 2 < n { k *= 2 }
        return k
    }

    /// PATH(m, D[lo..<hi]), m relative to lo.
    func path(_ m: Int, _ lo: Int, _ hi: Int) -> [MerkleHash] {
        let n = hi - lo
        if n <= 1 { return [] }
        let k = NaiveMerkleTree.split(n)
        if m < k { return path(m, lo, lo + k) + [hash(lo + k, hi)] }
        return path(m - k, lo + k, hi) + [hash(lo, lo + k)]
    }

    /// SUBPROOF(m, D[lo..<hi], b), m relative to lo.
    func subproof(_ m: Int, _ lo: Int, _ hi: Int, _ b: Bool) -> [MerkleHash] {
        let n = hi - lo
        if m == n { return b ? [] : [hash(lo, hi)] }
        let k = NaiveMerkleTree.split(n)
        if m <= k { return subproof(m, lo, lo + k, b) + [hash(lo + k, hi)] }
        return subproof(m - k, lo + k, hi, false) + [hash(lo, lo + k)]
    }

    func inclusion(_ index: Int, size: Int) -> [MerkleHash] { path(index, 0, size) }
    func consistency(_ old: Int, _ new: Int) -> [MerkleHash] { old == new ? [] : subproof(old, 0, new, true) }

    /// The tree's tiles in memory, computed the long way: level L holds MTH of each aligned run of 256^L leaves.
    func tileLevels() -> [[MerkleHash]] {
        var levels: [[MerkleHash]] = []
        var span = 1
        while span <= leaves.count {
            levels.append(stride(from: 0, to: leaves.count - span + 1, by: span).map { hash($0, $0 + span) })
            span *= Tile.fullWidth
        }
        return levels
    }
}

/// Distinct entries for tests: entry i is "entry i" (so a swapped or repeated entry changes the tree).
func testEntries(_ count: Int, from start: Int = 0) -> [Data] {
    (start..<(start + count)).map { Data("entry \($0)".utf8) }
}
