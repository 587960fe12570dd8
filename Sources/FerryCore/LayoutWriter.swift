#if canImport(Glibc)
    import Glibc
#endif
import Foundation

/// Writes an OCI image layout on disk: the publisher's side (`ferry build`, `ferry sign`) and the agent's staging.
public struct LayoutWriter: Sendable {
    public let path: String

    /// Opens or creates a layout at `path` (creating `oci-layout`, `index.json` and `blobs/sha256`).
    public init(path: String) throws {
        self.path = path
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: path + "/blobs/sha256", withIntermediateDirectories: true)
        } catch {
            throw FerryError.failed("cannot create layout at \(path): \(error.localizedDescription)")
        }
        if !fm.fileExists(atPath: path + "/oci-layout") {
            try AtomicFile.write(Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8), to: path + "/oci-layout")
        }
        if !fm.fileExists(atPath: path + "/index.json") {
            try writeIndex(ImageIndex(manifests: []))
        }
    }

    public func blobPath(_ digest: Digest) -> String { path + "/" + ImageLayout.blobPath(digest) }

    /// Stores `data` as a blob and returns its descriptor.
    @discardableResult
    public func writeBlob(_ data: Data, mediaType: String) throws -> Descriptor {
        let digest = Digest.of(data)
        let target = blobPath(digest)
        if !FileManager.default.fileExists(atPath: target) {
            try AtomicFile.write(data, to: target)
        }
        return Descriptor(mediaType: mediaType, digest: digest, size: Int64(data.count))
    }

    /// Moves a finished file (already named by its digest's content) into `blobs/`.
    public func adoptBlob(at file: String, digest: Digest) throws {
        try FileManager.default.createDirectory(
            atPath: path + "/blobs/" + digest.algorithm.rawValue, withIntermediateDirectories: true)
        guard rename(file, blobPath(digest)) == 0 else { throw ioError("rename \(file)") }
    }

    public func readIndex() throws -> ImageIndex {
        guard let data = FileManager.default.contents(atPath: path + "/index.json") else {
            throw FerryError.failed("\(path)/index.json is missing")
        }
        return try ImageIndex.parse(data)
    }

    public func writeIndex(_ index: ImageIndex) throws {
        let data = try JSONEncoder.canonicalOCI.encode(index)
        try AtomicFile.write(data, to: path + "/index.json")
    }

    /// Adds `descriptor` to `index.json` under `ref`, replacing whatever that ref named before.
    public func setRef(_ ref: Ref, to descriptor: Descriptor) throws {
        try setRefs([(ref, descriptor)])
    }

    /// Sets every ref to its descriptor in one write of `index.json`, each replacing whatever it named before.
    public func setRefs(_ refs: [(ref: Ref, descriptor: Descriptor)]) throws {
        var index = try readIndex()
        for (ref, descriptor) in refs {
            var desc = descriptor
            var annotations = desc.annotations ?? [:]
            annotations[Descriptor.refNameAnnotation] = ref.string
            desc.annotations = annotations
            index.manifests.removeAll { $0.refName == ref.string }
            index.manifests.append(desc)
        }
        try writeIndex(index)
    }

    /// The directory that holds the signatures of `ref` at `digest`, created if needed.
    public func signatureDirectory(ref: Ref, digest: Digest) throws -> String {
        let dir = path + "/" + SignatureSet.directory(ref: ref, digest: digest)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Writes a signature set into the layout, numbering files from 1; replaces any set already there.
    public func writeSignatures(_ set: SignatureSet, ref: Ref, digest: Digest) throws {
        try SignatureSet.replace(in: try signatureDirectory(ref: ref, digest: digest), with: set)
    }
}
