import FerryCore
import FerryLog
import FerryTrust
import Foundation

/// What a remote's transparency log has made of the keys it was blessed with, and what it recalled: the result of
/// reading every entry of the log, in order, up to ``size``.
///
/// The ledger starts from the remote's configuration (its ed25519 keys, its `key-threshold`, its log's origin)
/// and applies each entry as DESIGN.md, "Trust operations" says:
/// - a `key-add`, `key-remove` or `key-revoke` applies when it names this log's origin, was not applied before, is
///   not signed before the last event applied (log order), and is signed by `key-threshold` distinct keys current
///   at that point; it must leave at least `key-threshold` current keys. Anything else is recorded in ``refused``
///   and changes nothing;
/// - a `recall` applies when it names this origin and one key current at that point signed it;
/// - a `release` changes nothing here: it is checked when it is installed, with the keys valid at its index
///   (``trustedKeys(forReleaseAt:gpg:)``).
///
/// The ledger keeps the log's right edge (``MerkleFrontier``), so entries read since the last time prove
/// themselves against a newer checkpoint's root (``advance(with:from:to:)``): nothing can be skipped or changed.
/// GPG keys are not changed by the log (in-band rotation is for ed25519 keys); they stay as blessed.
public struct TrustLedger: Sendable, Equatable {
    /// One ed25519 key the remote has trusted at some point.
    public struct KeyRecord: Sendable, Equatable, Codable {
        /// The key: the base64 line of its `.pub` file.
        public var key: String
        public var id: String
        /// The log index of its `key-add`; `nil`: blessed with the remote.
        public var added: UInt64?
        /// The log index of its `key-remove` or `key-revoke`.
        public var retired: UInt64?
        /// When it was removed or revoked (the event's timestamp), for messages.
        public var retiredAt: Int64?
        /// `key-revoke`: claims it signed from this time on are invalid.
        public var revokedSince: Int64?

        public var isCurrent: Bool { retired == nil }

        public var status: String {
            guard let retired else { return "active" }
            let when = retiredAt.map { TimestampPolicy.describe($0) } ?? "?"
            if let revokedSince {
                return "revoked at log entry \(retired) on \(when), for claims from "
                    + TimestampPolicy.describe(revokedSince)
            }
            return "removed at log entry \(retired) on \(when)"
        }
    }

    /// A release the remote recalled.
    public struct RecallRecord: Sendable, Equatable, Codable {
        public var ref: String
        public var digest: String
        public var reason: String
        public var timestamp: Int64
        public var index: UInt64
    }

    /// An entry that said something about keys or recalls and was not applied, and why.
    public struct RefusedEntry: Sendable, Equatable, Codable {
        public var index: UInt64
        public var reason: String
    }

    public private(set) var origin: String
    /// What the remote was blessed with (keys, threshold, origin), hashed: a ledger of another blessing is void.
    public private(set) var blessing: String
    public private(set) var threshold: Int
    public private(set) var frontier: MerkleFrontier
    public private(set) var keys: [KeyRecord]
    /// The timestamp of the last key event applied.
    public private(set) var lastEventTime: Int64?
    /// The statements of the key events applied (their digests): a replayed one is refused.
    public private(set) var appliedEvents: [String]
    public private(set) var recalls: [RecallRecord]
    /// The latest refused entries (at most ``maxRefused``).
    public private(set) var refused: [RefusedEntry]

    static let maxRefused = 64
    /// The file under `log/REMOTE/` of a scope's state.
    public static let fileName = "ledger.json"

    /// Entries read so far.
    public var size: UInt64 { frontier.size }

    /// The ledger of a remote whose log nobody has read yet.
    public init(remote: Remote, origin: String) throws {
        self.origin = origin
        threshold = remote.effectiveKeyThreshold
        blessing = try TrustLedger.blessing(of: remote, origin: origin)
        frontier = MerkleFrontier()
        keys = try remote.ed25519Keys.map { text in
            let key = try MinisignPublicKey(parsing: text)
            return KeyRecord(key: key.base64, id: key.keyID)
        }
        lastEventTime = nil
        appliedEvents = []
        recalls = []
        refused = []
    }

    private static func blessing(of remote: Remote, origin: String) throws -> String {
        let keys = try remote.ed25519Keys.map { try MinisignPublicKey(parsing: $0).base64 }.sorted()
        let text = (["origin \(origin)", "threshold \(remote.effectiveKeyThreshold)"] + keys).joined(separator: "\n")
        return Digest.of(Data(text.utf8)).description
    }

    // MARK: Reading the log

    /// Applies the entries from index `from` on and checks that they lead to `checkpoint`'s root. Entries this
    /// ledger has already read (when another deploy moved it on meanwhile) are skipped; the ledger is unchanged
    /// when this throws.
    ///
    /// With `through` (the checkpoint trusted before, when this ledger has not read past it), the entries must also
    /// lead to its root at its size: then they extend it, with no consistency proof needed.
    public mutating func advance(with entries: [Data], from: UInt64, to checkpoint: Checkpoint,
                                 through trusted: Checkpoint? = nil) throws {
        guard from <= size else {
            throw FerryError.untrusted("log entries from \(from) were staged, and this scope has read the log "
                + "of \(origin) only up to \(size)")
        }
        guard checkpoint.size >= size else {
            throw FerryError.untrusted("the log of \(origin) offered has \(checkpoint.size) entries, fewer than the "
                + "\(size) read before (a stale mirror)")
        }
        let skip = Int(size - from)
        guard UInt64(entries.count) == checkpoint.size - from else {
            throw FerryError.untrusted("\(entries.count) log entries were staged from \(from), and the checkpoint "
                + "of \(origin) has \(checkpoint.size)")
        }
        var next = self
        let mismatch = FerryError.untrusted("the log entries staged for \(origin) do not extend the checkpoint "
            + "trusted before (size \(trusted?.size ?? 0))")
        if let trusted, trusted.size == size, frontier.root != trusted.rootHash { throw mismatch }
        for (offset, entry) in entries.enumerated().dropFirst(skip) {
            next.read(entry, at: from + UInt64(offset))
            if let trusted, next.size == trusted.size, next.frontier.root != trusted.rootHash { throw mismatch }
        }
        guard next.frontier.root == checkpoint.rootHash else {
            throw FerryError.untrusted("the log entries staged for \(origin) do not lead to its checkpoint's root "
                + "(an entry was left out, changed or reordered)")
        }
        self = next
    }

    /// Reads one entry at `index` (which must be ``size``), applying what it says (a monitor reads every entry
    /// this way; clients through ``advance(with:from:to:)``).
    public mutating func read(_ data: Data, at index: UInt64) {
        precondition(index == frontier.size)
        frontier.append(entry: data)
        let entry: LogEntry
        do {
            entry = try LogEntry(parsing: data)
        } catch let error as FerryError {
            refuse(index, "malformed entry: \(error.message)")
            return
        } catch {
            refuse(index, "malformed entry: \(error)")
            return
        }
        switch entry {
        case .release, .other: return
        case .keyEvent(let event):
            do {
                try apply(event, at: index)
                lastEventTime = event.timestamp
                appliedEvents.append(Digest.of(event.signed?.statement ?? Data()).description)
            } catch let error as FerryError {
                refuse(index, "\(event.change.rawValue) of \(Self.keyID(event.key)): \(error.message)")
            } catch {
                refuse(index, "\(error)")
            }
        case .recall(let recall):
            do {
                guard recall.origin == origin else {
                    throw FerryError.untrusted("it is for the log \(recall.origin), not \(origin)")
                }
                let (signers, problem) = try signers(of: recall.signed)
                guard !signers.isEmpty else { throw FerryError.untrusted(problem ?? "signed by no current key") }
                if !recalls.contains(where: { $0.ref == recall.ref.string && $0.digest == recall.digest.description }) {
                    recalls.append(RecallRecord(ref: recall.ref.string, digest: recall.digest.description,
                                                reason: recall.reason, timestamp: recall.timestamp, index: index))
                }
            } catch let error as FerryError {
                refuse(index, "recall of \(recall.ref) \(recall.digest.short): \(error.message)")
            } catch {
                refuse(index, "\(error)")
            }
        }
    }

    private mutating func apply(_ event: KeyEvent, at index: UInt64) throws {
        guard event.origin == origin else {
            throw FerryError.untrusted("it is for the log \(event.origin), not \(origin)")
        }
        guard !appliedEvents.contains(Digest.of(event.signed?.statement ?? Data()).description) else {
            throw FerryError.untrusted("already applied (the same event appended again)")
        }
        if let lastEventTime, event.timestamp < lastEventTime {
            throw FerryError.untrusted("out of order: signed at \(TimestampPolicy.describe(event.timestamp)), before "
                + "the last key event applied (\(TimestampPolicy.describe(lastEventTime)))")
        }
        let key: MinisignPublicKey
        do {
            key = try MinisignPublicKey(parsing: event.key)
        } catch {
            throw FerryError.invalidArgument("the key does not parse")
        }
        let (signers, problem) = try signers(of: event.signed)
        guard signers.count >= threshold else {
            throw FerryError.untrusted("signed by \(signers.count) of the \(threshold) current keys required"
                + (problem.map { " (\($0))" } ?? ""))
        }
        let existing = keys.firstIndex { $0.id == key.keyID }
        switch event.change {
        case .add:
            guard existing == nil else { throw FerryError.invalidArgument("the key is already known to the remote") }
            keys.append(KeyRecord(key: key.base64, id: key.keyID, added: index))
        case .remove, .revoke:
            guard let existing, keys[existing].revokedSince == nil,
                event.change == .revoke || keys[existing].isCurrent
            else {
                throw FerryError.invalidArgument("the key is not a current key of the remote")
            }
            if keys[existing].isCurrent {
                guard keys.filter(\.isCurrent).count - 1 >= threshold else {
                    throw FerryError.invalidArgument("it would leave fewer current keys than the threshold "
                        + "(\(threshold))")
                }
                keys[existing].retired = index
                keys[existing].retiredAt = event.timestamp
            }
            if event.change == .revoke { keys[existing].revokedSince = event.since ?? event.timestamp }
        }
    }

    /// The current keys whose signature over the statement verifies, and what was wrong with the others (a retired
    /// or unknown key, a bad signature), so that a refusal says which key.
    private func signers(of signed: SignedStatement?) throws -> (Set<String>, String?) {
        guard let signed else { return ([], nil) }
        let current = try keys.filter(\.isCurrent).map { try MinisignPublicKey(parsing: $0.key) }
        var found = Set<String>()
        var problem: String?
        for data in signed.signatures {
            guard let signature = try? MinisignSignature(parsing: data) else {
                problem = problem ?? "a signature does not parse"
                continue
            }
            if let record = keys.first(where: { $0.id == signature.keyID }), !record.isCurrent {
                problem = "signed by \(record.id), which is \(record.status)"
                continue
            }
            do {
                _ = try signature.verify(signed.statement, keys: current)
                found.insert(signature.keyID)
            } catch let error as FerryError {
                problem = problem ?? error.message
            }
        }
        return (found, problem)
    }

    private mutating func refuse(_ index: UInt64, _ reason: String) {
        refused.append(RefusedEntry(index: index, reason: reason))
        if refused.count > TrustLedger.maxRefused { refused.removeFirst() }
    }

    static func keyID(_ key: String) -> String {
        (try? MinisignPublicKey(parsing: key).keyID) ?? "an unreadable key"
    }

    // MARK: Answers

    /// The recall of a release, if the log has one.
    public func recall(ref: Ref, digest: Digest) -> RecallRecord? {
        recalls.first { $0.ref == ref.string && $0.digest == digest.description }
    }

    /// The keys a release logged at `index` may be signed with: the ed25519 keys current there (blessed or added
    /// before it, retired after it), each revoked one only for claims older than its revocation, and the remote's
    /// GPG keys. Keys that do not count are named in ``TrustedKeys/retired`` with the reason.
    public func trustedKeys(forReleaseAt index: UInt64, gpg: [Data]) throws -> TrustedKeys {
        var result = TrustedKeys(gpg: gpg)
        let currentIDs = keys.filter(\.isCurrent).map(\.id).joined(separator: ", ")
        let current = currentIDs.isEmpty ? "none" : currentIDs
        for record in keys {
            let key = try MinisignPublicKey(parsing: record.key)
            if let added = record.added, added >= index {
                result.retired[record.id] = "the remote added only at log entry \(added), after this release "
                    + "(entry \(index)); its current keys are \(current)"
                continue
            }
            if let retired = record.retired, retired <= index {
                result.retired[record.id] = "is \(record.status); the release is logged after that (entry "
                    + "\(index)); the remote's current keys are \(current)"
                continue
            }
            result.ed25519.append(key)
            if let since = record.revokedSince {
                result.notAfter[record.id] = since
                result.retired[record.id] = "the remote revoked for claims from \(TimestampPolicy.describe(since)) "
                    + "(log entry \(record.retired ?? 0)); its current keys are \(current)"
            }
        }
        return result
    }

    /// The keys an installed release is checked with after the fact (`list`, `info`, `update`): every key the
    /// ledger knows, each revoked one only for claims older than its revocation. A removal does not make an
    /// installed release bad; a revocation does, from its time on.
    public func keysForInstalled(gpg: [Data]) throws -> TrustedKeys {
        var result = TrustedKeys(gpg: gpg)
        for record in keys {
            result.ed25519.append(try MinisignPublicKey(parsing: record.key))
            if let since = record.revokedSince {
                result.notAfter[record.id] = since
                result.retired[record.id] = "the remote revoked for claims from \(TimestampPolicy.describe(since)) "
                    + "(log entry \(record.retired ?? 0))"
            }
        }
        return result
    }

    /// The keys a publisher may sign a new event or release with now.
    public var currentKeys: [KeyRecord] { keys.filter(\.isCurrent) }

    // MARK: Storage

    private struct File: Codable {
        var origin: String
        var blessing: String
        var threshold: Int
        var size: UInt64
        var frontier: [String]
        var keys: [KeyRecord]
        var lastEventTime: Int64?
        var appliedEvents: [String]
        var recalls: [RecallRecord]
        var refused: [RefusedEntry]
    }

    /// The ledger stored in `directory` (`log/REMOTE`) for `remote`, or a new one when there is none, or when the
    /// stored one is of another blessing (the remote was configured anew) or does not parse.
    public static func load(directory: String, remote: Remote, origin: String) throws -> TrustLedger {
        let fresh = try TrustLedger(remote: remote, origin: origin)
        guard let data = FileManager.default.contents(atPath: directory + "/" + fileName),
            let file = try? JSONDecoder().decode(File.self, from: data), file.blessing == fresh.blessing,
            file.origin == origin, file.threshold == fresh.threshold,
            let frontier = MerkleFrontier(size: file.size, hashes: file.frontier.compactMap { MerkleHash(base64: $0) })
        else {
            return fresh
        }
        var ledger = fresh
        ledger.frontier = frontier
        ledger.keys = file.keys
        ledger.lastEventTime = file.lastEventTime
        ledger.appliedEvents = file.appliedEvents
        ledger.recalls = file.recalls
        ledger.refused = file.refused
        return ledger
    }

    /// Writes the ledger (world-readable: agents read it to know what to stage, `list` to mark recalls).
    public func save(directory: String) throws {
        let file = File(origin: origin, blessing: blessing, threshold: threshold, size: size,
                        frontier: frontier.hashes.map(\.base64), keys: keys, lastEventTime: lastEventTime, appliedEvents: appliedEvents, recalls: recalls,
                        refused: refused)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try makeDirectory(directory)
        try AtomicFile.write(try encoder.encode(file), to: directory + "/" + TrustLedger.fileName)
    }
}
