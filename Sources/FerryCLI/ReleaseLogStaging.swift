import FerryCore
import FerryFetch
import FerryInstall
import FerryLog
import FerryTrust
import Foundation

/// The agent's side of a logged remote: fetches the checkpoint, every entry since the installing side last read
/// the log, the release's entry and the tiles its proofs need, and builds the files the installing side checks
/// offline (``ReleaseLogCheck``, ``RemoteLog``): `log/release.tlog-proof` (the entry, its index, the inclusion
/// proof, the cosigned checkpoint), `log/consistency` (the proof from the size the installing side trusts) and
/// `log/entries` (the entries since the size its ledger has read, which it applies in order). Cost: the
/// checkpoint, the entry bundles since last time, and O(log n) tiles.
///
/// The agent reads the installing side's checkpoint and ledger (world-readable) to know what to stage, and moves a
/// copy of the ledger on itself, so that a recalled release or a key the log no longer trusts is refused before
/// anything is downloaded. The entry's index comes from `release.tlog-proof` beside the image's signatures (written
/// by `ferry sign`); it is a hint, never trusted: the installing side checks the entry, the proof and the
/// checkpoint.
struct ReleaseLogStaging {
    let remote: Remote
    let policy: LogPolicy
    let transport: HTTPTransport
    /// The installing side's view; `nil`: start from nothing (a mirror checking a release).
    var installing: RemoteLog?

    /// What was staged, and what the agent learnt from it.
    struct Staged {
        /// Relative paths under the staged layout.
        var files: [String: Data]
        /// The installing side's ledger, moved on to ``checkpoint``.
        var ledger: TrustLedger
        var checkpoint: Checkpoint
        /// The release's entry, when a release was staged.
        var index: UInt64?

        /// The keys the release may be signed with, by the log.
        func keys(gpg: [Data]) throws -> TrustedKeys {
            try ledger.trustedKeys(forReleaseAt: index ?? UInt64.max, gpg: gpg)
        }
    }

    /// Stages the proof for `ref` at `descriptor`, and the log since the installing side last read it.
    func release(ref: Ref, descriptor: Descriptor, allowStale: Bool) async throws -> Staged {
        try await eachBase { base in
            try await stage(base: base, release: (ref, descriptor), allowStale: allowStale)
        }
    }

    /// Stages a view of the log with no release (`log/checkpoint`, `log/consistency`, `log/entries`), for
    /// `ApplyLog`. Its age is not checked here (the installing side does not either): see ``RemoteLog``.
    func view() async throws -> Staged {
        try await eachBase { base in try await stage(base: base, release: nil, allowStale: true) }
    }

    private func eachBase(_ body: (String) async throws -> Staged) async throws -> Staged {
        var firstError: Error?
        for base in transport.preferReachable(remote.baseURLs) {
            do {
                return try await body(Remote.withoutTrailingSlash(base))
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        throw firstError ?? FerryError.failed("remote \(remote.name) has no URL")
    }

    private func stage(base: String, release: (Ref, Descriptor)?, allowStale: Bool) async throws -> Staged {
        guard let checkpointData = try await transport.fetch(base + "/log/checkpoint", maxSize: SignedNote.maxSize)
        else {
            throw FerryError.untrusted("remote \(remote.name) has a transparency log, and \(base) serves none "
                + "(log/checkpoint)")
        }
        let checkpoint = try policy.open(checkpointData, now: unixNow(), allowStale: allowStale)
        let trusted = installing?.trustedCheckpoint
        var ledger = try installing?.storedLedger() ?? TrustLedger(remote: remote, origin: policy.logKey.name)
        guard ledger.size <= checkpoint.size else {
            throw FerryError.untrusted("the log of \(checkpoint.origin) offered by \(base) has \(checkpoint.size) "
                + "entries, fewer than the \(ledger.size) read before (a stale mirror)")
        }
        var files: [String: Data] = [:]
        let tiles = TileCache(base: base, treeSize: checkpoint.size, transport: transport)
        let consistency = try await ReleaseLogStaging.consistencyFile(trusted: trusted, checkpoint: checkpoint,
                                                                      tiles: tiles)
        if let consistency { files["log/\(ReleaseProof.consistencyFileName)"] = consistency }
        // A fork is judged here first; staged anyway, so that the installing side keeps the evidence and refuses
        // the remote (its entries are not read then).
        var forked = false
        if let trusted {
            do {
                try policy.checkExtends(trusted: trusted, offered: checkpoint, offeredData: checkpointData,
                                        consistency: consistency)
            } catch is LogForkError {
                forked = true
            }
        }
        let from = ledger.size
        if from < checkpoint.size && !forked {
            let entries = try await fetchEntries(base: base, from: from, treeSize: checkpoint.size)
            try ledger.advance(with: entries, from: from, to: checkpoint)
            files["log/\(StagedEntries.fileName)"] = try StagedEntries.encode(from: from, entries)
        }
        var index: UInt64?
        if let (ref, descriptor) = release {
            let hintURL = "\(base)/\(SignatureSet.directory(ref: ref, digest: descriptor.digest))/"
                + ReleaseProof.fileName
            guard let hintData = try await transport.fetch(hintURL, maxSize: 256 * 1024) else {
                throw FerryError.untrusted("\(ref) \(descriptor.digest.short) is not in the transparency log of remote "
                    + "\(remote.name) (no \(ReleaseProof.fileName) beside its signatures)")
            }
            let hinted = try ReleaseProof(parsing: hintData).index
            guard hinted < checkpoint.size else {
                throw FerryError.untrusted("\(ref) \(descriptor.digest.short) is not in the transparency log of "
                    + "remote \(remote.name) at size \(checkpoint.size) (its entry would be \(hinted))")
            }
            index = hinted
            files.merge(try await ReleaseLogStaging.proofFiles(base: base, checkpointData: checkpointData,
                                                               checkpoint: checkpoint, index: hinted, trusted: nil,
                                                               transport: transport, tiles: tiles).files) { $1 }
        } else {
            files["log/checkpoint"] = checkpointData
        }
        return Staged(files: files, ledger: ledger, checkpoint: checkpoint, index: index)
    }

    /// The entries `from..<treeSize`, from the entry bundles that hold them (a few fetched at once).
    private func fetchEntries(base: String, from: UInt64, treeSize: UInt64) async throws -> [Data] {
        let first = from / UInt64(Tile.fullWidth)
        let last = (treeSize - 1) / UInt64(Tile.fullWidth)
        let bundles = try await withThrowingTaskGroup(of: (UInt64, [Data]).self) { group in
            var result: [UInt64: [Data]] = [:]
            var running = 0
            for index in first...last {
                if running >= LogDownload.parallelism, let (done, entries) = try await group.next() {
                    result[done] = entries
                    running -= 1
                }
                group.addTask {
                    let tile = try Tile(entriesAt: index, width: Tile.width(level: 0, index: index, treeSize: treeSize))
                    guard let data = try await transport.fetch(base + "/log/" + tile.path, maxSize: EntryBundle.maxSize)
                    else {
                        throw FerryError.failed("\(base)/log/\(tile.path): not found (the checkpoint has \(treeSize) "
                            + "entries)")
                    }
                    return (index, try EntryBundle.decode(data, count: tile.width, what: tile.path))
                }
                running += 1
            }
            for try await (done, entries) in group { result[done] = entries }
            return result
        }
        var entries: [Data] = []
        for index in first...last { entries += bundles[index] ?? [] }
        return Array(entries.dropFirst(Int(from - first * UInt64(Tile.fullWidth))))
    }

    /// The consistency file from `trusted` (when older than `checkpoint`) to `checkpoint`.
    static func consistencyFile(trusted: Data?, checkpoint: Checkpoint, tiles: TileCache) async throws -> Data? {
        guard let trusted, let old = try? Checkpoint(text: try SignedNote(trusted).text).size, old > 0,
            old < checkpoint.size
        else { return nil }
        let proof = try await tiles.compute {
            try MerkleTree.consistencyProof(from: old, to: checkpoint.size, reader: $0)
        }
        return ReleaseProof.consistencyFile(old: old, proof: proof)
    }

    /// The staged files for entry `index` under `checkpoint` (whose bytes are `checkpointData`), from the tiles at
    /// `base`, and how many bytes of entry bundle and of tiles were fetched for them.
    static func proofFiles(base: String, checkpointData: Data, checkpoint: Checkpoint, index: UInt64, trusted: Data?,
                           transport: HTTPTransport, tiles given: TileCache? = nil) async throws
        -> (files: [String: Data], bundleBytes: Int, tileBytes: Int)
    {
        let tiles = given ?? TileCache(base: base, treeSize: checkpoint.size, transport: transport)
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
        if let consistency = try await consistencyFile(trusted: trusted, checkpoint: checkpoint, tiles: tiles) {
            files["log/\(ReleaseProof.consistencyFileName)"] = consistency
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
