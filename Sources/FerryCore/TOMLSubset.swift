import Foundation

/// A strict check, before TOMLKit sees a file, that it is in the small part of TOML that remote files use: lines of
/// `bare-key = value`, comments and blank lines; values that are strings (basic, literal, and their multi-line
/// forms), integers, booleans, or one-level arrays of those. No tables, dotted or quoted keys, floats or dates.
///
/// Why: the toml++ copy inside TOMLKit 0.6.0 asserts its own invariants on some malformed input (`[;` in
/// `parse_key`, `y21 =[}` in `parse_value`, found by `fuzz-ferryrepo`): a debug build aborts, and a release build,
/// where those assertions become `__builtin_assume`, has undefined behaviour. A `.ferryrepo` may come from the
/// network, so only text this checker accepts reaches the parser; TOMLKit still does the parsing itself.
public enum TOMLSubset {
    /// Throws `.invalidArgument` naming the line of the first thing outside the subset.
    public static func check(_ text: String, what: String) throws {
        var scanner = Scanner(bytes: Array(text.utf8))
        do {
            try scanner.document()
        } catch let failure as Failure {
            throw FerryError.invalidArgument("\(what): line \(scanner.line): \(failure.why) (remote files use "
                + "key = value lines with strings, integers, booleans and arrays of them)")
        }
    }

    struct Failure: Error {
        var why: String
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0
        var line = 1

        init(bytes: [UInt8]) { self.bytes = bytes }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        func peek(_ text: String) -> Bool {
            let pattern = Array(text.utf8)
            return bytes.count - index >= pattern.count && Array(bytes[index..<(index + pattern.count)]) == pattern
        }

        mutating func advance(_ count: Int = 1) {
            for _ in 0..<count {
                if current == UInt8(ascii: "\n") { line += 1 }
                index += 1
            }
        }

        mutating func skipSpaces() {
            while let byte = current, byte == 0x20 || byte == 0x09 { advance() }
        }

        /// A comment to the end of the line (the newline is left).
        mutating func comment() throws {
            while let byte = current, byte != UInt8(ascii: "\n") {
                guard byte != UInt8(ascii: "\r") || peek("\r\n") else { throw Failure(why: "a bare carriage return") }
                guard byte >= 0x20 || byte == 0x09 || byte == UInt8(ascii: "\r"), byte != 0x7f else {
                    throw Failure(why: "a control character in a comment")
                }
                advance()
            }
        }

        /// The end of a line: optional spaces and comment, then a newline or the end.
        mutating func endOfLine() throws {
            skipSpaces()
            if current == UInt8(ascii: "#") { try comment() }
            if peek("\r\n") { advance(2); return }
            if current == UInt8(ascii: "\n") { advance(); return }
            guard current == nil else { throw Failure(why: "unexpected text after a value") }
        }

        mutating func document() throws {
            while current != nil {
                skipSpaces()
                guard let byte = current else { return }
                if byte == UInt8(ascii: "#") || byte == UInt8(ascii: "\n") || peek("\r\n") {
                    try endOfLine()
                    continue
                }
                try key()
                skipSpaces()
                guard current == UInt8(ascii: "=") else { throw Failure(why: "a key without =") }
                advance()
                skipSpaces()
                try value(inArray: false)
                try endOfLine()
            }
        }

        mutating func key() throws {
            let start = index
            while let byte = current, byte.isBareKeyCharacter { advance() }
            guard index > start, index - start <= 64 else { throw Failure(why: "not a bare key") }
        }

        mutating func value(inArray: Bool) throws {
            guard let byte = current else { throw Failure(why: "a key without a value") }
            switch byte {
            case UInt8(ascii: "\""):
                if peek("\"\"\"") { try multiLine(quote: "\"\"\"", escapes: true) } else { try singleLine("\"", escapes: true) }
            case UInt8(ascii: "'"):
                if peek("'''") { try multiLine(quote: "'''", escapes: false) } else { try singleLine("'", escapes: false) }
            case UInt8(ascii: "["):
                guard !inArray else { throw Failure(why: "an array inside an array") }
                try array()
            case UInt8(ascii: "t") where peek("true"), UInt8(ascii: "f") where peek("false"):
                advance(byte == UInt8(ascii: "t") ? 4 : 5)
            case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                if byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") { advance() }
                let start = index
                while let digit = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) { advance() }
                guard index > start, index - start <= 19 else { throw Failure(why: "not an integer") }
            default:
                throw Failure(why: "not a string, integer, boolean or array")
            }
            // A value ends at a space, a comment, a comma or bracket (in an array), or the line's end.
            if let next = current, !(next == 0x20 || next == 0x09 || next == UInt8(ascii: "#")
                || next == UInt8(ascii: "\n") || next == UInt8(ascii: "\r")
                || inArray && (next == UInt8(ascii: ",") || next == UInt8(ascii: "]")))
            {
                throw Failure(why: "unexpected text after a value")
            }
        }

        mutating func character(escapes: Bool, allowNewline: Bool) throws {
            guard let byte = current else { throw Failure(why: "an unterminated string") }
            if byte == UInt8(ascii: "\n") || peek("\r\n") {
                guard allowNewline else { throw Failure(why: "a line break in a one-line string") }
                advance(byte == UInt8(ascii: "\n") ? 1 : 2)
                return
            }
            guard byte >= 0x20 || byte == 0x09, byte != 0x7f else {
                throw Failure(why: "a control character in a string")
            }
            guard escapes, byte == UInt8(ascii: "\\") else {
                advance()
                return
            }
            advance()
            guard let escaped = current else { throw Failure(why: "an unterminated string") }
            switch escaped {
            case UInt8(ascii: "b"), UInt8(ascii: "t"), UInt8(ascii: "n"), UInt8(ascii: "f"), UInt8(ascii: "r"),
                UInt8(ascii: "\""), UInt8(ascii: "\\"):
                advance()
            case UInt8(ascii: "u"), UInt8(ascii: "U"):
                let count = escaped == UInt8(ascii: "u") ? 4 : 8
                advance()
                for _ in 0..<count {
                    guard let hex = current, hex.isHexDigit else { throw Failure(why: "a bad \\u escape") }
                    advance()
                }
            default:
                throw Failure(why: "an unknown escape in a string")
            }
        }

        mutating func singleLine(_ quote: String, escapes: Bool) throws {
            advance()
            while !peek(quote) { try character(escapes: escapes, allowNewline: false) }
            advance()
        }

        mutating func multiLine(quote: String, escapes: Bool) throws {
            advance(3)
            // A quote right after the closing one (`""""`) is legal TOML; it is not needed here, so it is refused.
            while !peek(quote) { try character(escapes: escapes, allowNewline: true) }
            advance(3)
            guard !peek(String(quote.prefix(1))) else { throw Failure(why: "quotes after a closing \(quote)") }
        }

        /// Spaces, comments and line breaks inside an array.
        mutating func arraySpace() throws {
            while true {
                skipSpaces()
                if current == UInt8(ascii: "#") { try comment() }
                if peek("\r\n") { advance(2) } else if current == UInt8(ascii: "\n") { advance() } else { return }
            }
        }

        mutating func array() throws {
            advance()
            try arraySpace()
            var count = 0
            while current != UInt8(ascii: "]") {
                try value(inArray: true)
                count += 1
                guard count <= 1024 else { throw Failure(why: "an array of more than 1024 values") }
                try arraySpace()
                guard current == UInt8(ascii: ",") || current == UInt8(ascii: "]") else {
                    throw Failure(why: "array values must be separated by commas")
                }
                if current == UInt8(ascii: ",") {
                    advance()
                    try arraySpace()
                }
            }
            advance()
        }
    }
}

extension UInt8 {
    fileprivate var isBareKeyCharacter: Bool {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) || self == UInt8(ascii: "_")
            || self == UInt8(ascii: "-")
    }

    fileprivate var isHexDigit: Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(self)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(self)
    }
}
