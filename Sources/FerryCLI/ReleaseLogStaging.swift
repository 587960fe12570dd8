import FerryCore
import FerryFetch
import FerryInstall
import FerryLog
import Foundation

/// The agent's side of a logged remote: fetches the checkpoint, the release's entry and the tiles its proofs need,
/// and builds the files the installing side checks offline (``ReleaseLogCheck``): `log/release.tlog-proof` (the
/// entry, its index, the inclusion proof, the cosigned checkpoint) and `log/consistency` (the proof from the size
/// the installing side trusts). Cost: the checkpoint, one entry bundle, and O(log n) tiles.
///
/// The entry's index comes from `release.tlog-proof` beside the image's signatures (written by `ferry sign`); it
/// is a hint, never trusted: the installing side checks the entry, the proof and the checkpoint.
struct ReleaseLogStaging {
    let remote: Remote
    let policy: LogPolicy
    let transport: HTTPTransport

    /// Files to stage (relative paths under the staged layout) for `ref` at `descriptor`. `trusted` is the
    /// checkpoint the installing side trusts for this remote, if any.
    func files(ref: Ref, descriptor: Descriptor, trusted: Data?, allowStale: Bool) async throws -> [String: Data] {
        var firstError: Error?
        for base in transport.preferReachable(remote.baseURLs) {
            let trimmed = Remote.withoutTrailingSlash(base)
            do {
                return try await files(base: trimmed, ref: ref, descriptor: descriptor, trusted: trusted,
                                       allowStale: allowStale)
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        throw firstError ?? FerryError.failed("remote \(remote.name) has no URL")
    }

    private func files(base: String, ref: Ref, descriptor: Descriptor, trusted: Data?, allowStale: Bool)
        async throws -> [String: Data]
    {
        guard let checkpointData = try await transport.fetch(base + "/log/checkpoint", maxSize: SignedNote.maxSize)
        else {
            throw FerryError.untrusted("remote \(remote.name) has a transparency log, and \(base) serves none "
                + "(log/checkpoint)")
        }
        let checkpoint = try policy.open(checkpointData, now: unixNow(), allowStale: allowStale)
        let hintURL = "\(base)/\(SignatureSet.directory(ref: ref, digest: descriptor.digest))/\(ReleaseProof.fileName)"
        guard let hintData = try await transport.fetch(hintURL, maxSize: 256 * 1024) else {
            throw FerryError.untrusted("\(ref) \(descriptor.digest.short) is not in the transparency log of remote "
                + "\(remote.name) (no \(ReleaseProof.fileName) beside its signatures)")
        }
        let index = try ReleaseProof(parsing: hintData).index
        guard index < checkpoint.size else {
            throw FerryError.untrusted("\(ref) \(descriptor.digest.short) is not in the transparency log of remote "
                + "\(remote.name) at size \(checkpoint.size) (its entry would be \(index))")
        }
        return try await ReleaseLogStaging.proofFiles(base: base, checkpointData: checkpointData,
                                                      checkpoint: checkpoint, index: index, trusted: trusted,
                                                      transport: transport).files
    }

    /// The staged files for entry `index` under `checkpoint` (whose bytes are `checkpointData`), from the tiles at
    /// `base`, and how many bytes of entry bundle and of tiles were fetched for them.
    static func proofFiles(base: String, checkpointData: Data, checkpoint: Checkpoint, index: UInt64, trusted: Data?,
                           transport: HTTPTransport) async throws
        -> (files: [String: Data], bundleBytes: Int, tileBytes: Int)
    {
        let tiles = TileCache(base: base, treeSize: checkpoint.size, transport: transport)
        let bundleIndex = index / UInt64(Tile.fullWidth)
        let bundle = try Tile(entriesAt: bundleIndex,
                              width: Tile.width(level: 0, index: bundleIndex, treeSize: checkpoint.size))
        guard let bundleData = try await transport.fetch(base + "/log/" + bundle.path, maxSize: EntryBundle.maxSize)
        else {
            throw FerryError.failed("\(base)/log/\(bundle.path): not found")
        }
        let entries = try EntryBundle.decode(bundleData, count: bundle.width, what: bundle.path)
        guard entries.indices.contains(Int(index % UInt64(Tile.fullWidth))) else {
            throw FerryError.failed("\(base)/log/\(bundle.path) has no entry \(index)")
        }
        let entry = entries[Int(index % UInt64(Tile.fullWidth))]
        let inclusion = try await tiles.compute {
            try MerkleTree.inclusionProof(index: index, size: checkpoint.size, reader: $0)
        }
        var files = ["log/\(ReleaseProof.fileName)": ReleaseProof(entry: entry, index: index, proof: inclusion,
                                                                  checkpoint: checkpointData).serialized]
        if let trusted, let old = try? Checkpoint(text: try SignedNote(trusted).text).size,
            old > 0, old < checkpoint.size
        {
            let proof = try await tiles.compute {
                try MerkleTree.consistencyProof(from: old, to: checkpoint.size, reader: $0)
            }
            files["log/\(ReleaseProof.consistencyFileName)"] = ReleaseProof.consistencyFile(old: old, proof: proof)
        }
        return (files, bundleData.count, tiles.fetchedBytes)
    }
}

/// Hash tiles of one tree fetched on demand: a proof is computed against the tiles at hand, and each tile it asks
/// for that is not there yet is fetched before trying again (a proof needs a few tiles per level).
final class TileCache {
    let base: String
    let treeSize: UInt64
    let transport: HTTPTransport
    private var tiles: [Tile: [MerkleHash]] = [:]
    /// Bytes of tiles fetched so far.
    private(set) var fetchedBytes = 0

    private struct Missing: Error {
        var tile: Tile
    }

    init(base: String, treeSize: UInt64, transport: HTTPTransport) {
        self.base = base
        self.treeSize = treeSize
        self.transport = transport
    }

    func compute<T>(_ body: (TileHashReader) throws -> T) async throws -> T {
        for _ in 0..<(2 * Tile.maxLevel + 16) {
            let reader = TileHashReader(treeSize: treeSize) { [tiles] tile in
                guard let hashes = tiles[tile] else { throw Missing(tile: tile) }
                return hashes
            }
            do {
                return try body(reader)
            } catch let missing as Missing {
                let url = base + "/log/" + missing.tile.path
                guard let data = try await transport.fetch(url, maxSize: Tile.fullWidth * MerkleHash.size) else {
                    throw FerryError.failed("\(url): not found")
                }
                tiles[missing.tile] = try missing.tile.decodeHashes(data)
                fetchedBytes += data.count
            }
        }
        throw FerryError.failed("\(base)/log: a proof needed more tiles than a tree has levels")
    }
}
