import FerryCore
import Foundation

/// A ref a remote offers, as `ferry remote-ls` shows it.
public struct OfferedRef: Sendable, Equatable {
    public var ref: Ref
    public var digest: Digest
    /// The image's total size (manifest, config and layers), when known without fetching every manifest.
    public var size: Int64?
    /// The image's version annotation (`org.opencontainers.image.version`), when the publisher set one.
    public var version: String?
}

/// What a remote serves, read by the agent over HTTP. Nothing a source returns is trusted: callers verify
/// every document against a digest, and the digest against a signature.
public protocol ImageSource: Sendable {
    /// The remote's refs (a layout's `index.json`; a registry cannot list, so only what it is asked for).
    func refs() async throws -> [OfferedRef]
    /// Resolves a ref to its manifest: the descriptor (digest computed here) and the manifest's bytes.
    func resolve(_ ref: Ref) async throws -> (descriptor: Descriptor, manifest: Data)
    /// Candidate URLs for a blob, in the order to try them (the remote, then its mirrors).
    func blobURLs(_ digest: Digest, ref: Ref) -> [String]
    /// HTTP headers a blob request needs (a registry's bearer token), for the URL given.
    func headers(for url: String, ref: Ref) async throws -> [(String, String)]
    /// The signatures stored for (ref, digest).
    func signatures(ref: Ref, digest: Digest) async throws -> SignatureSet
}

extension Remote {
    /// The source for this remote.
    public func source(transport: HTTPTransport = .shared) throws -> ImageSource {
        isRegistry ? try RegistrySource(remote: self, transport: transport) : LayoutSource(remote: self, transport: transport)
    }
}

extension ImageSource {
    /// Downloads `descriptor` into `partial` from this source's URLs in turn (origins known to be down last),
    /// resuming what an earlier try left, and calls `finish` (which moves the file into place) once a download
    /// verified. A failure moves on to the next URL, a full disk stops at once; when no URL serves the blob, the
    /// last reason is thrown.
    public func downloadBlob(_ descriptor: Descriptor, ref: Ref, to partial: String, transport: HTTPTransport,
                             received: @Sendable (Int) -> Void = { _ in }, finish: () throws -> Void) async throws
    {
        var errors: [String] = []
        for url in transport.preferReachable(blobURLs(descriptor.digest, ref: ref)) {
            do {
                let headers = try await self.headers(for: url, ref: ref)
                try await transport.download(url, descriptor: descriptor, to: partial, headers: headers,
                                             received: received)
                try finish()
                return
            } catch let error as FerryError {
                errors.append(error.message)
                if error.code == .noSpace { throw error }
            } catch {
                errors.append("\(url): \(error)")
            }
        }
        throw FerryError.failed("blob \(descriptor.digest.short): \(errors.last ?? "no URL to fetch from")")
    }
}

/// Fetches signature files `signature-N`, `claim-N.json`, `claim-N.json.minisig` under `base`, N from 1 until
/// the first 404.
func fetchSignatures(base: String, transport: HTTPTransport, headers: [(String, String)] = []) async throws
    -> SignatureSet
{
    var set = SignatureSet()
    for n in 1...(SignatureSet.maxCount + 1) {
        guard let data = try await transport.fetch("\(base)/\(SignatureSet.gpgFileName(n))",
                                                   maxSize: SignatureSet.maxFileSize, headers: headers)
        else { break }
        guard n <= SignatureSet.maxCount else { throw FerryError.signatureInvalid("more than 16 signatures") }
        set.gpg.append(data)
    }
    for n in 1...(SignatureSet.maxCount + 1) {
        guard let claim = try await transport.fetch("\(base)/\(SignatureSet.claimFileName(n))",
                                                    maxSize: Claim.maxSize, headers: headers)
        else { break }
        guard n <= SignatureSet.maxCount else { throw FerryError.signatureInvalid("more than 16 signatures") }
        guard let sig = try await transport.fetch("\(base)/\(SignatureSet.minisigFileName(n))",
                                                  maxSize: SignatureSet.maxFileSize, headers: headers)
        else { throw FerryError.signatureInvalid("\(SignatureSet.claimFileName(n)) has no .minisig") }
        set.ed25519.append(.init(claim: claim, minisig: sig))
    }
    return set
}

/// Runs `body` against each base URL in order until one succeeds; the last error is thrown when all fail.
/// A mirror needs no trust: whatever it returns is verified by the caller, and a bad answer moves on.
func firstSuccess<T: Sendable>(_ bases: [String], transport: HTTPTransport = .shared,
                               _ body: (String) async throws -> T) async throws -> T {
    var lastError: Error = FerryError.failed("no URL to try")
    for base in transport.preferReachable(bases) {
        do {
            return try await body(base)
        } catch {
            lastError = error
        }
    }
    throw lastError
}

/// A static OCI image layout on a web server (or a `file://` directory): `index.json`, `blobs/`, `signatures/`.
public struct LayoutSource: ImageSource {
    public let remote: Remote
    public let transport: HTTPTransport

    public init(remote: Remote, transport: HTTPTransport) {
        self.remote = remote
        self.transport = transport
    }

    private func index() async throws -> ImageIndex {
        try await firstSuccess(remote.baseURLs, transport: transport) { base in
            guard let data = try await transport.fetch(Remote.withoutTrailingSlash(base) + "/index.json",
                                                       maxSize: ImageIndex.maxSize)
            else { throw FerryError.failed("\(base): no index.json") }
            return try ImageIndex.parse(data)
        }
    }

    public func refs() async throws -> [OfferedRef] {
        try await index().manifests.compactMap { desc in
            guard let name = desc.refName, let ref = try? Ref(name) else { return nil }
            return OfferedRef(ref: ref, digest: desc.digest, size: nil,
                              version: desc.annotations?["org.opencontainers.image.version"])
        }.sorted { $0.ref < $1.ref }
    }

    public func resolve(_ ref: Ref) async throws -> (descriptor: Descriptor, manifest: Data) {
        let index = try await index()
        guard let descriptor = index.manifests.last(where: { $0.refName == ref.string }) else {
            throw FerryError(.notInstalled, "remote \(remote.name) does not offer \(ref)")
        }
        guard MediaType.manifests.contains(descriptor.mediaType) else {
            throw FerryError.invalidArgument("\(ref): \(descriptor.mediaType) is not an image manifest")
        }
        guard descriptor.size <= Manifest.maxSize else {
            throw FerryError.invalidArgument("\(ref): manifest is \(descriptor.size) bytes; the limit is 4 MiB")
        }
        let manifest = try await firstSuccess(remote.baseURLs, transport: transport) { base in
            let url = Remote.withoutTrailingSlash(base) + "/" + ImageLayout.blobPath(descriptor.digest)
            guard let data = try await transport.fetch(url, maxSize: Int(descriptor.size)) else {
                throw FerryError.failed("\(url): not found")
            }
            var verifier = BlobVerifier(descriptor)
            try verifier.consume(data)
            try verifier.finish()
            return data
        }
        return (descriptor, manifest)
    }

    public func blobURLs(_ digest: Digest, ref: Ref) -> [String] {
        remote.baseURLs.map { Remote.withoutTrailingSlash($0) + "/" + ImageLayout.blobPath(digest) }
    }

    public func headers(for url: String, ref: Ref) async throws -> [(String, String)] { [] }

    public func signatures(ref: Ref, digest: Digest) async throws -> SignatureSet {
        let path = SignatureSet.directory(ref: ref, digest: digest)
        var bases = remote.baseURLs.map { Remote.withoutTrailingSlash($0) + "/" + path }
        if let lookaside = remote.signatureLookaside {
            bases.insert(Remote.withoutTrailingSlash(lookaside) + "/" + path.dropFirst("signatures/".count), at: 0)
        }
        // The first base that has any signature wins; an empty answer from every base means unsigned.
        for base in transport.preferReachable(bases) {
            if let set = try? await fetchSignatures(base: base, transport: transport), !set.isEmpty { return set }
        }
        return SignatureSet()
    }
}
