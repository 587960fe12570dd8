import FerryCore
import Foundation
import Synchronization

/// An OCI distribution registry repository prefix (`https://host[:port]/ns`): the ref `NAME:TAG` is the image
/// `host/ns/NAME:TAG`. Speaks the v2 API: manifests with OCI and Docker `Accept` types (a multi-platform index
/// resolves to this machine's platform), blobs (redirects followed), the anonymous bearer-token challenge, and
/// credentials from `containers/auth.json` or `~/.docker/config.json`. Signatures come from the remote's
/// lookaside (`<lookaside>/<repo>@sha256=<hex>/signature-N`), as containers/image stores them.
public struct RegistrySource: ImageSource {
    public let remote: Remote
    public let transport: HTTPTransport
    private let tokens = TokenCache()

    static let manifestAccept = [
        MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerManifestList,
    ].joined(separator: ", ")

    /// A registry base: `scheme://host[:port]` and the namespace path.
    struct Base: Sendable {
        var origin: String
        var hostPort: String
        var namespace: String

        init(_ url: String) throws {
            guard let parsed = URL(string: url), let scheme = parsed.scheme, let host = parsed.host else {
                throw FerryError.invalidArgument("invalid registry URL \(url)")
            }
            hostPort = parsed.port.map { "\(host):\($0)" } ?? host
            origin = "\(scheme)://\(hostPort)"
            namespace = parsed.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        }

        func repository(_ ref: Ref) -> String { namespace.isEmpty ? ref.name : "\(namespace)/\(ref.name)" }
    }

    public init(remote: Remote, transport: HTTPTransport) throws {
        self.remote = remote
        self.transport = transport
        _ = try Base(remote.url)
    }

    private var bases: [Base] { remote.baseURLs.compactMap { try? Base($0) } }

    public func refs() async throws -> [OfferedRef] {
        throw FerryError.invalidArgument("remote \(remote.name) is a registry: it cannot list its refs")
    }

    /// GET with the registry's auth dance: on 401 with a Bearer challenge, fetch a token and retry once.
    func authorizedGet(_ url: String, base: Base, ref: Ref, maxSize: Int, accept: String? = nil) async throws
        -> HTTPTransport.Response
    {
        var headers: [(String, String)] = accept.map { [("Accept", $0)] } ?? []
        let scope = "repository:\(base.repository(ref)):pull"
        if let token = tokens.get(base.origin, scope) { headers.append(("Authorization", "Bearer \(token)")) }
        var response = try await transport.get(url, maxSize: maxSize, headers: headers)
        if response.status == 401, let challenge = response.header("WWW-Authenticate") {
            let token = try await fetchToken(challenge: challenge, base: base, scope: scope)
            tokens.set(base.origin, scope, token)
            headers.removeAll { $0.0 == "Authorization" }
            headers.append(("Authorization", "Bearer \(token)"))
            response = try await transport.get(url, maxSize: maxSize, headers: headers)
        }
        return response
    }

    func fetchToken(challenge: String, base: Base, scope: String) async throws -> String {
        let params = RegistryAuth.parseChallenge(challenge)
        guard params.scheme == "bearer", let realm = params.values["realm"] else {
            throw FerryError.failed("\(base.origin): unsupported auth challenge \(challenge.prefix(100))")
        }
        // The realm is the server's word: http(s) only, and the credential only where the user sent it anyway.
        let checked = try RegistryAuth.checkRealm(realm, registry: base.origin)
        var components = checked.components
        var items = components.queryItems ?? []
        if let service = params.values["service"] { items.append(URLQueryItem(name: "service", value: service)) }
        items.append(URLQueryItem(name: "scope", value: params.values["scope"] ?? scope))
        components.queryItems = items
        guard let url = components.string else { throw FerryError.failed("bad token realm \(realm.prefix(200))") }
        var headers: [(String, String)] = []
        if checked.mayReceiveCredential, let credential = RegistryAuth.credential(for: base.hostPort) {
            headers.append(("Authorization", "Basic \(credential)"))
        }
        let response = try await transport.get(url, maxSize: 1024 * 1024, headers: headers)
        guard response.status == 200 else { throw FerryError.failed("\(base.origin): token request HTTP \(response.status)") }
        struct TokenReply: Decodable {
            var token: String?
            var access_token: String?
        }
        guard let reply = try? JSONDecoder().decode(TokenReply.self, from: response.body),
            let token = reply.token ?? reply.access_token
        else { throw FerryError.failed("\(base.origin): malformed token reply") }
        return token
    }

    public func resolve(_ ref: Ref) async throws -> (descriptor: Descriptor, manifest: Data) {
        try await firstSuccess(bases.map(\.origin), transport: transport) { origin in
            guard let base = bases.first(where: { $0.origin == origin }) else { throw FerryError.failed("no base") }
            let tagURL = "\(base.origin)/v2/\(base.repository(ref))/manifests/\(ref.tag ?? "latest")"
            var (mediaType, data) = try await getManifest(tagURL, base: base, ref: ref)
            if MediaType.indexes.contains(mediaType) {
                let index = try ImageIndex.parse(data)
                guard let chosen = index.manifest(for: .current) else {
                    throw FerryError.invalidArgument("\(ref): no image for \(Platform.current.os)/\(Platform.current.architecture)")
                }
                let digestURL = "\(base.origin)/v2/\(base.repository(ref))/manifests/\(chosen.digest)"
                (mediaType, data) = try await getManifest(digestURL, base: base, ref: ref)
                var verifier = BlobVerifier(chosen)
                try verifier.consume(data)
                try verifier.finish()
            }
            guard MediaType.manifests.contains(mediaType) else {
                throw FerryError.invalidArgument("\(ref): unsupported manifest type \(mediaType.prefix(100))")
            }
            _ = try Manifest.parse(data)
            return (Descriptor(mediaType: mediaType, digest: Digest.of(data), size: Int64(data.count)), data)
        }
    }

    /// One manifest GET: the media type (from the document, else the Content-Type) and the bytes.
    private func getManifest(_ url: String, base: Base, ref: Ref) async throws -> (String, Data) {
        let response = try await authorizedGet(url, base: base, ref: ref, maxSize: Manifest.maxSize,
                                               accept: RegistrySource.manifestAccept)
        switch response.status {
        case 200: break
        case 404: throw FerryError(.notInstalled, "remote \(remote.name) does not offer \(ref)")
        default: throw FerryError.failed("\(url): HTTP \(response.status)")
        }
        struct Typed: Decodable { var mediaType: String? }
        let declared = (try? JSONDecoder().decode(Typed.self, from: response.body))?.mediaType
        let contentType = response.header("Content-Type")?.split(separator: ";").first
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard let mediaType = declared ?? contentType else {
            throw FerryError.invalidArgument("\(url): manifest without a media type")
        }
        return (mediaType, response.body)
    }

    public func blobURLs(_ digest: Digest, ref: Ref) -> [String] {
        bases.map { "\($0.origin)/v2/\($0.repository(ref))/blobs/\(digest)" }
    }

    public func headers(for url: String, ref: Ref) async throws -> [(String, String)] {
        guard let base = bases.first(where: { url.hasPrefix($0.origin + "/") }) else { return [] }
        let scope = "repository:\(base.repository(ref)):pull"
        if let token = tokens.get(base.origin, scope) { return [("Authorization", "Bearer \(token)")] }
        // Probe once so a token is fetched if the registry wants one.
        _ = try? await authorizedGet(url.replacingOccurrences(of: "/blobs/", with: "/manifests/"), base: base,
                                     ref: ref, maxSize: Manifest.maxSize, accept: RegistrySource.manifestAccept)
        return tokens.get(base.origin, scope).map { [("Authorization", "Bearer \($0)")] } ?? []
    }

    public func signatures(ref: Ref, digest: Digest) async throws -> SignatureSet {
        guard let lookaside = remote.signatureLookaside, let base = bases.first else { return SignatureSet() }
        let root = Remote.withoutTrailingSlash(lookaside)
        return try await fetchSignatures(
            base: "\(root)/\(base.repository(ref))@\(digest.algorithm.rawValue)=\(digest.hex)", transport: transport)
    }
}

/// Bearer tokens per (registry, scope), shared by the parallel downloads of one install.
final class TokenCache: Sendable {
    private let tokens = Mutex<[String: String]>([:])

    func get(_ origin: String, _ scope: String) -> String? {
        tokens.withLock { $0[origin + " " + scope] }
    }

    func set(_ origin: String, _ scope: String, _ token: String) {
        tokens.withLock { $0[origin + " " + scope] = token }
    }
}
