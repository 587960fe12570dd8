import FerryArchive
import FerryCore
import Foundation

/// Assembles a `zstd:chunked` layer blob from the compressed frames the user's cache already holds, fetching only
/// the rest with HTTP range requests (DESIGN.md, "Chunked layers and the object store": the first step of updates
/// that cost what changed).
///
/// A chunked layer is a concatenation of zstd frames, one per regular file (or content-defined chunk of a large
/// file), tar headers between them, and a TOC that gives each file's content digest and its frames' byte range
/// (``ChunkedTOC``). When the cache holds an earlier chunked layer with a file (or chunk) of the same content digest
/// whose frames have the same compressed length, those bytes are copied from it; the tar headers, the TOC, the
/// changed files and anything not found are fetched, nearby ranges coalesced into one request. Nothing here is
/// trusted: the TOC is checked against the signed manifest's annotation, and the assembled blob must have the layer's
/// digest, exactly as a download must, or it is thrown away and the layer downloaded whole. The installing side sees
/// a verified blob like any other.
///
/// The cache keeps the TOC of each chunked layer it holds (`toc/<hex>.json`, written once the blob verified) to
/// find reusable frames later.
struct ChunkedReuse {
    let cacheDirectory: String
    let transport: HTTPTransport

    /// Fetched ranges closer than this are fetched as one request, with the reusable bytes between them.
    static let coalesceGap: UInt64 = 16 * 1024
    /// Requests in flight at once.
    static let parallelism = 8

    var tocDirectory: String { cacheDirectory + "/toc" }

    func blobPath(_ digest: Digest) -> String { Fetcher.blobPath(digest, in: cacheDirectory) }

    /// What the assembly did.
    struct Outcome {
        var fetched: UInt64
        var reused: UInt64
        var requests: Int
    }

    /// One piece of the new blob: copied from a cached blob, or fetched.
    private enum Piece {
        case reuse(path: String, from: UInt64)
        case fetch
    }

    /// Assembles `layer` into `partial` from `url` and the cache; `nil` (and `partial` removed) when it cannot:
    /// the layer is not chunked, nothing reusable is cached, the server ignores ranges, or the result does not
    /// verify. The caller then downloads the layer whole.
    func assemble(_ layer: Descriptor, url: String, headers: [(String, String)], to partial: String,
                  received: @escaping @Sendable (Int) -> Void) async throws -> Outcome?
    {
        guard let (position, checksum) = try ChunkedTOC.announced(by: layer), layer.size > 0 else { return nil }
        let known = reusableFrames()
        guard !known.isEmpty else { return nil }
        guard let compressedTOC = try await range(url, position.offset..<(position.offset + position.length),
                                                  headers: headers)
        else { return nil }
        let toc = try ChunkedTOC(compressed: compressedTOC, position: position, checksum: checksum,
                                 blobSize: layer.size)
        // The plan: every byte of the blob, reused or fetched, in order.
        var pieces: [(Range<UInt64>, Piece)] = []
        var cursor: UInt64 = 0
        func add(_ range: Range<UInt64>, _ piece: Piece) {
            if range.lowerBound > cursor { pieces.append((cursor..<range.lowerBound, .fetch)) }
            pieces.append((range, piece))
            cursor = range.upperBound
        }
        for file in toc.files {
            if let (path, from) = known[Key(digest: file.digest, length: UInt64(file.range.count))] {
                add(file.range, .reuse(path: path, from: from))
                continue
            }
            for chunk in file.chunks {
                if let digest = chunk.digest,
                    let (path, from) = known[Key(digest: digest, length: UInt64(chunk.range.count))]
                {
                    add(chunk.range, .reuse(path: path, from: from))
                } else {
                    add(chunk.range, .fetch)
                }
            }
        }
        if cursor < UInt64(layer.size) { pieces.append((cursor..<UInt64(layer.size), .fetch)) }
        let requests = ChunkedReuse.requests(pieces)
        guard pieces.contains(where: { if case .reuse = $0.1 { true } else { false } }) else { return nil }

        unlink(partial)
        let fd = open(partial, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw ioError("create \(partial)") }
        defer { close(fd) }
        var outcome = Outcome(fetched: 0, reused: 0, requests: requests.count)
        for (range, piece) in pieces {
            guard case .reuse(let path, let from) = piece else { continue }
            try copy(from: path, at: from, count: UInt64(range.count), to: fd, at: range.lowerBound)
            outcome.reused += UInt64(range.count)
        }
        // Fetched after the copies: a request may cover reused bytes between two fetched ranges, and the bytes it
        // brings are the blob's as much as the copied ones are (the digest check below decides).
        let fetched: [UInt64]? = try await withThrowingTaskGroup(of: UInt64?.self) { group in
            var results: [UInt64] = []
            var running = 0
            for request in requests {
                if running >= ChunkedReuse.parallelism, let done = try await group.next() {
                    guard let done else { group.cancelAll(); return nil }
                    results.append(done)
                    running -= 1
                }
                group.addTask {
                    guard let data = try await self.range(url, request, headers: headers) else { return nil }
                    try self.write(data, to: fd, at: request.lowerBound)
                    received(data.count)
                    return UInt64(data.count)
                }
                running += 1
            }
            for try await done in group {
                guard let done else { return nil }
                results.append(done)
            }
            return results
        }
        guard let fetched else {
            unlink(partial)
            return nil
        }
        outcome.fetched = fetched.reduce(0, +)
        guard lseek(fd, 0, SEEK_SET) == 0 else { throw ioError("seek \(partial)") }
        var verifier = BlobVerifier(layer)
        do {
            try readChunks(fd: fd, what: partial) { try verifier.consume($0) }
            try verifier.finish()
        } catch {
            // Frames of the same content compressed differently, or a server that lied: download it whole.
            unlink(partial)
            return nil
        }
        return outcome
    }

    /// The fetch requests for `pieces`: runs of fetched pieces, joined across reused pieces shorter than
    /// ``coalesceGap``.
    private static func requests(_ pieces: [(Range<UInt64>, Piece)]) -> [Range<UInt64>] {
        var requests: [Range<UInt64>] = []
        for (range, piece) in pieces {
            guard case .fetch = piece, !range.isEmpty else { continue }
            if let last = requests.last, range.lowerBound - last.upperBound <= coalesceGap {
                requests[requests.count - 1] = last.lowerBound..<range.upperBound
            } else {
                requests.append(range)
            }
        }
        return requests
    }

    // MARK: The cache's frames

    private struct Key: Hashable {
        var digest: Digest
        var length: UInt64
    }

    /// Every file and chunk of the chunked layers in the cache, by content digest and compressed length: the
    /// cached blob and where its frames start.
    private func reusableFrames() -> [Key: (String, UInt64)] {
        var frames: [Key: (String, UInt64)] = [:]
        let names = (try? FileManager.default.contentsOfDirectory(atPath: tocDirectory)) ?? []
        for name in names.sorted() where name.hasSuffix(".json") {
            guard let digest = try? Digest(algorithm: .sha256, hex: String(name.dropLast(5))) else { continue }
            let path = blobPath(digest)
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
                // The blob left the cache: its TOC goes too.
                unlink("\(tocDirectory)/\(name)")
                continue
            }
            guard let json = FileManager.default.contents(atPath: "\(tocDirectory)/\(name)"),
                let toc = try? ChunkedTOC(json: json, tocOffset: UInt64(st.st_size), blobSize: Int64(st.st_size))
            else { continue }
            for file in toc.files {
                frames[Key(digest: file.digest, length: UInt64(file.range.count))] = (path, file.range.lowerBound)
                for chunk in file.chunks {
                    guard let digest = chunk.digest else { continue }
                    frames[Key(digest: digest, length: UInt64(chunk.range.count))] = (path, chunk.range.lowerBound)
                }
            }
        }
        return frames
    }

    /// Keeps the TOC of a chunked layer that is now in the cache (read from the cached blob itself), so that later
    /// layers can reuse its frames. Best effort: a layer whose TOC does not read is simply not reused.
    func remember(_ layer: Descriptor) {
        let fd = open(blobPath(layer.digest), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return }
        defer { close(fd) }
        guard let (_, json) = (try? ChunkedTOC.read(layer: layer, fd: fd)) ?? nil else { return }
        try? FileManager.default.createDirectory(atPath: tocDirectory, withIntermediateDirectories: true)
        try? AtomicFile.write(json, to: "\(tocDirectory)/\(layer.digest.hex).json")
    }

    // MARK: I/O

    /// The bytes `range` of `url`; `nil` when the server answers with anything but exactly that range.
    private func range(_ url: String, _ range: Range<UInt64>, headers: [(String, String)]) async throws -> Data? {
        guard !url.hasPrefix("file://") else { return nil }
        let response = try await transport.get(url, maxSize: range.count + 1,
                                               headers: headers + [("Range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")])
        guard response.status == 206, UInt64(response.body.count) == UInt64(range.count),
            let contentRange = response.header("Content-Range"),
            contentRange.hasPrefix("bytes \(range.lowerBound)-\(range.upperBound - 1)/")
        else { return nil }
        return response.body
    }

    private func write(_ data: Data, to fd: Int32, at offset: UInt64) throws {
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var done = 0
            while done < raw.count {
                let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(offset) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ioError("write")
                }
                done += n
            }
        }
    }

    private func copy(from path: String, at from: UInt64, count: UInt64, to fd: Int32, at offset: UInt64) throws {
        let source = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard source >= 0 else { throw ioError("open \(path)") }
        defer { close(source) }
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        var done: UInt64 = 0
        while done < count {
            let want = Int(min(UInt64(buffer.count), count - done))
            let n = buffer.withUnsafeMutableBytes { pread(source, $0.baseAddress, want, off_t(from + done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FerryError.failed("\(path): shorter than its TOC says") }
            try write(Data(buffer[0..<n]), to: fd, at: offset + done)
            done += UInt64(n)
        }
    }
}
