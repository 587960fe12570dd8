import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// `kill -9` at varied moments: the helper during deploys and updates of a multi-layer image, and the agent
/// during downloads. After each kill and restart the active deployment is the old or the new image and complete,
/// state.json agrees with the disk, and nothing is left in `tmp/`; the agent resumes and never uses a corrupt blob.
///
/// The XCTest suite runs a few kills; `make stress` runs the same loops long (`FERRY_STRESS_KILLS`, default 60).
final class CrashConsistencyTests: SystemHarnessTestCase {
    static let ref = "org.example.Crash/x86_64/stable"
    static var kills: Int { Int(ProcessInfo.processInfo.environment["FERRY_STRESS_KILLS"] ?? "") ?? 6 }

    /// Watches the helper's `Progress` signals with `dbus-monitor` as root: they are unicast to the calling agent,
    /// so a match rule (`gdbus monitor`) never sees them; a monitor (`BecomeMonitor`, root only) does.
    final class ProgressWatch {
        let child: Child
        let path: String
        var offset = 0
        /// Arguments seen of the Progress signal being read (its phase is the second string).
        private var strings = -1

        init(_ system: SystemHarness) throws {
            path = system.scratch.file("progress.log")
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            defer { close(fd) }
            child = try Child(["stdbuf", "-oL", "dbus-monitor", "--address", system.testbed.busAddress,
                               "type='signal',interface='dev.ferry.Helper1',member='Progress'"], fds: [1: fd])
            usleep(300_000)
        }

        /// Phases signalled since the last call, in order. Reads whole lines only; a message cut in two by a read
        /// is completed by the next call.
        func newPhases() -> [String] {
            guard let data = FileManager.default.contents(atPath: path), data.count > offset,
                let end = data[offset...].lastIndex(of: UInt8(ascii: "\n"))
            else { return [] }
            let text = String(decoding: data[offset...end], as: UTF8.self)
            offset = end + 1
            var phases: [String] = []
            for line in text.split(separator: "\n") {
                if line.hasPrefix("signal ") {
                    strings = line.contains("member=Progress") ? 0 : -1
                } else if strings >= 0, line.trimmingCharacters(in: .whitespaces).hasPrefix("string \"") {
                    strings += 1
                    let value = line.split(separator: "\"", omittingEmptySubsequences: false).dropFirst().first
                    if strings == 2, let value, ["copy", "verify", "extract", "commit"].contains(String(value)) {
                        phases.append(String(value))
                    }
                }
            }
            return phases
        }

        func stop() { child.stop(signal: SIGKILL) }
    }

    /// Deploys and updates through the helper, killing it with SIGKILL `kills` times at random moments after
    /// the deploy's first Progress signal. Returns how many kills landed in each phase.
    func helperKillLoop(kills: Int) throws -> [String: Int] {
        var timestamp: Int64 = 1_700_000_000
        var latest = try system.publish(ref: Self.ref, version: "v0", timestamp: timestamp, layers: 4,
                                        filesPerLayer: 60, fileSize: 8192)
        var images: [KnownImage] = [latest]
        let watch = try ProgressWatch(system)
        defer { watch.stop() }

        // One undisturbed install measures how long a deploy takes, to spread the kills over it.
        let start = Date()
        let first = try system.agent("ferryt-alice", "install", "--system", "demo", Self.ref, "--no-interaction")
        XCTAssertEqual(first.status, 0, first.err)
        let window = max(0.05, Date().timeIntervalSince(start))
        usleep(200_000)
        XCTAssertFalse(watch.newPhases().isEmpty, "Progress signals seen: "
            + ((try? String(contentsOfFile: watch.path, encoding: .utf8)) ?? "").prefix(2000))
        var landed: [String: Int] = [:]
        var killed = 0
        var attempts = 0
        while killed < kills && attempts < kills * 4 {
            attempts += 1
            if system.activeHex(Self.ref) == latest.digest.hex {
                timestamp += 10
                latest = try system.publish(ref: Self.ref, version: "v\(images.count)", timestamp: timestamp,
                                            layers: 4, filesPerLayer: 60, fileSize: 8192)
                images.append(latest)
            }
            // Every fifth kill is aimed at a step of the commit, which is too short to hit by timing.
            let steps = try commitSteps(images: Array(images.dropLast()))
            if attempts % 5 == 0, images.count >= 2, let current = system.activeHex(Self.ref),
                current == images[images.count - 2].digest.hex, !steps.isEmpty
            {
                try killAtCommitStep(steps[(attempts / 5) % steps.count], old: images[images.count - 2], new: latest)
                killed += 1
                landed["commit (strace)", default: 0] += 1
                continue
            }
            let (agent, output) = try system.startAgent("ferryt-alice", ["update", "--system", "--no-interaction"])
            // Wait for the helper to start this deploy, then kill it somewhere inside it.
            var phases: [String] = []
            let deadline = Date().addingTimeInterval(30)
            while phases.isEmpty && agent.isRunning && Date() < deadline {
                phases += watch.newPhases()
                usleep(1000)
            }
            // Vary the moment: at once (copy), a few ms in (verify), or anywhere in the rest of the window.
            let delay: Double
            switch attempts % 4 {
            case 0: delay = 0
            case 1: delay = Double.random(in: 0...0.03)
            case 2: delay = Double.random(in: 0...(window / 3))
            default: delay = Double.random(in: 0...window)
            }
            usleep(UInt32(delay * 1_000_000))
            phases += watch.newPhases()
            let finished = !agent.isRunning
            system.testbed.stopHelper(signal: SIGKILL)
            let status = agent.wait()
            usleep(50_000)
            phases += watch.newPhases()
            let phase = finished || status == 0 ? "after commit" : (phases.last ?? "before copy")
            if !(finished || status == 0) { killed += 1 }
            landed[phase, default: 0] += 1

            // Before any recovery: the link already names the old or the new image, complete.
            let hex = system.activeHex(Self.ref)
            XCTAssertTrue(images.suffix(2).contains { $0.digest.hex == hex }, "active \(hex ?? "none") after a kill in \(phase)")
            try system.testbed.startHelper()
            try system.assertNoStaging("ferryt-alice")
            let active = try system.assertConsistent([Self.ref: Array(images.suffix(2))])
            XCTAssertNotNil(active[Self.ref], "\(phase): nothing active; agent said: \(String(describing: try? String(contentsOfFile: output, encoding: .utf8)))")
        }
        // The interrupted update goes through once the helper is left alone.
        let retry = try system.agent("ferryt-alice", "update", "--system", "--no-interaction")
        XCTAssertEqual(retry.status, 0, retry.err)
        let active = try system.assertConsistent([Self.ref: Array(images.suffix(2))])
        XCTAssertEqual(active[Self.ref]?.digest, latest.digest)
        XCTAssertGreaterThanOrEqual(killed, kills, "kills landed inside deploys: \(landed)")
        print("helper kills by phase: \(landed.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))"
              + String(format: " (deploy window %.0f ms, %d releases)", window * 1000, images.count))
        return landed
    }

    func testHelperKilledDuringDeploysAlwaysLeavesOneCompleteDeployment() throws {
        let landed = try helperKillLoop(kills: Self.kills)
        XCTAssertGreaterThanOrEqual(Set(landed.keys.compactMap { $0.split(separator: " ").first.map(String.init) })
            .intersection(["copy", "verify", "extract", "commit"]).count, 2,
                                    "kills spread over several phases: \(landed)")
    }

    /// One kill at each step of the commit phase, aimed with strace (``SyscallTrap``): the link names the old or
    /// the new deployment as that step implies, and after a restart state agrees with it and nothing is left over;
    /// the next update finishes the job and leaves no blob that no kept deployment needs.
    func testHelperKilledAtEachStepOfTheCommitRecovers() throws {
        var timestamp: Int64 = 1_700_000_000
        var images = [try system.publish(ref: Self.ref, version: "v0", timestamp: timestamp, layers: 2,
                                         filesPerLayer: 10)]
        let install = try system.agent("ferryt-alice", "install", "--system", "demo", Self.ref, "--no-interaction")
        XCTAssertEqual(install.status, 0, install.err)
        var fired: [String] = []
        var round = 0
        while true {
            let steps = try commitSteps(images: images)
            timestamp += 10
            images.append(try system.publish(ref: Self.ref, version: "v\(images.count)", timestamp: timestamp,
                                             layers: 2, filesPerLayer: 10))
            if !steps.contains(where: { $0.name == "garbage collection" })
                || !steps.contains(where: { $0.name.hasPrefix("superseded") })
            {
                // The first updates only build up a previous deployment and blobs to collect.
                let update = try system.agent("ferryt-alice", "update", "--system", "--no-interaction")
                XCTAssertEqual(update.status, 0, update.err)
                continue
            }
            guard round < steps.count else { break }
            let step = steps[round]
            round += 1
            try killAtCommitStep(step, old: images[images.count - 2], new: images[images.count - 1])
            fired.append(step.name)
        }
        print("helper kills in the commit phase: \(fired.joined(separator: ", "))")
        XCTAssertEqual(fired.count, 8)
    }

    /// The commit steps of the next update, given the images published so far (the last one is active): the
    /// deployment state keeps as previous is superseded, and the manifest blob of the image before it collected.
    func commitSteps(images: [KnownImage]) throws -> [CommitStep] {
        let superseded = try system.state().installed[Self.ref]?.previous.map { system.stateRoot + "/" + $0 }
        let garbage = images.count >= 2
            ? system.stateRoot + "/blobs/sha256/" + images[images.count - 2].digest.hex : nil
        return CommitStep.all(root: system.stateRoot, ref: Self.ref, superseded: superseded,
                              garbage: garbage.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil })
    }

    /// Runs an update with the helper trapped at `step`, checks the link the step implies, restarts the helper,
    /// checks consistency, and finishes the update.
    func killAtCommitStep(_ step: CommitStep, old: KnownImage, new: KnownImage) throws {
        let pid = try XCTUnwrap(system.testbed.helperPID)
        let trap = try SyscallTrap(pid: pid, path: step.path, syscalls: step.syscalls, occurrence: step.occurrence,
                                   log: system.scratch.file("strace-\(UInt32.random(in: 0...UInt32.max)).log"))
        let update = try system.agent("ferryt-alice", "update", "--system", "--no-interaction")
        var died = false
        for _ in 0..<200 where !died {
            died = system.testbed.helperPID == nil
            if !died { usleep(10_000) }
        }
        trap.disarm()
        XCTAssertTrue(died, "\(step.name): the trap did not fire; the update said: \(update.out)\(update.err)"
                      + "strace saw:\n\(trap.seen.suffix(3000))")
        XCTAssertNotEqual(update.status, 0, "\(step.name): the update reported success")
        let expected = step.switched ? new : old
        XCTAssertEqual(system.activeHex(Self.ref), expected.digest.hex, "\(step.name): the link before recovery")

        system.testbed.stopHelper(signal: SIGKILL)
        try system.testbed.startHelper()
        try system.assertNoStaging("ferryt-alice")
        let active = try system.assertConsistent([Self.ref: [old, new]])
        XCTAssertEqual(active[Self.ref]?.digest, expected.digest, "\(step.name): after recovery")

        let retry = try system.agent("ferryt-alice", "update", "--system", "--no-interaction")
        XCTAssertEqual(retry.status, 0, "\(step.name): \(retry.err)")
        XCTAssertEqual(try system.assertConsistent([Self.ref: [old, new]])[Self.ref]?.digest, new.digest)
        try system.assertNoOrphanBlobs()
    }

    /// The agent as `ferryt-carol` through `setpriv` (which execs, so the pid is the agent's own).
    func startUserAgent(_ arguments: [String]) throws -> Child {
        let home = try system.testbed.home("ferryt-carol")
        let env = ["HOME=\(home)", "PATH=/usr/bin:/bin", "LANG=C.UTF-8", "FERRY_SYSTEM_ROOT=\(system.scratch.file("none"))"]
        return try Child(["setpriv", "--reuid=ferryt-carol", "--regid=ferryt-carol", "--init-groups", "env", "-i"]
            + env + [BuiltProducts.ferry] + arguments)
    }

    func testAgentKilledDuringDownloadsResumesAndNeverUsesACorruptBlob() throws {
        let image = try system.publish(ref: Self.ref, version: "v1", timestamp: 1_700_000_000, layers: 3,
                                       filesPerLayer: 8, fileSize: 131_072, compression: .none)
        let add = try system.agent("ferryt-carol", "remote-add", "--user", "demo", system.server.url,
                                   "--ed25519-key", system.publisher.publicKey)
        XCTAssertEqual(add.status, 0, add.err)
        // ~1 MiB layers at 512 KiB/s: every blob download takes about two seconds.
        var slow: [String: [String: Any]] = [:]
        for layer in try system.publisher.layers(of: image.digest.description) {
            slow["/blobs/" + layer.replacingOccurrences(of: ":", with: "/")] = ["mode": "slow", "rate": 1 << 19]
        }
        try system.server.setFaults(slow)
        let home = try system.testbed.home("ferryt-carol")
        let partial = home + "/.cache/ferry/partial"
        var kills = 0
        var resumed = 0
        for n in 0..<max(3, Self.kills / 2) {
            let agent = try startUserAgent(["install", "--user", "demo", Self.ref])
            usleep(UInt32(Double.random(in: 0.2...1.2) * 1_000_000))
            if agent.isRunning {
                kill(agent.pid, SIGKILL)
                kills += 1
            }
            agent.wait()
            // Every few rounds, damage a partial file as a crash of the disk might: the next run must notice.
            if n % 3 == 2, let name = (try? FileManager.default.contentsOfDirectory(atPath: partial))?
                .first(where: { !$0.hasSuffix(".lock") }) {
                let fd = open(partial + "/" + name, O_WRONLY)
                if fd >= 0 {
                    _ = pwrite(fd, "XXXX", 4, 100)
                    close(fd)
                }
            }
            let cache = home + "/.cache/ferry/blobs/sha256"
            // A kill can leave AtomicFile's temporary entry (`.NAME.tmp-PID-N`), which no reader takes for a blob
            // and the next run sweeps; every blob under its own name must match it.
            for name in (try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? [] where !name.hasPrefix(".") {
                XCTAssertEqual(Digest.of(FileManager.default.contents(atPath: cache + "/" + name) ?? Data()).hex, name,
                               "corrupt blob promoted into the cache")
            }
            if FileManager.default.fileExists(atPath: home + "/.local/share/ferry/installed/" + stateName(Self.ref)) { break }
        }
        system.server.clearLog()
        try system.server.setFaults([:])
        // The next runs finish the job (a damaged partial costs one failed run: its digest is refused).
        var finished = false
        for _ in 0..<3 where !finished {
            let run = try system.agent("ferryt-carol", "install", "--user", "demo", Self.ref)
            finished = run.status == 0
        }
        XCTAssertTrue(finished)
        // Staged layouts of the killed runs are swept; partial files are gone once their blobs are in the cache.
        try system.assertNoStaging("ferryt-carol")
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: partial)) ?? [], [],
                       "partial downloads and their locks after a complete install")
        resumed = system.server.requests().filter { $0.range != nil && $0.status == 206 }.count
        let files = home + "/.local/share/ferry/installed/\(stateName(Self.ref))/files"
        for (path, digest) in image.files {
            XCTAssertEqual(Digest.of(FileManager.default.contents(atPath: files + "/" + path) ?? Data()), digest, path)
        }
        print("agent kills during downloads: \(kills); ranged resumes afterwards: \(resumed)")
        XCTAssertGreaterThan(kills, 0)
    }
}
