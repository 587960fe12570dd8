#if canImport(Glibc)
    import Glibc
#endif
import Foundation

/// Signatures found for one (ref, manifest digest): GPG messages and minisign claim/signature pairs.
public struct SignatureSet: Sendable, Equatable {
    public struct Ed25519Pair: Sendable, Equatable {
        public var claim: Data
        public var minisig: Data
        public init(claim: Data, minisig: Data) {
            self.claim = claim
            self.minisig = minisig
        }
    }

    public var gpg: [Data] = []
    public var ed25519: [Ed25519Pair] = []
    public init(gpg: [Data] = [], ed25519: [Ed25519Pair] = []) {
        self.gpg = gpg
        self.ed25519 = ed25519
    }

    public var isEmpty: Bool { gpg.isEmpty && ed25519.isEmpty }

    /// At most this many signatures of each kind are read; more is an error, not a loop.
    public static let maxCount = 16
    /// Each signature file is at most this large.
    public static let maxFileSize = 64 * 1024

    /// `signatures/<ref>@sha256=<hex>`: where a layout keeps the signatures of one ref and digest.
    public static func directory(ref: Ref, digest: Digest) -> String {
        "signatures/\(ref.string)@\(digest.algorithm.rawValue)=\(digest.hex)"
    }

    public static func gpgFileName(_ n: Int) -> String { "signature-\(n)" }
    public static func claimFileName(_ n: Int) -> String { "claim-\(n).json" }
    public static func minisigFileName(_ n: Int) -> String { "claim-\(n).json.minisig" }

    /// Writes `set` into `directory` (which exists), numbering files from 1, and removes any signature file beyond
    /// it: readers take `signature-N` and `claim-N.json` until the first gap, so a stale extra file left by an
    /// earlier, larger set would be read as part of this one.
    public static func replace(in directory: String, with set: SignatureSet) throws {
        let keep = Set((0..<set.gpg.count).map { gpgFileName($0 + 1) }
            + (0..<set.ed25519.count).flatMap { [claimFileName($0 + 1), minisigFileName($0 + 1)] })
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        where !keep.contains(name) && (name.hasPrefix("signature-") || name.hasPrefix("claim-")) {
            guard unlink(directory + "/" + name) == 0 || errno == ENOENT else { throw ioError("remove \(name)") }
        }
        for (i, sig) in set.gpg.enumerated() {
            try AtomicFile.write(sig, to: directory + "/" + gpgFileName(i + 1))
        }
        for (i, pair) in set.ed25519.enumerated() {
            try AtomicFile.write(pair.claim, to: directory + "/" + claimFileName(i + 1))
            try AtomicFile.write(pair.minisig, to: directory + "/" + minisigFileName(i + 1))
        }
    }
}

/// An OCI image layout (`oci-layout`, `index.json`, `blobs/`) read through a directory descriptor.
///
/// All reads go through ``DirectoryHandle``: no symlinks, regular files only, size caps, and every blob
/// checked against its descriptor's size and digest as it is read.
public struct ImageLayout: Sendable {
    public let root: DirectoryHandle
    public var policy: DirectoryHandle.FilePolicy

    public init(root: DirectoryHandle, policy: DirectoryHandle.FilePolicy = .plain) {
        self.root = root
        self.policy = policy
    }

    public init(path: String) throws {
        try self.init(root: DirectoryHandle(path: path))
    }

    /// Checks `oci-layout` names version 1.0.0.
    public func checkVersion() throws {
        guard let data = try root.readFile("oci-layout", maxSize: 4096, policy: policy) else {
            throw FerryError.invalidArgument("not an OCI image layout: no oci-layout file")
        }
        struct LayoutFile: Decodable { var imageLayoutVersion: String }
        guard let file = try? JSONDecoder().decode(LayoutFile.self, from: data), file.imageLayoutVersion == "1.0.0"
        else {
            throw FerryError.invalidArgument("unsupported oci-layout version")
        }
    }

    public func index() throws -> ImageIndex {
        try checkVersion()
        guard let data = try root.readFile("index.json", maxSize: ImageIndex.maxSize, policy: policy) else {
            throw FerryError.invalidArgument("not an OCI image layout: no index.json")
        }
        return try ImageIndex.parse(data)
    }

    /// The refs the layout offers, with their manifest descriptors. Entries with invalid names are skipped.
    public func refs() throws -> [(ref: Ref, descriptor: Descriptor)] {
        try index().manifests.compactMap { desc in
            guard let name = desc.refName, let ref = try? Ref(name) else { return nil }
            return (ref, desc)
        }
    }

    /// The manifest descriptor that `index.json` names for `ref`.
    public func descriptor(for ref: Ref) throws -> Descriptor {
        let matches = try index().manifests.filter { $0.refName == ref.string }
        guard let desc = matches.last else {
            throw FerryError(.notInstalled, "\(ref): not in this layout")
        }
        guard MediaType.manifests.contains(desc.mediaType) else {
            throw FerryError.invalidArgument("\(ref): \(desc.mediaType) is not an image manifest")
        }
        return desc
    }

    public static func blobPath(_ digest: Digest) -> String { "blobs/\(digest.algorithm.rawValue)/\(digest.hex)" }

    /// Opens a blob file; `nil` when missing.
    public func openBlob(_ digest: Digest) throws -> (fd: Int32, size: Int64)? {
        try root.openFile(ImageLayout.blobPath(digest), policy: policy)
    }

    /// Streams a blob through a verifier, handing verified-so-far chunks to `body`.
    public func streamBlob(_ descriptor: Descriptor, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let (fd, _) = try openBlob(descriptor.digest) else {
            throw FerryError.digestMismatch("blob \(descriptor.digest.short) is missing")
        }
        defer { close(fd) }
        try BlobVerifier.stream(fd: fd, expecting: descriptor, body)
    }

    /// Reads a small blob whole, verified. `maxSize` caps the descriptor's own size.
    public func readBlob(_ descriptor: Descriptor, maxSize: Int64) throws -> Data {
        guard descriptor.size <= maxSize else {
            throw FerryError.invalidArgument("blob \(descriptor.digest.short) is \(descriptor.size) bytes; limit \(maxSize)")
        }
        var data = Data(capacity: Int(descriptor.size))
        try streamBlob(descriptor) { data.append(contentsOf: $0) }
        return data
    }

    public func manifest(_ descriptor: Descriptor) throws -> Manifest {
        try Manifest.parse(readBlob(descriptor, maxSize: Int64(Manifest.maxSize)))
    }

    /// Reads the signatures stored for `ref` at `digest`: `signature-N` and `claim-N.json(.minisig)`,
    /// N counting from 1 until the first missing file.
    public func signatures(ref: Ref, digest: Digest) throws -> SignatureSet {
        guard let dir = try root.openDirectory(SignatureSet.directory(ref: ref, digest: digest)) else {
            return SignatureSet()
        }
        return try SignatureSet.read(from: dir, policy: policy)
    }
}

extension SignatureSet {
    /// Reads `signature-N` and `claim-N.json(.minisig)` from a directory (a layout's signature directory, or a
    /// deployment's `signatures/`), N counting from 1 until the first missing file.
    public static func read(from dir: DirectoryHandle, policy: DirectoryHandle.FilePolicy = .plain) throws -> SignatureSet {
        var set = SignatureSet()
        for n in 1...(SignatureSet.maxCount + 1) {
            guard let data = try dir.readFile(SignatureSet.gpgFileName(n), maxSize: SignatureSet.maxFileSize,
                                              policy: policy)
            else { break }
            guard n <= SignatureSet.maxCount else { throw FerryError.signatureInvalid("more than 16 signatures") }
            set.gpg.append(data)
        }
        for n in 1...(SignatureSet.maxCount + 1) {
            guard let claim = try dir.readFile(SignatureSet.claimFileName(n), maxSize: Claim.maxSize, policy: policy)
            else { break }
            guard n <= SignatureSet.maxCount else { throw FerryError.signatureInvalid("more than 16 signatures") }
            guard let sig = try dir.readFile(SignatureSet.minisigFileName(n), maxSize: SignatureSet.maxFileSize,
                                             policy: policy)
            else {
                throw FerryError.signatureInvalid("\(SignatureSet.claimFileName(n)) has no .minisig beside it")
            }
            set.ed25519.append(.init(claim: claim, minisig: sig))
        }
        return set
    }
}
