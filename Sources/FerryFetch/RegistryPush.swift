import FerryCore
import Foundation
import NIOHTTP1

/// Pushes images from a local OCI layout to a registry repository prefix (`https://host[:port]/ns`) with the OCI
/// distribution API, and writes their signatures into a lookaside directory as containers/image lays it out
/// (`<lookaside>/<repo>@sha256=<hex>/signature-N`, and Ferry's `claim-N.json` and `.minisig` beside them).
///
/// The ref `NAME:TAG` becomes `host/ns/NAME:TAG` (tag `latest` when it has none), the same mapping a registry remote
/// reads. Blobs the registry already has (a `HEAD` answers 200) are not sent again; each missing blob is one
/// monolithic upload (`POST` then `PUT ?digest=`) streamed from disk; the manifest goes last, with its exact bytes so
/// that its digest, which the signatures name, is unchanged. An anonymous bearer-token challenge is answered as for
/// pulls, with `pull,push` scope.
public struct RegistryPush: Sendable {
    public let destination: String
    public let lookaside: String?
    public let transport: HTTPTransport
    private let base: RegistrySource.Base
    private let auth: RegistrySource

    /// What a push did for one image.
    public struct Pushed: Sendable {
        public var blobsSent = 0
        public var bytesSent: Int64 = 0
        public var blobsPresent = 0
    }

    public init(destination: String, lookaside: String?, transport: HTTPTransport = .shared) throws {
        self.destination = destination
        self.lookaside = lookaside
        self.transport = transport
        base = try RegistrySource.Base(destination)
        auth = try RegistrySource(remote: Remote(name: try RemoteName("destination"), url: destination,
                                                 isRegistry: true), transport: transport)
    }

    /// The image name a ref gets in the destination: `host[:port]/ns/NAME:TAG`.
    public func imageName(_ ref: Ref) -> String { "\(base.hostPort)/\(base.repository(ref)):\(ref.tag ?? "latest")" }

    /// Pushes the image `descriptor` names in `layout` as `ref`, then writes `signatures` to the lookaside.
    public func push(layout: String, ref: Ref, descriptor: Descriptor, manifest: Manifest, manifestData: Data,
                     signatures: SignatureSet) async throws -> Pushed {
        let repository = base.repository(ref)
        var token: String?
        var pushed = Pushed()
        for blob in [manifest.config] + manifest.layers {
            let blobURL = "\(base.origin)/v2/\(repository)/blobs/\(blob.digest)"
            let head = try await send(.HEAD, blobURL, ref: ref, token: &token)
            if head.status == 200 {
                pushed.blobsPresent += 1
                continue
            }
            let start = try await send(.POST, "\(base.origin)/v2/\(repository)/blobs/uploads/", ref: ref,
                                       token: &token, headers: [("Content-Length", "0")])
            guard start.status == 202, let location = start.header("Location") else {
                throw FerryError.failed("\(imageName(ref)): starting the upload of \(blob.digest.short) got HTTP "
                    + "\(start.status)")
            }
            let upload = absolute(location)
            let put = upload + (upload.contains("?") ? "&" : "?") + "digest=\(blob.digest)"
            let path = "\(layout)/\(ImageLayout.blobPath(blob.digest))"
            let done = try await send(.PUT, put, ref: ref, token: &token,
                                      headers: [("Content-Type", "application/octet-stream")],
                                      body: .file(path: path, size: blob.size))
            guard done.status == 201 else {
                throw FerryError.failed("\(imageName(ref)): upload of \(blob.digest.short) got HTTP \(done.status)")
            }
            pushed.blobsSent += 1
            pushed.bytesSent += blob.size
        }
        let manifestURL = "\(base.origin)/v2/\(repository)/manifests/\(ref.tag ?? "latest")"
        let put = try await send(.PUT, manifestURL, ref: ref, token: &token,
                                 headers: [("Content-Type", descriptor.mediaType)], body: .bytes(manifestData))
        guard put.status == 201 else {
            throw FerryError.failed("\(imageName(ref)): manifest upload got HTTP \(put.status): "
                + String(decoding: put.body.prefix(200), as: UTF8.self))
        }
        if let answered = put.header("Docker-Content-Digest"), answered != descriptor.digest.description {
            throw FerryError.digestMismatch("\(imageName(ref)): the registry stored the manifest as \(answered), "
                + "not \(descriptor.digest)")
        }
        pushed.bytesSent += Int64(manifestData.count)
        if let lookaside, !signatures.isEmpty {
            let directory = "\(lookaside)/\(repository)@\(descriptor.digest.algorithm.rawValue)=\(descriptor.digest.hex)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try SignatureSet.replace(in: directory, with: signatures)
        }
        return pushed
    }

    /// A `Location` header made absolute against the registry's origin.
    private func absolute(_ location: String) -> String {
        location.hasPrefix("http://") || location.hasPrefix("https://") ? location : base.origin + location
    }

    /// One request, answering a bearer challenge once with a `pull,push` token (kept in `token` for the next ones).
    private func send(_ method: HTTPMethod, _ url: String, ref: Ref, token: inout String?,
                      headers: [(String, String)] = [], body: HTTPTransport.RequestBody = .none) async throws
        -> HTTPTransport.Response
    {
        var all = headers
        if let token { all.append(("Authorization", "Bearer \(token)")) }
        let response = try await transport.request(method, url, headers: all, body: body)
        guard response.status == 401, let challenge = response.header("WWW-Authenticate") else { return response }
        let fresh = try await auth.fetchToken(challenge: challenge, base: base,
                                              scope: "repository:\(base.repository(ref)):pull,push")
        token = fresh
        return try await transport.request(method, url, headers: headers + [("Authorization", "Bearer \(fresh)")],
                                           body: body)
    }
}
