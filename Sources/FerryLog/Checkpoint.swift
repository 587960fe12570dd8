import FerryCore
import Foundation

/// A log's signed tree head (c2sp.org/tlog-checkpoint): the note text `<origin>\n<size>\n<base64 root>\n`, then
/// optional extension lines.
public struct Checkpoint: Hashable, Sendable {
    /// The log's identity; Ferry's logs use the log key's name.
    public let origin: String
    /// Entries in the tree.
    public let size: UInt64
    /// The RFC 6962 root hash of those entries.
    public let rootHash: MerkleHash
    /// Opaque extra lines, each non-empty (signed, but not auditable: Ferry writes none).
    public let extensions: [String]

    public init(origin: String, size: UInt64, rootHash: MerkleHash, extensions: [String] = []) throws {
        guard !origin.isEmpty, !origin.contains("\n"), !origin.unicodeScalars.contains(where: { $0.value < 0x20 })
        else { throw FerryError.invalidArgument("checkpoint origin must be one non-empty line") }
        guard size <= UInt64(Int64.max) else { throw FerryError.invalidArgument("checkpoint size \(size)") }
        for line in extensions where line.isEmpty || line.unicodeScalars.contains(where: { $0.value < 0x20 }) {
            throw FerryError.invalidArgument("checkpoint extension lines must be non-empty single lines")
        }
        self.origin = origin
        self.size = size
        self.rootHash = rootHash
        self.extensions = extensions
    }

    /// Parses a checkpoint's note text (with its final newline).
    public init(text: String) throws {
        func malformed(_ why: String) -> FerryError { FerryError.invalidArgument("checkpoint " + why) }
        guard text.hasSuffix("\n") else { throw malformed("text does not end with a newline") }
        let lines = text.dropLast().split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= 3 else { throw malformed("has fewer than three lines") }
        guard !lines[0].isEmpty else { throw malformed("has an empty origin") }
        guard let size = Tile.decimal(String(lines[1]), max: UInt64(Int64.max)) else {
            throw malformed("size \(lines[1].prefix(40).debugDescription) is not a decimal number")
        }
        guard let root = MerkleHash(base64: lines[2]) else {
            throw malformed("root hash is not the base64 of 32 bytes")
        }
        let extensions = lines.dropFirst(3).map(String.init)
        guard !extensions.contains(where: \.isEmpty) else { throw malformed("has an empty extension line") }
        try self.init(origin: String(lines[0]), size: size, rootHash: root, extensions: extensions)
    }

    /// The note text.
    public var text: String {
        ([origin, String(size), rootHash.base64] + extensions).joined(separator: "\n") + "\n"
    }

    /// Parses a signed checkpoint and verifies it: the log key's signature must verify and its name must be the
    /// origin (a checkpoint of another log signed by the same key is not this log's). Other signatures (witness
    /// cosignatures) are checked by ``SignedNote/verify(by:)`` when their keys are given in `witnesses`; the result
    /// lists what verified.
    public static func open(_ data: Data, logKey: NoteVerifierKey, witnesses: [NoteVerifierKey] = []) throws
        -> (checkpoint: Checkpoint, note: SignedNote, verified: [SignedNote.Verified])
    {
        let note = try SignedNote(data)
        let verified = try note.verify(by: [logKey] + witnesses)
        guard verified.contains(where: { $0.key == logKey }) else {
            throw FerryError.untrusted("checkpoint is not signed by the log key \(logKey)")
        }
        let checkpoint = try Checkpoint(text: note.text)
        guard checkpoint.origin == logKey.name else {
            throw FerryError.untrusted(
                "checkpoint origin \(checkpoint.origin.prefix(100).debugDescription) is not the log key's name "
                    + logKey.name.debugDescription)
        }
        return (checkpoint, note, verified)
    }
}
