import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// The `ferry` agent, as an unprivileged user installing `--user`, against hostile servers on 127.0.0.1: each
/// fault ends in a one-line error within a bounded time and bounded memory (peak RSS measured by
/// `/usr/bin/time`), nothing is installed, and configured mirrors are used instead.
final class AgentHostileNetworkTests: XCTestCase {
    static let ref = "org.example.Net/x86_64/stable"
    static let user = "ferryt-carol"
    /// Peak resident memory the agent may reach while a server streams without end (KiB). A normal install
    /// peaks near 40 MiB in a debug build; the caps on documents (4 MiB) and blobs (their size) keep an
    /// endless stream from adding more than a few buffers.
    static let rssCapKiB = 150 * 1024
    var scratch: TemporaryDirectory!
    var publisher: Publisher!
    var primary: StaticServer!
    var mirror: StaticServer!
    var home: String!
    var manifestDigest = ""
    var layer = ""
    var blobText = ""

    override func setUpWithError() throws {
        try XCTSkipUnless(getuid() == 0, "runs the agent as an unprivileged test user")
        try Testbed.ensureUser(Self.user)
        scratch = try TemporaryDirectory(prefix: "fa")
        chmod(scratch.path, 0o755)
        publisher = try Publisher(in: scratch)
        // ~1.3 MiB of incompressible text, so a cut lands mid-blob.
        var random = [UInt8](repeating: 0, count: 1_000_000)
        for i in random.indices { random[i] = UInt8.random(in: 0...255) }
        blobText = Data(random).base64EncodedString()
        manifestDigest = try publisher.publish(ref: Self.ref, version: "v1", timestamp: 1_700_000_000,
                                               extra: ["data/blob": blobText])
        layer = try XCTUnwrap(publisher.layers(of: manifestDigest).first)
        primary = try StaticServer(root: publisher.layout, scratch: scratch)
        mirror = try StaticServer(root: publisher.layout, scratch: scratch)
        home = scratch.file("home")
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        try Command.check(["chown", "\(Self.user):\(Self.user)", home])
    }

    override func tearDown() {
        primary?.stop()
        mirror?.stop()
        scratch = nil
    }

    var layerSuffix: String { "/blobs/" + layer.replacingOccurrences(of: ":", with: "/") }
    var manifestSuffix: String { "/blobs/" + manifestDigest.replacingOccurrences(of: ":", with: "/") }
    var dataRoot: String { home + "/.local/share/ferry" }
    var cacheRoot: String { home + "/.cache/ferry" }

    struct Run {
        var result: CommandResult
        var seconds: Double
        /// Peak resident set size in KiB, from `/usr/bin/time -f %M`.
        var maxRSS: Int
    }

    /// `ferry ARGS` as the unprivileged user, under `/usr/bin/time` to measure its peak RSS.
    func agent(_ arguments: [String], stall: Int = 1) throws -> Run {
        let env = ["HOME": home!, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "FERRY_SYSTEM_ROOT": scratch.file("none"),
                   "FERRY_STALL_TIMEOUT": "\(stall)"]
        let start = Date()
        let result = try Command.run(["runuser", "-u", Self.user, "--", "env", "-i"]
            + env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            + ["/usr/bin/time", "-f", "FERRY-MAXRSS %M", BuiltProducts.ferry] + arguments)
        let seconds = Date().timeIntervalSince(start)
        let line = result.err.split(separator: "\n").last { $0.hasPrefix("FERRY-MAXRSS ") }
        let rss = line.flatMap { Int($0.dropFirst("FERRY-MAXRSS ".count)) } ?? -1
        return Run(result: result, seconds: seconds, maxRSS: rss)
    }

    func addRemote(mirrors: [StaticServer] = []) throws {
        var arguments = ["remote-add", "--user", "demo", primary.url, "--ed25519-key", publisher.publicKey]
        for mirror in mirrors { arguments += ["--mirror", mirror.url] }
        let run = try agent(arguments)
        XCTAssertEqual(run.result.status, 0, run.result.err)
    }

    func install() throws -> Run { try agent(["install", "--user", "demo", Self.ref]) }

    /// The install failed with one readable error line, quickly and within the memory cap, and left nothing
    /// installed.
    func assertCleanFailure(_ run: Run, mentioning fragment: String, within seconds: Double,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(run.result.status, 1, run.result.out + run.result.err, file: file, line: line)
        let errorLines = run.result.err.split(separator: "\n").filter { !$0.hasPrefix("FERRY-MAXRSS") }
        XCTAssertTrue(errorLines.contains { $0.contains(fragment) }, "expected \(fragment): \(run.result.err)",
                      file: file, line: line)
        XCTAssertLessThan(run.seconds, seconds, file: file, line: line)
        XCTAssertGreaterThan(run.maxRSS, 0, "peak RSS measured", file: file, line: line)
        XCTAssertLessThan(run.maxRSS, Self.rssCapKiB, "peak RSS \(run.maxRSS) KiB", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dataRoot + "/installed/" + stateName(Self.ref)),
                       "nothing installed", file: file, line: line)
        assertCacheHoldsOnlyVerifiedBlobs(file: file, line: line)
    }

    func assertCacheHoldsOnlyVerifiedBlobs(file: StaticString = #filePath, line: UInt = #line) {
        let dir = cacheRoot + "/blobs/sha256"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            guard let data = FileManager.default.contents(atPath: dir + "/" + name) else { continue }
            XCTAssertEqual(Digest.of(data).hex, name, "cached blob \(name) is corrupt", file: file, line: line)
        }
    }

    func assertInstalledAndRuns(file: StaticString = #filePath, line: UInt = #line) throws {
        let run = try agent(["run", Self.ref])
        XCTAssertEqual(run.result.status, 0, run.result.err, file: file, line: line)
        XCTAssertTrue(run.result.out.hasPrefix("hello v1"), run.result.out, file: file, line: line)
        let installed = try Data(contentsOf: URL(fileURLWithPath: dataRoot + "/installed/\(stateName(Self.ref))/files/data/blob"))
        XCTAssertEqual(installed, Data(blobText.utf8), "installed file matches the published one", file: file, line: line)
    }

    // MARK: -

    func testEndlessManifestEndsInAnErrorWithBoundedMemory() throws {
        try addRemote()
        try primary.setFaults([manifestSuffix: ["mode": "endless"]])
        let run = try install()
        assertCleanFailure(run, mentioning: "larger than", within: 15)
        print("endless manifest: \(run.maxRSS) KiB peak, \(String(format: "%.2f", run.seconds)) s")
    }

    func testEndlessIndexAndSignatureEndInAnErrorWithBoundedMemory() throws {
        try addRemote()
        try primary.setFaults(["/index.json": ["mode": "endless-length"]])
        let index = try install()
        assertCleanFailure(index, mentioning: "larger than", within: 15)
        try primary.setFaults([".minisig": ["mode": "endless"]])
        let signature = try install()
        XCTAssertEqual(signature.result.status, 1)
        XCTAssertLessThan(signature.maxRSS, Self.rssCapKiB)
        XCTAssertLessThan(signature.seconds, 15)
        print("endless index: \(index.maxRSS) KiB; endless signature: \(signature.maxRSS) KiB peak")
    }

    func testEndlessBlobEndsInAnErrorWithBoundedMemory() throws {
        try addRemote()
        try primary.setFaults([layerSuffix: ["mode": "endless"]])
        let run = try install()
        assertCleanFailure(run, mentioning: "larger than its descriptor", within: 15)
        print("endless blob: \(run.maxRSS) KiB peak, \(String(format: "%.2f", run.seconds)) s")
        // With the fault gone, the next run installs (the zeros were not kept).
        try primary.setFaults([:])
        XCTAssertEqual(try install().result.status, 0)
        try assertInstalledAndRuns()
    }

    func testStalledBlobEndsWithinTheStallTimeout() throws {
        try addRemote()
        try primary.setFaults([layerSuffix: ["mode": "stall", "after": 100_000]])
        let run = try install()
        assertCleanFailure(run, mentioning: "stalled", within: 12)
    }

    func testServerThatNeverAnswersEndsWithinTheStallTimeout() throws {
        try addRemote()
        try primary.setFaults(["/index.json": ["mode": "stall-headers"]])
        assertCleanFailure(try install(), mentioning: "stalled", within: 12)
    }

    func testConnectionCutMidBlobFailsAndTheNextRunResumes() throws {
        try addRemote()
        try primary.setFaults([layerSuffix: ["mode": "cut", "after": 400_000, "times": 1]])
        assertCleanFailure(try install(), mentioning: "connection closed before the whole response arrived", within: 10)
        primary.clearLog()
        let retry = try install()
        XCTAssertEqual(retry.result.status, 0, retry.result.err)
        let ranges = primary.requests().filter { $0.path.hasSuffix(layerSuffix) }.map(\.range)
        XCTAssertEqual(ranges.count, 1)
        XCTAssertNotNil(ranges.first ?? nil, "the second run resumed with a Range request")
        try assertInstalledAndRuns()
    }

    func testContentLengthLongerThanTheBodyFailsAndTheNextRunSucceeds() throws {
        try addRemote()
        try primary.setFaults([layerSuffix: ["mode": "bad-length", "times": 1]])
        let run = try install()
        XCTAssertEqual(run.result.status, 1)
        XCTAssertLessThan(run.seconds, 10)
        XCTAssertEqual(try install().result.status, 0)
        try assertInstalledAndRuns()
    }

    func testCorruptBlobIsNeverInstalled() throws {
        try addRemote()
        try primary.setFaults([layerSuffix: ["mode": "corrupt"]])
        assertCleanFailure(try install(), mentioning: "digest", within: 10)
    }

    func testRedirectLoopEndsInAnError() throws {
        try addRemote()
        try primary.setFaults(["/index.json": ["mode": "redirect-loop"]])
        assertCleanFailure(try install(), mentioning: "redirect loop", within: 5)
        try primary.setFaults([layerSuffix: ["mode": "redirect-chain"]])
        assertCleanFailure(try install(), mentioning: "too many redirects", within: 5)
    }

    func testMirrorIsUsedWhenThePrimaryMisbehavesInEveryWay() throws {
        try addRemote(mirrors: [mirror])
        try primary.setFaults(["/index.json": ["mode": "redirect-loop"], manifestSuffix: ["mode": "endless"],
                               layerSuffix: ["mode": "stall", "after": 100_000]])
        let run = try install()
        XCTAssertEqual(run.result.status, 0, run.result.err)
        XCTAssertLessThan(run.seconds, 15)
        XCTAssertLessThan(run.maxRSS, Self.rssCapKiB)
        XCTAssertTrue(mirror.requests().contains { $0.path.hasSuffix(layerSuffix) && [200, 206].contains($0.status) })
        try assertInstalledAndRuns()
    }
}
