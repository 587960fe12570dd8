import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// A publisher on a static server and an unprivileged user (`ferryt-carol`) installing with `--user`.
final class UserFixture {
    static let ref = "org.example.Hello/x86_64/stable"
    static let user = "ferryt-carol"
    let scratch: TemporaryDirectory
    let publisher: Publisher
    let server: StaticServer
    let home: String

    init() throws {
        try Testbed.ensureUser(UserFixture.user)
        scratch = try TemporaryDirectory(prefix: "fu")
        chmod(scratch.path, 0o755)
        publisher = try Publisher(in: scratch)
        server = try StaticServer(root: publisher.layout, scratch: scratch)
        home = scratch.file("home")
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        try Command.check(["chown", "\(UserFixture.user):\(UserFixture.user)", home])
    }

    var dataRoot: String { home + "/.local/share/ferry" }

    /// `ferry ARGS` as the unprivileged user.
    @discardableResult
    func agent(_ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        var env = ["HOME": home, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "FERRY_SYSTEM_ROOT": scratch.file("none")]
        env.merge(environment) { _, new in new }
        return try Command.run(["runuser", "-u", UserFixture.user, "--", "env", "-i"]
            + env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + [BuiltProducts.ferry] + arguments)
    }

    @discardableResult
    func agent(_ arguments: String...) throws -> CommandResult { try agent(arguments) }

    func addRemote(url: String? = nil, mirrors: [String] = [], name: String = "demo") throws {
        var arguments = ["remote-add", "--user", name, url ?? server.url, "--ed25519-key", publisher.publicKey]
        for mirror in mirrors { arguments += ["--mirror", mirror] }
        let result = try agent(arguments)
        XCTAssertEqual(result.status, 0, result.err)
    }

    /// The user's install state, for "untouched" checks (lock files excluded).
    func snapshot() -> [String: String] { TreeSnapshot.take(dataRoot, excluding: ["locks"]) }

    func run() throws -> String { try agent("run", UserFixture.ref).out }
}
