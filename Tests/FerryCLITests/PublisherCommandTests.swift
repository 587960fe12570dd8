import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// `ferry build`, `ferry sign` and `ferry verify` against the independent tools: skopeo, umoci, minisign, gpg.
final class PublisherCommandTests: XCTestCase {
    var tmp: TemporaryDirectory!
    let ref = "example.com/hello:v1"
    var layout: String { tmp.file("layout") }

    override func setUpWithError() throws {
        tmp = try TemporaryDirectory(prefix: "fp")
        try FileManager.default.createDirectory(atPath: tmp.file("app/bin"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: tmp.file("app/share/doc"), withIntermediateDirectories: true)
        try tmp.write("app/bin/hello", "#!/bin/sh\necho hello\n")
        chmod(tmp.file("app/bin/hello"), 0o755)
        try tmp.write("app/share/doc/README", String(repeating: "Ferry ", count: 5000))
        try FileManager.default.createSymbolicLink(atPath: tmp.file("app/bin/hi"), withDestinationPath: "hello")
        try ferry(["build", tmp.file("app"), layout, "--ref", ref, "--command", "/bin/hello"])
    }

    @discardableResult
    func ferry(_ arguments: [String], environment: [String: String] = [:], expect status: Int32 = 0,
               file: StaticString = #filePath, line: UInt = #line) throws -> CommandResult {
        let result = try Command.run([BuiltProducts.ferry] + arguments, environment: environment)
        XCTAssertEqual(result.status, status, "ferry \(arguments.joined(separator: " ")): \(result.err)", file: file, line: line)
        return result
    }

    var manifestDigest: Digest {
        get throws { try ImageLayout(path: layout).descriptor(for: try Ref(ref)).digest }
    }

    var signatureDir: String {
        get throws {
            let dir = layout + "/" + SignatureSet.directory(ref: try Ref(ref), digest: try manifestDigest)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            return dir
        }
    }

    func claim(digest: Digest? = nil, identity: String? = nil, timestamp: Int64 = 1_700_000_000) throws -> Data {
        Claim(digest: try digest ?? manifestDigest, identity: identity ?? ref, timestamp: timestamp).serialized()
    }

    func minisignKeys(_ name: String = "k") throws -> (pub: String, sec: String) {
        let pub = tmp.file("\(name).pub"), sec = tmp.file("\(name).key")
        try Command.check(["minisign", "-G", "-W", "-p", pub, "-s", sec])
        return (pub, sec)
    }

    /// Signs `claimData` with stock minisign into claim-1.json(.minisig).
    func minisignClaim(_ claimData: Data, key: String, legacy: Bool = false) throws {
        let dir = try signatureDir
        try claimData.write(to: URL(fileURLWithPath: dir + "/claim-1.json"))
        try Command.check(["minisign", "-S", "-s", key, "-m", dir + "/claim-1.json", "-x", dir + "/claim-1.json.minisig"]
                          + (legacy ? ["-l"] : []))
    }

    func gpgHome() throws -> (env: [String: String], fingerprint: String, publicKey: String) {
        let home = try TemporaryDirectory(prefix: "g")
        chmod(home.path, 0o700)
        // Keep the directory alive with the test, and stop the agent gpg started there.
        addTeardownBlock {
            _ = try? Command.run(["gpgconf", "--homedir", home.path, "--kill", "all"])
            _ = home
        }
        let env = ["GNUPGHOME": home.path]
        try Command.check(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-generate-key",
                           "Ferry Test <test@example.com>", "ed25519", "sign", "never"], environment: env)
        let listing = try Command.check(["gpg", "--batch", "--with-colons", "--list-secret-keys"], environment: env).out
        let fpr = listing.split(separator: "\n").first { $0.hasPrefix("fpr:") }?.split(separator: ":", omittingEmptySubsequences: false)[9]
        let key = tmp.file("gpg-\(UInt32.random(in: 0...UInt32.max)).asc")
        try Command.check(["gpg", "--batch", "--armor", "--export", "--output", key], environment: env)
        return (env, String(fpr ?? ""), key)
    }

    // MARK: Independent readers

    func testSkopeoAndUmociReadWhatFerryBuildWrites() throws {
        try Command.check(["skopeo", "copy", "oci:\(layout):\(ref)", "dir:\(tmp.file("skopeo-out"))"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.file("skopeo-out/manifest.json")))
        try Command.check(["umoci", "unpack", "--rootless", "--image", "\(layout):\(ref)", tmp.file("bundle")])
        let unpacked = TreeSnapshot.take(tmp.file("bundle/rootfs"))
        XCTAssertEqual(try String(contentsOfFile: tmp.file("bundle/rootfs/bin/hello"), encoding: .utf8), "#!/bin/sh\necho hello\n")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: tmp.file("bundle/rootfs/bin/hi")), "hello")
        XCTAssertEqual(Set(unpacked.keys), Set(TreeSnapshot.take(tmp.file("app")).keys))
        // The manifest skopeo copied is byte-identical: same digest.
        let copied = try Data(contentsOf: URL(fileURLWithPath: tmp.file("skopeo-out/manifest.json")))
        XCTAssertEqual(Digest.of(copied), try manifestDigest)
    }

    func testZstdLayersAreReadBySkopeoAndZstd() throws {
        // Debian 12's umoci predates zstd layers; skopeo copies them and zstd + tar read them.
        try ferry(["build", tmp.file("app"), layout, "--ref", "example.com/hello:zstd", "--compression", "zstd"])
        try Command.check(["skopeo", "copy", "oci:\(layout):example.com/hello:zstd", "dir:\(tmp.file("z"))"])
        let manifest = try ImageLayout(path: layout).manifest(try ImageLayout(path: layout).descriptor(for: try Ref("example.com/hello:zstd")))
        XCTAssertEqual(manifest.layers[0].mediaType, MediaType.ociLayerZstd)
        let blob = tmp.file("z/" + manifest.layers[0].digest.hex)
        let listing = try Command.check(["sh", "-c", "zstd -dc \(blob) | tar -tvf - --numeric-owner"]).out
        XCTAssertTrue(listing.contains("share/doc/README"), listing)
        XCTAssertTrue(listing.contains(" 0/0 "), listing)
    }

    func testBuildingAgainReplacesTheRefAndKeepsOthers() throws {
        try ferry(["build", tmp.file("app"), layout, "--ref", "example.com/other:v1"])
        try tmp.write("app/new", "x")
        try ferry(["build", tmp.file("app"), layout, "--ref", ref])
        let refs = try ImageLayout(path: layout).refs().map(\.ref.string).sorted()
        XCTAssertEqual(refs, ["example.com/hello:v1", "example.com/other:v1"])
    }

    // MARK: Stock signers, Ferry verifies

    func testVerifyAcceptsStockMinisignPrehashedAndLegacySignatures() throws {
        let keys = try minisignKeys()
        for legacy in [false, true] {
            try minisignClaim(try claim(), key: keys.sec, legacy: legacy)
            let out = try ferry(["verify", layout, "--ref", ref, "--ed25519-key", keys.pub]).out
            XCTAssertTrue(out.contains("OK"), out)
        }
    }

    func testVerifyAcceptsGpgSignOverAClaim() throws {
        let gpg = try gpgHome()
        try claim().write(to: URL(fileURLWithPath: tmp.file("claim.json")))
        try Command.check(["gpg", "--batch", "--output", try signatureDir + "/signature-1", "--sign", tmp.file("claim.json")],
                          environment: gpg.env)
        try ferry(["verify", layout, "--ref", ref, "--gpg-key", gpg.publicKey])
    }

    func testVerifyAcceptsSkopeoStandaloneSign() throws {
        let gpg = try gpgHome()
        let manifest = layout + "/" + ImageLayout.blobPath(try manifestDigest)
        try Command.check(["skopeo", "standalone-sign", manifest, ref, gpg.fingerprint, "--output",
                           try signatureDir + "/signature-1"], environment: gpg.env)
        try ferry(["verify", layout, "--ref", ref, "--gpg-key", gpg.publicKey])
    }

    // MARK: Ferry signs, stock tools verify

    func testFerrySignMinisignSignatureVerifiesWithMinisign() throws {
        let keys = try minisignKeys()
        try ferry(["sign", layout, "--ref", ref, "--ed25519-key", keys.sec])
        let dir = try signatureDir
        let result = try Command.run(["minisign", "-V", "-p", keys.pub, "-m", dir + "/claim-1.json",
                                      "-x", dir + "/claim-1.json.minisig"])
        XCTAssertEqual(result.status, 0, result.err)
        XCTAssertTrue(result.out.contains("Trusted comment: ferry claim"), result.out)
        try ferry(["verify", layout, "--ref", ref, "--ed25519-key", keys.pub])
    }

    func testFerrySignGpgSignatureVerifiesWithGpgAndSkopeo() throws {
        let gpg = try gpgHome()
        try ferry(["sign", layout, "--ref", ref, "--gpg-key", gpg.fingerprint], environment: gpg.env)
        let sig = try signatureDir + "/signature-1"
        let verify = try Command.run(["gpg", "--batch", "--verify", sig], environment: gpg.env)
        XCTAssertEqual(verify.status, 0, verify.err)
        let manifest = layout + "/" + ImageLayout.blobPath(try manifestDigest)
        let skopeo = try Command.run(["skopeo", "standalone-verify", manifest, ref, gpg.fingerprint, sig], environment: gpg.env)
        XCTAssertEqual(skopeo.status, 0, skopeo.err)
        XCTAssertTrue(skopeo.out.contains("Signature verified"), skopeo.out)
        try ferry(["verify", layout, "--ref", ref, "--gpg-key", gpg.publicKey])
    }

    // MARK: Refusals, each named

    func assertVerifyFails(_ keyArgs: [String], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try ferry(["verify", layout, "--ref", ref] + keyArgs, expect: 1, file: file, line: line)
        XCTAssertTrue(result.err.contains(fragment), "expected \(fragment.debugDescription) in: \(result.err)",
                      file: file, line: line)
    }

    func testWrongKeyIsRefused() throws {
        let signer = try minisignKeys("a"), other = try minisignKeys("b")
        try minisignClaim(try claim(), key: signer.sec)
        try assertVerifyFails(["--ed25519-key", other.pub], "signed by unknown minisign key")
    }

    func testAlteredClaimIsRefused() throws {
        let keys = try minisignKeys()
        try minisignClaim(try claim(), key: keys.sec)
        let path = try signatureDir + "/claim-1.json"
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        data[data.count - 3] ^= 0x01
        try data.write(to: URL(fileURLWithPath: path))
        try assertVerifyFails(["--ed25519-key", keys.pub], "signature")
    }

    func testClaimForAnotherDigestIsRefused() throws {
        let keys = try minisignKeys()
        try minisignClaim(try claim(digest: Digest.of(Data("other".utf8))), key: keys.sec)
        try assertVerifyFails(["--ed25519-key", keys.pub], "digest")
    }

    func testClaimForAnotherRefIsRefused() throws {
        let keys = try minisignKeys()
        try minisignClaim(try claim(identity: "example.com/evil:v1"), key: keys.sec)
        try assertVerifyFails(["--ed25519-key", keys.pub], "example.com/evil:v1")
    }

    func testUnknownCriticalKeyIsRefused() throws {
        let keys = try minisignKeys()
        let json = """
            {"critical":{"identity":{"docker-reference":"\(ref)"},"image":{"docker-manifest-digest":"\(try manifestDigest)"},\
            "type":"atomic container signature","x-ferry-restrict":"anything"},"optional":{"timestamp":1700000000}}
            """
        try minisignClaim(Data(json.utf8), key: keys.sec)
        try assertVerifyFails(["--ed25519-key", keys.pub], "unknown critical key")
    }

    func testTruncatedAndGarbageSignatureFilesAreRefused() throws {
        let keys = try minisignKeys()
        try minisignClaim(try claim(), key: keys.sec)
        let sig = try signatureDir + "/claim-1.json.minisig"
        let data = try Data(contentsOf: URL(fileURLWithPath: sig))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: sig))
        try assertVerifyFails(["--ed25519-key", keys.pub], "signature")
        try Data((0..<200).map { UInt8($0) }).write(to: URL(fileURLWithPath: sig))
        try assertVerifyFails(["--ed25519-key", keys.pub], "signature")
        let gpg = try gpgHome()
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: try signatureDir + "/signature-1"))
        try FileManager.default.removeItem(atPath: try signatureDir + "/claim-1.json")
        try FileManager.default.removeItem(atPath: sig)
        try assertVerifyFails(["--gpg-key", gpg.publicKey], "signature")
    }

    func testTamperedBlobWrongSizeAndDiffIDMismatchAreRefused() throws {
        let keys = try minisignKeys()
        try ferry(["sign", layout, "--ref", ref, "--ed25519-key", keys.sec])
        let manifest = try ImageLayout(path: layout).manifest(try ImageLayout(path: layout).descriptor(for: try Ref(ref)))
        let layerPath = layout + "/" + ImageLayout.blobPath(manifest.layers[0].digest)
        let original = try Data(contentsOf: URL(fileURLWithPath: layerPath))

        var tampered = original
        tampered[tampered.count / 2] ^= 0xff
        try tampered.write(to: URL(fileURLWithPath: layerPath))
        try assertVerifyFails(["--ed25519-key", keys.pub], "has digest")

        try (original + Data([0])).write(to: URL(fileURLWithPath: layerPath))
        try assertVerifyFails(["--ed25519-key", keys.pub], "larger than its descriptor")
        try original.write(to: URL(fileURLWithPath: layerPath))
        try ferry(["verify", layout, "--ref", ref, "--ed25519-key", keys.pub])

        // A config whose diff_id does not match the layer: re-sign the new manifest so only the diff_id is wrong.
        let configPath = layout + "/" + ImageLayout.blobPath(manifest.config.digest)
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as? [String: Any] ?? [:]
        config["rootfs"] = ["type": "layers", "diff_ids": [Digest.of(Data("wrong".utf8)).description]]
        let writer = try LayoutWriter(path: layout)
        let configDesc = try writer.writeBlob(try JSONSerialization.data(withJSONObject: config), mediaType: MediaType.ociConfig)
        let newManifest = Manifest(config: configDesc, layers: manifest.layers)
        let desc = try writer.writeBlob(try JSONEncoder.canonicalOCI.encode(newManifest), mediaType: MediaType.ociManifest)
        try writer.setRef(try Ref(ref), to: desc)
        try ferry(["sign", layout, "--ref", ref, "--ed25519-key", keys.sec])
        try assertVerifyFails(["--ed25519-key", keys.pub], "diff_id")
    }

    func testUsageErrorsExitTwo() throws {
        let result = try ferry(["sign", layout, "--ref", ref], expect: 2)
        XCTAssertTrue(result.err.contains("--ed25519-key"), result.err)
        try ferry(["no-such-command"], expect: 2)
        try ferry(["verify", layout, "--ref", "../etc"], expect: 1)
    }
}
