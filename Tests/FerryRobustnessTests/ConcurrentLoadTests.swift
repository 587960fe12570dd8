import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// Several unprivileged users installing and updating the same and different refs at once through one helper.
final class ConcurrentLoadTests: SystemHarnessTestCase {
    static let refs = ["org.example.A/x86_64/stable", "org.example.B/x86_64/stable", "org.example.C/x86_64/stable"]

    /// Runs every (user, arguments) at once; returns (exit status, output) of each, in order, while polling
    /// `ListInstalled` and recording its latencies.
    func runAtOnce(_ jobs: [(String, [String])]) throws -> ([(Int32, String)], [Double]) {
        let started = try jobs.map { try system.startAgent($0.0, $0.1) }
        var latencies: [Double] = []
        while started.contains(where: { $0.0.isRunning }) {
            latencies.append(try system.listInstalled().1)
            usleep(20_000)
        }
        let results = started.map { child, output in
            (child.wait(), (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
        }
        return (results, latencies)
    }

    func report(_ name: String, _ latencies: [Double]) {
        let sorted = latencies.sorted()
        guard !sorted.isEmpty else { return }
        let median = sorted[sorted.count / 2], worst = sorted[sorted.count - 1]
        print(String(format: "%@: ListInstalled answered %d times during the load; median %.1f ms, max %.1f ms",
                     name, sorted.count, median * 1000, worst * 1000))
    }

    func testTwentyFourConcurrentInstallsAndUpdatesAllEndCleanAndNoUpdateIsLost() throws {
        var v1: [String: KnownImage] = [:], v2: [String: KnownImage] = [:]
        var timestamp: Int64 = 1_700_000_000
        for ref in Self.refs {
            timestamp += 1
            v1[ref] = try system.publish(ref: ref, version: "v1-\(ref)", timestamp: timestamp, layers: 2)
        }

        // Round 1: 24 installs of three refs by two users, each ref requested eight times at once.
        var jobs: [(String, [String])] = []
        for round in 0..<4 {
            for ref in Self.refs {
                jobs.append((round % 2 == 0 ? "ferryt-alice" : "ferryt-dave",
                             ["install", "--system", "demo", ref, "--no-interaction"]))
                jobs.append(("ferryt-dave", ["install", "--system", "demo", ref, "--no-interaction"]))
            }
        }
        let (installs, installLatencies) = try runAtOnce(jobs)
        report("installs", installLatencies)
        for (status, output) in installs {
            XCTAssertEqual(status, 0, output)
        }
        let afterInstall = try system.assertConsistent(Self.refs.reduce(into: [:]) { $0[$1] = [v1[$1]!] })
        XCTAssertEqual(afterInstall.count, 3)
        XCTAssertFalse(installLatencies.isEmpty, "ListInstalled was answered during the installs")
        XCTAssertLessThan(installLatencies.max() ?? 0, 5)

        // Round 2: v2 of every ref, then 24 updates at once by three users (bob may only update), some naming
        // one ref, some all of them. Every update must land: each ref ends at v2, its record at v2's timestamp.
        for ref in Self.refs {
            timestamp += 100
            v2[ref] = try system.publish(ref: ref, version: "v2-\(ref)", timestamp: timestamp, layers: 2)
        }
        jobs = []
        for n in 0..<8 {
            jobs.append(("ferryt-bob", n % 2 == 0 ? ["update", "--system", "--no-interaction"]
                                                  : ["update", "--system", Self.refs[n % 3], "--no-interaction"]))
            jobs.append(("ferryt-alice", ["update", "--system", Self.refs[(n + 1) % 3], "--no-interaction"]))
            jobs.append(("ferryt-dave", ["install", "--system", "demo", Self.refs[(n + 2) % 3], "--no-interaction"]))
        }
        let (updates, updateLatencies) = try runAtOnce(jobs)
        report("updates", updateLatencies)
        for (status, output) in updates {
            XCTAssertEqual(status, 0, output)
        }
        let active = try system.assertConsistent(Self.refs.reduce(into: [:]) { $0[$1] = [v1[$1]!, v2[$1]!] })
        for ref in Self.refs {
            XCTAssertEqual(active[ref]?.digest, v2[ref]?.digest, "\(ref): an update was lost")
            let record = try system.state().records.first { $0.key.hasSuffix(ref) }?.value
            XCTAssertEqual(record?.digest, v2[ref]?.digest, "\(ref): rollback record")
        }
        let (list, _) = try system.listInstalled()
        for ref in Self.refs { XCTAssertTrue(list.contains(v2[ref]!.digest.description), list) }
        XCTAssertLessThan(updateLatencies.max() ?? 0, 5)
        XCTAssertTrue(system.testbed.helperPID != nil, "the helper is still running")
    }

    /// Regression: two agents of one user fetching the same blob used to share its partial file unlocked and fail
    /// with "rename …/partial/<hex>: No such file or directory" (or interleave their writes).
    func testOneUsersConcurrentAgentsShareTheBlobCacheSafely() throws {
        let ref = Self.refs[0]
        let image = try system.publish(ref: ref, version: "v1", timestamp: 1_700_000_000, layers: 3, fileSize: 65536)
        let add = try system.agent("ferryt-carol", "remote-add", "--user", "demo", system.server.url,
                                   "--ed25519-key", system.publisher.publicKey)
        XCTAssertEqual(add.status, 0, add.err)
        let jobs = (0..<6).map { _ in ("ferryt-carol", ["install", "--user", "demo", ref]) }
        let (results, _) = try runAtOnce(jobs)
        for (status, output) in results { XCTAssertEqual(status, 0, output) }
        let cache = try system.testbed.home("ferryt-carol") + "/.cache/ferry/blobs/sha256"
        for name in try FileManager.default.contentsOfDirectory(atPath: cache) {
            XCTAssertEqual(Digest.of(FileManager.default.contents(atPath: cache + "/" + name) ?? Data()).hex, name)
        }
        let run = try system.agent("ferryt-carol", "run", ref)
        XCTAssertEqual(run.out, "hello v1\n")
        _ = image
    }
}
