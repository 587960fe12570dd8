import FerryCore
import FerryTestSupport
import Foundation
import XCTest

@testable import FerryTrust

/// OpenPGP signed messages, against `gpg` and `skopeo` as the peers.
final class GPGTests: XCTestCase {
    nonisolated(unsafe) private static var trustedHome: GPGHome?
    nonisolated(unsafe) private static var otherHome: GPGHome?

    private func trusted() throws -> GPGHome {
        if let home = GPGTests.trustedHome { return home }
        let home = try GPGHome(name: "Ferry Publisher", email: "publisher@example.org")
        GPGTests.trustedHome = home
        return home
    }

    private func other() throws -> GPGHome {
        if let home = GPGTests.otherHome { return home }
        let home = try GPGHome(name: "Mallory", email: "mallory@example.org")
        GPGTests.otherHome = home
        return home
    }

    override class func tearDown() {
        trustedHome = nil
        otherHome = nil
        super.tearDown()
    }

    private let claim = claimData(digest: Digest.of(Data("manifest".utf8)), identity: "org.example.App/x86_64/stable")

    func testGpgSignedClaimVerifiesWithArmoredKey() throws {
        let home = try trusted()
        let result = try GPG.verify(message: home.sign(claim), keys: [home.publicKey(armored: true)])
        XCTAssertEqual(result.content, claim)
        XCTAssertEqual(result.fingerprint, home.fingerprint)
    }

    func testGpgSignedClaimVerifiesWithBinaryKey() throws {
        let home = try trusted()
        let result = try GPG.verify(message: home.sign(claim), keys: [home.publicKey(armored: false)])
        XCTAssertEqual(result.content, claim)
        XCTAssertEqual(result.fingerprint, home.fingerprint)
    }

    func testArmoredSignedMessageVerifies() throws {
        let home = try trusted()
        let result = try GPG.verify(
            message: home.sign(claim, extra: ["--armor"]),
            keys: [home.publicKey(armored: true)]
        )
        XCTAssertEqual(result.content, claim)
    }

    func testSignatureVerifiesWhenSeveralKeysAreTrusted() throws {
        let home = try trusted()
        let result = try GPG.verify(
            message: home.sign(claim),
            keys: [other().publicKey(armored: true), home.publicKey(armored: false)]
        )
        XCTAssertEqual(result.fingerprint, home.fingerprint)
    }

    func testSignatureByUntrustedKeyIsRefusedAsUntrusted() throws {
        let home = try trusted()
        let mallory = try other()
        assertFerryError(.untrusted, "signed by unknown key \(mallory.fingerprint); trusted keys: \(home.fingerprint)")
        {
            try GPG.verify(message: mallory.sign(claim), keys: [home.publicKey(armored: true)])
        }
    }

    /// Uncompressed, so the flipped byte lands in the literal data and gpg reports a bad signature.
    func testTamperedMessageIsRefused() throws {
        let home = try trusted()
        var message = try home.sign(claim, extra: ["--compress-algo", "none"])
        guard let range = message.range(of: Data("org.example.App".utf8)) else {
            return XCTFail("claim not found in the uncompressed message")
        }
        message[range.lowerBound] ^= 0x20
        // Without VALIDSIG gpg names the signing key by its 16-digit key id (the fingerprint's tail).
        assertFerryError(.signatureInvalid, "bad GPG signature by key \(home.fingerprint.suffix(16))") {
            try GPG.verify(message: message, keys: [home.publicKey(armored: true)])
        }
    }

    func testTamperedCompressedMessageIsRefused() throws {
        let home = try trusted()
        var message = try home.sign(claim)
        message[message.count / 2] ^= 0xff
        assertFerryError(.signatureInvalid, "") {
            try GPG.verify(message: message, keys: [home.publicKey(armored: true)])
        }
    }

    func testTruncatedMessageIsRefused() throws {
        let home = try trusted()
        let message = try home.sign(claim)
        assertFerryError(.signatureInvalid, "") {
            try GPG.verify(message: message.prefix(message.count - 10), keys: [home.publicKey(armored: true)])
        }
        assertFerryError(.signatureInvalid, "") {
            try GPG.verify(message: message.prefix(40), keys: [home.publicKey(armored: true)])
        }
    }

    func testGarbageMessageIsRefused() throws {
        let home = try trusted()
        assertFerryError(.signatureInvalid, "") {
            try GPG.verify(message: Data("this is not an OpenPGP message".utf8), keys: [home.publicKey(armored: true)])
        }
        assertFerryError(.signatureInvalid, "empty GPG signature") {
            try GPG.verify(message: Data(), keys: [home.publicKey(armored: true)])
        }
    }

    /// A detached signature carries no content: nothing to bind, so it is refused.
    func testDetachedSignatureIsRefused() throws {
        let home = try trusted()
        let detached = try home.gpg(["--detach-sign", "--local-user", home.fingerprint, "--output", "-"], input: claim)
        assertFerryError(.signatureInvalid, "") {
            try GPG.verify(message: detached.stdout, keys: [home.publicKey(armored: true)])
        }
    }

    /// containers/image accepts exactly one signature per message; so does Ferry.
    func testMessageWithTwoSignaturesIsRefused() throws {
        let home = try GPGHome(name: "First", email: "first@example.org")
        try home.gpg([
            "--pinentry-mode", "loopback", "--passphrase", "", "--quick-generate-key", "Second <second@example.org>",
            "ed25519", "sign", "never",
        ])
        let listing = try home.gpg(["--with-colons", "--list-keys"]).out
        let fingerprints = listing.split(separator: "\n").filter { $0.hasPrefix("fpr:") }
            .compactMap { $0.split(separator: ":", omittingEmptySubsequences: false).dropFirst(9).first }
            .map(String.init)
        guard let second = fingerprints.first(where: { $0 != home.fingerprint }) else {
            return XCTFail("second key not found in \(listing)")
        }
        let signed = try home.gpg(
            ["--sign", "--local-user", home.fingerprint, "--local-user", second, "--output", "-"],
            input: claim
        ).stdout
        let keys = try home.gpg(["--export", "--armor"]).stdout
        assertFerryError(.signatureInvalid, "carries 2 signatures") { try GPG.verify(message: signed, keys: [keys]) }
    }

    /// A compression bomb: a tiny message whose content expands past the cap is stopped while gpg writes it.
    func testOversizedContentIsRefused() throws {
        let home = try trusted()
        let big = Data(repeating: 0x41, count: 2 << 20)
        let message = try home.sign(big)
        XCTAssertLessThan(message.count, 64 * 1024)
        assertFerryError(.signatureInvalid, "larger than") {
            try GPG.verify(message: message, keys: [home.publicKey(armored: true)], maxContentSize: 64 * 1024)
        }
    }

    func testFingerprintsOfArmoredAndBinaryKeys() throws {
        let home = try trusted()
        let mallory = try other()
        XCTAssertEqual(
            try GPG.fingerprints(of: [home.publicKey(armored: true), mallory.publicKey(armored: false)]),
            [home.fingerprint, mallory.fingerprint]
        )
    }

    func testGarbageKeyFileIsRefused() {
        assertFerryError(.invalidArgument, "GPG key #1") {
            try GPG.fingerprints(of: [Data("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\ngarbage\n".utf8)])
        }
        assertFerryError(.invalidArgument, "GPG key #2") {
            try GPG.fingerprints(of: [self.trusted().publicKey(armored: true), Data("x".utf8)])
        }
    }

    /// The throw-away GnuPG home is removed, and no gpg-agent was started in it.
    func testTemporaryHomeIsRemovedAfterUse() throws {
        let home = try trusted()
        let keyring = try GPG.withLock { try GPGKeyring(keys: [home.publicKey(armored: true)]) }
        let directory = keyring.directory
        XCTAssertTrue(directory.hasPrefix("/tmp/g."))
        _ = try GPG.withLock { try keyring.verify(home.sign(claim), maxContentSize: 1 << 16) }
        let entries = try FileManager.default.contentsOfDirectory(atPath: directory)
        XCTAssertFalse(entries.contains { $0.hasPrefix("S.gpg-agent") }, "agent socket in \(entries)")
        GPG.withLock { keyring.close() }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory))
    }

    // MARK: skopeo and gpg as peers

    private func manifest() -> Data {
        Data(
            #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#
                .utf8
        )
    }

    func testSkopeoStandaloneSignatureVerifies() throws {
        let home = try trusted()
        let dir = try TemporaryDirectory(prefix: "sk")
        try manifest().write(to: URL(fileURLWithPath: dir.file("manifest.json")))
        try Command.check(
            [
                "skopeo", "standalone-sign", dir.file("manifest.json"), "localhost:5000/ns/app:1.0",
                home.fingerprint, "--output", dir.file("signature-1"),
            ],
            environment: home.environment
        )
        let message = try Data(contentsOf: URL(fileURLWithPath: dir.file("signature-1")))
        let result = try GPG.verify(message: message, keys: [home.publicKey(armored: false)])
        XCTAssertEqual(result.fingerprint, home.fingerprint)
        let parsed = try Claim(parsing: result.content)
        XCTAssertEqual(parsed.digest, Digest.of(manifest()))
        XCTAssertEqual(parsed.identity, "localhost:5000/ns/app:1.0")
        XCTAssertNotNil(parsed.timestamp)
    }

    func testOurSignatureVerifiesWithGpg() throws {
        let home = try trusted()
        let signed = try GPG.sign(claim, fingerprint: home.fingerprint, homeDirectory: home.path)
        let dir = try TemporaryDirectory(prefix: "sk")
        try signed.write(to: URL(fileURLWithPath: dir.file("signature-1")))
        let result = try home.gpg(["--status-fd", "1", "--output", "-", "--decrypt", dir.file("signature-1")])
        XCTAssertTrue(result.out.contains("[GNUPG:] VALIDSIG \(home.fingerprint)"), result.out)
        try home.gpg(["--verify", dir.file("signature-1")])
        XCTAssertEqual(try GPG.verify(message: signed, keys: [home.publicKey(armored: true)]).content, claim)
    }

    func testOurSignatureVerifiesWithSkopeo() throws {
        let home = try trusted()
        let content = claimData(digest: Digest.of(manifest()), identity: "localhost:5000/ns/app:1.0")
        let signed = try GPG.sign(content, fingerprint: home.fingerprint, homeDirectory: home.path)
        let dir = try TemporaryDirectory(prefix: "sk")
        try manifest().write(to: URL(fileURLWithPath: dir.file("manifest.json")))
        try signed.write(to: URL(fileURLWithPath: dir.file("signature-1")))
        let result = try Command.check(
            [
                "skopeo", "standalone-verify", dir.file("manifest.json"),
                "localhost:5000/ns/app:1.0", home.fingerprint, dir.file("signature-1"),
            ],
            environment: home.environment
        )
        XCTAssertTrue(result.out.contains("Signature verified"), result.out)
    }

    func testSigningWithMissingKeyIsRefused() throws {
        let home = try trusted()
        assertFerryError(.invalidArgument, "no GPG secret key") {
            try GPG.sign(claim, fingerprint: String(repeating: "A", count: 40), homeDirectory: home.path)
        }
        assertFerryError(.invalidArgument, "malformed GPG key fingerprint") {
            try GPG.sign(claim, fingerprint: "<script>", homeDirectory: home.path)
        }
    }
}
