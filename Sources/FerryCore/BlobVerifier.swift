#if canImport(Glibc)
    import Glibc
#endif
import Foundation

/// Checks a blob while it streams past: never more than the descriptor's size, and the digest at the end.
///
/// The length a source claims (a `Content-Length`, a file's `st_size`) is never trusted: bytes are counted
/// as they arrive, and one byte past the descriptor's size is an error at once, so an endless stream costs
/// nothing but the bytes already read.
public struct BlobVerifier: Sendable {
    public let digest: Digest
    public let size: Int64
    public private(set) var received: Int64 = 0
    private var hasher: DigestHasher

    public init(digest: Digest, size: Int64) {
        self.digest = digest
        self.size = size
        hasher = DigestHasher(digest.algorithm)
    }

    public init(_ descriptor: Descriptor) {
        self.init(digest: descriptor.digest, size: descriptor.size)
    }

    /// Counts and hashes the next bytes of the blob; one byte past the descriptor's size is `DigestMismatch`.
    /// (A resumed download feeds the bytes already on disk through here first.)
    public mutating func consume(_ buffer: UnsafeRawBufferPointer) throws {
        received += Int64(buffer.count)
        guard received <= size else {
            throw FerryError.digestMismatch("blob \(digest.short) is larger than its descriptor's \(size) bytes")
        }
        hasher.update(buffer)
    }

    public mutating func consume(_ data: some DataProtocol) throws {
        for region in data.regions {
            try region.withUnsafeBytes { try consume($0) }
        }
    }

    /// Checks that exactly `size` bytes came and that they hash to `digest`.
    public func finish() throws {
        guard received == size else {
            throw FerryError.digestMismatch("blob \(digest.short) is \(received) bytes, its descriptor says \(size)")
        }
        let actual = hasher.finalize()
        guard actual == digest else {
            throw FerryError.digestMismatch("blob \(digest.short) has digest \(actual.short)")
        }
    }

    /// Reads `fd` to the end through a verifier, handing each verified-so-far chunk to `body`
    /// (for copying while hashing). Reads at most one byte past `size` before refusing.
    public static func stream(fd: Int32, expecting descriptor: Descriptor, chunkSize: Int = 1 << 20,
                              _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var verifier = BlobVerifier(descriptor)
        try readChunks(fd: fd, chunkSize: chunkSize, what: "blob \(descriptor.digest.short)") { chunk in
            try verifier.consume(chunk)
            try body(chunk)
        }
        try verifier.finish()
    }
}
