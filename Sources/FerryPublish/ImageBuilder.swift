import FerryArchive
import FerryCore
import Foundation

/// Builds a one-layer OCI image from a directory into a layout (`ferry build`).
public enum ImageBuilder {
    /// Packs `directory` as a layer, writes config and manifest, and points `ref` at the manifest in `layout`
    /// (creating the layout, or replacing what `ref` named before). Returns the manifest descriptor.
    ///
    /// `command` becomes the config's `Entrypoint`. The config's `created` comes from `SOURCE_DATE_EPOCH` when set,
    /// so builds of the same tree can be reproducible.
    @discardableResult
    /// `chunked` writes a `zstd:chunked` layer (with `compression` zstd), its TOC announced in the layer
    /// descriptor's annotations.
    public static func build(directory: String, layout: String, ref: Ref, command: String?,
                             compression: LayerCompression, chunked: Bool = false) throws -> Descriptor {
        let writer = try LayoutWriter(path: layout)
        try makeDirectory(layout + "/blobs/sha256")
        let tmp = "\(layout)/blobs/sha256/.layer-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(tmp) }
        let layer = try LayerWriter.write(directory: directory, to: tmp, compression: compression, chunked: chunked)
        try writer.adoptBlob(at: tmp, digest: layer.digest)
        let layerDescriptor = Descriptor(mediaType: compression.mediaType, digest: layer.digest, size: layer.size,
                                         annotations: layer.annotations)

        var created = Date()
        if let epoch = ProcessInfo.processInfo.environment["SOURCE_DATE_EPOCH"], let seconds = TimeInterval(epoch) {
            created = Date(timeIntervalSince1970: seconds)
        }
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        let config = ImageConfig(
            created: formatter.string(from: created), platform: .current,
            config: ImageConfig.Config(Entrypoint: command.map { [$0] }, Env: [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ]),
            diffIDs: [layer.diffID])
        let configData: Data
        let manifestData: Data
        do {
            configData = try JSONEncoder.canonicalOCI.encode(config)
            let configDescriptor = try writer.writeBlob(configData, mediaType: MediaType.ociConfig)
            let manifest = Manifest(config: configDescriptor, layers: [layerDescriptor])
            manifestData = try JSONEncoder.canonicalOCI.encode(manifest)
        } catch let error as FerryError {
            throw error
        } catch {
            throw FerryError.failed("cannot encode image: \(error)")
        }
        var descriptor = try writer.writeBlob(manifestData, mediaType: MediaType.ociManifest)
        descriptor.platform = .current
        try writer.setRef(ref, to: descriptor)
        return descriptor
    }
}
