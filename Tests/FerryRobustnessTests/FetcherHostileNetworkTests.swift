import FerryCore
import FerryFetch
import FerryTestSupport
import Foundation
import XCTest

/// The fetch library against servers on 127.0.0.1 that misbehave on purpose (`scripts/test-http-server.py`
/// faults): every fault ends in a clear error within a bounded time, nothing bad lands in the blob cache, and a
/// configured mirror is used instead.
final class FetcherHostileNetworkTests: XCTestCase {
    static let ref = "org.example.Net/x86_64/stable"
    /// A stall costs this long; every bounded-time assertion allows a few of them plus slack.
    static let stall: Double = 1
    var scratch: TemporaryDirectory!
    var layout: String!
    var primary: StaticServer!
    var mirror: StaticServer!
    var image: Descriptor!
    var manifest: Manifest!
    var transport: HTTPTransport!

    override func setUpWithError() throws {
        scratch = try TemporaryDirectory(prefix: "fn")
        layout = scratch.file("layout")
        // Two uncompressed layers of ~1 MiB and ~256 KiB, so a cut really lands in the middle of a blob.
        let big = String(repeating: "0123456789abcdef", count: 65536)
        image = try ImageCrafter.publish(
            layout: layout, ref: Self.ref,
            layers: [[ImageCrafter.file("bin/hello", "#!/bin/sh\necho hi\n", mode: 0o755),
                      ImageCrafter.file("data/big", big)],
                     [ImageCrafter.file("data/small", String(big.prefix(262_144)))]],
            compression: .none)
        manifest = try Manifest.parse(Data(contentsOf: URL(fileURLWithPath: layout + "/" + ImageLayout.blobPath(image.digest))))
        primary = try StaticServer(root: layout, scratch: scratch)
        mirror = try StaticServer(root: layout, scratch: scratch)
        transport = HTTPTransport(stallTimeout: .milliseconds(Int64(Self.stall * 1000)), connectTimeout: .seconds(2))
    }

    override func tearDown() {
        primary?.stop()
        mirror?.stop()
        transport = nil
        scratch = nil
    }

    var bigLayer: Descriptor { manifest.layers[0] }
    func blobSuffix(_ descriptor: Descriptor) -> String { "/blobs/sha256/" + descriptor.digest.hex }
    var manifestSuffix: String { "/blobs/sha256/" + image.digest.hex }

    func fetcher(cache: String? = nil) -> Fetcher {
        Fetcher(cacheDirectory: cache ?? scratch.file("cache"), transport: transport)
    }

    func remote(mirrors: [StaticServer] = []) throws -> Remote {
        Remote(name: try RemoteName("net"), url: primary.url, mirrors: mirrors.map(\.url))
    }

    /// Stages the image and returns the error it failed with, and how long that took.
    func stageFailure(_ fetcher: Fetcher, remote: Remote, file: StaticString = #filePath, line: UInt = #line) async throws
        -> (FerryError, Double)
    {
        let start = Date()
        do {
            let staged = try await fetcher.stage(remote: remote, ref: try Ref(Self.ref))
            staged.remove()
            XCTFail("staging succeeded against a hostile server", file: file, line: line)
            throw TestbedError("unexpected success")
        } catch let error as FerryError {
            return (error, Date().timeIntervalSince(start))
        }
    }

    /// Every blob in the cache hashes to its name: nothing corrupt was ever kept.
    func assertCacheHoldsOnlyVerifiedBlobs(_ fetcher: Fetcher, file: StaticString = #filePath, line: UInt = #line) {
        let dir = fetcher.cacheDirectory + "/blobs/sha256"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            guard let data = FileManager.default.contents(atPath: dir + "/" + name) else { continue }
            XCTAssertEqual(Digest.of(data).hex, name, "cached blob \(name) is corrupt", file: file, line: line)
        }
    }

    func assertStaged(_ fetcher: Fetcher, remote: Remote, file: StaticString = #filePath, line: UInt = #line) async throws {
        let staged = try await fetcher.stage(remote: remote, ref: try Ref(Self.ref))
        defer { staged.remove() }
        XCTAssertEqual(staged.descriptor.digest, image.digest, file: file, line: line)
        for blob in [staged.manifest.config] + staged.manifest.layers {
            let data = try Data(contentsOf: URL(fileURLWithPath: staged.path + "/" + ImageLayout.blobPath(blob.digest)))
            XCTAssertEqual(Digest.of(data), blob.digest, file: file, line: line)
        }
        assertCacheHoldsOnlyVerifiedBlobs(fetcher, file: file, line: line)
    }

    // MARK: - Cut connections

    func testConnectionCutMidBlobFailsThenNextRunResumesWithARange() async throws {
        try primary.setFaults([blobSuffix(bigLayer): ["mode": "cut", "after": 300_000, "times": 1]])
        let fetcher = fetcher()
        let (error, elapsed) = try await stageFailure(fetcher, remote: try remote())
        XCTAssertEqual(error.code, .failed)
        XCTAssertTrue(error.message.contains(bigLayer.digest.short), error.message)
        XCTAssertLessThan(elapsed, 10)
        // The verified prefix is kept for resuming, never promoted into the cache.
        let partial = fetcher.cacheDirectory + "/partial/" + bigLayer.digest.hex
        var st = stat()
        XCTAssertEqual(stat(partial, &st), 0)
        // The server sent 300,000 bytes and closed; the HTTP client may drop the last in-flight chunk when it
        // sees the close, so what is kept is a non-empty prefix of at most what was sent.
        XCTAssertGreaterThan(st.st_size, 0)
        XCTAssertLessThanOrEqual(st.st_size, 300_000)
        XCTAssertFalse(FileManager.default.fileExists(atPath: fetcher.cachedBlobPath(bigLayer.digest)))

        primary.clearLog()
        try await assertStaged(fetcher, remote: try remote())
        let resumed = primary.requests().filter { $0.path.hasSuffix(blobSuffix(bigLayer)) }
        // The resume asks for exactly the bytes the partial file lacks.
        XCTAssertEqual(resumed.map(\.range), ["bytes=\(st.st_size)-"])
        XCTAssertEqual(resumed.first?.status, 206)
    }

    func testConnectionCutMidBlobFallsBackToTheMirror() async throws {
        try primary.setFaults([blobSuffix(bigLayer): ["mode": "cut", "after": 300_000]])
        try await assertStaged(fetcher(), remote: try remote(mirrors: [mirror]))
        // The mirror continued from the bytes the primary delivered (those that reached the file before the cut
        // was noticed): content is addressed by digest, so any source may finish it.
        let fromMirror = mirror.requests().filter { $0.path.hasSuffix(blobSuffix(bigLayer)) }
        XCTAssertEqual(fromMirror.count, 1)
        let offset = fromMirror.first?.range.flatMap { Int($0.dropFirst("bytes=".count).dropLast()) } ?? -1
        XCTAssertTrue((1...300_000).contains(offset), "resumed at \(offset)")
    }

    // MARK: - Stalls

    func testStalledBlobFailsWithinTheStallTimeout() async throws {
        try primary.setFaults([blobSuffix(bigLayer): ["mode": "stall", "after": 100_000]])
        let (error, elapsed) = try await stageFailure(fetcher(), remote: try remote())
        XCTAssertEqual(error.code, .failed)
        XCTAssertTrue(error.message.contains("stalled"), error.message)
        XCTAssertLessThan(elapsed, Self.stall * 4 + 3)
    }

    func testServerThatNeverAnswersFailsWithinTheStallTimeout() async throws {
        try primary.setFaults(["/index.json": ["mode": "stall-headers"]])
        let (error, elapsed) = try await stageFailure(fetcher(), remote: try remote())
        XCTAssertTrue(error.message.contains("stalled"), error.message)
        XCTAssertLessThan(elapsed, Self.stall * 4 + 3)
    }

    func testStalledManifestAndBlobFallBackToTheMirror() async throws {
        try primary.setFaults([manifestSuffix: ["mode": "stall", "after": 10],
                               blobSuffix(bigLayer): ["mode": "stall", "after": 100_000]])
        let start = Date()
        try await assertStaged(fetcher(), remote: try remote(mirrors: [mirror]))
        XCTAssertLessThan(Date().timeIntervalSince(start), Self.stall * 6 + 5)
    }

    // MARK: - Drips (one byte just inside every stall timeout)

    /// The floor the drip tests use: 20,000 bytes in 2 s. The drips send a byte every 0.5 s, inside the 1 s stall
    /// timeout, so only the floor can stop them.
    static let floor = TransferFloor(bytes: 20_000, window: .seconds(2))

    func useFloor() {
        transport = HTTPTransport(stallTimeout: .milliseconds(Int64(Self.stall * 1000)), connectTimeout: .seconds(2),
                                  floor: Self.floor)
    }

    /// Attack: a mirror sends 10 KB, then one byte every 0.5 s; the stall timeout never fires, and without a floor
    /// the 1 MiB layer would take six days.
    func testDrippingBlobIsAbandonedBelowTheTransferFloor() async throws {
        useFloor()
        try primary.setFaults([blobSuffix(bigLayer): ["mode": "drip", "after": 10_000, "interval": 0.5]])
        let fetcher = fetcher()
        let (error, elapsed) = try await stageFailure(fetcher, remote: try remote())
        XCTAssertEqual(error.code, .failed)
        XCTAssertEqual(
            error.message,
            "blob \(bigLayer.digest.short): \(primary.url)\(blobSuffix(bigLayer)): too slow: fewer than 20000 bytes "
                + "in 2 s (the transfer floor)"
        )
        XCTAssertGreaterThanOrEqual(elapsed, 2)
        XCTAssertLessThan(elapsed, 2 + Self.stall * 2 + 3)
        XCTAssertFalse(FileManager.default.fileExists(atPath: fetcher.cachedBlobPath(bigLayer.digest)))
    }

    func testDrippingBlobFallsBackToTheMirror() async throws {
        useFloor()
        try primary.setFaults([blobSuffix(bigLayer): ["mode": "drip", "after": 10_000, "interval": 0.5]])
        let start = Date()
        try await assertStaged(fetcher(), remote: try remote(mirrors: [mirror]))
        XCTAssertLessThan(Date().timeIntervalSince(start), 2 + Self.stall * 2 + 5)
        // The primary was tried first and dropped; the mirror finished the blob from the dripped prefix (the
        // 10,000 bytes sent at once and the few dripped after them, less any chunk still in flight).
        let fromMirror = mirror.requests().filter { $0.path.hasSuffix(blobSuffix(bigLayer)) }
        XCTAssertEqual(fromMirror.map(\.status), [206])
        let offset = fromMirror.first?.range.flatMap { Int($0.dropFirst("bytes=".count).dropLast()) } ?? -1
        XCTAssertTrue((1...10_100).contains(offset), "resumed at \(offset)")
    }

    /// Attack: the drip in the response head, where the floor counts nothing. The client's read timeout runs until
    /// the whole head has arrived, so the stall timeout stops it although a byte comes every 0.5 s.
    func testDrippingResponseHeadFailsWithinTheStallTimeout() async throws {
        useFloor()
        try primary.setFaults(["/index.json": ["mode": "drip-headers", "interval": 0.5]])
        let (error, elapsed) = try await stageFailure(fetcher(), remote: try remote())
        XCTAssertEqual(error.code, .failed)
        XCTAssertEqual(error.message, "\(primary.url)/index.json: stalled: no data for the read timeout")
        XCTAssertLessThan(elapsed, Self.stall * 2 + 3)
    }

    func testDrippingIndexFallsBackToTheMirror() async throws {
        useFloor()
        try primary.setFaults(["/index.json": ["mode": "drip-headers", "interval": 0.5]])
        try await assertStaged(fetcher(), remote: try remote(mirrors: [mirror]))
        XCTAssertEqual(mirror.requests().filter { $0.path == "/index.json" }.map(\.status), [200])
    }

    /// The floor is not a speed limit: a slow but steady server (200 KB/s, twenty times the floor) is waited for.
    func testSlowSteadyServerAboveTheFloorCompletes() async throws {
        useFloor()
        try primary.setFaults([blobSuffix(bigLayer): ["mode": "slow", "rate": 200_000]])
        try await assertStaged(fetcher(), remote: try remote())
    }

    func testTransferFloorComesFromTheEnvironment() {
        XCTAssertEqual(TransferFloor.fromEnvironment([:]), .standard)
        XCTAssertEqual(TransferFloor.standard, TransferFloor(bytes: 65536, window: .seconds(60)))
        XCTAssertEqual(
            TransferFloor.fromEnvironment(["FERRY_MIN_RATE_BYTES": "1000", "FERRY_MIN_RATE_WINDOW": "2.5"]),
            TransferFloor(bytes: 1000, window: .milliseconds(2500))
        )
        XCTAssertEqual(TransferFloor.fromEnvironment(["FERRY_MIN_RATE_BYTES": "0"]).bytes, 0)
        XCTAssertEqual(
            TransferFloor.fromEnvironment(["FERRY_MIN_RATE_BYTES": "-1", "FERRY_MIN_RATE_WINDOW": "0"]), .standard
        )
    }

    // MARK: - Endless data

    func testEndlessIndexIsCutOffAtItsSizeCap() async throws {
        try primary.setFaults(["/index.json": ["mode": "endless"]])
        let (error, elapsed) = try await stageFailure(fetcher(), remote: try remote())
        XCTAssertEqual(error.code, .invalidArgument)
        XCTAssertTrue(error.message.contains("larger than \(ImageIndex.maxSize) bytes"), error.message)
        XCTAssertLessThan(elapsed, 10)
        // The server sent what it could before the client hung up; the client read a bounded amount.
    }

    func testEndlessManifestIsCutOffAtItsDescriptorSize() async throws {
        try primary.setFaults([manifestSuffix: ["mode": "endless"]])
        let (error, elapsed) = try await stageFailure(fetcher(), remote: try remote())
        XCTAssertEqual(error.code, .invalidArgument)
        XCTAssertTrue(error.message.contains("larger than \(image.size) bytes"), error.message)
        XCTAssertLessThan(elapsed, 10)
    }

    func testEndlessBlobIsCutOffOneChunkPastItsSizeAndNotCached() async throws {
        try primary.setFaults([blobSuffix(bigLayer): ["mode": "endless"]])
        let fetcher = fetcher()
        let (error, elapsed) = try await stageFailure(fetcher, remote: try remote())
        XCTAssertEqual(error.code, .failed)
        XCTAssertTrue(error.message.contains("larger than its descriptor"), error.message)
        XCTAssertLessThan(elapsed, 10)
        XCTAssertFalse(FileManager.default.fileExists(atPath: fetcher.cachedBlobPath(bigLayer.digest)))
        // The bad bytes are thrown away, not kept to "resume" from.
        var st = stat()
        let partial = fetcher.cacheDirectory + "/partial/" + bigLayer.digest.hex
        XCTAssertTrue(stat(partial, &st) != 0 || st.st_size == 0, "partial blob of zeros kept: \(st.st_size) bytes")
    }

    func testEndlessBodyBehindAHugeContentLengthIsCutOff() async throws {
        try primary.setFaults(["/index.json": ["mode": "endless-length"]])
        let (error, elapsed) = try await stageFailure(fetcher(), remote: try remote())
        XCTAssertEqual(error.code, .invalidArgument)
        XCTAssertLessThan(elapsed, 10)
    }

    func testEndlessManifestAndBlobFallBackToTheMirror() async throws {
        try primary.setFaults([manifestSuffix: ["mode": "endless"], blobSuffix(bigLayer): ["mode": "endless"]])
        try await assertStaged(fetcher(), remote: try remote(mirrors: [mirror]))
    }

    // MARK: - Lying lengths and corrupt bytes

    func testContentLengthLongerThanTheBodyFailsThenResumes() async throws {
        try primary.setFaults([blobSuffix(bigLayer): ["mode": "bad-length", "times": 1]])
        let fetcher = fetcher()
        let (error, elapsed) = try await stageFailure(fetcher, remote: try remote())
        XCTAssertEqual(error.code, .failed)
        XCTAssertTrue(error.message.contains(bigLayer.digest.short), error.message)
        XCTAssertLessThan(elapsed, 10)
        XCTAssertFalse(FileManager.default.fileExists(atPath: fetcher.cachedBlobPath(bigLayer.digest)))
        try await assertStaged(fetcher, remote: try remote())
    }

    func testCorruptBlobIsRefusedAndTheMirrorServesTheRealOne() async throws {
        try primary.setFaults([blobSuffix(bigLayer): ["mode": "corrupt", "after": 500_000]])
        let fetcher = fetcher()
        let (error, _) = try await stageFailure(fetcher, remote: try remote())
        XCTAssertTrue(error.message.contains("has digest"), error.message)
        assertCacheHoldsOnlyVerifiedBlobs(fetcher)
        try await assertStaged(fetcher, remote: try remote(mirrors: [mirror]))
    }

    func testCorruptBlobAfterAResumedPrefixIsStillRefused() async throws {
        // First run: a good prefix. Second run: the rest arrives corrupt. The final hash covers both parts.
        try primary.setFaults([blobSuffix(bigLayer): ["mode": "cut", "after": 200_000, "times": 1]])
        let fetcher = fetcher()
        _ = try await stageFailure(fetcher, remote: try remote())
        try primary.setFaults([blobSuffix(bigLayer): ["mode": "corrupt", "after": 10, "times": 1]])
        // The corrupt mode ignores ranges: the server answers 200 with the whole (corrupt) blob.
        let (error, _) = try await stageFailure(fetcher, remote: try remote())
        XCTAssertTrue(error.message.contains("has digest"), error.message)
        assertCacheHoldsOnlyVerifiedBlobs(fetcher)
        try await assertStaged(fetcher, remote: try remote())
    }

    // MARK: - Redirects and status codes

    func testRedirectLoopIsDetected() async throws {
        try primary.setFaults(["/index.json": ["mode": "redirect-loop"]])
        let (error, elapsed) = try await stageFailure(fetcher(), remote: try remote())
        XCTAssertEqual(error.code, .failed)
        XCTAssertTrue(error.message.contains("redirect loop"), error.message)
        XCTAssertLessThan(elapsed, 5)
    }

    func testEndlessRedirectChainStopsAtTheHopLimit() async throws {
        try primary.setFaults([blobSuffix(bigLayer): ["mode": "redirect-chain"]])
        let (error, elapsed) = try await stageFailure(fetcher(), remote: try remote())
        XCTAssertTrue(error.message.contains("too many redirects"), error.message)
        XCTAssertLessThan(elapsed, 5)
        XCTAssertLessThanOrEqual(primary.requests().filter { $0.path.hasSuffix(blobSuffix(bigLayer)) }.count, 9)
    }

    func testRedirectLoopAndServerErrorsFallBackToTheMirror() async throws {
        try primary.setFaults(["/index.json": ["mode": "redirect-loop"], blobSuffix(bigLayer): ["mode": "status-500"],
                               manifestSuffix: ["mode": "redirect-chain"]])
        try await assertStaged(fetcher(), remote: try remote(mirrors: [mirror]))
    }

    func testUnreachablePrimaryFallsBackToTheMirrorAndIsTriedLastAfterwards() async throws {
        let dead = try Registry.freePort()
        let remote = Remote(name: try RemoteName("net"), url: "http://127.0.0.1:\(dead)", mirrors: [mirror.url])
        let start = Date()
        try await assertStaged(fetcher(), remote: remote)
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
    }

    func testEveryMirrorHostileFailsWithTheLastReason() async throws {
        try primary.setFaults([blobSuffix(bigLayer): ["mode": "endless"]])
        try mirror.setFaults([blobSuffix(bigLayer): ["mode": "stall", "after": 1000]])
        let (error, elapsed) = try await stageFailure(fetcher(), remote: try remote(mirrors: [mirror]))
        XCTAssertEqual(error.code, .failed)
        XCTAssertTrue(error.message.contains("stalled"), error.message)
        XCTAssertLessThan(elapsed, Self.stall * 4 + 8)
    }
}
