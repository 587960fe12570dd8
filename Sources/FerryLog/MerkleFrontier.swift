import FerryCore
import Foundation

/// The right edge of a Merkle tree (RFC 6962 hashing): one subtree root per set bit of the size, largest first.
///
/// Enough to append leaves and compute the new root without the rest of the tree, so a client that keeps the
/// frontier of the entries it has read can check that the entries since then lead to a newer checkpoint's root: an
/// entry left out, changed or reordered gives another root. At most 64 hashes.
public struct MerkleFrontier: Sendable, Equatable {
    public private(set) var size: UInt64 = 0
    /// The subtree roots, largest (leftmost) first.
    public private(set) var hashes: [MerkleHash] = []

    public init() {}

    /// A frontier from stored parts; `nil` when the count of hashes does not match the size.
    public init?(size: UInt64, hashes: [MerkleHash]) {
        guard size.nonzeroBitCount == hashes.count else { return nil }
        self.size = size
        self.hashes = hashes
    }

    /// Appends the leaf of `entry`.
    public mutating func append(entry: some DataProtocol) {
        append(leaf: .leaf(entry))
    }

    public mutating func append(leaf: MerkleHash) {
        var hash = leaf
        var size = self.size
        // Every set low bit is a subtree of the same height as the one being carried: merge them, right to left.
        while size & 1 == 1 {
            hash = .node(hashes.removeLast(), hash)
            size >>= 1
        }
        hashes.append(hash)
        self.size += 1
    }

    /// The tree's root hash: the subtree roots folded from the right.
    public var root: MerkleHash {
        guard var root = hashes.last else { return .emptyTree }
        for hash in hashes.dropLast().reversed() { root = .node(hash, root) }
        return root
    }
}
