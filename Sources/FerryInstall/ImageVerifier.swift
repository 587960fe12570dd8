import FerryArchive
import FerryCore
import FerryTrust
import Foundation

/// Checks an image in a layout end to end without installing it (`ferry verify`, and the agent before staging).
public enum ImageVerifier {
    public struct Result: Sendable {
        public var digest: Digest
        public var manifest: Manifest
        public var config: ImageConfig
        public var claim: VerifiedClaim
    }

    /// Verifies every blob's size and digest, every layer's diff_id, and the signatures against `keys` for
    /// `identity`. Layers are unpacked into a scratch directory under `scratch` (removed afterwards), so the
    /// extraction rules are checked as well.
    public static func verify(layout: ImageLayout, ref: Ref, identity: String, keys: TrustedKeys,
                              scratch: String = NSTemporaryDirectory()) throws -> Result {
        let descriptor = try layout.descriptor(for: ref)
        let manifest = try layout.manifest(descriptor)
        let signatures = try layout.signatures(ref: ref, digest: descriptor.digest)
        let claim = try ClaimVerifier.verify(signatures, digest: descriptor.digest, identity: identity, keys: keys)
        let config = try ImageConfig.parse(layout.readBlob(manifest.config, maxSize: ImageConfig.maxSize))
        guard config.rootfs.diff_ids.count == manifest.layers.count else {
            throw FerryError.digestMismatch(
                "image config lists \(config.rootfs.diff_ids.count) diff_ids for \(manifest.layers.count) layers")
        }
        let work = scratch + "/ferry-verify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try makeDirectory(work)
        defer { try? LayerExtractor.removeTree(work) }
        let extractor = LayerExtractor(target: try DirectoryHandle(path: work), limits: ExtractionLimits(),
                                       ownership: .currentUser)
        for (layer, diffID) in zip(manifest.layers, config.rootfs.diff_ids) {
            // Verify the compressed blob first, then unpack it from the same open file.
            guard let (fd, _) = try layout.openBlob(layer.digest) else {
                throw FerryError.digestMismatch("layer \(layer.digest.short) is missing")
            }
            defer { close(fd) }
            try BlobVerifier.stream(fd: fd, expecting: layer) { _ in }
            guard lseek(fd, 0, SEEK_SET) == 0 else { throw ioError("seek layer") }
            _ = try extractor.apply(layerFD: fd, compression: LayerCompression(mediaType: layer.mediaType),
                                    diffID: diffID)
        }
        return Result(digest: descriptor.digest, manifest: manifest, config: config, claim: claim)
    }
}
