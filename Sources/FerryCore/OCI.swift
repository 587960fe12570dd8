import Foundation

/// OCI and Docker media types Ferry understands. Anything else is refused by name.
public enum MediaType {
    public static let ociIndex = "application/vnd.oci.image.index.v1+json"
    public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    public static let ociConfig = "application/vnd.oci.image.config.v1+json"
    public static let ociLayerTar = "application/vnd.oci.image.layer.v1.tar"
    public static let ociLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
    public static let ociLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    public static let dockerConfig = "application/vnd.docker.container.image.v1+json"
    public static let dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"

    public static let manifests: Set<String> = [ociManifest, dockerManifest]
    public static let indexes: Set<String> = [ociIndex, dockerManifestList]
    public static let configs: Set<String> = [ociConfig, dockerConfig]
}

/// How a layer's tar stream is compressed, from its media type.
public enum LayerCompression: String, Sendable, CaseIterable {
    case none, gzip, zstd

    public init(mediaType: String) throws {
        switch mediaType {
        case MediaType.ociLayerTar: self = .none
        case MediaType.ociLayerGzip, MediaType.dockerLayerGzip: self = .gzip
        case MediaType.ociLayerZstd: self = .zstd
        default: throw FerryError.invalidArgument("unsupported layer media type \(mediaType.prefix(100).debugDescription)")
        }
    }

    public var mediaType: String {
        switch self {
        case .none: MediaType.ociLayerTar
        case .gzip: MediaType.ociLayerGzip
        case .zstd: MediaType.ociLayerZstd
        }
    }
}

/// The platform an image is built for.
public struct Platform: Codable, Hashable, Sendable {
    public var architecture: String
    public var os: String
    public var variant: String?

    public init(architecture: String, os: String, variant: String? = nil) {
        self.architecture = architecture
        self.os = os
        self.variant = variant
    }

    /// This machine, in OCI's GOARCH-style names.
    public static var current: Platform {
        #if arch(x86_64)
            Platform(architecture: "amd64", os: "linux")
        #elseif arch(arm64)
            Platform(architecture: "arm64", os: "linux", variant: "v8")
        #else
            Platform(architecture: "unknown", os: "linux")
        #endif
    }
}

/// An OCI content descriptor. `size` is the only length Ferry believes; a source's own claim is never used.
public struct Descriptor: Codable, Hashable, Sendable {
    public var mediaType: String
    public var digest: Digest
    public var size: Int64
    public var annotations: [String: String]?
    public var platform: Platform?
    public var urls: [String]?

    public init(mediaType: String, digest: Digest, size: Int64, annotations: [String: String]? = nil,
                platform: Platform? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.annotations = annotations
        self.platform = platform
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mediaType = try c.decode(String.self, forKey: .mediaType)
        digest = try c.decode(Digest.self, forKey: .digest)
        size = try c.decode(Int64.self, forKey: .size)
        guard size >= 0 else { throw FerryError.invalidArgument("descriptor with negative size") }
        annotations = try c.decodeIfPresent([String: String].self, forKey: .annotations)
        platform = try c.decodeIfPresent(Platform.self, forKey: .platform)
        urls = try c.decodeIfPresent([String].self, forKey: .urls)
    }

    public static let refNameAnnotation = "org.opencontainers.image.ref.name"

    /// The `org.opencontainers.image.ref.name` annotation.
    public var refName: String? { annotations?[Descriptor.refNameAnnotation] }
}

/// An image manifest (OCI, or Docker schema 2 which has the same shape).
public struct Manifest: Codable, Sendable, Equatable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var config: Descriptor
    public var layers: [Descriptor]
    public var annotations: [String: String]?

    public init(config: Descriptor, layers: [Descriptor], annotations: [String: String]? = nil) {
        schemaVersion = 2
        mediaType = MediaType.ociManifest
        self.config = config
        self.layers = layers
        self.annotations = annotations
    }

    /// Largest manifest Ferry will read.
    public static let maxSize = 4 * 1024 * 1024

    /// Parses and checks a manifest: schema 2, a known config type, and only layer types Ferry can extract.
    public static func parse(_ data: Data) throws -> Manifest {
        guard data.count <= maxSize else { throw FerryError.invalidArgument("manifest larger than 4 MiB") }
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: data)
        } catch let error as FerryError {
            throw FerryError.invalidArgument("malformed manifest: \(error.message)")
        } catch {
            throw FerryError.invalidArgument("malformed manifest JSON")
        }
        guard manifest.schemaVersion == 2 else { throw FerryError.invalidArgument("manifest schemaVersion is not 2") }
        if let type = manifest.mediaType, !MediaType.manifests.contains(type) {
            throw FerryError.invalidArgument("unexpected manifest media type \(type.prefix(100).debugDescription)")
        }
        guard MediaType.configs.contains(manifest.config.mediaType) else {
            throw FerryError.invalidArgument(
                "unsupported config media type \(manifest.config.mediaType.prefix(100).debugDescription)")
        }
        guard manifest.config.size <= ImageConfig.maxSize else {
            throw FerryError.invalidArgument("image config larger than 1 MiB")
        }
        for layer in manifest.layers { _ = try LayerCompression(mediaType: layer.mediaType) }
        _ = try manifest.totalSize()
        return manifest
    }

    /// The config's and the layers' sizes added up: the bytes an install downloads and copies.
    /// - Throws: `.invalidArgument` when they add up past `Int64.max` (see ``Swift/Sequence/totalSize()``).
    public func totalSize() throws -> Int64 {
        try ([config] + layers).totalSize()
    }
}

extension Sequence where Element == Descriptor {
    /// The descriptors' sizes added up, with checked arithmetic.
    ///
    /// Each size is a signed manifest's claim, up to `Int64.max` apiece: a plain `+` over a few of them traps, and
    /// a trap in the root helper is a denial of service for every caller. ``Manifest/parse(_:)`` already refuses
    /// such a manifest; callers that sum descriptors use this too, so no sum relies on that having happened.
    /// - Throws: `.invalidArgument` "manifest sizes overflow" when the sum does not fit, or when a size is negative
    ///   (decoding refuses those; a descriptor built in code could still carry one).
    public func totalSize() throws -> Int64 {
        var total: Int64 = 0
        for descriptor in self {
            guard descriptor.size >= 0 else { throw FerryError.invalidArgument("descriptor with negative size") }
            let (sum, overflow) = total.addingReportingOverflow(descriptor.size)
            guard !overflow else {
                throw FerryError.invalidArgument("manifest sizes overflow: the blobs add up to more than 2^63-1 bytes")
            }
            total = sum
        }
        return total
    }
}

/// An image index: `index.json` of a layout, or a multi-platform manifest list.
public struct ImageIndex: Codable, Sendable, Equatable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var manifests: [Descriptor]
    public var annotations: [String: String]?

    public init(manifests: [Descriptor]) {
        schemaVersion = 2
        mediaType = MediaType.ociIndex
        self.manifests = manifests
    }

    public static let maxSize = 4 * 1024 * 1024

    public static func parse(_ data: Data) throws -> ImageIndex {
        guard data.count <= maxSize else { throw FerryError.invalidArgument("image index larger than 4 MiB") }
        let index: ImageIndex
        do {
            index = try JSONDecoder().decode(ImageIndex.self, from: data)
        } catch let error as FerryError {
            throw FerryError.invalidArgument("malformed image index: \(error.message)")
        } catch {
            throw FerryError.invalidArgument("malformed image index JSON")
        }
        guard index.schemaVersion == 2 else { throw FerryError.invalidArgument("image index schemaVersion is not 2") }
        if let type = index.mediaType, !MediaType.indexes.contains(type) {
            throw FerryError.invalidArgument("unexpected index media type \(type.prefix(100).debugDescription)")
        }
        return index
    }

    /// The manifest for this platform among a multi-platform index's entries.
    public func manifest(for platform: Platform) -> Descriptor? {
        let candidates = manifests.filter { MediaType.manifests.contains($0.mediaType) }
        return candidates.first { $0.platform?.os == platform.os && $0.platform?.architecture == platform.architecture }
    }
}

/// The parts of an OCI image configuration Ferry uses. The config's bytes are kept as they came; this is a view.
public struct ImageConfig: Codable, Sendable, Equatable {
    public struct Config: Codable, Sendable, Equatable {
        public var Entrypoint: [String]?
        public var Cmd: [String]?
        public var Env: [String]?
        public var WorkingDir: String?
        public var Labels: [String: String]?

        public init(Entrypoint: [String]? = nil, Cmd: [String]? = nil, Env: [String]? = nil) {
            self.Entrypoint = Entrypoint
            self.Cmd = Cmd
            self.Env = Env
        }
    }

    public struct RootFS: Codable, Sendable, Equatable {
        public var type: String
        public var diff_ids: [Digest]

        public init(diffIDs: [Digest]) {
            type = "layers"
            diff_ids = diffIDs
        }
    }

    public var created: String?
    public var architecture: String
    public var os: String
    public var config: Config?
    public var rootfs: RootFS

    public init(created: String?, platform: Platform, config: Config, diffIDs: [Digest]) {
        self.created = created
        architecture = platform.architecture
        os = platform.os
        self.config = config
        rootfs = RootFS(diffIDs: diffIDs)
    }

    public static let maxSize: Int64 = 1024 * 1024

    public static func parse(_ data: Data) throws -> ImageConfig {
        guard data.count <= maxSize else { throw FerryError.invalidArgument("image config larger than 1 MiB") }
        do {
            let config = try JSONDecoder().decode(ImageConfig.self, from: data)
            guard config.rootfs.type == "layers" else { throw FerryError.invalidArgument("rootfs type is not layers") }
            return config
        } catch let error as FerryError {
            throw FerryError.invalidArgument("malformed image config: \(error.message)")
        } catch {
            throw FerryError.invalidArgument("malformed image config JSON")
        }
    }

    /// The image's command: `Entrypoint` followed by `Cmd`.
    public var command: [String] { (config?.Entrypoint ?? []) + (config?.Cmd ?? []) }
}

extension JSONEncoder {
    /// Compact, sorted keys, slashes unescaped: stable bytes for content-addressed documents.
    public static var canonicalOCI: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
