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

    /// A token realm that passed ``checkRealm(_:registry:)``, and whether the user's credential may go to it.
    struct Realm {
        var components: URLComponents
        var mayReceiveCredential: Bool
    }

    /// Checks a token realm from a registry's `WWW-Authenticate` challenge, which is untrusted input.
    ///
    /// Only `http` and `https` URLs with a host are accepted: a `file://` realm would have the agent read a local
    /// file and send what it holds to the registry as a bearer token (other schemes reach other local services).
    /// The user's stored credential, looked up for the registry's host, goes to the realm only where the user sent
    /// it anyway: over https to any host (Docker Hub's realm is `https://auth.docker.io`, and TLS keeps it
    /// private), or to the registry's own scheme, host and port. Never over plain http to another host or port,
    /// where anyone on the path (or whoever the registry names) would read it; the realm is then asked for an
    /// anonymous token, which is all a public image needs.
    /// - Parameters:
    ///   - realm: the challenge's `realm` value.
    ///   - registry: the registry's `scheme://host[:port]`, from the user's configuration.
    /// - Throws: `.invalidArgument` "token realm … is not an http(s) URL".
    static func checkRealm(_ realm: String, registry: String) throws -> Realm {
        let registryURL = URLComponents(string: registry)
        let registryHost = registryURL.map { ($0.host ?? "") + ($0.port.map { ":\($0)" } ?? "") } ?? registry
        guard let components = URLComponents(string: realm),
            let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = components.host, !host.isEmpty
        else {
            throw FerryError.invalidArgument(
                "registry \(registryHost): token realm \(String(realm.prefix(200)).debugDescription) is not an "
                    + "http(s) URL"
            )
        }
        let sameOrigin = registryURL.map { origin($0) == origin(components) } ?? false
        return Realm(components: components, mayReceiveCredential: scheme == "https" || sameOrigin)
    }

    /// `host[:port]` with the scheme's default port made explicit, lowercased: equal strings mean one service.
    private static func hostPort(_ url: URLComponents) -> String {
        "\(url.host?.lowercased() ?? ""):\(url.port ?? (url.scheme?.lowercased() == "https" ? 443 : 80))"
    }

    private static func origin(_ url: URLComponents) -> String {
        "\(url.scheme?.lowercased() ?? "")://\(hostPort(url))"
    }

    /// The base64 `user:password` for a registry host, from the first of `$REGISTRY_AUTH_FILE`,
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`, `~/.docker/config.json`
    /// that names it (the files containers/image and Docker read).
    static func credential(for hostPort: String, environment: [String: String] = ProcessInfo.processInfo.environment)
        -> String?
    {
        var files: [String] = []
        if let file = environment["REGISTRY_AUTH_FILE"] { files.append(file) }
        if let runtime = XDG.runtimeDirectory(environment) { files.append(runtime + "/containers/auth.json") }
        files.append(XDG.configHome(environment) + "/containers/auth.json")
        files.append(XDG.home(environment) + "/.docker/config.json")
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
