import Foundation
import Synchronization
import TOMLKit

/// Where a remote is configured: system-wide (root-owned, `/etc/ferry/remotes.d`) or for one user.
public enum Scope: String, Sendable, Codable, CaseIterable {
    case system, user
}

/// A remote: a static OCI layout on a web host, or a registry repository prefix, and the keys trusted for it.
///
/// Stored as `remotes.d/NAME.toml`, with keys beside it in `remotes.d/NAME.d/` (`ed25519-N.pub` minisign public
/// keys, `gpg-N.key` OpenPGP public keys, `tuf-root.json`). A remote with no key never installs anything.
public struct Remote: Sendable, Equatable {
    public var name: RemoteName
    public var url: String
    public var isRegistry: Bool
    public var mirrors: [String]
    public var signatureLookaside: String?
    /// minisign public keys, as the text of `.pub` files.
    public var ed25519Keys: [String]
    /// OpenPGP public keys, armored or binary.
    public var gpgKeys: [Data]
    /// The TUF root the remote's metadata chains from, when the remote serves TUF metadata.
    public var tufRoot: Data?
    /// For a layout remote that holds a registry's images (a `ferry mirror` of a registry remote): the registry
    /// repository prefix `host[:port]/ns` its signatures name. The ref `NAME:TAG` then has the identity
    /// `host[:port]/ns/NAME:TAG`, as on the registry itself. Configuration, never read from the remote.
    public var signedIdentity: String?
    /// The remote's transparency log: its verifier key (a signed-note key string). With it, a release installs only
    /// when the log holds it (DESIGN.md, "Transparency log").
    public var logKey: String?
    /// Witness verifier keys (signed-note key strings) whose cosignatures count towards ``witnessQuorum``.
    public var witnessKeys: [String] = []
    /// Witness cosignatures a checkpoint needs; default: every witness named.
    public var witnessQuorum: Int?
    /// How old (seconds) the newest witness cosignature may be when the remote is used; `nil`: the default (7 days
    /// when the remote has witnesses), `0`: no bound.
    public var maxAge: Int64?
    /// How many of the remote's current ed25519 keys must sign a key event in its log; `nil`: 1.
    public var keyThreshold: Int?

    /// The threshold in force.
    public var effectiveKeyThreshold: Int { keyThreshold ?? 1 }

    /// The default `max-age` of a remote with witnesses: 7 days.
    public static let defaultMaxAge: Int64 = 7 * 24 * 3600

    /// The bound in force, in seconds; `nil` when there is none (no witnesses, or `max-age = 0`).
    public var effectiveMaxAge: Int64? {
        if let maxAge { return maxAge == 0 ? nil : maxAge }
        return witnessKeys.isEmpty ? nil : Remote.defaultMaxAge
    }

    /// The quorum in force: the configured one, or every witness.
    public var effectiveWitnessQuorum: Int { witnessQuorum ?? witnessKeys.count }

    public init(name: RemoteName, url: String, isRegistry: Bool = false, mirrors: [String] = [],
                signatureLookaside: String? = nil, ed25519Keys: [String] = [], gpgKeys: [Data] = [],
                tufRoot: Data? = nil, signedIdentity: String? = nil) {
        self.name = name
        self.url = url
        self.isRegistry = isRegistry
        self.mirrors = mirrors
        self.signatureLookaside = signatureLookaside
        self.ed25519Keys = ed25519Keys
        self.gpgKeys = gpgKeys
        self.tufRoot = tufRoot
        self.signedIdentity = signedIdentity
    }

    public var hasKeys: Bool { !ed25519Keys.isEmpty || !gpgKeys.isEmpty }

    /// Checks a URL from configuration or D-Bus: `http(s)://` (or `file://` for local layouts), no
    /// whitespace or control characters, at most 2048 bytes.
    public static func validateURL(_ url: String, what: String = "URL") throws {
        let lower = url.lowercased()
        guard url.utf8.count <= 2048,
            lower.hasPrefix("http://") || lower.hasPrefix("https://") || lower.hasPrefix("file:///"),
            !url.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7f }),
            URL(string: url) != nil
        else {
            throw FerryError.invalidArgument("invalid \(what) \(String(url.prefix(100)).debugDescription)")
        }
    }

    /// A URL for a location given on the command line: a directory path (absolute, or relative to the working
    /// directory) becomes a `file://` URL, so a directory or a USB stick works as a remote or a mirror; anything
    /// with a scheme is returned unchanged (and checked by ``validateURL(_:what:)`` later).
    public static func location(_ text: String) -> String {
        guard !text.contains("://"), !text.isEmpty else { return text }
        var isDirectory: ObjCBool = false
        guard text.hasPrefix("/") || text.hasPrefix(".")
            || FileManager.default.fileExists(atPath: text, isDirectory: &isDirectory) && isDirectory.boolValue
        else { return text }
        let url = URL(fileURLWithPath: text).standardizedFileURL.absoluteString
        return url.count > "file:///".count && url.hasSuffix("/") ? String(url.dropLast()) : url
    }

    /// Checks every field's grammar; called before a remote is stored or used.
    public func validate() throws {
        try Remote.validateURL(url)
        for mirror in mirrors { try Remote.validateURL(mirror, what: "mirror URL") }
        if let signatureLookaside { try Remote.validateURL(signatureLookaside, what: "signature lookaside URL") }
        for key in [logKey].compactMap({ $0 }) + witnessKeys {
            guard key.utf8.count <= 1024, !key.isEmpty,
                !key.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value >= 0x7f })
            else {
                throw FerryError.invalidArgument("invalid log or witness key \(String(key.prefix(100)).debugDescription)")
            }
        }
        guard witnessKeys.count <= 32 else { throw FerryError.invalidArgument("too many witness keys (at most 32)") }
        if let witnessQuorum, witnessQuorum < 0 || witnessQuorum > witnessKeys.count {
            throw FerryError.invalidArgument("witness quorum \(witnessQuorum) with \(witnessKeys.count) witnesses")
        }
        if !witnessKeys.isEmpty || witnessQuorum != nil || maxAge != nil, logKey == nil {
            throw FerryError.invalidArgument("witnesses, a quorum and max-age need a log key")
        }
        if let maxAge, maxAge < 0 { throw FerryError.invalidArgument("max-age must not be negative") }
        if let keyThreshold {
            guard keyThreshold >= 1, keyThreshold <= max(1, ed25519Keys.count) else {
                throw FerryError.invalidArgument("key-threshold \(keyThreshold) with \(ed25519Keys.count) ed25519 "
                    + "keys (1 to the number of keys)")
            }
            guard logKey != nil else {
                throw FerryError.invalidArgument("key-threshold needs a log key (key events are log entries)")
            }
        }
        if let signedIdentity {
            try Remote.validateIdentityPrefix(signedIdentity)
            guard !isRegistry else {
                throw FerryError.invalidArgument("a registry remote's signed identity comes from its URL")
            }
        }
        guard mirrors.count <= 32, ed25519Keys.count <= 32, gpgKeys.count <= 32 else {
            throw FerryError.invalidArgument("too many mirrors or keys (at most 32 each)")
        }
    }

    /// `url` without one trailing `/`, so that paths can be appended to a base URL as given by a user.
    public static func withoutTrailingSlash(_ url: String) -> String {
        url.hasSuffix("/") ? String(url.dropLast()) : url
    }

    /// The base URLs to try, in order: the remote's own, then its mirrors.
    public var baseURLs: [String] { [url] + mirrors }

    /// For a registry remote `https://host[:port]/ns`, the identity skopeo signs for `NAME:TAG`:
    /// `host[:port]/ns/NAME:TAG` (tag `latest` when the ref has none). For a layout remote, the ref itself, or
    /// with a ``signedIdentity`` prefix the identity the registry it was mirrored from would give.
    public func identity(for ref: Ref) -> String {
        if let signedIdentity { return "\(signedIdentity)/\(ref.name):\(ref.tag ?? "latest")" }
        guard let prefix = registryIdentityPrefix else { return ref.string }
        return "\(prefix)/\(ref.name):\(ref.tag ?? "latest")"
    }

    /// For a registry remote `https://host[:port]/ns`: `host[:port]/ns` (or `host[:port]` without a path).
    public var registryIdentityPrefix: String? {
        guard isRegistry, let parsed = URL(string: url), let host = parsed.host else { return nil }
        let hostPort = parsed.port.map { "\(host):\($0)" } ?? host
        let path = parsed.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        return path.isEmpty ? hostPort : "\(hostPort)/\(path)"
    }

    /// Checks a signed-identity prefix: `host[:port]` and optional `/`-separated path components, of
    /// `[A-Za-z0-9._-]` (and one `:` in the host part), at most 255 bytes.
    public static func validateIdentityPrefix(_ prefix: String) throws {
        let parts = prefix.split(separator: "/", omittingEmptySubsequences: false)
        let nameByte = { (c: Character) in c.isASCII && (c.isLetter || c.isNumber || "._-".contains(c)) }
        guard prefix.utf8.count <= 255, let host = parts.first, !host.isEmpty,
            host.filter({ $0 == ":" }).count <= 1, host.allSatisfy({ nameByte($0) || $0 == ":" }),
            parts.dropFirst().allSatisfy({ !$0.isEmpty && $0.allSatisfy(nameByte) })
        else {
            throw FerryError.invalidArgument("invalid signed identity \(String(prefix.prefix(100)).debugDescription)"
                + " (host[:port]/namespace)")
        }
    }
}

/// The remotes of one scope, stored in a `remotes.d` directory.
public struct RemoteStore: Sendable {
    public let directory: String
    public let scope: Scope

    public init(directory: String, scope: Scope) {
        self.directory = directory
        self.scope = scope
    }

    private struct File: Codable {
        var url: String
        var registry: Bool?
        var mirrors: [String]?
        var signatureLookaside: String?
        var signedIdentity: String?
        var logKey: String?
        var witnessKeys: [String]?
        var witnessQuorum: Int?
        var maxAge: Int64?
        var keyThreshold: Int?

        enum CodingKeys: String, CodingKey {
            case url, registry, mirrors
            case signatureLookaside = "signature-lookaside"
            case signedIdentity = "signed-identity"
            case logKey = "log-key"
            case witnessKeys = "witness-keys"
            case witnessQuorum = "witness-quorum"
            case maxAge = "max-age"
            case keyThreshold = "key-threshold"
        }
    }

    /// Remote files already parsed in this process, by their exact bytes. TOMLKit frees none of the memory a
    /// parse allocates (a few hundred bytes per file, found by `make asan`); the helper reads the remote's file
    /// on every request, so without this its memory would grow with each one. Bounded: cleared at 64 entries.
    private static let parsed = ParsedFiles()

    /// Keyed by the bytes as an array, not as `Data`: `Data` keeps small buffers behind an enum whose tag bits hide
    /// the pointer from LeakSanitizer's scan, which then reports the cached keys as leaked.
    private final class ParsedFiles: Sendable {
        private let files = Mutex<[[UInt8]: File]>([:])

        func file(for bytes: [UInt8]) -> File? {
            files.withLock { $0[bytes] }
        }

        func remember(_ file: File, for bytes: [UInt8]) {
            files.withLock { files in
                if files.count >= 64 { files.removeAll() }
                files[bytes] = file
            }
        }
    }

    public func configPath(_ name: RemoteName) -> String { "\(directory)/\(name).toml" }
    public func keyDirectory(_ name: RemoteName) -> String { "\(directory)/\(name).d" }

    /// Loads one remote; `nil` when it is not configured here.
    public func load(_ name: RemoteName) throws -> Remote? {
        let path = configPath(name)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        guard data.count <= 64 * 1024 else { throw FerryError.invalidArgument("\(path) is larger than 64 KiB") }
        let file: File
        let bytes = [UInt8](data)
        if let known = RemoteStore.parsed.file(for: bytes) {
            file = known
        } else {
            let text = String(decoding: data, as: UTF8.self)
            try TOMLSubset.check(text, what: "\(path): malformed remote configuration")
            do {
                file = try TOMLDecoder().decode(File.self, from: text)
            } catch {
                throw FerryError.invalidArgument("\(path): malformed remote configuration (\(error))")
            }
            RemoteStore.parsed.remember(file, for: bytes)
        }
        var remote = Remote(name: name, url: file.url, isRegistry: file.registry ?? false,
                            mirrors: file.mirrors ?? [], signatureLookaside: file.signatureLookaside,
                            signedIdentity: file.signedIdentity)
        remote.logKey = file.logKey
        remote.witnessKeys = file.witnessKeys ?? []
        remote.witnessQuorum = file.witnessQuorum
        remote.maxAge = file.maxAge
        remote.keyThreshold = file.keyThreshold
        let keyDir = keyDirectory(name)
        let entries = ((try? FileManager.default.contentsOfDirectory(atPath: keyDir)) ?? []).sorted {
            $0.localizedStandardCompare($1) == .orderedAscending
        }
        for entry in entries {
            let full = keyDir + "/" + entry
            guard let content = FileManager.default.contents(atPath: full), content.count <= 1024 * 1024 else {
                continue
            }
            if entry.hasPrefix("ed25519-") && entry.hasSuffix(".pub") {
                remote.ed25519Keys.append(String(decoding: content, as: UTF8.self))
            } else if entry.hasPrefix("gpg-") && entry.hasSuffix(".key") {
                remote.gpgKeys.append(content)
            } else if entry == "tuf-root.json" {
                remote.tufRoot = content
            }
        }
        try remote.validate()
        return remote
    }

    /// Every remote configured in this scope, sorted by name; malformed files are skipped.
    public func all() -> [Remote] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return entries.sorted().compactMap { entry in
            guard entry.hasSuffix(".toml"), let name = try? RemoteName(String(entry.dropLast(5))) else { return nil }
            return try? load(name)
        }
    }

    /// Writes a remote and its keys (replacing any earlier configuration of that name).
    /// Files are world-readable (`0644`): keys are public, and every user's agent reads system remotes.
    public func save(_ remote: Remote) throws {
        try remote.validate()
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                   attributes: [.posixPermissions: 0o755])
        } catch {
            throw FerryError.failed("cannot create \(directory): \(error.localizedDescription)")
        }
        let keyDir = keyDirectory(remote.name)
        let staged = keyDir + ".new-\(getpid())"
        try? fm.removeItem(atPath: staged)
        do {
            try fm.createDirectory(atPath: staged, withIntermediateDirectories: false,
                                   attributes: [.posixPermissions: 0o755])
        } catch {
            throw FerryError.failed("cannot create \(staged): \(error.localizedDescription)")
        }
        for (i, key) in remote.ed25519Keys.enumerated() {
            try AtomicFile.write(Data(key.utf8), to: "\(staged)/ed25519-\(i + 1).pub")
        }
        for (i, key) in remote.gpgKeys.enumerated() {
            try AtomicFile.write(key, to: "\(staged)/gpg-\(i + 1).key")
        }
        if let root = remote.tufRoot { try AtomicFile.write(root, to: "\(staged)/tuf-root.json") }
        let file = File(url: remote.url, registry: remote.isRegistry, mirrors: remote.mirrors,
                        signatureLookaside: remote.signatureLookaside, signedIdentity: remote.signedIdentity,
                        logKey: remote.logKey, witnessKeys: remote.witnessKeys.isEmpty ? nil : remote.witnessKeys,
                        witnessQuorum: remote.witnessQuorum, maxAge: remote.maxAge,
                        keyThreshold: remote.keyThreshold)
        let text: String
        do {
            text = try TOMLEncoder().encode(file)
        } catch {
            throw FerryError.failed("cannot encode remote \(remote.name): \(error)")
        }
        // Keys first, then the TOML: a reader never sees a configuration whose keys are not in place.
        try? fm.removeItem(atPath: keyDir)
        guard rename(staged, keyDir) == 0 else { throw ioError("rename \(staged)") }
        try AtomicFile.write(Data(("# Ferry remote \(remote.name)\n" + text + "\n").utf8), to: configPath(remote.name))
    }

    /// Removes a remote and its keys. Throws `.notInstalled` when it does not exist.
    public func delete(_ name: RemoteName) throws {
        let path = configPath(name)
        guard FileManager.default.fileExists(atPath: path) else {
            throw FerryError(.notInstalled, "remote \(name) is not configured (\(scope))")
        }
        guard unlink(path) == 0 else { throw ioError("remove \(path)") }
        try? FileManager.default.removeItem(atPath: keyDirectory(name))
        try? AtomicFile.syncDirectory(directory)
    }
}
