import FerryCore
import Foundation

/// An offline proof that a release entry is in a log (c2sp.org/tlog-proof@v1): the entry itself as the `extra`
/// data, its index, the inclusion proof and the (cosigned) checkpoint. The agent builds one from the remote's tiles
/// and stages it as `log/release.tlog-proof`; the helper checks it with no network. `ferry sign` writes one beside
/// the signatures (`release.tlog-proof`), which tells the agent the entry's index.
public struct ReleaseProof: Sendable, Equatable {
    public static let header = "c2sp.org/tlog-proof@v1"
    /// The name of the file, beside the signatures on a remote and under `log/` in a staged layout.
    public static let fileName = "release.tlog-proof"

    public var entry: Data
    public var index: UInt64
    public var proof: [MerkleHash]
    /// The signed checkpoint's bytes, witness cosignatures included.
    public var checkpoint: Data

    public init(entry: Data, index: UInt64, proof: [MerkleHash], checkpoint: Data) {
        self.entry = entry
        self.index = index
        self.proof = proof
        self.checkpoint = checkpoint
    }

    public var serialized: Data {
        let lines = [ReleaseProof.header, "extra " + entry.base64EncodedString(), "index \(index)"]
            + proof.map(\.base64)
        return Data((lines.joined(separator: "\n") + "\n\n").utf8) + checkpoint
    }

    /// Parses a proof (at most the largest entry, 64 proof lines and a maximal note).
    public init(parsing data: Data) throws {
        func malformed(_ why: String) -> FerryError { FerryError.invalidArgument("log proof: \(why)") }
        guard data.count <= 2 * EntryBundle.maxEntrySize + 64 * 64 + SignedNote.maxSize else {
            throw malformed("too large")
        }
        guard let split = data.firstRange(of: Data("\n\n".utf8)) else { throw malformed("no checkpoint") }
        guard let head = String(data: data[data.startIndex..<split.lowerBound], encoding: .utf8) else {
            throw malformed("not UTF-8")
        }
        var lines = head.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.first == ReleaseProof.header else { throw malformed("not a c2sp.org/tlog-proof@v1") }
        lines.removeFirst()
        guard let extra = lines.first, extra.hasPrefix("extra "),
            let entry = Data(base64Encoded: String(extra.dropFirst(6)))
        else { throw malformed("no entry (extra line)") }
        lines.removeFirst()
        guard let indexLine = lines.first, indexLine.hasPrefix("index "),
            let index = Tile.decimal(String(indexLine.dropFirst(6)), max: UInt64(Int64.max))
        else { throw malformed("no index line") }
        lines.removeFirst()
        guard lines.count <= 63 else { throw malformed("more than 63 proof hashes") }
        proof = try lines.map { line in
            guard let hash = MerkleHash(base64: line) else { throw malformed("a proof line is not a base64 hash") }
            return hash
        }
        self.entry = entry
        self.index = index
        checkpoint = Data(data[split.upperBound...])
    }
}

/// What a remote requires of its log (`--log-key`, `--witness`, `--witness-quorum`, `--max-age`).
public struct LogPolicy: Sendable {
    public var logKey: NoteVerifierKey
    public var witnesses: [NoteVerifierKey]
    /// The largest tree a client accepts: 2^40 entries (a log signed by a stolen key could claim 2^63, and make
    /// clients fetch tiles that cannot exist).
    public static let maxHonestSize: UInt64 = 1 << 40
    /// Cosignatures required, by distinct witnesses.
    public var quorum: Int
    /// How old the newest cosignature may be, in seconds; `nil`: no bound.
    public var maxAge: Int64?

    public init(logKey: NoteVerifierKey, witnesses: [NoteVerifierKey] = [], quorum: Int = 0, maxAge: Int64? = nil) {
        self.logKey = logKey
        self.witnesses = witnesses
        self.quorum = quorum
        self.maxAge = maxAge
    }

    /// Opens a checkpoint: the log key's signature, then the quorum of witness cosignatures, then their age
    /// (unless `allowStale`). Errors name what is missing.
    public func open(_ data: Data, now: Int64, allowStale: Bool = false) throws -> Checkpoint {
        let opened = try Checkpoint.open(data, logKey: logKey, witnesses: witnesses)
        guard opened.checkpoint.size <= LogPolicy.maxHonestSize else {
            throw FerryError.untrusted("checkpoint of \(logKey.name) claims \(opened.checkpoint.size) entries, more "
                + "than any honest log of releases holds (\(LogPolicy.maxHonestSize))")
        }
        // One cosignature per witness (its newest): a note may carry two lines by one witness, and they are one
        // witness's word.
        var newestByWitness: [String: SignedNote.Verified] = [:]
        for signature in opened.verified where signature.key != logKey {
            let key = signature.key.description
            if newestByWitness[key].map({ $0.timestamp < signature.timestamp }) ?? true {
                newestByWitness[key] = signature
            }
        }
        let cosigned = Array(newestByWitness.values)
        guard cosigned.count >= quorum else {
            throw FerryError.untrusted("checkpoint of \(logKey.name) at size \(opened.checkpoint.size) has "
                + "\(cosigned.count) of the \(quorum) witness cosignatures required")
        }
        if let maxAge, !allowStale {
            // The quorum must be fresh, not one witness: with a quorum of 2, one colluding witness's fresh
            // cosignature on an old checkpoint does not make it current.
            let newest = cosigned.map(\.timestamp).sorted(by: >)
            guard newest.count >= max(quorum, 1) else {
                throw FerryError.untrusted("checkpoint of \(logKey.name) has no witness cosignature to show its age")
            }
            let age = now - Int64(newest[max(quorum, 1) - 1])
            guard age <= maxAge else {
                let what = quorum > 1 ? "the \(quorum) newest witness cosignatures of \(logKey.name) are up to"
                    : "the newest witness cosignature of \(logKey.name) is"
                throw FerryError(.failed, "\(what) \(age) s old; the remote allows \(maxAge) s; "
                    + FerryError.staleViewHint, cause: ESTALE)
            }
        }
        return opened.checkpoint
    }
}

extension LogPolicy {
    /// The policy a remote configures; `nil` when it has no log. Throws when a configured key does not parse.
    public static func of(_ remote: Remote) throws -> LogPolicy? {
        guard let logKey = remote.logKey else { return nil }
        let key = try NoteVerifierKey(logKey)
        guard key.type == .ed25519 else {
            throw FerryError.invalidArgument("remote \(remote.name): the log key is a witness key")
        }
        let witnesses = try remote.witnessKeys.map { try NoteVerifierKey($0) }
        guard witnesses.allSatisfy({ $0.type == .cosignature }) else {
            throw FerryError.invalidArgument("remote \(remote.name): a witness key is not a cosignature/v1 key")
        }
        return LogPolicy(logKey: key, witnesses: witnesses, quorum: remote.effectiveWitnessQuorum,
                         maxAge: remote.effectiveMaxAge)
    }
}

/// A checkpoint that does not extend the one trusted before: a fork or a shrink. Kept as evidence by the caller.
public struct LogForkError: Error, Sendable {
    public var message: String
    public var trusted: Data
    public var offered: Data
}

extension ReleaseProof {
    /// The consistency proof file staged beside the release proof: `old N`, then one hash per line.
    public static let consistencyFileName = "consistency"

    public static func consistencyFile(old: UInt64, proof: [MerkleHash]) -> Data {
        Data((["old \(old)"] + proof.map(\.base64)).map { $0 + "\n" }.joined().utf8)
    }

    public static func parseConsistency(_ data: Data) throws -> (old: UInt64, proof: [MerkleHash]) {
        guard data.count <= 64 * 64, let text = String(data: data, encoding: .utf8) else {
            throw FerryError.invalidArgument("log consistency proof: malformed")
        }
        var lines = text.split(separator: "\n").map(String.init)
        guard let first = lines.first, first.hasPrefix("old "),
            let old = Tile.decimal(String(first.dropFirst(4)), max: UInt64(Int64.max)), lines.count <= 64
        else {
            throw FerryError.invalidArgument("log consistency proof: no old size line")
        }
        lines.removeFirst()
        return (old, try lines.map {
            guard let hash = MerkleHash(base64: $0) else {
                throw FerryError.invalidArgument("log consistency proof: a line is not a base64 hash")
            }
            return hash
        })
    }

    /// Verifies this proof under `policy`, and that its checkpoint extends `trusted` (the checkpoint trusted before,
    /// if any) with `consistency`. Returns the checkpoint. Throws ``LogForkError`` for a fork or a shrink.
    public func verify(policy: LogPolicy, trusted: Data?, consistency: Data?, now: Int64, allowStale: Bool = false)
        throws -> Checkpoint
    {
        let checkpoint = try policy.open(self.checkpoint, now: now, allowStale: allowStale)
        guard index < checkpoint.size else {
            throw FerryError.untrusted("log proof: entry \(index) is beyond the checkpoint's \(checkpoint.size)")
        }
        do {
            try MerkleTree.verifyInclusion(leaf: .leaf(entry), index: index, size: checkpoint.size, proof: proof,
                                           root: checkpoint.rootHash)
        } catch {
            throw FerryError.untrusted("the release is not in the log: the inclusion proof of entry \(index) does not "
                + "lead to the checkpoint's root")
        }
        try policy.checkExtends(trusted: trusted, offered: checkpoint, offeredData: self.checkpoint,
                                consistency: consistency)
        return checkpoint
    }
}

extension LogPolicy {
    /// Checks that `offered` (whose signed bytes are `offeredData`, already opened under this policy) extends
    /// `trusted`, the checkpoint trusted before, if any, with the `consistency` file. Throws ``LogForkError`` for a
    /// fork, and `.untrusted` for a shrink (a stale mirror) or a missing or malformed proof.
    public func checkExtends(trusted: Data?, offered checkpoint: Checkpoint, offeredData: Data, consistency: Data?)
        throws
    {
        guard let trusted else { return }
        let before = try Checkpoint.open(trusted, logKey: logKey).checkpoint
        func fork(_ why: String) -> LogForkError {
            LogForkError(message: "the log of \(checkpoint.origin) \(why) (trusted: size \(before.size) root "
                + "\(before.rootHash.base64); offered: size \(checkpoint.size) root \(checkpoint.rootHash.base64))",
                trusted: trusted, offered: offeredData)
        }
        if before.size > checkpoint.size {
            throw FerryError.untrusted("the log of \(checkpoint.origin) offered has \(checkpoint.size) entries, older "
                + "than the \(before.size) trusted (a stale mirror)")
        }
        if before.size == checkpoint.size {
            guard before.rootHash == checkpoint.rootHash else { throw fork("forked: same size, another root") }
            return
        }
        guard let consistency else {
            throw FerryError.untrusted("log proof: no consistency proof from the trusted size \(before.size)")
        }
        let (old, proof) = try ReleaseProof.parseConsistency(consistency)
        guard old == before.size else {
            throw FerryError.untrusted("log proof: the consistency proof starts at \(old), the trusted size is "
                + "\(before.size)")
        }
        do {
            try MerkleTree.verifyConsistency(oldSize: before.size, newSize: checkpoint.size, oldRoot: before.rootHash,
                                             newRoot: checkpoint.rootHash, proof: proof)
        } catch {
            throw fork("forked: it does not extend the checkpoint trusted before")
        }
    }
}

/// The log entries an agent stages for the installing side: every entry from the size that side has read to the
/// checkpoint's size, so it can apply key events and recalls in order (``MerkleFrontier`` proves them). The file
/// `log/entries` is `from N` and a newline, then each entry as in an entry bundle (a big-endian uint16 length and
/// the bytes).
public enum StagedEntries {
    public static let fileName = "entries"
    /// The largest file the installing side reads: 64 MiB, some 40,000 entries of releases.
    public static let maxSize = 64 << 20

    public static func encode(from: UInt64, _ entries: [Data]) throws -> Data {
        Data("from \(from)\n".utf8) + (try EntryBundle.encode(entries))
    }

    /// The first index and the entries; there must be exactly `count` of them when it is given.
    public static func decode(_ data: Data) throws -> (from: UInt64, entries: [Data]) {
        guard data.count <= maxSize, let newline = data.firstIndex(of: 0x0a), newline - data.startIndex <= 32,
            let line = String(data: data[data.startIndex..<newline], encoding: .utf8), line.hasPrefix("from "),
            let from = Tile.decimal(String(line.dropFirst(5)), max: LogPolicy.maxHonestSize)
        else {
            throw FerryError.invalidArgument("staged log entries: malformed (no from line)")
        }
        let body = data[(newline + 1)...]
        // Count first (a length prefix per entry), then decode exactly that many.
        var count = 0
        var offset = body.startIndex
        while offset < body.endIndex {
            guard body.endIndex - offset >= 2 else {
                throw FerryError.invalidArgument("staged log entries: ends inside a length prefix")
            }
            offset += 2 + (Int(body[offset]) << 8 | Int(body[offset + 1]))
            count += 1
        }
        return (from, try EntryBundle.decode(Data(body), count: count, what: "staged log entries", maxBytes: maxSize))
    }
}
