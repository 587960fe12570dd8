import ArgumentParser
import FerryCore
import FerryFetch
import FerryLog
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

/// `ferry debug-log-fill LAYOUT --key KEY --entry FILE --count N`: appends FILE N times to LAYOUT/log, in appends of
/// 65,536 and 65,535 entries alternately (an append of exactly the last append's entries is a no-op). Hidden: it
/// builds the large logs `make bench` measures.
struct DebugLogFillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug-log-fill", abstract: "Append one entry many times (benchmarking).", shouldDisplay: false)

    @Argument(help: "The layout whose log/ to fill.") var layout: String
    @Option(help: "The log's signer key file.") var key: String
    @Option(help: "The entry to append.") var entry: String
    @Option(help: "How many times.") var count: Int
    @Option(help: "Also write the checkpoint at this size to FILE (SIZE:FILE), as a client would have trusted it.")
    var keepCheckpoint: String?

    func run() throws {
        guard let data = FileManager.default.contents(atPath: entry) else { throw ValidationError("cannot read \(entry)") }
        let appender = try LogAppender(path: layout + "/log", signer: try loadLogSigner(key))
        var keep: (size: UInt64, file: String)?
        if let keepCheckpoint, let colon = keepCheckpoint.firstIndex(of: ":"),
            let size = UInt64(keepCheckpoint[..<colon])
        {
            keep = (size, String(keepCheckpoint[keepCheckpoint.index(after: colon)...]))
        }
        var size = try appender.checkpoint().size
        var left = count
        var batch = LogAppender.maxEntriesPerAppend
        while left > 0 {
            var n = min(left, batch)
            if let keep, size < keep.size { n = min(n, Int(keep.size - size)) }
            size = try appender.append(Array(repeating: data, count: n)).size
            if let keep, size == keep.size {
                try AtomicFile.write(try appender.directory.readCheckpoint(), to: keep.file)
            }
            left -= n
            batch = batch == LogAppender.maxEntriesPerAppend ? batch - 1 : LogAppender.maxEntriesPerAppend
        }
        print("\(layout)/log: size \(size)")
    }
}

/// `ferry debug-log-update URL --log-key VKEY --index I [--trusted FILE]`: one update's log work, as the agent
/// fetches it and the helper checks it: prints the bytes fetched (checkpoint, entry bundle, proof tiles) and the CPU
/// time of the offline check. Hidden: for `make bench`.
struct DebugLogUpdateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug-log-update", abstract: "Measure one update's log work (benchmarking).",
        shouldDisplay: false)

    @Argument(help: "The remote's base URL.") var url: String
    @Option(help: "The log's verifier key.") var logKey: String
    @Option(help: "The entry to prove.") var index: UInt64
    @Option(help: "The checkpoint the installing side trusts.") var trusted: String?

    func run() async throws {
        let policy = LogPolicy(logKey: try loadVerifierKey(logKey))
        let base = Remote.withoutTrailingSlash(url)
        let started = DispatchTime.now().uptimeNanoseconds
        guard let data = try await HTTPTransport.shared.fetch(base + "/log/checkpoint", maxSize: SignedNote.maxSize)
        else {
            throw FerryError.failed("\(base) has no log")
        }
        let checkpoint = try policy.open(data, now: unixNow())
        let trustedData = try trusted.map { path -> Data in
            guard let bytes = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
            return bytes
        }
        let (files, bundleBytes, tileBytes) = try await ReleaseLogStaging.proofFiles(
            base: base, checkpointData: data, checkpoint: checkpoint, index: index, trusted: trustedData,
            transport: .shared)
        let fetchSeconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        var cpu = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu)
        let before = Double(cpu.tv_sec) + Double(cpu.tv_nsec) / 1e9
        let proof = try ReleaseProof(parsing: files["log/\(ReleaseProof.fileName)"] ?? Data())
        _ = try proof.verify(policy: policy, trusted: trustedData,
                             consistency: files["log/\(ReleaseProof.consistencyFileName)"], now: unixNow())
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu)
        let verifyMilliseconds = (Double(cpu.tv_sec) + Double(cpu.tv_nsec) / 1e9 - before) * 1000
        print(#"{"size": \#(checkpoint.size), "checkpoint_bytes": \#(data.count), "bundle_bytes": \#(bundleBytes), "#
            + #""tile_bytes": \#(tileBytes), "fetch_seconds": \#(fetchSeconds), "verify_cpu_ms": \#(verifyMilliseconds)}"#)
    }
}
