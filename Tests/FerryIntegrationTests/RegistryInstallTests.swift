import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// A `--user` install from Debian's `docker-registry`, with images pushed by `skopeo copy --sign-by` and the
/// GPG signatures skopeo wrote served from a lookaside web server.
final class RegistryInstallTests: XCTestCase {
    var fixture: UserFixture!
    var registry: Registry!
    var lookaside: StaticServer!
    var gnupg: TemporaryDirectory!
    var fingerprint = ""

    override func setUpWithError() throws {
        try XCTSkipUnless(getuid() == 0, "creates test users and runs the agent as one")
        fixture = try UserFixture()
        registry = try Registry(scratch: fixture.scratch)
        try FileManager.default.createDirectory(atPath: fixture.scratch.file("sigstore"), withIntermediateDirectories: true)
        lookaside = try StaticServer(root: fixture.scratch.file("sigstore"), scratch: fixture.scratch)
        gnupg = try TemporaryDirectory(prefix: "g")
        chmod(gnupg.path, 0o700)
        try Command.check(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-generate-key",
                           "Ferry Registry <r@example.com>", "ed25519", "sign", "never"], environment: ["GNUPGHOME": gnupg.path])
        let listing = try Command.check(["gpg", "--batch", "--with-colons", "--list-secret-keys"],
                                        environment: ["GNUPGHOME": gnupg.path]).out
        fingerprint = String(listing.split(separator: "\n").first { $0.hasPrefix("fpr:") }?
            .split(separator: ":", omittingEmptySubsequences: false)[9] ?? "")
        try Command.check(["gpg", "--batch", "--armor", "--export", "--output", fixture.scratch.file("registry.asc")],
                          environment: ["GNUPGHOME": gnupg.path])
        chmod(fixture.scratch.file("registry.asc"), 0o644)
        // skopeo writes signatures for this registry into the lookaside directory.
        let registriesD = fixture.scratch.file("registries.d")
        try FileManager.default.createDirectory(atPath: registriesD, withIntermediateDirectories: true)
        try fixture.scratch.write("registries.d/ferry.yaml", """
            docker:
              \(registry.hostPort):
                lookaside-staging: file://\(fixture.scratch.file("sigstore"))
            """)
    }

    override func tearDown() {
        if let gnupg { _ = try? Command.run(["gpgconf", "--homedir", gnupg.path, "--kill", "all"]) }
        lookaside?.stop()
        registry?.stop()
        fixture?.server.stop()
    }

    /// Builds `version` with `ferry build` and pushes it with skopeo to `ns/hello:stable`, signed by GPG.
    func push(_ version: String) throws {
        let tree = try fixture.publisher.appTree(version: version)
        let layout = fixture.scratch.file("push-\(version)")
        try Command.check([BuiltProducts.ferry, "build", tree, layout, "--ref", "hello", "--command", "/bin/hello"])
        try Command.check([
            "skopeo", "--registries.d", fixture.scratch.file("registries.d"), "copy", "--dest-tls-verify=false",
            "--sign-by", fingerprint, "oci:\(layout):hello", "docker://\(registry.hostPort)/ns/hello:stable",
        ], environment: ["GNUPGHOME": gnupg.path])
        try Command.check(["chmod", "-R", "a+rX", fixture.scratch.file("sigstore")])
        // Two signatures a second apart need distinct claim timestamps (skopeo writes whole seconds).
        sleep(1)
    }

    func testInstallUpdateRunAndUninstallFromARegistryWithLookasideSignatures() throws {
        try push("v1")
        let add = try fixture.agent("remote-add", "--user", "reg", "http://\(registry.hostPort)/ns", "--registry",
                                    "--gpg-key", fixture.scratch.file("registry.asc"),
                                    "--signature-lookaside", lookaside.url)
        XCTAssertEqual(add.status, 0, add.err)
        let install = try fixture.agent("install", "--user", "reg", "hello:stable")
        XCTAssertEqual(install.status, 0, install.err)
        XCTAssertEqual(try fixture.agent("run", "hello:stable").out, "hello v1 \n")

        try push("v2")
        let update = try fixture.agent("update", "--user")
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertTrue(update.out.contains("updated"), update.out)
        XCTAssertEqual(try fixture.agent("run", "hello:stable").out, "hello v2 \n")

        XCTAssertEqual(try fixture.agent("uninstall", "--user", "hello:stable").status, 0)
        XCTAssertEqual(try fixture.agent("run", "hello:stable").status, 1)
    }

    /// A zstd:chunked image on a registry updates by range requests too: the agent reads the TOC and the changed
    /// file's frames from the registry's blob URL (with the registry's own auth headers, if any) and reuses the rest.
    func testAChunkedLayerUpdatesFromTheRegistryByRanges() throws {
        let tree = fixture.scratch.file("chunked-tree")
        var generator = SystemRandomNumberGenerator()
        func random(_ count: Int) -> Data { Data((0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }) }
        try FileManager.default.createDirectory(atPath: tree + "/bin", withIntermediateDirectories: true)
        try fixture.scratch.write("chunked-tree/bin/hello", "#!/bin/sh\necho chunked\n")
        chmod(tree + "/bin/hello", 0o755)
        try random(3_000_000).write(to: URL(fileURLWithPath: tree + "/big"))
        func pushChunked(_ name: String) throws {
            try random(100_000).write(to: URL(fileURLWithPath: tree + "/changing"))
            let layout = fixture.scratch.file("chunked-\(name)")
            try Command.check([BuiltProducts.ferry, "build", tree, layout, "--ref", "hello", "--command", "/bin/hello",
                               "--compression", "zstd:chunked"])
            try Command.check([
                "skopeo", "--registries.d", fixture.scratch.file("registries.d"), "copy", "--dest-tls-verify=false",
                "--sign-by", fingerprint, "oci:\(layout):hello", "docker://\(registry.hostPort)/ns/hello:stable",
            ], environment: ["GNUPGHOME": gnupg.path])
            try Command.check(["chmod", "-R", "a+rX", fixture.scratch.file("sigstore")])
            sleep(1)
        }
        try pushChunked("v1")
        XCTAssertEqual(try fixture.agent("remote-add", "--user", "reg", "http://\(registry.hostPort)/ns", "--registry",
                                         "--gpg-key", fixture.scratch.file("registry.asc"),
                                         "--signature-lookaside", lookaside.url).status, 0)
        XCTAssertEqual(try fixture.agent("install", "--user", "reg", "hello:stable").status, 0)
        try pushChunked("v2")
        let update = try fixture.agent("update", "--user")
        XCTAssertEqual(update.status, 0, update.err)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath:
            "\(fixture.dataRoot)/installed/\(stateName("hello:stable"))/files/changing")),
                       try Data(contentsOf: URL(fileURLWithPath: tree + "/changing")))
        // What the agent counted as downloaded for the update (its progress line): the 100 kB file, the TOC and a
        // few headers, not the 3 MB layer.
        let done = try XCTUnwrap(update.err.components(separatedBy: "downloading: done, ").last?
            .split(separator: " ").prefix(2).joined(separator: " "))
        XCTAssertTrue(done.hasSuffix(" KiB") && (Double(done.dropLast(4)) ?? 1e9) < 400, update.err)
    }

    func testRegistryImageSignedForAnotherTagIsRefused() throws {
        try push("v1")
        // Copy the signed image to another tag: the signature still names ns/hello:stable.
        try Command.check(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                           "docker://\(registry.hostPort)/ns/hello:stable", "docker://\(registry.hostPort)/ns/hello:beta"])
        XCTAssertEqual(try fixture.agent("remote-add", "--user", "reg", "http://\(registry.hostPort)/ns", "--registry",
                                         "--gpg-key", fixture.scratch.file("registry.asc"),
                                         "--signature-lookaside", lookaside.url).status, 0)
        let result = try fixture.agent("install", "--user", "reg", "hello:beta")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.err.contains("signed for \"\(registry.hostPort)/ns/hello:stable\""), result.err)
    }

    /// A registry remote mirrored into a directory: the GPG signatures skopeo wrote travel with the images, and a
    /// layout remote configured with the registry's signed identity installs from the copy with the registry gone.
    func testMirrorOfARegistryRemoteInstallsFromADirectoryWithTheRegistryDown() throws {
        try push("v1")
        XCTAssertEqual(try fixture.agent("remote-add", "--user", "reg", "http://\(registry.hostPort)/ns", "--registry",
                                         "--gpg-key", fixture.scratch.file("registry.asc"),
                                         "--signature-lookaside", lookaside.url).status, 0)
        let usb = fixture.scratch.file("usb")
        try FileManager.default.createDirectory(atPath: usb, withIntermediateDirectories: true)
        try Command.check(["chown", "\(UserFixture.user):\(UserFixture.user)", usb])
        // A registry cannot list its images: the refs are named.
        let unnamed = try fixture.agent("mirror", "reg", usb)
        XCTAssertEqual(unnamed.status, 1)
        XCTAssertEqual(unnamed.err, "ferry: a registry cannot list its images: name the refs to mirror\n")
        let mirror = try fixture.agent("mirror", "reg", usb, "hello:stable")
        XCTAssertEqual(mirror.status, 0, mirror.err)
        XCTAssertTrue(mirror.out.contains("hello:stable sha256:"), mirror.out)
        XCTAssertTrue(mirror.out.contains("add it with --signed-identity \(registry.hostPort)/ns"), mirror.out)
        XCTAssertEqual(try Command.run(["skopeo", "inspect", "--raw", "oci:\(usb):hello:stable"]).status, 0)

        let lan = try StaticServer(root: usb, scratch: fixture.scratch)
        defer { lan.stop() }
        registry.stop()
        lookaside.stop()
        // Without the signed identity the signatures name another image, and nothing installs.
        XCTAssertEqual(try fixture.agent("remote-add", "--user", "plain", lan.url, "--gpg-key",
                                         fixture.scratch.file("registry.asc")).status, 0)
        let refused = try fixture.agent("install", "--user", "plain", "hello:stable")
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.err.contains("signed for \"\(registry.hostPort)/ns/hello:stable\""), refused.err)
        XCTAssertEqual(try fixture.agent("remote-add", "--user", "lan", lan.url, "--gpg-key",
                                         fixture.scratch.file("registry.asc"),
                                         "--signed-identity", "\(registry.hostPort)/ns").status, 0)
        let install = try fixture.agent("install", "--user", "lan", "hello:stable")
        XCTAssertEqual(install.status, 0, install.err)
        XCTAssertEqual(try fixture.agent("run", "hello:stable").out, "hello v1 \n")
        XCTAssertTrue(try fixture.agent("history", "--user").out.contains("install hello:stable from lan"))
    }

    /// `ferry mirror --to-registry`: the verified images go to a second registry, their signatures to a lookaside
    /// directory that skopeo (an independent implementation) reads and verifies, and the agent installs through the
    /// second registry, configured as a mirror of the first, with the first one down.
    func testMirrorToARegistryWritesALookasideSkopeoVerifies() throws {
        try push("v1")
        XCTAssertEqual(try fixture.agent("remote-add", "--user", "reg", "http://\(registry.hostPort)/ns", "--registry",
                                         "--gpg-key", fixture.scratch.file("registry.asc"),
                                         "--signature-lookaside", lookaside.url).status, 0)
        let second = try Registry(scratch: fixture.scratch)
        defer { second.stop() }
        let sigstore = fixture.scratch.file("sigstore2")
        try FileManager.default.createDirectory(atPath: sigstore, withIntermediateDirectories: true)
        try Command.check(["chown", "\(UserFixture.user):\(UserFixture.user)", sigstore])
        let arguments = ["mirror", "reg", "http://\(second.hostPort)/ns", "hello:stable", "--to-registry",
                         "--dest-lookaside", sigstore]
        let pushed = try fixture.agent(arguments)
        XCTAssertEqual(pushed.status, 0, pushed.err)
        XCTAssertTrue(pushed.out.contains("pushed to \(second.hostPort)/ns/hello:stable, 2 blobs sent"), pushed.out)
        XCTAssertTrue(pushed.out.contains("its signatures name \(registry.hostPort)/ns/hello:stable"), pushed.out)
        let again = try fixture.agent(arguments)
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertTrue(again.out.contains("0 blobs sent"), again.out)
        XCTAssertTrue(again.out.contains("2 already there"), again.out)

        // skopeo reads the lookaside and checks the signature, remapping the pushed name to the signed one.
        try fixture.scratch.write("registries.d/second.yaml", """
            docker:
              \(second.hostPort):
                lookaside: file://\(sigstore)
            """)
        func policy(_ identity: String) throws -> String {
            let path = fixture.scratch.file("policy-\(UInt32.random(in: 0...UInt32.max)).json")
            try Data("""
                {"default": [{"type": "reject"}], "transports": {"docker": {"\(second.hostPort)/ns": [{"type":
                "signedBy", "keyType": "GPGKeys", "keyPath": "\(fixture.scratch.file("registry.asc"))",
                "signedIdentity": \(identity)}]}}}
                """.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }
        func skopeoCopy(_ policyPath: String) throws -> CommandResult {
            try Command.run(["skopeo", "--policy", policyPath, "--registries.d", fixture.scratch.file("registries.d"),
                             "copy", "--remove-signatures", "--src-tls-verify=false",
                             "docker://\(second.hostPort)/ns/hello:stable",
                             "oci:\(fixture.scratch.file("skopeo-\(UInt32.random(in: 0...UInt32.max))")):hello"],
                            environment: ["GNUPGHOME": gnupg.path])
        }
        let remapped = try skopeoCopy(try policy(#"{"type": "remapIdentity", "prefix": "\#(second.hostPort)/ns", "#
            + #""signedPrefix": "\#(registry.hostPort)/ns"}"#))
        XCTAssertEqual(remapped.status, 0, remapped.err)
        // Without the remap the signature names another image, and skopeo refuses it: the check is real.
        let exact = try skopeoCopy(try policy(#"{"type": "matchRepoDigestOrExact"}"#))
        XCTAssertNotEqual(exact.status, 0)
        XCTAssertTrue(exact.err.contains("not accepted"), exact.err)

        // The agent installs through the second registry, a mirror of the first, with the first one down.
        let served = try StaticServer(root: sigstore, scratch: fixture.scratch)
        defer { served.stop() }
        registry.stop()
        XCTAssertEqual(try fixture.agent("remote-add", "--user", "reg", "http://\(registry.hostPort)/ns", "--registry",
                                         "--mirror", "http://\(second.hostPort)/ns",
                                         "--gpg-key", fixture.scratch.file("registry.asc"),
                                         "--signature-lookaside", served.url).status, 0)
        let install = try fixture.agent("install", "--user", "reg", "hello:stable")
        XCTAssertEqual(install.status, 0, install.err)
        XCTAssertEqual(try fixture.agent("run", "hello:stable").out, "hello v1 \n")
    }
}
