import FerryCore
import Foundation

/// Builds images layer by layer from tar specs (`scripts/craft-layer.py`), for tests that need several layers
/// or archives `ferry build` would never write.
public enum ImageCrafter {
    public static func file(_ name: String, _ data: String = "data\n", mode: Int = 0o644, repeat count: Int = 1)
        -> [String: Any]
    { ["name": name, "type": "file", "data": data, "mode": mode, "repeat": count] }
    public static func dir(_ name: String, mode: Int = 0o755) -> [String: Any] {
        ["name": name, "type": "dir", "mode": mode]
    }
    public static func symlink(_ name: String, to target: String) -> [String: Any] {
        ["name": name, "type": "symlink", "target": target]
    }
    public static func hardlink(_ name: String, to target: String) -> [String: Any] {
        ["name": name, "type": "link", "target": target]
    }
    public static func special(_ name: String, _ type: String) -> [String: Any] { ["name": name, "type": type] }

    /// Writes a layer file; returns its diff_id.
    public static func layer(_ entries: [[String: Any]], to output: String, compression: LayerCompression) throws
        -> Digest
    {
        let spec: [String: Any] = ["output": output, "entries": entries, "compression": compression.rawValue]
        let result = try Command.check(["/usr/bin/python3", Testbed.repositoryRoot() + "/scripts/craft-layer.py"],
                                       input: try JSONSerialization.data(withJSONObject: spec))
        return try Digest(algorithm: .sha256, hex: result.out.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Adds an image of `layers` (lowest first) under `ref` to the layout at `layout`, with `command` as its
    /// entrypoint. Returns the manifest descriptor.
    @discardableResult
    public static func publish(layout: String, ref: String, layers: [[[String: Any]]],
                               compression: LayerCompression = .gzip, command: String? = "/bin/hello") throws
        -> Descriptor
    {
        let writer = try LayoutWriter(path: layout)
        var descriptors: [Descriptor] = []
        var diffIDs: [Digest] = []
        for entries in layers {
            let tmp = layout + "/layer-\(UInt32.random(in: 0...UInt32.max))"
            defer { try? FileManager.default.removeItem(atPath: tmp) }
            diffIDs.append(try layer(entries, to: tmp, compression: compression))
            let data = try Data(contentsOf: URL(fileURLWithPath: tmp))
            descriptors.append(try writer.writeBlob(data, mediaType: compression.mediaType))
        }
        let config = ImageConfig(created: nil, platform: .current,
                                 config: .init(Entrypoint: command.map { [$0] }), diffIDs: diffIDs)
        let configDescriptor = try writer.writeBlob(try JSONEncoder.canonicalOCI.encode(config),
                                                    mediaType: MediaType.ociConfig)
        let manifest = Manifest(config: configDescriptor, layers: descriptors)
        let descriptor = try writer.writeBlob(try JSONEncoder.canonicalOCI.encode(manifest),
                                              mediaType: MediaType.ociManifest)
        try writer.setRef(try Ref(ref), to: descriptor)
        return descriptor
    }
}
