import ArgumentParser
import FerryCore
import Foundation

/// `ferry debug-hash FILE`: hashes a file with Ferry's own ``DigestHasher`` through the same read loop (64 KiB
/// reads) the blob store uses, and prints `sha256:<hex>  <bytes> bytes  <MB/s>`. Hidden from help: it exists so `make bench`
/// can compare Ferry's hashing throughput with `openssl dgst -sha256` on the same file.
struct DebugHashCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug-hash", abstract: "Hash a file with Ferry's hasher (benchmarking).", shouldDisplay: false)

    @Argument(help: "The file to hash.") var file: String
    @Option(help: "sha256 or sha512.") var algorithm: String = "sha256"
    @Option(help: "Bytes per read.") var chunkSize: Int = 64 << 10

    func run() throws {
        guard let algorithm = Digest.Algorithm(rawValue: algorithm) else {
            throw ValidationError("unsupported algorithm \(algorithm)")
        }
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ioError("open \(file)") }
        defer { close(fd) }
        guard chunkSize > 0 && chunkSize <= 1 << 30 else { throw ValidationError("bad chunk size") }
        var hasher = DigestHasher(algorithm)
        var total = 0
        let start = DispatchTime.now().uptimeNanoseconds
        try readChunks(fd: fd, chunkSize: chunkSize, what: file) { chunk in
            hasher.update(chunk)
            total += chunk.count
        }
        let digest = hasher.finalize()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let rate = seconds > 0 ? Double(total) / seconds / 1e6 : 0
        print("\(digest)  \(total) bytes  \(String(format: "%.1f", rate)) MB/s")
    }
}
