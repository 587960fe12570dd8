import AsyncHTTPClient
import FerryCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// HTTP for the agent: bounded reads, stall timeouts, redirects, and resumable verified downloads.
///
/// Nothing a server says about length is trusted: bodies are counted as they stream and cut off one byte past
/// the caller's cap. A server that stops sending for ``stallTimeout`` fails the request (the client's read timeout
/// runs until a whole response head has arrived, so a head dripped byte by byte fails it too), one whose body is
/// too slow for the ``floor`` fails it, and one that redirects in a loop fails after a few hops.
public final class HTTPTransport: Sendable {
    public let client: HTTPClient
    /// Time without a single byte before a response is abandoned.
    public let stallTimeout: TimeAmount
    /// The longest any one request may take in all (metadata and blobs alike).
    public let deadline: TimeAmount
    /// The slowest response body this transport waits for.
    public let floor: TransferFloor

    /// The agent's transport. `FERRY_STALL_TIMEOUT` (seconds, 1 to 3600) overrides the 30 s stall timeout, so
    /// tests of hostile servers need not wait half a minute per stall.
    /// `FERRY_MIN_RATE_BYTES` and `FERRY_MIN_RATE_WINDOW` override the transfer floor (``TransferFloor``).
    public static let shared = HTTPTransport(stallTimeout: stallTimeoutFromEnvironment() ?? .seconds(30),
                                             floor: .fromEnvironment())

    static func stallTimeoutFromEnvironment() -> TimeAmount? {
        guard let text = ProcessInfo.processInfo.environment["FERRY_STALL_TIMEOUT"], let seconds = Double(text),
              seconds >= 0.05, seconds <= 3600
        else { return nil }
        return .milliseconds(Int64(seconds * 1000))
    }

    /// Origins that refused or timed out a connection during this run: tried last afterwards, so one dead
    /// mirror costs one connect timeout, not one per request.
    private let unreachable = UnreachableOrigins()

    public init(stallTimeout: TimeAmount = .seconds(30), connectTimeout: TimeAmount = .seconds(5),
                deadline: TimeAmount = .hours(6), floor: TransferFloor = .standard) {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: connectTimeout, read: stallTimeout)
        configuration.redirectConfiguration = .follow(max: 8, allowCycles: false)
        configuration.decompression = .disabled
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.stallTimeout = stallTimeout
        self.deadline = deadline
        self.floor = floor
    }

    deinit { try? client.syncShutdown() }

    /// The outcome of a GET whose body was read whole.
    public struct Response: Sendable {
        public var status: UInt
        public var headers: [(String, String)]
        public var body: Data

        public func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
    }

    /// GETs `url` and reads at most `maxSize` bytes of body. Any status is returned; only transport failures
    /// and oversize bodies throw.
    public func get(_ url: String, maxSize: Int, headers: [(String, String)] = []) async throws -> Response {
        if url.hasPrefix("file://") { return try readFileURL(url, maxSize: maxSize) }
        let response = try await send(url, headers: headers)
        var body = Data()
        var watch = TransferWatch(floor, url: url)
        do {
            for try await buffer in response.body {
                try watch.received(buffer.readableBytes)
                body.append(contentsOf: buffer.readableBytesView)
                if body.count > maxSize {
                    throw FerryError.invalidArgument("\(url): response larger than \(maxSize) bytes")
                }
            }
        } catch let error as FerryError {
            throw error
        } catch {
            throw FerryError.failed("\(url): \(describe(error))")
        }
        return Response(status: response.status.code, headers: response.headers.map { ($0.name, $0.value) },
                        body: body)
    }

    /// GETs a document: its body on 200, `nil` on 404, an error otherwise.
    public func fetch(_ url: String, maxSize: Int, headers: [(String, String)] = []) async throws -> Data? {
        let response = try await get(url, maxSize: maxSize, headers: headers)
        switch response.status {
        case 200: return response.body
        case 404, 410: return nil
        default: throw FerryError.failed("\(url): HTTP \(response.status)")
        }
    }

    /// Downloads a blob into `path`, resuming a partial file already there, verifying size and digest as it
    /// streams. On a digest or size mismatch the partial file is removed (its bytes are bad); on a transport
    /// failure it is kept so the next attempt resumes. `received` reports new bytes.
    public func download(_ url: String, descriptor: Descriptor, to path: String, headers: [(String, String)] = [],
                         received: @Sendable (Int) -> Void = { _ in }) async throws {
        var verifier = BlobVerifier(descriptor)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw ioError("open \(path)") }
        defer { close(fd) }
        // Hash what an earlier attempt left, so the final check covers every byte.
        var existing: Int64 = 0
        do {
            try BlobVerifier.streamPrefix(fd: fd, into: &verifier)
            existing = verifier.received
        } catch {
            _ = ftruncate(fd, 0)
            verifier = BlobVerifier(descriptor)
        }
        if existing == descriptor.size {
            do {
                try verifier.finish()
                return
            } catch {
                _ = ftruncate(fd, 0)
                _ = lseek(fd, 0, SEEK_SET)
                verifier = BlobVerifier(descriptor)
                existing = 0
            }
        }
        if url.hasPrefix("file://") {
            // A directory remote (a USB stick): streamed and verified like a download, never read whole.
            guard let parsed = URL(string: url), parsed.isFileURL else { throw FerryError.invalidArgument("bad URL \(url)") }
            let source = open(parsed.path, O_RDONLY | O_CLOEXEC)
            guard source >= 0 else {
                if errno == ENOENT { throw FerryError.failed("\(url): not found") }
                throw ioError("open \(parsed.path)")
            }
            defer { close(source) }
            _ = ftruncate(fd, 0)
            _ = lseek(fd, 0, SEEK_SET)
            var fresh = BlobVerifier(descriptor)
            do {
                try readChunks(fd: source, what: url) { chunk in
                    try fresh.consume(chunk)
                    try writeAll(fd: fd, data: chunk, what: path)
                    received(chunk.count)
                }
                try fresh.finish()
            } catch let error as FerryError {
                _ = ftruncate(fd, 0)
                throw error.prefixed(url)
            }
            guard fsync(fd) == 0 else { throw ioError("fsync \(path)") }
            return
        }
        let range = existing > 0 ? [("Range", "bytes=\(existing)-")] : []
        let response = try await send(url, headers: headers + range)
        switch response.status.code {
        case 206 where existing > 0:
            break
        case 200:
            if existing > 0 {
                // The server ignored the range: start over.
                _ = ftruncate(fd, 0)
                _ = lseek(fd, 0, SEEK_SET)
                verifier = BlobVerifier(descriptor)
            }
        case 404, 410:
            throw FerryError.failed("\(url): not found (HTTP \(response.status.code))")
        default:
            throw FerryError.failed("\(url): HTTP \(response.status.code)")
        }
        var behind = WriteBehind(fd: fd, offset: verifier.received)
        var watch = TransferWatch(floor, url: url)
        do {
            for try await buffer in response.body {
                // A drip is a transport failure: the verified prefix stays for the next mirror to resume.
                try watch.received(buffer.readableBytes)
                try buffer.withUnsafeReadableBytes { raw in
                    try verifier.consume(raw)
                    try writeAll(fd: fd, data: raw, what: path)
                }
                behind.wrote(buffer.readableBytes)
                received(buffer.readableBytes)
            }
        } catch let error as FerryError {
            if error.code == .digestMismatch { _ = ftruncate(fd, 0) }
            throw error.prefixed(url)
        } catch {
            throw FerryError.failed("\(url): \(describe(error))")
        }
        do {
            try verifier.finish()
        } catch let error as FerryError {
            // Too short is resumable only if the connection ended early; a complete wrong blob is not.
            if verifier.received == descriptor.size { _ = ftruncate(fd, 0) }
            throw error.prefixed(url)
        }
        guard fsync(fd) == 0 else { throw ioError("fsync \(path)") }
    }

    /// What a non-GET request sends: nothing, bytes, or a file streamed from disk (never read whole).
    public enum RequestBody: Sendable {
        case none
        case bytes(Data)
        case file(path: String, size: Int64)
    }

    /// Sends `method` to `url` with `body`, and reads at most 64 KiB of the answer (a registry's replies to uploads
    /// are small). Any status is returned; transport failures throw one-line errors.
    public func request(_ method: HTTPMethod, _ url: String, headers: [(String, String)] = [],
                        body: RequestBody = .none) async throws -> Response {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        var fd: Int32 = -1
        defer { if fd >= 0 { close(fd) } }
        switch body {
        case .none:
            break
        case .bytes(let data):
            request.body = .bytes(ByteBuffer(bytes: data))
        case .file(let path, let size):
            fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { throw ioError("open \(path)") }
            let file = fd
            let chunks = AsyncThrowingStream<ByteBuffer, Error>(unfolding: {
                var buffer = ByteBuffer()
                buffer.reserveCapacity(1 << 20)
                let n = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 1 << 20) { raw in
                    var n: Int
                    repeat { n = read(file, raw.baseAddress, raw.count) } while n < 0 && errno == EINTR
                    guard n >= 0 else { throw ioError("read \(path)") }
                    return n
                }
                return n == 0 ? nil : buffer
            })
            request.body = .stream(chunks, length: .known(size))
        }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: deadline)
        } catch let error as FerryError {
            throw error
        } catch {
            noteFailure(url, error)
            throw FerryError.failed("\(url): \(describe(error))")
        }
        var answer = Data()
        do {
            for try await buffer in response.body where answer.count < 64 * 1024 {
                answer.append(contentsOf: buffer.readableBytesView)
            }
        } catch {
            throw FerryError.failed("\(url): \(describe(error))")
        }
        return Response(status: response.status.code, headers: response.headers.map { ($0.name, $0.value) },
                        body: answer)
    }

    /// Sends a GET and returns the response head; transport failures become one-line errors (and mark an
    /// unreachable origin).
    private func send(_ url: String, headers: [(String, String)]) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: url)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        do {
            return try await client.execute(request, timeout: deadline)
        } catch {
            noteFailure(url, error)
            throw FerryError.failed("\(url): \(describe(error))")
        }
    }

    /// Orders URLs so that origins known to be unreachable come last (order is otherwise kept).
    public func preferReachable(_ urls: [String]) -> [String] {
        let good = urls.filter { !unreachable.contains(origin(of: $0)) }
        return good + urls.filter { unreachable.contains(origin(of: $0)) }
    }

    private func noteFailure(_ url: String, _ error: Error) {
        let text = describe(error)
        if text.hasPrefix("cannot connect") || text == "connection timed out" { unreachable.insert(origin(of: url)) }
    }

    private func origin(of url: String) -> String {
        guard let parsed = URL(string: url), let scheme = parsed.scheme, let host = parsed.host else { return url }
        return "\(scheme)://\(host):\(parsed.port ?? -1)"
    }

    private func readFileURL(_ url: String, maxSize: Int) throws -> Response {
        guard let parsed = URL(string: url), parsed.isFileURL else { throw FerryError.invalidArgument("bad URL \(url)") }
        let fd = open(parsed.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return Response(status: 404, headers: [], body: Data()) }
            throw ioError("open \(parsed.path)")
        }
        defer { close(fd) }
        return Response(status: 200, headers: [], body: try readAll(fd: fd, maxSize: maxSize, what: url))
    }
}

extension BlobVerifier {
    /// Feeds a file's current contents (from offset 0) into `verifier`, leaving the offset at the end.
    static func streamPrefix(fd: Int32, into verifier: inout BlobVerifier) throws {
        _ = lseek(fd, 0, SEEK_SET)
        try readChunks(fd: fd, what: "partial blob") { try verifier.consume($0) }
    }
}

final class UnreachableOrigins: Sendable {
    private let origins = Mutex(Set<String>())

    func insert(_ origin: String) {
        _ = origins.withLock { $0.insert(origin) }
    }

    func contains(_ origin: String) -> Bool {
        origins.withLock { $0.contains(origin) }
    }
}

/// A short, readable reason for a transport error.
func describe(_ error: Error) -> String {
    if let error = error as? HTTPClientError {
        switch error {
        case .readTimeout: return "stalled: no data for the read timeout"
        case .connectTimeout: return "connection timed out"
        case .redirectLimitReached: return "too many redirects"
        case .redirectCycleDetected: return "redirect loop"
        case .remoteConnectionClosed: return "connection closed by the server"
        case .deadlineExceeded: return "took too long"
        default: return "\(error)"
        }
    }
    if let error = error as? HTTPParserError, error == .invalidEOFState {
        return "connection closed before the whole response arrived"
    }
    // Every address of the host refused or timed out (happy eyeballs), or the one address did.
    if error is NIOConnectionError { return "cannot connect (refused)" }
    if let error = error as? IOError, [ECONNREFUSED, ENETUNREACH, EHOSTUNREACH].contains(error.errnoCode) {
        return "cannot connect (refused)"
    }
    if let error = error as? ChannelError, case .connectTimeout = error { return "cannot connect (refused)" }
    return "\(error)"
}
