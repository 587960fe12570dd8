import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// A test class whose tests each get a fresh ``SystemHarness`` (skipped unless root).
class SystemHarnessTestCase: XCTestCase {
    var system: SystemHarness!

    override func setUpWithError() throws {
        try XCTSkipUnless(getuid() == 0, "system tests start a bus, polkitd and the helper as root")
        system = try SystemHarness()
    }

    override func tearDown() {
        system?.stop()
        system = nil
    }
}

/// A published image whose every file the test knows, to check a deployment file by file.
struct KnownImage {
    var ref: String
    var digest: Digest
    /// Relative path → digest of every regular file the image holds.
    var files: [String: Digest]
}

/// The system under test for the robustness suite: bus, polkitd, the helper as root (relocated), a publisher on
/// a static server, the remote `demo` blessed, and checks that the helper's state agrees with its disk.
final class SystemHarness {
    let testbed: Testbed
    let scratch: TemporaryDirectory
    let publisher: Publisher
    let server: StaticServer
    var stateRoot: String { testbed.root + "/var/lib/ferry" }

    init(stateOn mount: ((String) throws -> Void)? = nil) throws {
        testbed = try Testbed()
        scratch = try TemporaryDirectory(prefix: "fr")
        chmod(scratch.path, 0o755)
        publisher = try Publisher(in: scratch)
        try FileManager.default.createDirectory(atPath: publisher.layout, withIntermediateDirectories: true)
        server = try StaticServer(root: publisher.layout, scratch: scratch)
        let key = try Data(contentsOf: URL(fileURLWithPath: publisher.publicKey))
        try testbed.writeSystemRemote(name: "demo", toml: "url = \"\(server.url)\"\n", keys: ["ed25519-1.pub": key])
        try FileManager.default.createDirectory(atPath: stateRoot, withIntermediateDirectories: true)
        try mount?(stateRoot)
        try testbed.startHelper()
    }

    /// Publishes `ref` as `layers` layers of `filesPerLayer` files of `fileSize` bytes each (contents depend on
    /// `version`), signed at `timestamp`. The first layer holds `bin/hello`.
    @discardableResult
    func publish(ref: String, version: String, timestamp: Int64, layers: Int = 3, filesPerLayer: Int = 20,
                 fileSize: Int = 4096, compression: LayerCompression = .gzip) throws -> KnownImage {
        var files: [String: Digest] = [:]
        var specs: [[[String: Any]]] = []
        let hello = "#!/bin/sh\necho \"hello \(version)\"\n"
        for layer in 0..<layers {
            var entries: [[String: Any]] = []
            if layer == 0 {
                entries.append(ImageCrafter.file("bin/hello", hello, mode: 0o755))
                files["bin/hello"] = Digest.of(Data(hello.utf8))
            }
            for n in 0..<filesPerLayer {
                // Varied, poorly compressible contents so copy, verify and extract all take measurable time.
                let seed = "\(version)-\(layer)-\(n)-"
                var text = ""
                var counter = 0
                while text.utf8.count < fileSize {
                    text += Digest.of(Data((seed + String(counter)).utf8)).hex
                    counter += 1
                }
                text = String(text.prefix(fileSize))
                let name = "data/l\(layer)/f\(n)"
                entries.append(ImageCrafter.file(name, text))
                files[name] = Digest.of(Data(text.utf8))
            }
            specs.append(entries)
        }
        let descriptor = try ImageCrafter.publish(layout: publisher.layout, ref: ref, layers: specs,
                                                  compression: compression)
        try Command.check([BuiltProducts.ferry, "sign", publisher.layout, "--ref", ref, "--ed25519-key",
                           publisher.secretKey, "--timestamp", "\(timestamp)"])
        try Command.check(["chmod", "-R", "a+rX", publisher.directory])
        return KnownImage(ref: ref, digest: descriptor.digest, files: files)
    }

    @discardableResult
    func agent(_ user: String, _ arguments: String...) throws -> CommandResult {
        try testbed.agent(user, arguments)
    }

    /// Starts `ferry ARGS` as `user` in the background; its output goes to a file.
    func startAgent(_ user: String, _ arguments: [String], environment: [String: String] = [:]) throws
        -> (Child, String)
    {
        let home = try testbed.home(user)
        var env = ["HOME": home, "DBUS_SYSTEM_BUS_ADDRESS": testbed.busAddress, "FERRY_SYSTEM_ROOT": testbed.root,
                   "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"]
        env.merge(environment) { _, new in new }
        let output = scratch.file("agent-\(UInt32.random(in: 0...UInt32.max)).out")
        let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { close(fd) }
        let child = try Child(["runuser", "-u", user, "--", "env", "-i"]
            + env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + [BuiltProducts.ferry] + arguments,
            fds: [1: fd, 2: fd])
        return (child, output)
    }

    /// `ListInstalled` through busctl (an independent client); the reply and how long it took.
    func listInstalled() throws -> (String, Double) {
        let start = Date()
        let result = try Command.run(["busctl", "--address=\(testbed.busAddress)", "--timeout=30", "call",
                                      "dev.ferry.Helper1", "/dev/ferry/Helper1", "dev.ferry.Helper1", "ListInstalled"])
        let seconds = Date().timeIntervalSince(start)
        guard result.status == 0 else { throw TestbedError("ListInstalled failed: \(result.err)") }
        return (result.out, seconds)
    }

    func state() throws -> InstallState {
        try JSONDecoder().decode(InstallState.self, from: Data(contentsOf: URL(fileURLWithPath: stateRoot + "/state.json")))
    }

    /// The manifest digest hex of the active deployment of `ref`, from its `installed/` link.
    func activeHex(_ ref: String) -> String? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: stateRoot + "/installed/" + stateName(ref))
        else { return nil }
        return (target as NSString).lastPathComponent
    }

    /// Checks the invariants a crash or a race must never break, and returns the active image of each ref:
    /// `installed/<ref>` points at a complete deployment of one of `candidates` (every file matches, no file
    /// more), state.json agrees with the links, each ref keeps at most the active and one previous deployment,
    /// and nothing is left in `tmp/`.
    @discardableResult
    func assertConsistent(_ candidates: [String: [KnownImage]], file: StaticString = #filePath, line: UInt = #line)
        throws -> [String: KnownImage]
    {
        let state = try state()
        var active: [String: KnownImage] = [:]
        for (ref, images) in candidates {
            guard let hex = activeHex(ref) else {
                XCTAssertNil(state.installed[ref], "\(ref): state says installed, no link", file: file, line: line)
                continue
            }
            guard let image = images.first(where: { $0.digest.hex == hex }) else {
                XCTFail("\(ref): active deployment \(hex) is none of the published images", file: file, line: line)
                continue
            }
            active[ref] = image
            let installation = try XCTUnwrap(state.installed[ref], "\(ref): linked but not in state.json",
                                             file: file, line: line)
            XCTAssertEqual(installation.digest, image.digest, "\(ref): state.json and the link disagree",
                           file: file, line: line)
            XCTAssertEqual(installation.deployment, "deploy/\(stateName(ref))/\(hex)", file: file, line: line)
            let files = stateRoot + "/installed/\(stateName(ref))/files"
            var seen: [String: Digest] = [:]
            let walker = FileManager.default.enumerator(atPath: files)
            while let relative = walker?.nextObject() as? String {
                var st = stat()
                guard lstat(files + "/" + relative, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
                seen[relative] = Digest.of(FileManager.default.contents(atPath: files + "/" + relative) ?? Data())
            }
            XCTAssertEqual(seen, image.files, "\(ref): deployment \(hex) differs from the image", file: file, line: line)
            let deployments =
                (try? FileManager.default.contentsOfDirectory(atPath: stateRoot + "/deploy/" + stateName(ref))) ?? []
            XCTAssertLessThanOrEqual(deployments.count, 2, "\(ref): \(deployments)", file: file, line: line)
            for name in deployments where name != hex {
                XCTAssertEqual(installation.previous, "deploy/\(stateName(ref))/\(name)",
                               "\(ref): stray deployment \(name)", file: file, line: line)
            }
        }
        // installed/ is flat: one link per ref, nothing else (a directory there would be a nested ref).
        let linked = (try? FileManager.default.contentsOfDirectory(atPath: stateRoot + "/installed")) ?? []
        XCTAssertEqual(Set(linked), Set(active.keys.map(stateName)), "entries under installed/", file: file, line: line)
        XCTAssertEqual(Set(state.installed.keys), Set(active.keys), "refs in state.json", file: file, line: line)
        let halfWritten = ((try? FileManager.default.contentsOfDirectory(atPath: stateRoot)) ?? []).filter {
            $0.hasPrefix(".") && $0.contains(".tmp-")
        }
        XCTAssertEqual(halfWritten, [], "temporary files in the state directory", file: file, line: line)
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: stateRoot + "/tmp")) ?? []
        XCTAssertEqual(leftovers, [], "left in tmp/", file: file, line: line)
        return active
    }

    /// The agent of `user` left no staged layout: it removes its own when the helper fails, and sweeps those of
    /// agents that were killed.
    func assertNoStaging(_ user: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let staging = try testbed.home(user) + "/.cache/ferry/staging"
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: staging)) ?? [], [],
                       "\(user)'s staging", file: file, line: line)
    }

    /// Every blob in the helper's storage belongs to a deployment state keeps (active or previous).
    func assertNoOrphanBlobs(file: StaticString = #filePath, line: UInt = #line) throws {
        var referenced = Set<String>()
        for installation in try state().installed.values {
            for deployment in [installation.deployment, installation.previous].compactMap({ $0 }) {
                let data = try Data(contentsOf: URL(fileURLWithPath: "\(stateRoot)/\(deployment)/manifest.json"))
                let manifest = try Manifest.parse(data)
                referenced.insert(Digest.of(data).hex)
                referenced.insert(manifest.config.digest.hex)
                for layer in manifest.layers { referenced.insert(layer.digest.hex) }
            }
        }
        let stored = Set((try? FileManager.default.contentsOfDirectory(atPath: stateRoot + "/blobs/sha256")) ?? [])
        XCTAssertEqual(stored.subtracting(referenced), [], "blobs no kept deployment needs", file: file, line: line)
    }

    func stop() {
        server.stop()
        testbed.stop()
    }
}
