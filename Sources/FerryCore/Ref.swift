/// What a user installs: `org.vsekai.Client/x86_64/stable`, or `NAME:TAG` on a registry remote.
///
/// Grammar (DESIGN.md, "Refs"): components `[A-Za-z0-9][A-Za-z0-9._-]*` joined by `/`, optionally `:TAG` with
/// TAG `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`; at most 255 bytes. Every ref that arrives from outside is parsed
/// here before any use: refs become path components, and path traversal through them is the classic bug.
public struct Ref: ValidatedName {
    public let string: String

    public init(_ string: String) throws {
        guard Ref.isValid(string) else {
            let shown = string.utf8.count > 80 ? String(string.prefix(80)) + "…" : string
            throw FerryError.invalidArgument("invalid ref \(shown.debugDescription)")
        }
        self.string = string
    }

    /// The part before `:TAG`.
    public var name: String {
        if let colon = string.lastIndex(of: ":") { return String(string[..<colon]) }
        return string
    }

    /// The tag, if the ref has one.
    public var tag: String? {
        if let colon = string.lastIndex(of: ":") { return String(string[string.index(after: colon)...]) }
        return nil
    }

    /// The ref's slash-separated components, the tag left on the last one.
    public var components: [Substring] { string.split(separator: "/") }

    /// The app ID: the first component of the name (`org.vsekai.Client`). Exports are scoped to it: an image may
    /// export only `<appID>.desktop`, `<appID>.*.desktop` and the launcher `exports/bin/<appID>`, and one app ID is
    /// installed from one remote at a time.
    public var appID: String { String(name.split(separator: "/").first ?? Substring(name)) }

    /// The name used for a launcher: the app ID.
    public var launcherName: String { appID }

    /// The single path component that stands for this ref in a state tree (`installed/`, `deploy/`, `locks/`).
    ///
    /// `/` becomes `~`, which the grammar never allows in a ref, so the mapping is injective and keeps the length
    /// (a ref of 255 bytes stays a legal file name). A ref is never nested directories: `com.b.P/files/x` under
    /// `com.b.P` would otherwise walk into P's deployment and follow the image's own symlinks.
    public var escapedFileName: String { string.replacingOccurrences(of: "/", with: "~") }

    /// The ref an ``escapedFileName`` stands for; `nil` for a name no ref escapes to.
    public init?(escapedFileName name: String) {
        guard !name.contains("/"), let ref = try? Ref(name.replacingOccurrences(of: "~", with: "/")),
            ref.escapedFileName == name
        else { return nil }
        self = ref
    }

    public static func isValid(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        guard !bytes.isEmpty, bytes.count <= 255 else { return false }
        var namePart = bytes[...]
        if let colon = bytes.lastIndex(of: UInt8(ascii: ":")) {
            let tag = bytes[(colon + 1)...]
            guard tag.count >= 1, tag.count <= 128, let first = tag.first,
                isAlnum(first) || first == UInt8(ascii: "_"),
                tag.allSatisfy(isNameByte)
            else { return false }
            namePart = bytes[..<colon]
        }
        guard !namePart.isEmpty else { return false }
        for component in namePart.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            guard let first = component.first, isAlnum(first), component.allSatisfy(isNameByte) else { return false }
        }
        return true
    }
}

/// The name of a remote: one path component, `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 64 bytes.
public struct RemoteName: ValidatedName {
    public let string: String

    public init(_ string: String) throws {
        let bytes = Array(string.utf8)
        guard !bytes.isEmpty, bytes.count <= 64, isAlnum(bytes[0]), bytes.allSatisfy(isNameByte) else {
            let shown = string.utf8.count > 80 ? String(string.prefix(80)) + "…" : string
            throw FerryError.invalidArgument("invalid remote name \(shown.debugDescription)")
        }
        self.string = string
    }

}

/// A string that is only ever made by checking it against its grammar; it encodes as the plain string and
/// decodes through the same check, so a decoded value is as trustworthy as a constructed one.
public protocol ValidatedName: Hashable, Sendable, CustomStringConvertible, Comparable, Codable {
    var string: String { get }
    init(_ string: String) throws
}

extension ValidatedName {
    public init(from decoder: Decoder) throws {
        try self.init(decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(string)
    }

    public var description: String { string }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.string < rhs.string }
}

@inline(__always) func isAlnum(_ b: UInt8) -> Bool {
    (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
}

@inline(__always) func isNameByte(_ b: UInt8) -> Bool {
    isAlnum(b) || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
}
