import FerryCore
import Foundation

/// Shared pieces of the minisign file formats (https://jedisct1.github.io/minisign/).
///
/// Every minisign file is lines of text: an `untrusted comment: ` line, then one base64 line of a fixed binary
/// layout; signatures add a `trusted comment: ` line and a second base64 line.
enum Minisign {
    static let untrustedPrefix = "untrusted comment: "
    static let trustedPrefix = "trusted comment: "
    static let legacyAlgorithm: [UInt8] = Array("Ed".utf8)
    static let prehashedAlgorithm: [UInt8] = Array("ED".utf8)
    static let scryptAlgorithm: [UInt8] = Array("Sc".utf8)
    static let noKDF: [UInt8] = [0, 0]
    static let blake2Algorithm: [UInt8] = Array("B2".utf8)
    static let keyNumberBytes = 8
    /// minisign's `COMMENTMAXBYTES` and `TRUSTEDCOMMENTMAXBYTES`, which include the prefix and the newline.
    static let commentMaxBytes = 1024
    static let trustedCommentMaxBytes = 8192
    /// No minisign file comes near this; larger input is refused before any parsing.
    static let maxFileBytes = 16 * 1024

    /// Splits on `\n` at the byte level and drops one trailing `\r` per line, as minisign's `trim` does.
    /// (Swift's `Character` treats `\r\n` as one character, so splitting a `String` would not.)
    /// Trailing empty lines are dropped.
    static func lines(_ text: String) throws -> [[UInt8]] {
        let bytes = Array(text.utf8)
        guard bytes.count <= maxFileBytes else { throw FerryError.invalidArgument("minisign file larger than 16 KiB") }
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { line -> [UInt8] in
            var line = Array(line)
            if line.last == 0x0D { line.removeLast() }
            return line
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }

    /// Strict standard base64 with padding (libsodium's `sodium_base64_VARIANT_ORIGINAL`); `count` bytes exactly.
    static func decode(_ line: [UInt8], count: Int) -> [UInt8]? {
        var trimmed = line[...]
        while let last = trimmed.last, last == 0x20 || last == 0x09 { trimmed = trimmed.dropLast() }
        guard let data = Data(base64Encoded: Data(trimmed)), data.count == count else { return nil }
        return Array(data)
    }

    static func encode(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    /// The bytes after `prefix`, if the line starts with it.
    static func stripping(_ prefix: String, from line: [UInt8]) -> [UInt8]? {
        let p = Array(prefix.utf8)
        guard line.count >= p.count, Array(line[0..<p.count]) == p else { return nil }
        return Array(line[p.count...])
    }

    /// A key number as minisign prints it: the 8 bytes read as a little-endian integer, `%" PRIX64` (upper case,
    /// no zero padding: a key number below 2^60 has fewer than 16 digits). Public key files written by Ferry and
    /// minisign must match byte for byte, and messages should name keys the way `minisign -V` does.
    static func keyID(_ keyNumber: [UInt8]) -> String {
        var value: UInt64 = 0
        for byte in keyNumber.reversed() { value = value << 8 | UInt64(byte) }
        return String(value, radix: 16, uppercase: true)
    }

    static func checkComment(_ comment: String, maxBytes: Int, what: String) throws {
        guard !comment.utf8.contains(0x0A), !comment.utf8.contains(0x0D) else {
            throw FerryError.invalidArgument("\(what) must be a single line")
        }
        guard comment.utf8.count < maxBytes else {
            throw FerryError.invalidArgument("\(what) longer than \(maxBytes - 1) bytes")
        }
    }
}
