import FerryCore
import FerryTrust
import Foundation

extension TrustedKeys {
    /// The keys a remote's configuration trusts. A key that does not parse is an error, not skipped:
    /// a remote that silently lost a key would verify less than its administrator thinks.
    public init(remote: Remote) throws {
        let ed25519 = try remote.ed25519Keys.map { text in
            do {
                return try MinisignPublicKey(parsing: text)
            } catch {
                throw FerryError.untrusted("remote \(remote.name): unreadable ed25519 key")
            }
        }
        self.init(ed25519: ed25519, gpg: remote.gpgKeys)
    }

    /// Keys from files given on the command line (`--ed25519-key`, `--gpg-key`).
    public static func load(ed25519Files: [String], gpgFiles: [String]) throws -> TrustedKeys {
        let ed25519 = try ed25519Files.map { path in
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw FerryError.invalidArgument("cannot read key file \(path)")
            }
            return try MinisignPublicKey(parsing: text)
        }
        let gpg = try gpgFiles.map { path in
            guard let data = FileManager.default.contents(atPath: path) else {
                throw FerryError.invalidArgument("cannot read key file \(path)")
            }
            return data
        }
        return TrustedKeys(ed25519: ed25519, gpg: gpg)
    }
}
