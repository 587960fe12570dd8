import FerryCore
import Foundation

/// Registry credentials and auth challenges.
enum RegistryAuth {
    struct Challenge {
        var scheme: String
        var values: [String: String]
    }

    /// Parses `Bearer realm="…",service="…",scope="…"` (RFC 7235 auth-params with quoted strings).
    static func parseChallenge(_ header: String) -> Challenge {
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        let scheme = trimmed.prefix { $0 != " " }.lowercased()
        var values: [String: String] = [:]
        var rest = Substring(trimmed.dropFirst(scheme.count))
        while !rest.isEmpty {
            rest = rest.drop { $0 == " " || $0 == "," }
            guard let eq = rest.firstIndex(of: "=") else { break }
            let key = rest[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            rest = rest[rest.index(after: eq)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                var escaped = false
                while let c = rest.first {
                    rest = rest.dropFirst()
                    if escaped {
                        value.append(c)
                        escaped = false
                    } else if c == "\\" {
                        escaped = true
                    } else if c == "\"" {
                        break
                    } else {
                        value.append(c)
                    }
                }
            } else {
                value = String(rest.prefix { $0 != "," })
                rest = rest.dropFirst(value.count)
            }
            values[key] = value
        }
        return Challenge(scheme: scheme, values: values)
    }

    /// The base64 `user:password` for a registry host, from the first of `$REGISTRY_AUTH_FILE`,
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`, `~/.docker/config.json`
    /// that names it (the files containers/image and Docker read).
    static func credential(for hostPort: String, environment: [String: String] = ProcessInfo.processInfo.environment)
        -> String?
    {
        var files: [String] = []
        if let file = environment["REGISTRY_AUTH_FILE"] { files.append(file) }
        if let runtime = environment["XDG_RUNTIME_DIR"] { files.append(runtime + "/containers/auth.json") }
        let home = environment["HOME"] ?? NSHomeDirectory()
        files.append((environment["XDG_CONFIG_HOME"] ?? home + "/.config") + "/containers/auth.json")
        files.append(home + "/.docker/config.json")
        struct AuthFile: Decodable {
            struct Entry: Decodable { var auth: String? }
            var auths: [String: Entry]?
        }
        for file in files {
            guard let data = FileManager.default.contents(atPath: file), data.count < 1024 * 1024,
                let parsed = try? JSONDecoder().decode(AuthFile.self, from: data)
            else { continue }
            for (key, entry) in parsed.auths ?? [:] {
                let host = key.replacingOccurrences(of: "https://", with: "").replacingOccurrences(of: "http://", with: "")
                    .split(separator: "/").first.map(String.init)
                if host == hostPort, let auth = entry.auth { return auth }
            }
        }
        return nil
    }
}
