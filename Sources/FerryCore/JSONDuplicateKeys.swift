import Foundation

/// Finds an object key that occurs twice in one JSON object, at any depth.
///
/// Foundation's `JSONSerialization` and `JSONDecoder` keep the last of two equal keys without a word, while
/// containers/image refuses such a document and other readers keep the first. A signed document with a duplicate
/// key therefore says two things at once (a parser differential), so signed JSON is scanned with this before it
/// is decoded. Keys are compared after unescaping (`"\u0074ype"` is `"type"`) and as Swift strings, that is by
/// Unicode canonical equivalence, the way a `[String: Any]` built by Foundation merges them; that refuses a
/// superset of what a byte-wise comparison refuses.
///
/// The scan also checks the grammar it walks (RFC 8259), so that it cannot be desynchronised by a string that
/// hides a quote; numbers and literals are only delimited, the real parser validates them afterwards.
public enum JSONDuplicateKeys {
    /// Why a document was refused.
    public enum Finding: Error, Equatable, Sendable {
        /// `key` occurs twice in the object at `path` (dotted member names from the top, `$` for the top).
        case duplicateKey(path: String, key: String)
        /// The document is not JSON (or nests deeper than the limit) at byte `offset`.
        case malformed(offset: Int)
    }

    /// Nesting beyond this is refused: signed claims need three levels, and recursion must stay bounded.
    public static let maxDepth = 64

    /// Scans `data` and throws the first duplicate key, or `malformed` when the scan cannot walk it.
    public static func check(_ data: Data) throws(Finding) {
        var scanner = Scanner(bytes: [UInt8](data))
        scanner.skipWhitespace()
        try scanner.value(depth: 0, path: "$")
        scanner.skipWhitespace()
        guard scanner.index == scanner.bytes.count else { throw .malformed(offset: scanner.index) }
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0

        mutating func skipWhitespace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        mutating func value(depth: Int, path: String) throws(Finding) {
            guard depth <= JSONDuplicateKeys.maxDepth, index < bytes.count else {
                throw .malformed(offset: index)
            }
            switch bytes[index] {
            case UInt8(ascii: "{"): try object(depth: depth, path: path)
            case UInt8(ascii: "["): try array(depth: depth, path: path)
            case UInt8(ascii: "\""): _ = try string()
            default: try scalar()
            }
        }

        mutating func object(depth: Int, path: String) throws(Finding) {
            index += 1
            var seen = Set<String>()
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return
            }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw .malformed(offset: index) }
                let key = try string()
                guard seen.insert(key).inserted else {
                    throw .duplicateKey(path: path, key: String(key.prefix(80)))
                }
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw .malformed(offset: index) }
                index += 1
                skipWhitespace()
                try value(depth: depth + 1, path: path + "." + String(key.prefix(80)))
                skipWhitespace()
                guard index < bytes.count else { throw .malformed(offset: index) }
                switch bytes[index] {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "}"):
                    index += 1
                    return
                default: throw .malformed(offset: index)
                }
            }
        }

        mutating func array(depth: Int, path: String) throws(Finding) {
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return
            }
            var position = 0
            while true {
                skipWhitespace()
                try value(depth: depth + 1, path: "\(path)[\(position)]")
                position += 1
                skipWhitespace()
                guard index < bytes.count else { throw .malformed(offset: index) }
                switch bytes[index] {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "]"):
                    index += 1
                    return
                default: throw .malformed(offset: index)
                }
            }
        }

        /// A number or `true`/`false`/`null`: the run of characters that may form one.
        mutating func scalar() throws(Finding) {
            let start = index
            while index < bytes.count, isScalarByte(bytes[index]) { index += 1 }
            guard index > start else { throw .malformed(offset: index) }
        }

        private func isScalarByte(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."):
                return true
            default: return false
            }
        }

        mutating func hex4() throws(Finding) -> UInt32 {
            guard index + 4 <= bytes.count else { throw .malformed(offset: index) }
            var value: UInt32 = 0
            for byte in bytes[index..<index + 4] {
                let digit: UInt8
                switch byte {
                case 0x30...0x39: digit = byte - 0x30
                case 0x41...0x46: digit = byte - 0x41 + 10
                case 0x61...0x66: digit = byte - 0x61 + 10
                default: throw .malformed(offset: index)
                }
                value = value << 4 | UInt32(digit)
            }
            index += 4
            return value
        }

        /// A string starting at its opening quote, unescaped. Lone surrogates and control characters are refused.
        mutating func string() throws(Finding) -> String {
            index += 1
            var out = [UInt8]()
            while true {
                guard index < bytes.count else { throw .malformed(offset: index) }
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    index += 1
                    return String(decoding: out, as: UTF8.self)
                }
                guard byte >= 0x20 else { throw .malformed(offset: index) }
                index += 1
                guard byte == UInt8(ascii: "\\") else {
                    out.append(byte)
                    continue
                }
                guard index < bytes.count else { throw .malformed(offset: index) }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "\\"),
                            bytes[index + 1] == UInt8(ascii: "u")
                        else { throw .malformed(offset: index) }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw .malformed(offset: index) }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw .malformed(offset: index) }
                    out.append(contentsOf: Array(String(Character(unicode)).utf8))
                default: throw .malformed(offset: index)
                }
            }
        }
    }
}
