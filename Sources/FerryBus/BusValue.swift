import Foundation

/// One D-Bus value of any type, as sent in or read from a message.
///
/// Containers carry the signatures of their elements so that empty arrays and dictionaries can be written.
/// Reading never trusts a peer's types: a message is decoded generically (whatever it holds comes back as
/// the matching case), and the receiver checks the shape with ``BusMethodCall/requireSignature(_:)`` or the
/// optional accessors (`stringValue`, `vardictValue`, …) which return `nil` on a mismatch.
///
/// Byte arrays (`ay`) are read as ``bytes(_:)``, one `Data`, never as one boxed ``byte(_:)`` per element: a peer
/// may send tens of MiB of them, and boxing each byte costs forty times its size. An
/// `.array(elementSignature: "y", …)` built by hand is still written (and compares equal) as the same `ay`.
///
/// File descriptors (`h`): a value appended to a message is duplicated by sd-bus, so the caller keeps its fd.
/// A value read from a reply is a duplicate the caller owns and must close; in a ``BusMethodCall`` the call owns
/// them (see ``BusMethodCall/takeUnixFD(at:)``).
public enum BusValue: Sendable, Equatable {
    case byte(UInt8)
    case bool(Bool)
    case int16(Int16)
    case uint16(UInt16)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case uint64(UInt64)
    case double(Double)
    case string(String)
    case objectPath(String)
    case signature(String)
    case unixFD(Int32)
    /// `ay`, as one buffer (what every byte array read from a message becomes).
    case bytes(Data)
    /// `a<elementSignature>`; every element must have `elementSignature`.
    case array(elementSignature: String, [BusValue])
    /// `a{<keySignature><valueSignature>}`; keys must be of a basic type.
    case dictionary(keySignature: String, valueSignature: String, [(BusValue, BusValue)])
    /// `(…)`: at least one field.
    case structure([BusValue])
    /// `v`: a value carrying its own signature.
    indirect case variant(BusValue)

    /// The D-Bus type signature of this value (`"s"`, `"a{sv}"`, `"(sa{sv})"`, …).
    public var signature: String {
        switch self {
        case .byte: return "y"
        case .bool: return "b"
        case .int16: return "n"
        case .uint16: return "q"
        case .int32: return "i"
        case .uint32: return "u"
        case .int64: return "x"
        case .uint64: return "t"
        case .double: return "d"
        case .string: return "s"
        case .objectPath: return "o"
        case .signature: return "g"
        case .unixFD: return "h"
        case .bytes: return "ay"
        case .array(let element, _): return "a" + element
        case .dictionary(let key, let value, _): return "a{" + key + value + "}"
        case .structure(let fields): return "(" + fields.map(\.signature).joined() + ")"
        case .variant: return "v"
        }
    }

    /// The signature of a whole argument list, as in a message header.
    public static func signature(of values: [BusValue]) -> String {
        values.map(\.signature).joined()
    }

    public static func == (lhs: BusValue, rhs: BusValue) -> Bool {
        switch (lhs, rhs) {
        case (.bytes(let a), .bytes(let b)): return a == b
        // The two spellings of `ay` are one value on the wire.
        case (.bytes(let a), .array("y", _)): return rhs.bytesValue.map { Data($0) == a } ?? false
        case (.array("y", _), .bytes(let b)): return lhs.bytesValue.map { Data($0) == b } ?? false
        case (.byte(let a), .byte(let b)): return a == b
        case (.bool(let a), .bool(let b)): return a == b
        case (.int16(let a), .int16(let b)): return a == b
        case (.uint16(let a), .uint16(let b)): return a == b
        case (.int32(let a), .int32(let b)): return a == b
        case (.uint32(let a), .uint32(let b)): return a == b
        case (.int64(let a), .int64(let b)): return a == b
        case (.uint64(let a), .uint64(let b)): return a == b
        case (.double(let a), .double(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.objectPath(let a), .objectPath(let b)): return a == b
        case (.signature(let a), .signature(let b)): return a == b
        case (.unixFD(let a), .unixFD(let b)): return a == b
        case (.array(let sa, let a), .array(let sb, let b)): return sa == sb && a == b
        case (.dictionary(let ka, let va, let a), .dictionary(let kb, let vb, let b)):
            return ka == kb && va == vb && a.count == b.count
                && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.structure(let a), .structure(let b)): return a == b
        case (.variant(let a), .variant(let b)): return a == b
        default: return false
        }
    }
}

// MARK: - Building common shapes

extension BusValue {
    /// `a{sv}` with keys in sorted order (so the encoding is deterministic) and each value wrapped in a variant.
    public static func vardict(_ entries: [String: BusValue]) -> BusValue {
        .dictionary(
            keySignature: "s", valueSignature: "v",
            entries.sorted { $0.key < $1.key }.map { (.string($0.key), .variant($0.value)) })
    }

    /// `a{ss}` with keys in sorted order.
    public static func stringDictionary(_ entries: [String: String]) -> BusValue {
        .dictionary(
            keySignature: "s", valueSignature: "s",
            entries.sorted { $0.key < $1.key }.map { (.string($0.key), .string($0.value)) })
    }

    /// `as`.
    public static func stringArray(_ strings: [String]) -> BusValue {
        .array(elementSignature: "s", strings.map { .string($0) })
    }

}

// MARK: - Reading shapes; each returns nil when the value has another type

extension BusValue {
    public var byteValue: UInt8? { if case .byte(let v) = self { v } else { nil } }
    public var boolValue: Bool? { if case .bool(let v) = self { v } else { nil } }
    public var int16Value: Int16? { if case .int16(let v) = self { v } else { nil } }
    public var uint16Value: UInt16? { if case .uint16(let v) = self { v } else { nil } }
    public var int32Value: Int32? { if case .int32(let v) = self { v } else { nil } }
    public var uint32Value: UInt32? { if case .uint32(let v) = self { v } else { nil } }
    public var int64Value: Int64? { if case .int64(let v) = self { v } else { nil } }
    public var uint64Value: UInt64? { if case .uint64(let v) = self { v } else { nil } }
    public var doubleValue: Double? { if case .double(let v) = self { v } else { nil } }
    public var stringValue: String? { if case .string(let v) = self { v } else { nil } }
    public var objectPathValue: String? { if case .objectPath(let v) = self { v } else { nil } }
    public var signatureValue: String? { if case .signature(let v) = self { v } else { nil } }
    public var unixFDValue: Int32? { if case .unixFD(let v) = self { v } else { nil } }
    public var variantValue: BusValue? { if case .variant(let v) = self { v } else { nil } }
    public var structureValue: [BusValue]? { if case .structure(let v) = self { v } else { nil } }

    /// The elements of any array (not of a dictionary). For an `ay` this boxes every byte: use ``dataValue``.
    public var arrayValue: [BusValue]? {
        switch self {
        case .array(_, let v): return v
        case .bytes(let data): return data.map { .byte($0) }
        default: return nil
        }
    }

    /// The entries of any dictionary, in message order.
    public var dictionaryEntries: [(BusValue, BusValue)]? {
        if case .dictionary(_, _, let v) = self { v } else { nil }
    }

    /// The value inside any number of nested variants.
    public var unwrapped: BusValue {
        var value = self
        while case .variant(let inner) = value { value = inner }
        return value
    }

    /// `ay` as one buffer, in either spelling; `nil` for any other type.
    public var dataValue: Data? {
        if case .bytes(let data) = self { return data }
        return bytesValue.map { Data($0) }
    }

    /// `ay` as bytes.
    public var bytesValue: [UInt8]? {
        if case .bytes(let data) = self { return [UInt8](data) }
        guard case .array("y", let elements) = self else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(elements.count)
        for element in elements {
            guard case .byte(let b) = element else { return nil }
            bytes.append(b)
        }
        return bytes
    }

    /// `as` as strings.
    public var stringArrayValue: [String]? {
        guard case .array("s", let elements) = self else { return nil }
        var strings: [String] = []
        for element in elements {
            guard case .string(let s) = element else { return nil }
            strings.append(s)
        }
        return strings
    }

    /// `a{sv}` with the variants unwrapped one level. A repeated key keeps its last value.
    public var vardictValue: [String: BusValue]? {
        guard case .dictionary("s", "v", let entries) = self else { return nil }
        var result: [String: BusValue] = [:]
        for (key, value) in entries {
            guard case .string(let k) = key, case .variant(let v) = value else { return nil }
            result[k] = v
        }
        return result
    }

    /// `a{ss}`. A repeated key keeps its last value.
    public var stringDictionaryValue: [String: String]? {
        guard case .dictionary("s", "s", let entries) = self else { return nil }
        var result: [String: String] = [:]
        for (key, value) in entries {
            guard case .string(let k) = key, case .string(let v) = value else { return nil }
            result[k] = v
        }
        return result
    }
}
