import FerryCore
import FerryInstall
import FerryTestSupport
import Foundation
import XCTest

/// The install engine alone, no root and no bus: two publishers (remotes `a` and `b`, each with its own minisign
/// key made by stock `minisign`), images crafted from tar specs and signed with `ferry sign`, and an `Installer`
/// on a state tree in a temporary directory.
final class EngineFixture {
    let scratch: TemporaryDirectory
    let a: Publisher
    let b: Publisher
    let installer: Installer
    /// A directory outside the state tree that images aim symlinks at; it must never change.
    let outside: String
    /// The engine's clock for every deploy (claims are dated around 2023–2026).
    let now: Int64 = 1_800_000_000

    init() throws {
        scratch = try TemporaryDirectory(prefix: "fe")
        a = try Publisher(in: scratch, name: "a")
        b = try Publisher(in: scratch, name: "b")
        outside = scratch.file("outside")
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try scratch.write("outside/keep", "precious\n")
        installer = Installer(paths: InstallPaths(root: scratch.file("state")), ownership: .currentUser)
        try installer.recover()
    }

    var root: String { installer.paths.root }

    func remote(_ name: String) throws -> Remote {
        let publisher = name == "a" ? a : b
        return Remote(name: try RemoteName(name), url: "https://\(name).invalid/apps",
                      ed25519Keys: [try String(contentsOfFile: publisher.publicKey, encoding: .utf8)])
    }

    /// Adds an image of one layer of `entries` under `ref` to the remote's layout and signs it at `timestamp`.
    @discardableResult
    func publish(_ remote: String, _ ref: String, _ entries: [[String: Any]], timestamp: Int64,
                 command: String? = "/bin/hello") throws -> Digest {
        let publisher = remote == "a" ? a : b
        let descriptor = try ImageCrafter.publish(layout: publisher.layout, ref: ref, layers: [entries],
                                                  command: command)
        try Command.check([BuiltProducts.ferry, "sign", publisher.layout, "--ref", ref, "--ed25519-key",
                           publisher.secretKey, "--timestamp", "\(timestamp)"])
        return descriptor.digest
    }

    /// A harmless app: `bin/hello` prints `text`.
    static func app(_ text: String, extra: [[String: Any]] = []) -> [[String: Any]] {
        [ImageCrafter.dir("bin"), ImageCrafter.file("bin/hello", "#!/bin/sh\necho \(text)\n", mode: 0o755)] + extra
    }

    @discardableResult
    func deploy(_ remote: String, _ ref: String, switchRemote: Bool = false, allowDowngrade: Bool = false,
                authorize: (DeployPlan) throws -> Void = { _ in }) throws -> DeployOutcome {
        let publisher = remote == "a" ? a : b
        let request = DeployRequest(remote: try self.remote(remote), ref: try Ref(ref), allowDowngrade: allowDowngrade,
                                    switchRemote: switchRemote, now: now)
        return try installer.deploy(source: try ImageLayout(path: publisher.layout), request: request,
                                    authorize: authorize)
    }

    /// The state tree and the outside directory, for "nothing changed" checks.
    func snapshot() -> [String: String] {
        var all: [String: String] = [:]
        for (key, value) in TreeSnapshot.take(root) { all["state/" + key] = value }
        for (key, value) in TreeSnapshot.take(outside) { all["outside/" + key] = value }
        return all
    }

    func installation(_ ref: String) throws -> InstallState.Installation? {
        try installer.state().installed[ref]
    }

    /// What the ref's launcher-reachable `files/bin/hello` says, read through its `installed/` link.
    func installedHello(_ ref: String) throws -> String {
        try String(contentsOfFile: "\(root)/installed/\(stateName(ref))/files/bin/hello", encoding: .utf8)
    }

    func linkTarget(_ ref: String) throws -> String {
        try FileManager.default.destinationOfSymbolicLink(atPath: "\(root)/installed/\(stateName(ref))")
    }
}

/// Tests that start with a victim app (`org.victim.App/x86_64/stable`) installed from remote `a`.
class VictimTestCase: XCTestCase {
    static let victim = "org.victim.App/x86_64/stable"
    var fx: EngineFixture!
    /// The victim's claim timestamp.
    class var victimTimestamp: Int64 { 1_700_000_000 }
    /// The victim's image.
    class var victimImage: [[String: Any]] { EngineFixture.app("victim") }

    override func setUpWithError() throws {
        fx = try EngineFixture()
        try fx.publish("a", Self.victim, Self.victimImage, timestamp: Self.victimTimestamp)
        try fx.deploy("a", Self.victim)
    }

    override func tearDown() { fx = nil }
}

func XCTAssertUnchanged(_ before: [String: String], _ after: [String: String], file: StaticString = #filePath,
                        line: UInt = #line) {
    let diff = TreeSnapshot.difference(before, after)
    XCTAssertTrue(diff.isEmpty, "changed on disk:\n" + diff.joined(separator: "\n"), file: file, line: line)
}

func XCTAssertFerryError(_ expression: @autoclosure () throws -> some Any, _ code: FerryError.Code,
                         _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try expression(), file: file, line: line) { error in
        guard let error = error as? FerryError else {
            return XCTFail("not a FerryError: \(error)", file: file, line: line)
        }
        XCTAssertEqual(error.code, code, error.message, file: file, line: line)
        XCTAssertTrue(error.message.contains(fragment), "\(error.message) lacks \(fragment)", file: file, line: line)
    }
}
