import Foundation
import TOMLKit

/// A `.ferryrepo` file: everything needed to bless a remote in one step (DESIGN.md, "Trust operations").
///
/// TOML with `url`, `mirrors`, `registry`, `ed25519-keys` (the base64 line of each minisign `.pub`), `gpg-keys`
/// (armored keys), `log-key`, `witness-keys`, `witness-quorum`, `max-age` (seconds), `key-threshold`, `tuf-root`
/// (base64 of root.json). Unknown keys are refused (a typo must not silently drop a key). Parsing trusts nothing:
/// the caller shows every key and asks before anything is stored.
public struct RemoteFile: Sendable {
    /// The largest file read.
    public static let maxSize = 1 << 20

    private struct File: Codable {
        var url: String
        var mirrors: [String]?
        var registry: Bool?
        var ed25519Keys: [String]?
        var gpgKeys: [String]?
        var logKey: String?
        var witnessKeys: [String]?
        var witnessQuorum: Int?
        var maxAge: Int64?
        var keyThreshold: Int?
        var tufRoot: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case url, mirrors, registry
            case ed25519Keys = "ed25519-keys"
            case gpgKeys = "gpg-keys"
            case logKey = "log-key"
            case witnessKeys = "witness-keys"
            case witnessQuorum = "witness-quorum"
            case maxAge = "max-age"
            case keyThreshold = "key-threshold"
            case tufRoot = "tuf-root"
        }
    }

    /// The remote it describes, named `name` (keys as a remote stores them; nothing verified yet).
    public let remote: Remote

    public init(name: RemoteName, parsing data: Data, source: String) throws {
        guard data.count <= RemoteFile.maxSize, let text = String(data: data, encoding: .utf8) else {
            throw FerryError.invalidArgument("\(source): not a .ferryrepo (larger than 1 MiB or not UTF-8)")
        }
        try TOMLSubset.check(text, what: "\(source): not a .ferryrepo")
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch {
            throw FerryError.invalidArgument("\(source): malformed .ferryrepo (\(error))")
        }
        let known = Set(File.CodingKeys.allCases.map(\.rawValue))
        if let unknown = table.keys.sorted().first(where: { !known.contains($0) }) {
            throw FerryError.invalidArgument("\(source): unknown .ferryrepo key \(unknown.debugDescription)")
        }
        let file: File
        do {
            file = try TOMLDecoder().decode(File.self, from: text)
        } catch {
            throw FerryError.invalidArgument("\(source): malformed .ferryrepo (\(error))")
        }
        var tufRoot: Data?
        if let encoded = file.tufRoot {
            guard let data = Data(base64Encoded: encoded.filter { !$0.isWhitespace }) else {
                throw FerryError.invalidArgument("\(source): tuf-root is not base64")
            }
            tufRoot = data
        }
        var remote = Remote(
            name: name, url: Remote.location(file.url), isRegistry: file.registry ?? false,
            mirrors: (file.mirrors ?? []).map(Remote.location),
            ed25519Keys: (file.ed25519Keys ?? []).map { "untrusted comment: from \(source)\n\($0)\n" },
            gpgKeys: (file.gpgKeys ?? []).map { Data($0.utf8) }, tufRoot: tufRoot)
        remote.logKey = file.logKey
        remote.witnessKeys = file.witnessKeys ?? []
        remote.witnessQuorum = file.witnessQuorum
        remote.maxAge = file.maxAge
        remote.keyThreshold = file.keyThreshold
        try remote.validate()
        self.remote = remote
    }
}
