import Crypto
import FerryCore
import Foundation

/// A SHA-256 hash in an RFC 6962 Merkle tree: a leaf hash, an interior node hash or a tree head's root.
///
/// The domain separation bytes of RFC 6962 section 2.1 (`0x00` for leaves, `0x01` for nodes) are what keep a leaf
/// from being passed off as an interior node (a second-preimage attack on the tree).
public struct MerkleHash: Hashable, Sendable, CustomStringConvertible {
    public static let size = 32

    /// The 32 bytes of the hash.
    public let bytes: [UInt8]

    /// Wraps 32 bytes; `nil` for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == MerkleHash.size else { return nil }
        self.bytes = Array(bytes)
    }

    private init(digest: SHA256.Digest) {
        bytes = Array(digest)
    }

    /// Parses the standard base64 of exactly 32 bytes, as a checkpoint's root hash line carries it. Only the
    /// canonical encoding is accepted, so one root hash has one spelling.
    public init?(base64 text: some StringProtocol) {
        guard text.utf8.count == 44, let data = Data(base64Encoded: String(text)), data.count == MerkleHash.size,
            data.base64EncodedString() == text
        else { return nil }
        bytes = Array(data)
    }

    public var base64: String { Data(bytes).base64EncodedString() }
    public var description: String { bytes.hexString }

    /// The root of the empty tree: SHA-256 of the empty string (RFC 6962 section 2.1).
    public static let emptyTree = MerkleHash(digest: SHA256.hash(data: Data()))

    /// `SHA-256(0x00 || entry)`: the hash of one log entry.
    public static func leaf(_ entry: some DataProtocol) -> MerkleHash {
        var hasher = SHA256()
        hasher.update(data: [0x00])
        hasher.update(data: entry)
        return MerkleHash(digest: hasher.finalize())
    }

    /// `SHA-256(0x01 || left || right)`: the hash of an interior node.
    public static func node(_ left: MerkleHash, _ right: MerkleHash) -> MerkleHash {
        var hasher = SHA256()
        hasher.update(data: [0x01])
        hasher.update(data: left.bytes)
        hasher.update(data: right.bytes)
        return MerkleHash(digest: hasher.finalize())
    }

    /// The root of the perfect subtree whose leaves (in tree order) are `hashes`; their count must be a power of
    /// two. A tile's 2^k hashes reduce to the hash of the node k levels above them this way.
    static func perfectRoot(_ hashes: ArraySlice<MerkleHash>) -> MerkleHash {
        var level = Array(hashes)
        while level.count > 1 {
            var next: [MerkleHash] = []
            next.reserveCapacity(level.count / 2)
            var i = 0
            while i + 1 < level.count {
                next.append(.node(level[i], level[i + 1]))
                i += 2
            }
            level = next
        }
        return level.first ?? .emptyTree
    }
}
