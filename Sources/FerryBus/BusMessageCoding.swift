internal import CSystemd
import Foundation
import Glibc

/// The sd-bus type code for an ASCII type character.
@inline(__always)
func typeCode(_ scalar: Unicode.Scalar) -> CChar {
    CChar(truncatingIfNeeded: scalar.value)
}

/// Decodes the remaining values of a message generically, whatever their types, using
/// `sd_bus_message_peek_type` to discover each one.
///
/// Never traps on peer input: a type it does not know, or any read failure, is an `InvalidArgs` error.
/// Every `h` value is duplicated (`F_DUPFD_CLOEXEC`) and recorded in `duplicatedFDs`, so the owner of the
/// reader decides who closes them.
struct BusMessageReader {
    let message: OpaquePointer
    private(set) var duplicatedFDs: [Int32] = []

    init(_ message: OpaquePointer) {
        self.message = message
    }

    /// Reads every value left at the current level.
    mutating func readAll() throws(BusError) -> [BusValue] {
        var values: [BusValue] = []
        while let (type, contents) = try peek() {
            values.append(try read(type, contents))
        }
        return values
    }

    /// Closes every descriptor this reader duplicated (used when decoding fails half-way).
    func closeDuplicatedFDs() {
        for fd in duplicatedFDs { close(fd) }
    }

    private func peek() throws(BusError) -> (CChar, String?)? {
        var type: CChar = 0
        var contents: UnsafePointer<CChar>?
        let found = try check(sd_bus_message_peek_type(message, &type, &contents), "cannot read message")
        guard found > 0 else { return nil }
        return (type, contents.map { String(cString: $0) })
    }

    private func readBasic<T>(_ type: CChar, _ value: inout T) throws(BusError) {
        let r = withUnsafeMutablePointer(to: &value) { sd_bus_message_read_basic(message, type, $0) }
        if r <= 0 {
            throw BusError.invalidArgs(
                "cannot read value of type \(Character(Unicode.Scalar(UInt8(bitPattern: type))))")
        }
    }

    private func enter(_ type: CChar, _ contents: String) throws(BusError) {
        let r = sd_bus_message_enter_container(message, type, contents)
        if r <= 0 { throw BusError.invalidArgs("cannot enter container \(contents)") }
    }

    private func exit() throws(BusError) {
        try check(sd_bus_message_exit_container(message), "cannot leave container")
    }

    private mutating func read(_ type: CChar, _ contents: String?) throws(BusError) -> BusValue {
        switch Unicode.Scalar(UInt8(bitPattern: type)) {
        case "y":
            var v: UInt8 = 0
            try readBasic(type, &v)
            return .byte(v)
        case "b":
            var v: Int32 = 0
            try readBasic(type, &v)
            return .bool(v != 0)
        case "n":
            var v: Int16 = 0
            try readBasic(type, &v)
            return .int16(v)
        case "q":
            var v: UInt16 = 0
            try readBasic(type, &v)
            return .uint16(v)
        case "i":
            var v: Int32 = 0
            try readBasic(type, &v)
            return .int32(v)
        case "u":
            var v: UInt32 = 0
            try readBasic(type, &v)
            return .uint32(v)
        case "x":
            var v: Int64 = 0
            try readBasic(type, &v)
            return .int64(v)
        case "t":
            var v: UInt64 = 0
            try readBasic(type, &v)
            return .uint64(v)
        case "d":
            var v: Double = 0
            try readBasic(type, &v)
            return .double(v)
        case "s", "o", "g":
            var pointer: UnsafePointer<CChar>?
            try readBasic(type, &pointer)
            guard let pointer else { throw BusError.invalidArgs("missing string value") }
            let string = String(cString: pointer)
            switch Unicode.Scalar(UInt8(bitPattern: type)) {
            case "o": return .objectPath(string)
            case "g": return .signature(string)
            default: return .string(string)
            }
        case "h":
            var fd: Int32 = -1
            try readBasic(type, &fd)
            // The message owns its descriptor; the caller gets its own duplicate.
            let duplicate = fcntl(fd, F_DUPFD_CLOEXEC, 3)
            if duplicate < 0 { throw BusError.fromErrno(-errno, "cannot duplicate received file descriptor") }
            duplicatedFDs.append(duplicate)
            return .unixFD(duplicate)
        case "a":
            guard let contents, !contents.isEmpty else { throw BusError.invalidArgs("array without element type") }
            if contents == "y" { return try readByteArray() }
            try enter(type, contents)
            let value: BusValue
            if contents.hasPrefix("{") {
                value = try readDictionary(contents)
            } else {
                value = .array(elementSignature: contents, try readAll())
            }
            try exit()
            return value
        case "v":
            guard let contents else { throw BusError.invalidArgs("variant without signature") }
            try enter(type, contents)
            guard let (innerType, innerContents) = try peek() else {
                throw BusError.invalidArgs("empty variant")
            }
            let inner = try read(innerType, innerContents)
            try exit()
            return .variant(inner)
        case "r":
            guard let contents else { throw BusError.invalidArgs("struct without signature") }
            try enter(type, contents)
            let fields = try readAll()
            try exit()
            return .structure(fields)
        default:
            throw BusError.invalidArgs("unsupported D-Bus type code \(type)")
        }
    }

    private func readByteArray() throws(BusError) -> BusValue {
        var pointer: UnsafeRawPointer?
        var size = 0
        let r = sd_bus_message_read_array(message, typeCode("y"), &pointer, &size)
        if r < 0 { throw BusError.invalidArgs("cannot read byte array") }
        guard let pointer, size > 0 else { return .bytes(Data()) }
        // One copy into one buffer: a byte array of 32 MiB must not become 32 Mi boxed values.
        return .bytes(Data(bytes: pointer, count: size))
    }

    /// Reads the entries of an `a{KV}` whose container has been entered; `signature` is `{KV}`.
    private mutating func readDictionary(_ signature: String) throws(BusError) -> BusValue {
        let inner = signature.dropFirst().dropLast()
        guard signature.hasSuffix("}"), let keyType = inner.first else {
            throw BusError.invalidArgs("malformed dictionary signature \(signature)")
        }
        let keySignature = String(keyType)
        let valueSignature = String(inner.dropFirst())
        var entries: [(BusValue, BusValue)] = []
        while let (type, contents) = try peek() {
            guard type == typeCode("e"), let contents else { throw BusError.invalidArgs("malformed dictionary entry") }
            try enter(type, contents)
            guard let (keyCode, keyContents) = try peek() else {
                throw BusError.invalidArgs("dictionary entry without key")
            }
            let key = try read(keyCode, keyContents)
            guard let (valueCode, valueContents) = try peek() else {
                throw BusError.invalidArgs("dictionary entry without value")
            }
            let value = try read(valueCode, valueContents)
            try exit()
            entries.append((key, value))
        }
        return .dictionary(keySignature: keySignature, valueSignature: valueSignature, entries)
    }
}

/// Appends values to a message being built, with `sd_bus_message_append_basic` and the container calls.
///
/// Checks what sd-bus cannot see: that array and dictionary elements have the declared signatures and that
/// strings hold no NUL (which C would silently truncate). Any failure leaves the message unusable; callers
/// throw it away.
enum BusMessageWriter {
    static func append(_ values: [BusValue], to message: OpaquePointer) throws(BusError) {
        for value in values { try append(value, to: message) }
    }

    static func append(_ value: BusValue, to message: OpaquePointer) throws(BusError) {
        switch value {
        case .byte(var v): try appendBasic(message, "y", &v)
        case .bool(let b):
            var v: Int32 = b ? 1 : 0
            try appendBasic(message, "b", &v)
        case .int16(var v): try appendBasic(message, "n", &v)
        case .uint16(var v): try appendBasic(message, "q", &v)
        case .int32(var v): try appendBasic(message, "i", &v)
        case .uint32(var v): try appendBasic(message, "u", &v)
        case .int64(var v): try appendBasic(message, "x", &v)
        case .uint64(var v): try appendBasic(message, "t", &v)
        case .double(var v): try appendBasic(message, "d", &v)
        case .string(let s): try appendString(message, "s", s)
        case .objectPath(let s): try appendString(message, "o", s)
        case .signature(let s): try appendString(message, "g", s)
        case .unixFD(var fd):
            // sd-bus duplicates the descriptor; the caller keeps ownership of `fd`.
            try appendBasic(message, "h", &fd)
        case .bytes(let data):
            let r = data.withUnsafeBytes {
                sd_bus_message_append_array(message, typeCode("y"), $0.baseAddress, $0.count)
            }
            if r < 0 { throw BusError.fromErrno(r, "cannot append byte array") }
        case .array(let elementSignature, let elements):
            for element in elements where element.signature != elementSignature {
                throw BusError.invalidArgs(
                    "array of \(elementSignature) holds a value of type \(element.signature)")
            }
            if elementSignature == "y" {
                let bytes = elements.compactMap(\.byteValue)
                let r = bytes.withUnsafeBytes {
                    sd_bus_message_append_array(message, typeCode("y"), $0.baseAddress, $0.count)
                }
                if r < 0 { throw BusError.fromErrno(r, "cannot append byte array") }
                return
            }
            try open(message, "a", elementSignature)
            for element in elements { try append(element, to: message) }
            try close(message)
        case .dictionary(let keySignature, let valueSignature, let entries):
            guard keySignature.count == 1, let key = keySignature.unicodeScalars.first,
                "ybnqiuxtdsogh".unicodeScalars.contains(key)
            else {
                throw BusError.invalidArgs("dictionary key type \(keySignature) is not a basic type")
            }
            let entrySignature = keySignature + valueSignature
            try open(message, "a", "{" + entrySignature + "}")
            for (key, value) in entries {
                guard key.signature == keySignature, value.signature == valueSignature else {
                    throw BusError.invalidArgs(
                        "dictionary a{\(entrySignature)} holds an entry of type {\(key.signature)\(value.signature)}")
                }
                try open(message, "e", entrySignature)
                try append(key, to: message)
                try append(value, to: message)
                try close(message)
            }
            try close(message)
        case .structure(let fields):
            guard !fields.isEmpty else { throw BusError.invalidArgs("a struct needs at least one field") }
            try open(message, "r", BusValue.signature(of: fields))
            for field in fields { try append(field, to: message) }
            try close(message)
        case .variant(let inner):
            try open(message, "v", inner.signature)
            try append(inner, to: message)
            try close(message)
        }
    }

    private static func appendBasic<T>(_ message: OpaquePointer, _ type: Unicode.Scalar, _ value: inout T)
        throws(BusError)
    {
        let r = withUnsafePointer(to: &value) { sd_bus_message_append_basic(message, typeCode(type), $0) }
        if r < 0 { throw BusError.fromErrno(r, "cannot append value of type \(type)") }
    }

    private static func appendString(_ message: OpaquePointer, _ type: Unicode.Scalar, _ string: String)
        throws(BusError)
    {
        guard !string.utf8.contains(0) else {
            throw BusError.invalidArgs("string of type \(type) contains a NUL byte")
        }
        let r = string.withCString { sd_bus_message_append_basic(message, typeCode(type), $0) }
        if r < 0 { throw BusError.fromErrno(r, "cannot append \(type) value \"\(string)\"") }
    }

    private static func open(_ message: OpaquePointer, _ type: Unicode.Scalar, _ contents: String)
        throws(BusError)
    {
        let r = sd_bus_message_open_container(message, typeCode(type), contents)
        if r < 0 { throw BusError.fromErrno(r, "cannot open container \(type) of \(contents)") }
    }

    private static func close(_ message: OpaquePointer) throws(BusError) {
        let r = sd_bus_message_close_container(message)
        if r < 0 { throw BusError.fromErrno(r, "cannot close container") }
    }
}
