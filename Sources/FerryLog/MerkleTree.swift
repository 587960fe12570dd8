import FerryCore
import Foundation

/// Reads the hashes of complete subtrees of one tree: the node at `level` (0 = leaves) and `index` covers the
/// entries `index * 2^level ..< (index + 1) * 2^level`, all of which are in the tree.
///
/// Implementations: ``TileHashReader`` (a log's tiles, on disk or in memory), and the tests' naive trees.
public protocol NodeHashReader {
    func nodeHash(level: Int, index: UInt64) throws -> MerkleHash
}

/// RFC 6962 / RFC 9162 tree heads and proofs over any ``NodeHashReader``.
///
/// Proofs are made by the recursive definitions of RFC 6962 section 2.1.1 (PATH) and 2.1.2 (SUBPROOF), and checked
/// by the iterative algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2, so the two sides share no code: a bug in
/// one shows up as a failure of the other (and the Go implementation checks both in the interop test).
public enum MerkleTree {
    /// The Merkle Tree Hash of the first `size` entries.
    public static func rootHash(size: UInt64, reader: some NodeHashReader) throws -> MerkleHash {
        if size == 0 { return .emptyTree }
        return try subtreeHash(0, size, reader)
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries (RFC 6962 PATH).
    public static func inclusionProof(index: UInt64, size: UInt64, reader: some NodeHashReader) throws
        -> [MerkleHash]
    {
        guard index < size else {
            throw FerryError.invalidArgument("no inclusion proof for entry \(index) in a tree of \(size) entries")
        }
        return try path(index, 0, size, reader)
    }

    /// The consistency proof from the tree of `oldSize` entries to the tree of `newSize` (RFC 6962 PROOF).
    /// Empty when the sizes are equal or the old tree is empty.
    public static func consistencyProof(from oldSize: UInt64, to newSize: UInt64, reader: some NodeHashReader) throws
        -> [MerkleHash]
    {
        guard oldSize <= newSize else {
            throw FerryError.invalidArgument("no consistency proof from \(oldSize) entries to fewer (\(newSize))")
        }
        if oldSize == 0 || oldSize == newSize { return [] }
        return try subproof(oldSize, 0, newSize, true, reader)
    }

    /// Checks that `leaf` is entry `index` of the tree of `size` entries whose root is `root` (RFC 9162 2.1.3.2).
    public static func verifyInclusion(leaf: MerkleHash, index: UInt64, size: UInt64, proof: [MerkleHash],
                                       root: MerkleHash) throws {
        let refused = FerryError.untrusted(
            "inclusion proof of entry \(index) in the tree of \(size) entries does not match its root hash")
        guard index < size else {
            throw FerryError.untrusted("entry \(index) is not in a tree of \(size) entries")
        }
        var fn = index
        var sn = size - 1
        var r = leaf
        for p in proof {
            guard sn != 0 else { throw refused }
            if fn & 1 == 1 || fn == sn {
                r = .node(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = .node(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0, r == root else { throw refused }
    }

    /// Checks that the tree of `newSize` entries with root `newRoot` extends the tree of `oldSize` entries with
    /// root `oldRoot` (RFC 9162 2.1.4.2): the old tree is a prefix of the new one, so nothing was removed or
    /// rewritten. Equal sizes need equal roots and an empty proof; every tree extends the empty tree.
    public static func verifyConsistency(oldSize: UInt64, newSize: UInt64, oldRoot: MerkleHash, newRoot: MerkleHash,
                                         proof: [MerkleHash]) throws {
        let refused = FerryError.untrusted(
            "consistency proof from \(oldSize) to \(newSize) entries does not match the two root hashes")
        guard oldSize <= newSize else {
            throw FerryError.untrusted("the tree shrank from \(oldSize) to \(newSize) entries")
        }
        if oldSize == newSize {
            guard proof.isEmpty, oldRoot == newRoot else { throw refused }
            return
        }
        if oldSize == 0 {
            guard proof.isEmpty, oldRoot == .emptyTree else { throw refused }
            return
        }
        var path = proof
        if oldSize & (oldSize - 1) == 0 { path.insert(oldRoot, at: 0) }
        guard let first = path.first else { throw refused }
        var fn = oldSize - 1
        var sn = newSize - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = first
        var sr = first
        for c in path.dropFirst() {
            guard sn != 0 else { throw refused }
            if fn & 1 == 1 || fn == sn {
                fr = .node(c, fr)
                sr = .node(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = .node(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0, fr == oldRoot, sr == newRoot else { throw refused }
    }

    // MARK: - The recursive definitions

    /// The largest power of two smaller than `n` (n ≥ 2): where RFC 6962 splits a tree.
    static func split(_ n: UInt64) -> UInt64 {
        var k: UInt64 = 1
        while k << 1 < n { k <<= 1 }
        return k
    }

    /// MTH(D[lo..<hi]) where `lo` is a multiple of the largest power of two not above `hi - lo` (which every range
    /// the recursions below produce is): the complete subtrees left to right, folded from the right.
    static func subtreeHash(_ lo: UInt64, _ hi: UInt64, _ reader: some NodeHashReader) throws -> MerkleHash {
        var nodes: [MerkleHash] = []
        var start = lo
        while start < hi {
            var level = 63 - (hi - start).leadingZeroBitCount
            // Alignment keeps the node a real node of the tree; only a misuse of this function can break it.
            while level > 0 && start & ((UInt64(1) << level) - 1) != 0 { level -= 1 }
            nodes.append(try reader.nodeHash(level: level, index: start >> level))
            start += UInt64(1) << level
        }
        guard var hash = nodes.popLast() else { return .emptyTree }
        while let left = nodes.popLast() { hash = .node(left, hash) }
        return hash
    }

    private static func path(_ m: UInt64, _ lo: UInt64, _ hi: UInt64, _ reader: some NodeHashReader) throws
        -> [MerkleHash]
    {
        if hi - lo == 1 { return [] }
        let k = split(hi - lo)
        if m < lo + k {
            return try path(m, lo, lo + k, reader) + [subtreeHash(lo + k, hi, reader)]
        }
        return try path(m, lo + k, hi, reader) + [subtreeHash(lo, lo + k, reader)]
    }

    private static func subproof(_ m: UInt64, _ lo: UInt64, _ hi: UInt64, _ whole: Bool,
                                 _ reader: some NodeHashReader) throws -> [MerkleHash] {
        if m == hi { return whole ? [] : [try subtreeHash(lo, hi, reader)] }
        let k = split(hi - lo)
        if m <= lo + k {
            return try subproof(m, lo, lo + k, whole, reader) + [subtreeHash(lo + k, hi, reader)]
        }
        return try subproof(m, lo + k, hi, false, reader) + [subtreeHash(lo, lo + k, reader)]
    }
}
