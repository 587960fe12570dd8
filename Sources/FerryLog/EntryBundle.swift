import FerryCore
import Foundation

/// The entries of one level-0 tile (c2sp.org/tlog-tiles "Log entries"): each entry as a big-endian uint16 length
/// followed by its bytes, concatenated. Entry `i` of the bundle hashes to hash `i` of the level-0 tile.
public enum EntryBundle {
    /// The largest entry a bundle can carry (the length prefix is 16 bits).
    public static let maxEntrySize = Int(UInt16.max)
    /// The largest bundle: 256 entries of the largest size with their prefixes.
    public static let maxSize = Tile.fullWidth * (2 + maxEntrySize)

    /// Encodes entries; each must be at most 65,535 bytes.
    public static func encode(_ entries: some Collection<Data>) throws -> Data {
        var data = Data()
        for entry in entries {
            guard entry.count <= maxEntrySize else {
                throw FerryError.invalidArgument("log entry of \(entry.count) bytes; at most \(maxEntrySize) fit")
            }
            data.append(UInt8(entry.count >> 8))
            data.append(UInt8(entry.count & 0xff))
            data.append(contentsOf: entry)
        }
        return data
    }

    /// Decodes a bundle that must hold exactly `count` entries and nothing after them, in at most `maxBytes`.
    /// `what` names the bundle in errors.
    public static func decode(_ data: Data, count: Int, what: String, maxBytes: Int = maxSize) throws -> [Data] {
        guard data.count <= maxBytes else {
            throw FerryError.invalidArgument("\(what): entry bundle larger than \(maxBytes) bytes")
        }
        var entries: [Data] = []
        var offset = data.startIndex
        while offset < data.endIndex {
            guard entries.count < count else {
                throw FerryError.invalidArgument("\(what): entry bundle has more than \(count) entries")
            }
            guard data.endIndex - offset >= 2 else {
                throw FerryError.invalidArgument("\(what): entry bundle ends inside a length prefix")
            }
            let length = Int(data[offset]) << 8 | Int(data[offset + 1])
            offset += 2
            guard data.endIndex - offset >= length else {
                throw FerryError.invalidArgument("\(what): entry bundle ends inside entry \(entries.count)")
            }
            entries.append(Data(data[offset..<(offset + length)]))
            offset += length
        }
        guard entries.count == count else {
            throw FerryError.invalidArgument("\(what): entry bundle has \(entries.count) entries, expected \(count)")
        }
        return entries
    }
}
