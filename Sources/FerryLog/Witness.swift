#if canImport(Glibc)
    import Glibc
#endif
import FerryCore
import Foundation
import Synchronization

/// A c2sp.org/tlog-witness: cosigns a log's checkpoint only when it is consistent with the last one it cosigned
/// for that origin, and remembers that one.
///
/// This is the protocol logic, without HTTP (``WitnessServer`` in the CLI serves it): ``addCheckpoint(_:)`` takes
/// the request body of `POST /add-checkpoint` and returns the status, content type and body to answer with. State
/// is one file per origin in `stateDirectory` (the latest cosigned checkpoint, as received), replaced atomically and
/// synced before the answer; the check of the old size and the write happen under one lock (in the process, and
/// `flock` on the directory for a second process), so two requests can never roll the state back.
public final class Witness: Sendable {
    public let key: NoteSignerKey
    /// The logs this witness cosigns: origin → the log's verifier keys.
    public let logs: [String: [NoteVerifierKey]]
    public let stateDirectory: String
    private let lock = Mutex(())

    /// The longest request body accepted: a maximal note plus the old size and 63 proof lines.
    public static let maxRequestSize = SignedNote.maxSize + 64 * 64
    /// Proof lines a request may carry (the spec's bound).
    public static let maxProofLines = 63

    public struct Response: Sendable, Equatable {
        public var status: Int
        public var contentType: String
        public var body: Data

        public init(status: Int, contentType: String, body: Data) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }

        /// A plain-text answer: `message` and a newline.
        public static func text(_ status: Int, _ message: String) -> Response {
            Response(status: status, contentType: "text/plain; charset=utf-8", body: Data((message + "\n").utf8))
        }
    }

    public init(key: NoteSignerKey, logKeys: [NoteVerifierKey], stateDirectory: String) throws {
        guard key.type == .cosignature else {
            throw FerryError.invalidArgument("\(key.name): a witness signs with a cosignature/v1 (type 0x04) key")
        }
        self.key = key
        logs = Dictionary(grouping: logKeys, by: \.name)
        self.stateDirectory = stateDirectory
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
    }

    /// Handles one `add-checkpoint` request body; `now` is the cosignature's timestamp (Unix seconds).
    public func addCheckpoint(_ body: Data, now: UInt64 = UInt64(Date().timeIntervalSince1970)) -> Response {
        let request: (old: UInt64, proof: [MerkleHash], note: Data)
        do {
            request = try Witness.parse(body)
        } catch {
            return .text(400, "malformed request: \((error as? FerryError)?.message ?? "\(error)")")
        }
        let note: SignedNote
        let checkpoint: Checkpoint
        do {
            note = try SignedNote(request.note)
            checkpoint = try Checkpoint(text: note.text)
        } catch {
            return .text(400, "malformed checkpoint: \((error as? FerryError)?.message ?? "\(error)")")
        }
        guard let keys = logs[checkpoint.origin] else { return .text(404, "unknown log origin") }
        // No signature by a trusted key, or a bad one by a trusted key (a malformed note): forbidden.
        guard keys.contains(where: { (try? Checkpoint.open(request.note, logKey: $0)) != nil }) else {
            return .text(403, "checkpoint is not signed by a key this witness trusts for the origin")
        }
        guard request.old <= checkpoint.size else {
            return .text(400, "old size \(request.old) is larger than the checkpoint's \(checkpoint.size)")
        }
        return lock.withLock { _ in
            do {
                let directoryLock = try FileLock(path: stateDirectory + "/.lock")
                defer { directoryLock.unlock() }
                let latest = try latestCosigned(origin: checkpoint.origin)
                guard request.old == latest.size else {
                    return Response(status: 409, contentType: "text/x.tlog.size", body: Data("\(latest.size)\n".utf8))
                }
                if checkpoint.size == 0 && checkpoint.rootHash != .emptyTree {
                    return .text(422, "a checkpoint of size 0 must have the empty tree's root")
                }
                if request.old == 0 {
                    guard request.proof.isEmpty else { return .text(422, "a proof from size 0 must be empty") }
                } else {
                    do {
                        try MerkleTree.verifyConsistency(oldSize: request.old, newSize: checkpoint.size,
                                                         oldRoot: latest.rootHash, newRoot: checkpoint.rootHash,
                                                         proof: request.proof)
                    } catch {
                        return .text(422, "not consistent with the checkpoint of size \(latest.size) cosigned before")
                    }
                }
                try AtomicFile.write(request.note, to: statePath(checkpoint.origin))
                let cosignature = try key.sign(text: Data(note.text.utf8), timestamp: now)
                return Response(status: 200, contentType: "text/plain; charset=utf-8", body: Data(cosignature.line.utf8))
            } catch {
                return .text(500, "witness state: \((error as? FerryError)?.message ?? "\(error)")")
            }
        }
    }

    /// The size and root of the latest checkpoint cosigned for `origin` (size 0, the empty tree, when none).
    func latestCosigned(origin: String) throws -> (size: UInt64, rootHash: MerkleHash) {
        guard let data = FileManager.default.contents(atPath: statePath(origin)) else { return (0, .emptyTree) }
        let checkpoint = try Checkpoint(text: try SignedNote(data).text)
        return (checkpoint.size, checkpoint.rootHash)
    }

    /// One file per origin; the name is the origin's SHA-256, so no origin can name a path.
    func statePath(_ origin: String) -> String {
        stateDirectory + "/" + Digest.of(Data(origin.utf8)).hex + ".checkpoint"
    }

    /// Splits a request body into the old size, the proof and the checkpoint note.
    public static func parse(_ body: Data) throws -> (old: UInt64, proof: [MerkleHash], note: Data) {
        guard body.count <= maxRequestSize else { throw FerryError.invalidArgument("body too large") }
        var lines: [Data] = []
        var start = body.startIndex
        var rest = body.startIndex
        while let newline = body[start...].firstIndex(of: 0x0A) {
            let line = body[start..<newline]
            start = body.index(after: newline)
            if line.isEmpty {
                rest = start
                break
            }
            lines.append(Data(line))
            guard lines.count <= maxProofLines + 1 else { throw FerryError.invalidArgument("too many proof lines") }
        }
        guard rest > body.startIndex, let first = lines.first,
            let text = String(data: first, encoding: .utf8), text.hasPrefix("old "),
            let old = Tile.decimal(String(text.dropFirst(4)), max: UInt64(Int64.max))
        else {
            throw FerryError.invalidArgument("expected an old size line, proof lines and an empty line")
        }
        let proof = try lines.dropFirst().map { line -> MerkleHash in
            guard let text = String(data: line, encoding: .ascii), let hash = MerkleHash(base64: text) else {
                throw FerryError.invalidArgument("a proof line is not a base64 hash")
            }
            return hash
        }
        return (old, proof, Data(body[rest...]))
    }

    /// The request body for `checkpoint` (a signed note's bytes) from `old` entries with `proof`.
    public static func requestBody(old: UInt64, proof: [MerkleHash], checkpoint: Data) -> Data {
        Data((["old \(old)"] + proof.map(\.base64)).map { $0 + "\n" }.joined().utf8) + Data("\n".utf8) + checkpoint
    }
}
