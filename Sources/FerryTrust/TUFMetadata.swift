import Crypto
import FerryCore
import Foundation

/// The four top-level TUF roles.
public enum TUFRoleName {
    public static let root = "root"
    public static let timestamp = "timestamp"
    public static let snapshot = "snapshot"
    public static let targets = "targets"
    static let all: Set<String> = [root, timestamp, snapshot, targets]
}

/// A role's keys and threshold, as root and delegations name them.
public struct TUFRoleKeys: Sendable {
    public let keyIDs: [String]
    public let threshold: Int

    init(json: TUFJSON, what: String) throws {
        guard let ids = json["keyids"]?.arrayValue, let threshold = json["threshold"]?.intValue else {
            throw FerryError.untrusted("\(what): keyids and threshold are required")
        }
        var keyIDs: [String] = []
        for id in ids {
            guard let s = id.stringValue else { throw FerryError.untrusted("\(what): a keyid is not a string") }
            // A key listed twice would count twice toward the threshold.
            guard !keyIDs.contains(where: { $0.utf8.elementsEqual(s.utf8) }) else {
                throw FerryError.untrusted("\(what): keyid \(s.prefix(16)) is listed twice")
            }
            keyIDs.append(s)
        }
        guard threshold >= 1 else { throw FerryError.untrusted("\(what): threshold must be at least 1") }
        self.keyIDs = keyIDs
        self.threshold = threshold
    }
}

/// One signed TUF document: `{"signed": {...}, "signatures": [{"keyid", "sig"}]}`, with the canonical bytes the
/// signatures cover.
struct TUFEnvelope {
    let signed: TUFJSON
    let signedBytes: Data
    /// keyid (bytes) → hex signature. One per key id: a document carrying two for one key id is refused.
    let signatures: [[UInt8]: String]
    let type: String
    let version: Int
    let expires: Date
    let expiresText: String

    /// Parses the envelope and the fields every role shares (`_type`, `version`, `spec_version`, `expires`).
    /// `role` names the document in messages.
    init(data: Data, expectedType: String, role: String) throws {
        let json: TUFJSON
        do {
            json = try TUFJSON.parse(data)
        } catch let error as FerryError {
            throw FerryError.untrusted("\(role) metadata: \(error.message)")
        }
        guard let signed = json["signed"], signed.objectValue != nil, let sigs = json["signatures"]?.arrayValue
        else {
            throw FerryError.untrusted("\(role) metadata: malformed (signed and signatures are required)")
        }
        var signatures: [[UInt8]: String] = [:]
        for sig in sigs {
            guard let keyID = sig["keyid"]?.stringValue, let value = sig["sig"]?.stringValue else {
                throw FerryError.untrusted("\(role) metadata: malformed signature entry")
            }
            guard signatures.updateValue(value, forKey: Array(keyID.utf8)) == nil else {
                throw FerryError.untrusted("\(role) metadata: more than one signature for key \(keyID.prefix(16))")
            }
        }
        guard let type = signed["_type"]?.stringValue else {
            throw FerryError.untrusted("\(role) metadata: malformed (_type is required)")
        }
        guard type == expectedType else {
            throw FerryError.untrusted("\(role) metadata: expected type \(expectedType), found \(type.prefix(40))")
        }
        guard let version = signed["version"]?.intValue, version >= 1 else {
            throw FerryError.untrusted("\(role) metadata: version must be a positive integer")
        }
        guard let specVersion = signed["spec_version"]?.stringValue, TUFEnvelope.isSupported(specVersion) else {
            throw FerryError.untrusted("\(role) metadata: unsupported spec_version")
        }
        guard let expiresText = signed["expires"]?.stringValue, let expires = TUFEnvelope.parseDate(expiresText)
        else {
            throw FerryError.untrusted("\(role) metadata: malformed expires")
        }
        do {
            signedBytes = try signed.canonicalBytes()
        } catch let error as FerryError {
            throw FerryError.untrusted("\(role) metadata: \(error.message)")
        }
        self.signed = signed
        self.signatures = signatures
        self.type = type
        self.version = version
        self.expires = expires
        self.expiresText = expiresText
    }

    /// `1.x` or `1.x.y`: the client implements specification 1.
    static func isSupported(_ specVersion: String) -> Bool {
        let parts = specVersion.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3 else { return false }
        guard parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }) else {
            return false
        }
        return parts[0] == "1"
    }

    /// Parses `YYYY-MM-DDTHH:MM:SSZ` (UTC), the only form TUF writes.
    static func parseDate(_ text: String) -> Date? {
        let b = Array(text.utf8)
        guard b.count == 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T"),
            b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"), b[19] == UInt8(ascii: "Z")
        else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for i in range {
                guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
                value = value * 10 + Int(b[i] - 0x30)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 60
        else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        guard let utc = TimeZone(identifier: "UTC") else { return nil }
        calendar.timeZone = utc
        let components = DateComponents(year: year, month: month, day: day, hour: hour, minute: minute,
                                        second: second)
        guard let date = calendar.date(from: components),
            calendar.component(.day, from: date) == day
        else { return nil }
        return date
    }

    /// Counts the distinct key ids among `role.keyIDs` whose signature over the canonical bytes verifies, and
    /// refuses fewer than the threshold. `keys` maps key ids to keys (root's or the delegator's).
    ///
    /// Stops: forged or partially signed metadata; a signature counted twice (one per key id).
    func verify(role: String, by roleKeys: TUFRoleKeys, keys: [[UInt8]: TUFKey], signer: String) throws {
        var valid = 0
        for keyID in roleKeys.keyIDs {
            let id = Array(keyID.utf8)
            guard let key = keys[id], let signature = signatures[id] else { continue }
            if key.verify(signatureHex: signature, message: signedBytes) { valid += 1 }
        }
        guard valid >= roleKeys.threshold else {
            throw FerryError.untrusted(
                "\(role) metadata version \(version): \(valid) of the \(roleKeys.threshold) signatures required by "
                    + "\(signer) verify")
        }
    }

    func isExpired(at now: Date) -> Bool { now >= expires }
}

func parseKeys(_ json: TUFJSON?, what: String) throws -> [[UInt8]: TUFKey] {
    guard let members = json?.objectValue else { throw FerryError.untrusted("\(what): keys are required") }
    var keys: [[UInt8]: TUFKey] = [:]
    for member in members {
        keys[Array(member.key.utf8)] = try TUFKey(json: member.value)
    }
    return keys
}

/// Root metadata: the keys and thresholds of the top-level roles.
struct TUFRoot {
    let envelope: TUFEnvelope
    let consistentSnapshot: Bool
    let keys: [[UInt8]: TUFKey]
    let roles: [String: TUFRoleKeys]

    init(data: Data) throws {
        envelope = try TUFEnvelope(data: data, expectedType: "root", role: "root")
        let signed = envelope.signed
        guard let consistent = signed["consistent_snapshot"]?.boolValue else {
            throw FerryError.untrusted("root metadata: consistent_snapshot is required")
        }
        consistentSnapshot = consistent
        keys = try parseKeys(signed["keys"], what: "root metadata")
        guard let roleMembers = signed["roles"]?.objectValue else {
            throw FerryError.untrusted("root metadata: roles are required")
        }
        var roles: [String: TUFRoleKeys] = [:]
        for member in roleMembers {
            roles[member.key] = try TUFRoleKeys(json: member.value, what: "root metadata role \(member.key)")
        }
        guard Set(roles.keys) == TUFRoleName.all, roleMembers.count == 4 else {
            throw FerryError.untrusted("root metadata: roles must be exactly root, timestamp, snapshot and targets")
        }
        self.roles = roles
    }

    var version: Int { envelope.version }

    func roleKeys(_ role: String) throws -> TUFRoleKeys {
        guard let keys = roles[role] else { throw FerryError.untrusted("root metadata has no role \(role)") }
        return keys
    }

    /// Verifies `other` as the top-level `role`, signed with the threshold root sets for it.
    func verify(_ other: TUFEnvelope, as role: String) throws {
        try other.verify(role: role, by: try roleKeys(role), keys: keys, signer: "root version \(version)")
    }
}

/// A `meta` entry of timestamp or snapshot: the version, and optionally the length and hashes, of a document.
public struct TUFMetaFile: Sendable {
    public let version: Int
    public let length: Int?
    /// Hash algorithm and lowercase hex, in document order.
    public let hashes: [(algorithm: String, hex: String)]?

    init(json: TUFJSON, what: String) throws {
        guard let version = json["version"]?.intValue, version >= 1 else {
            throw FerryError.untrusted("\(what): version must be a positive integer")
        }
        self.version = version
        if let lengthValue = json["length"] {
            guard let length = lengthValue.intValue, length >= 1 else {
                throw FerryError.untrusted("\(what): length must be a positive integer")
            }
            self.length = length
        } else {
            length = nil
        }
        if let hashValue = json["hashes"] {
            hashes = try parseHashes(hashValue, what: what)
        } else {
            hashes = nil
        }
    }

    /// Checks `data` against the length and every hash listed.
    func verify(_ data: Data, what: String) throws {
        if let length, data.count != length {
            throw FerryError.digestMismatch("\(what): length \(data.count) does not match the expected \(length)")
        }
        if let hashes { try verifyHashes(data, hashes, what: what) }
    }
}

func parseHashes(_ json: TUFJSON, what: String) throws -> [(algorithm: String, hex: String)] {
    guard let members = json.objectValue, !members.isEmpty else {
        throw FerryError.untrusted("\(what): hashes must be a non-empty object")
    }
    var hashes: [(algorithm: String, hex: String)] = []
    for member in members {
        guard let hex = member.value.stringValue else {
            throw FerryError.untrusted("\(what): hash \(member.key.prefix(20)) is not a string")
        }
        hashes.append((member.key, hex))
    }
    return hashes
}

/// Every listed hash must be of a supported algorithm and match: an unknown algorithm counts as a mismatch, so
/// a repository cannot make the client skip the only hash it lists.
func verifyHashes(_ data: Data, _ hashes: [(algorithm: String, hex: String)], what: String) throws {
    for (algorithm, expected) in hashes {
        let actual: String
        switch algorithm {
        case "sha256": actual = SHA256.hash(data: data).hexString
        case "sha384": actual = SHA384.hash(data: data).hexString
        case "sha512": actual = SHA512.hash(data: data).hexString
        default:
            throw FerryError.digestMismatch("\(what): unsupported hash algorithm \(algorithm.prefix(20))")
        }
        guard actual == expected.lowercased() else {
            throw FerryError.digestMismatch("\(what): \(algorithm) hash does not match")
        }
    }
}

struct TUFTimestamp {
    let envelope: TUFEnvelope
    let snapshotMeta: TUFMetaFile

    init(data: Data) throws {
        envelope = try TUFEnvelope(data: data, expectedType: "timestamp", role: "timestamp")
        guard let meta = envelope.signed["meta"]?["snapshot.json"] else {
            throw FerryError.untrusted("timestamp metadata: meta has no snapshot.json")
        }
        snapshotMeta = try TUFMetaFile(json: meta, what: "timestamp metadata entry snapshot.json")
    }
}

struct TUFSnapshot {
    let envelope: TUFEnvelope
    /// File name (`targets.json`, `ROLE.json`) bytes → entry.
    let meta: [[UInt8]: TUFMetaFile]
    let metaNames: [String]

    init(data: Data) throws {
        envelope = try TUFEnvelope(data: data, expectedType: "snapshot", role: "snapshot")
        guard let members = envelope.signed["meta"]?.objectValue else {
            throw FerryError.untrusted("snapshot metadata: meta is required")
        }
        var meta: [[UInt8]: TUFMetaFile] = [:]
        for member in members {
            meta[Array(member.key.utf8)] = try TUFMetaFile(
                json: member.value, what: "snapshot metadata entry \(member.key.prefix(80))")
        }
        self.meta = meta
        metaNames = members.map(\.key)
    }

    func entry(for role: String) -> TUFMetaFile? { meta[Array("\(role).json".utf8)] }
}

/// A target as targets metadata describes it: its path, exact length and hashes.
public struct TUFTargetInfo: Sendable {
    public let path: String
    public let length: Int
    /// Hash algorithm and lowercase hex, in document order (the first is the consistent-snapshot prefix).
    public let hashes: [(algorithm: String, hex: String)]
    /// The `custom` member, if any.
    public let custom: TUFJSON?

    init(path: String, json: TUFJSON) throws {
        let what = "target \(path.prefix(120).debugDescription)"
        guard let length = json["length"]?.intValue, length >= 0 else {
            throw FerryError.untrusted("\(what): length must be a non-negative integer")
        }
        guard let hashValue = json["hashes"] else { throw FerryError.untrusted("\(what): hashes are required") }
        self.path = path
        self.length = length
        hashes = try parseHashes(hashValue, what: what)
        custom = json["custom"]
    }

    /// The `sha256` hash as a Ferry digest, when listed and well-formed.
    public var sha256: FerryCore.Digest? {
        guard let hex = hashes.first(where: { $0.algorithm == "sha256" })?.hex else { return nil }
        return try? Digest(algorithm: .sha256, hex: hex)
    }

    /// Checks `data` against the exact length and every hash.
    public func verify(_ data: Data) throws {
        let what = "target \(path.prefix(120).debugDescription)"
        guard data.count == length else {
            throw FerryError.digestMismatch("\(what): length \(data.count) does not match the expected \(length)")
        }
        try verifyHashes(data, hashes, what: what)
    }
}

/// A delegation from a targets role to a named role.
struct TUFDelegatedRole {
    let name: String
    let keys: TUFRoleKeys
    let terminating: Bool
    let paths: [String]?
    let pathHashPrefixes: [String]?

    init(json: TUFJSON, what: String) throws {
        guard let name = json["name"]?.stringValue else { throw FerryError.untrusted("\(what): role name required") }
        guard !TUFRoleName.all.contains(name) else {
            throw FerryError.untrusted("\(what): a delegated role cannot be named \(name)")
        }
        guard let terminating = json["terminating"]?.boolValue else {
            throw FerryError.untrusted("\(what): terminating is required")
        }
        self.name = name
        self.terminating = terminating
        keys = try TUFRoleKeys(json: json, what: "\(what) role \(name.prefix(80))")
        func strings(_ key: String) throws -> [String]? {
            guard let value = json[key] else { return nil }
            guard let items = value.arrayValue else { throw FerryError.untrusted("\(what): \(key) is not a list") }
            return try items.map {
                guard let s = $0.stringValue else { throw FerryError.untrusted("\(what): \(key) holds a non-string") }
                return s
            }
        }
        paths = try strings("paths")
        pathHashPrefixes = try strings("path_hash_prefixes")
        guard (paths == nil) != (pathHashPrefixes == nil) else {
            throw FerryError.untrusted("\(what): exactly one of paths and path_hash_prefixes must be set")
        }
    }

    /// Whether this role is trusted for `target`: a `paths` pattern matches it (component by component, shell
    /// wildcards within a component), or the hex SHA-256 of the path starts with a listed prefix.
    func isDelegated(_ target: String) -> Bool {
        if let paths {
            return paths.contains { TUFPathPattern.matches(target, pattern: $0) }
        }
        if let pathHashPrefixes {
            let hash = SHA256.hash(data: Data(target.utf8)).hexString
            return pathHashPrefixes.contains { hash.hasPrefix($0) }
        }
        return false
    }
}

/// Hash-bin delegation written succinctly: `2^bit_length` roles `PREFIX-XX`, chosen by the first bits of the
/// SHA-256 of the target path.
struct TUFSuccinctRoles {
    let keys: TUFRoleKeys
    let bitLength: Int
    let namePrefix: String

    init(json: TUFJSON, what: String) throws {
        keys = try TUFRoleKeys(json: json, what: "\(what) succinct_roles")
        guard let bits = json["bit_length"]?.intValue, (1...32).contains(bits) else {
            throw FerryError.untrusted("\(what): bit_length must be between 1 and 32")
        }
        guard let prefix = json["name_prefix"]?.stringValue else {
            throw FerryError.untrusted("\(what): name_prefix is required")
        }
        bitLength = bits
        namePrefix = prefix
    }

    private var suffixLength: Int { String((UInt64(1) << bitLength) - 1, radix: 16).count }

    func role(for target: String) -> String {
        let digest = Array(SHA256.hash(data: Data(target.utf8)))
        let first32 = UInt32(digest[0]) << 24 | UInt32(digest[1]) << 16 | UInt32(digest[2]) << 8 | UInt32(digest[3])
        let bin = UInt64(first32) >> UInt64(32 - bitLength)
        let hex = String(bin, radix: 16)
        return "\(namePrefix)-\(String(repeating: "0", count: max(0, suffixLength - hex.count)))\(hex)"
    }

    func contains(role name: String) -> Bool {
        let prefix = namePrefix + "-"
        guard name.hasPrefix(prefix) else { return false }
        let suffix = name.dropFirst(prefix.count)
        let isLowerHex: (UInt8) -> Bool = { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
        guard suffix.count == suffixLength, suffix.utf8.allSatisfy(isLowerHex), let bin = UInt64(suffix, radix: 16)
        else { return false }
        return bin < (UInt64(1) << bitLength)
    }
}

struct TUFDelegations {
    let keys: [[UInt8]: TUFKey]
    let roles: [TUFDelegatedRole]?
    let succinct: TUFSuccinctRoles?

    init(json: TUFJSON, what: String) throws {
        keys = try parseKeys(json["keys"], what: "\(what) delegations")
        if let rolesValue = json["roles"] {
            guard let items = rolesValue.arrayValue else { throw FerryError.untrusted("\(what): roles is not a list") }
            var roles: [TUFDelegatedRole] = []
            var names = Set<[UInt8]>()
            for item in items {
                let role = try TUFDelegatedRole(json: item, what: "\(what) delegations")
                guard names.insert(Array(role.name.utf8)).inserted else {
                    throw FerryError.untrusted("\(what): role \(role.name.prefix(80)) is delegated twice")
                }
                roles.append(role)
            }
            self.roles = roles
        } else {
            roles = nil
        }
        if let succinctValue = json["succinct_roles"] {
            succinct = try TUFSuccinctRoles(json: succinctValue, what: what)
        } else {
            succinct = nil
        }
        guard (roles == nil) != (succinct == nil) else {
            throw FerryError.untrusted("\(what): exactly one of roles and succinct_roles must be set")
        }
    }

    /// The roles trusted for `target`, in order, each with whether it is terminating.
    func roles(for target: String) -> [(name: String, terminating: Bool)] {
        if let roles {
            return roles.filter { $0.isDelegated(target) }.map { ($0.name, $0.terminating) }
        }
        if let succinct { return [(succinct.role(for: target), false)] }
        return []
    }

    /// The keys and threshold for the delegated role `name`, or nil when this delegator does not delegate it.
    func roleKeys(_ name: String) -> TUFRoleKeys? {
        if let roles { return roles.first { $0.name.utf8.elementsEqual(name.utf8) }?.keys }
        if let succinct, succinct.contains(role: name) { return succinct.keys }
        return nil
    }
}

struct TUFTargets {
    let envelope: TUFEnvelope
    let targets: [[UInt8]: TUFTargetInfo]
    let delegations: TUFDelegations?

    init(data: Data, role: String) throws {
        envelope = try TUFEnvelope(data: data, expectedType: "targets", role: role)
        guard let members = envelope.signed["targets"]?.objectValue else {
            throw FerryError.untrusted("\(role) metadata: targets is required")
        }
        var targets: [[UInt8]: TUFTargetInfo] = [:]
        for member in members {
            targets[Array(member.key.utf8)] = try TUFTargetInfo(path: member.key, json: member.value)
        }
        self.targets = targets
        if let delegationValue = envelope.signed["delegations"] {
            delegations = try TUFDelegations(json: delegationValue, what: "\(role) metadata")
        } else {
            delegations = nil
        }
    }

    /// Verifies `other` as the delegated role `name`, with the keys and threshold this role delegates to it.
    func verify(_ other: TUFEnvelope, as name: String, delegator: String) throws {
        guard let delegations, let roleKeys = delegations.roleKeys(name) else {
            throw FerryError.untrusted("\(delegator) does not delegate to \(name.prefix(80))")
        }
        try other.verify(role: name, by: roleKeys, keys: delegations.keys, signer: delegator)
    }
}

/// `paths` patterns of a delegation: the target and the pattern have the same number of `/`-separated
/// components, and each component matches with `fnmatch` rules (`*`, `?`, `[seq]`, `[!seq]`).
enum TUFPathPattern {
    static func matches(_ target: String, pattern: String) -> Bool {
        let targetParts = target.split(separator: "/", omittingEmptySubsequences: false)
        let patternParts = pattern.split(separator: "/", omittingEmptySubsequences: false)
        guard targetParts.count == patternParts.count else { return false }
        return zip(targetParts, patternParts).allSatisfy {
            fnmatch(Array($0.unicodeScalars), Array($1.unicodeScalars))
        }
    }

    /// Python's `fnmatch.fnmatchcase` for one component (no special meaning for `/` or a leading `.`).
    static func fnmatch(_ text: [Unicode.Scalar], _ pattern: [Unicode.Scalar]) -> Bool {
        // Iterative wildcard matching with backtracking to the last `*`.
        var t = 0
        var p = 0
        var starP = -1
        var starT = 0
        while t < text.count {
            if p < pattern.count {
                let c = pattern[p]
                if c == "*" {
                    starP = p
                    starT = t
                    p += 1
                    continue
                }
                if c == "?" {
                    t += 1
                    p += 1
                    continue
                }
                if c == "[", let (matched, next) = matchClass(text[t], pattern, p) {
                    if matched {
                        t += 1
                        p = next
                        continue
                    }
                } else if c == text[t] {
                    t += 1
                    p += 1
                    continue
                }
            }
            if starP >= 0 {
                p = starP + 1
                starT += 1
                t = starT
                continue
            }
            return false
        }
        while p < pattern.count, pattern[p] == "*" { p += 1 }
        return p == pattern.count
    }

    /// Matches a `[...]` class at `pattern[start]`; nil when the bracket is not closed (then `[` is literal).
    static func matchClass(_ ch: Unicode.Scalar, _ pattern: [Unicode.Scalar], _ start: Int) -> (Bool, Int)? {
        var i = start + 1
        var negate = false
        if i < pattern.count, pattern[i] == "!" {
            negate = true
            i += 1
        }
        var matched = false
        var first = true
        while i < pattern.count {
            let c = pattern[i]
            if c == "]" && !first { return (matched != negate, i + 1) }
            first = false
            if i + 2 < pattern.count, pattern[i + 1] == "-", pattern[i + 2] != "]" {
                if c.value <= ch.value && ch.value <= pattern[i + 2].value { matched = true }
                i += 3
            } else {
                if c == ch { matched = true }
                i += 1
            }
        }
        return nil
    }
}
