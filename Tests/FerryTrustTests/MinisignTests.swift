import FerryCore
import FerryTestSupport
import FerryTrust
import Foundation
import XCTest

/// minisign interoperability, against stock `minisign` 0.11 as the peer.
final class MinisignTests: XCTestCase {
    nonisolated(unsafe) private static var sharedKeys: MinisignKeyFiles?

    private func keys() throws -> MinisignKeyFiles {
        if let keys = MinisignTests.sharedKeys { return keys }
        let keys = try MinisignKeyFiles()
        MinisignTests.sharedKeys = keys
        return keys
    }

    override class func tearDown() {
        sharedKeys = nil
        super.tearDown()
    }

    private let message = Data("{\"critical\":{}}\n".utf8)

    // MARK: keys

    func testUnencryptedSecretKeyFromMinisignParses() throws {
        let keys = try keys()
        let secret = try MinisignSecretKey(parsing: keys.secretKeyText, password: nil)
        XCTAssertEqual(secret.publicKey, try keys.publicKey())
    }

    func testPublicKeyFileTextMatchesMinisignByteForByte() throws {
        let keys = try keys()
        let publicKey = try keys.publicKey()
        XCTAssertEqual(publicKey.fileText, keys.publicKeyText)
        XCTAssertTrue(keys.publicKeyText.hasPrefix("untrusted comment: minisign public key \(publicKey.keyID)\n"))
        XCTAssertLessThanOrEqual(publicKey.keyID.count, 16)
        XCTAssertEqual(publicKey.keyID, publicKey.keyID.uppercased())
    }

    /// minisign prints key numbers with `%" PRIX64`: no zero padding. One random key in 16 starts with a zero
    /// digit, which is how a run found that Ferry padded it.
    func testKeyIDHasNoLeadingZerosAsMinisignPrintsIt() throws {
        let keyNumber: [UInt8] = [0x3C, 0xDB, 0xE7, 0x79, 0x61, 0x9B, 0x3A, 0x0E]   // little-endian 0x0E3A9B6179E7DB3C
        let line = Data([0x45, 0x64] + keyNumber + [UInt8](repeating: 7, count: 32)).base64EncodedString()
        let key = try MinisignPublicKey(parsing: line)
        XCTAssertEqual(key.keyID, "E3A9B6179E7DB3C")
        XCTAssertTrue(key.fileText.hasPrefix("untrusted comment: minisign public key E3A9B6179E7DB3C\n"))
    }

    func testBareBase64PublicKeyLineParses() throws {
        let keys = try keys()
        let line = String(keys.publicKeyText.split(separator: "\n")[1])
        XCTAssertEqual(try MinisignPublicKey(parsing: line), try keys.publicKey())
    }

    func testGarbagePublicKeyIsRefused() {
        assertFerryError(.invalidArgument, "not a minisign public key") {
            try MinisignPublicKey(parsing: "untrusted comment: x\nAAAA\n")
        }
        assertFerryError(.invalidArgument, "not a minisign public key") {
            try MinisignPublicKey(parsing: "hello\nworld\nagain\n")
        }
    }

    /// The encrypted key is made by `minisign -G` itself, with the password fed on stdin (minisign 0.11 reads it
    /// with fgets from stdin when no terminal is attached). Deriving the key costs a few seconds (1 GiB scrypt).
    func testPasswordEncryptedSecretKeyFromMinisignParses() throws {
        let dir = try TemporaryDirectory(prefix: "ms")
        try Command.check(
            ["minisign", "-G", "-p", dir.file("k.pub"), "-s", dir.file("k.sec")],
            input: Data("correct horse\ncorrect horse\n".utf8)
        )
        let text = try String(contentsOfFile: dir.file("k.sec"), encoding: .utf8)
        let secret = try MinisignSecretKey(parsing: text, password: "correct horse")
        XCTAssertEqual(
            secret.publicKey,
            try MinisignPublicKey(
                parsing: String(
                    contentsOfFile: dir.file("k.pub"),
                    encoding: .utf8
                )
            )
        )
    }

    func testEncryptedSecretKeyWithoutPasswordIsRefused() throws {
        let text = try MinisignSecretKey.generate().encryptedFileText(
            password: "pw",
            opsLimit: 32768,
            memLimit: 16 << 20
        )
        assertFerryError(.invalidArgument, "a password is needed") {
            try MinisignSecretKey(parsing: text, password: nil)
        }
    }

    func testWrongPasswordIsRefused() throws {
        let text = try MinisignSecretKey.generate().encryptedFileText(
            password: "right",
            opsLimit: 32768,
            memLimit: 16 << 20
        )
        assertFerryError(.invalidArgument, "wrong password") { try MinisignSecretKey(parsing: text, password: "wrong") }
    }

    /// Our encrypted key file (with cheap scrypt limits, which minisign reads from the file) is usable by minisign.
    func testOurEncryptedSecretKeySignsWithMinisign() throws {
        let secret = try MinisignSecretKey.generate()
        let dir = try TemporaryDirectory(prefix: "ms")
        try dir.write("k.sec", secret.encryptedFileText(password: "pw", opsLimit: 32768, memLimit: 16 << 20))
        try dir.write("k.pub", secret.publicKey.fileText)
        try dir.write("m", "payload")
        try Command.check(["minisign", "-S", "-s", dir.file("k.sec"), "-m", dir.file("m")], input: Data("pw\n".utf8))
        try Command.check(["minisign", "-V", "-p", dir.file("k.pub"), "-m", dir.file("m")])
        let reread = try MinisignSecretKey(
            parsing: String(contentsOfFile: dir.file("k.sec"), encoding: .utf8),
            password: "pw"
        )
        XCTAssertEqual(reread.publicKey, secret.publicKey)
    }

    /// `generate()` + `fileText()` make the files `minisign -G -W` would; minisign signs with them.
    func testGeneratedUnencryptedSecretKeySignsWithMinisign() throws {
        let secret = try MinisignSecretKey.generate()
        let dir = try TemporaryDirectory(prefix: "ms")
        try dir.write("k.sec", secret.fileText())
        try dir.write("k.pub", secret.publicKey.fileText)
        try dir.write("m", "payload")
        try Command.check(["minisign", "-S", "-s", dir.file("k.sec"), "-m", dir.file("m"), "-t", "ours"])
        try Command.check(["minisign", "-V", "-p", dir.file("k.pub"), "-m", dir.file("m")])
        let signature = try MinisignSignature(parsing: String(contentsOfFile: dir.file("m.minisig"), encoding: .utf8))
        XCTAssertEqual(try signature.verify(Data("payload".utf8), keys: [secret.publicKey]), "ours")
    }

    func testSecretKeyFileTextRoundTrips() throws {
        let secret = try MinisignSecretKey.generate()
        XCTAssertEqual(try MinisignSecretKey(parsing: secret.fileText(), password: nil).publicKey, secret.publicKey)
        XCTAssertEqual(try MinisignSecretKey(parsing: secret.fileText(), password: nil).fileText(), secret.fileText())
    }

    // MARK: signatures from minisign

    func testPrehashedSignatureFromMinisignVerifies() throws {
        let keys = try keys()
        let text = try keys.sign(message, trustedComment: "timestamp:1764000000\tfile:claim-1.json")
        let signature = try MinisignSignature(parsing: text)
        XCTAssertTrue(signature.isPrehashed)
        XCTAssertEqual(
            try signature.verify(message, keys: [keys.publicKey()]),
            "timestamp:1764000000\tfile:claim-1.json"
        )
    }

    func testDefaultTrustedCommentFromMinisignVerifies() throws {
        let keys = try keys()
        let signature = try MinisignSignature(parsing: keys.sign(message))
        XCTAssertTrue(try signature.verify(message, keys: [keys.publicKey()]).hasPrefix("timestamp:"))
    }

    func testLegacySignatureFromMinisignVerifies() throws {
        let keys = try keys()
        let signature = try MinisignSignature(parsing: keys.sign(message, legacy: true, trustedComment: "legacy"))
        XCTAssertFalse(signature.isPrehashed)
        XCTAssertEqual(try signature.verify(message, keys: [keys.publicKey()]), "legacy")
    }

    func testSignatureFileWithCRLFLineEndingsVerifies() throws {
        let keys = try keys()
        let text = try keys.sign(message, trustedComment: "crlf").replacingOccurrences(of: "\n", with: "\r\n")
        XCTAssertEqual(try MinisignSignature(parsing: text).verify(message, keys: [keys.publicKey()]), "crlf")
    }

    // MARK: our signatures, checked by minisign

    func testOurPrehashedSignatureVerifiesWithMinisign() throws {
        try checkOurSignatureWithMinisign(prehashed: true)
    }

    func testOurLegacySignatureVerifiesWithMinisign() throws {
        try checkOurSignatureWithMinisign(prehashed: false)
    }

    private func checkOurSignatureWithMinisign(prehashed: Bool) throws {
        let keys = try keys()
        let secret = try MinisignSecretKey(parsing: keys.secretKeyText, password: nil)
        let text = try secret.sign(
            message,
            trustedComment: "timestamp:1764000000\tfile:claim-1.json",
            prehashed: prehashed
        )
        try keys.directory.write("ours", String(decoding: message, as: UTF8.self))
        try keys.directory.write("ours.minisig", text)
        let result = try Command.check(["minisign", "-V", "-p", keys.publicKeyPath, "-m", keys.directory.file("ours")])
        XCTAssertTrue(result.out.contains("Trusted comment: timestamp:1764000000\tfile:claim-1.json"))
        XCTAssertEqual(try MinisignSignature(parsing: text).isPrehashed, prehashed)
        XCTAssertTrue(text.hasPrefix("untrusted comment: signature from minisign secret key\n"))
    }

    func testMultiLineTrustedCommentIsRefusedWhenSigning() throws {
        let secret = try MinisignSecretKey.generate()
        assertFerryError(.invalidArgument, "single line") {
            try secret.sign(Data(), trustedComment: "a\nuntrusted comment: b")
        }
    }

    // MARK: attacks

    func testSignatureByUnknownKeyIsRefusedAsUntrusted() throws {
        let keys = try keys()
        let other = try MinisignSecretKey.generate().publicKey
        let signature = try MinisignSignature(parsing: keys.sign(message))
        assertFerryError(
            .untrusted,
            "signed by unknown minisign key \(try keys.publicKey().keyID); trusted keys: "
                + other.keyID
        ) {
            try signature.verify(message, keys: [other])
        }
    }

    /// Same key id, different key: a forged .pub must not make a signature verify.
    func testKeyWithSameIdButOtherKeyBytesIsRefused() throws {
        let keys = try keys()
        let real = try keys.publicKey()
        let impostor = try MinisignSecretKey.generate().publicKey
        var raw = Array(Data(base64Encoded: impostor.base64) ?? Data())
        let realRaw = Array(Data(base64Encoded: real.base64) ?? Data())
        raw.replaceSubrange(2..<10, with: realRaw[2..<10])
        let forged = try MinisignPublicKey(parsing: Data(raw).base64EncodedString())
        let signature = try MinisignSignature(parsing: keys.sign(message))
        assertFerryError(.signatureInvalid, "does not match the signed data") {
            try signature.verify(message, keys: [forged])
        }
    }

    func testAlteredDataIsRefused() throws {
        let keys = try keys()
        let signature = try MinisignSignature(parsing: keys.sign(message))
        var altered = message
        altered[0] ^= 1
        assertFerryError(.signatureInvalid, "does not match the signed data") {
            try signature.verify(altered, keys: [keys.publicKey()])
        }
    }

    func testAlteredLegacyDataIsRefused() throws {
        let keys = try keys()
        let signature = try MinisignSignature(parsing: keys.sign(message, legacy: true))
        assertFerryError(.signatureInvalid, "does not match the signed data") {
            try signature.verify(message + Data("x".utf8), keys: [keys.publicKey()])
        }
    }

    /// The signature over the data stays valid; only the global signature catches a rewritten trusted comment.
    func testAlteredTrustedCommentIsRefused() throws {
        let keys = try keys()
        let text = try keys.sign(message, trustedComment: "timestamp:1764000000")
        let altered = text.replacingOccurrences(
            of: "trusted comment: timestamp:1764000000",
            with: "trusted comment: timestamp:1999999999"
        )
        XCTAssertNotEqual(altered, text)
        assertFerryError(.signatureInvalid, "trusted comment altered") {
            try MinisignSignature(parsing: altered).verify(message, keys: [keys.publicKey()])
        }
    }

    /// Relabelling a prehashed `ED` signature as legacy `Ed` (or back) must not verify.
    func testAlgorithmSwapIsRefused() throws {
        let keys = try keys()
        let text = try keys.sign(message)
        var lines = text.split(separator: "\n").map(String.init)
        var raw = Array(Data(base64Encoded: lines[1]) ?? Data())
        raw[1] = UInt8(ascii: "d")
        lines[1] = Data(raw).base64EncodedString()
        let swapped = try MinisignSignature(parsing: lines.joined(separator: "\n"))
        XCTAssertFalse(swapped.isPrehashed)
        assertFerryError(.signatureInvalid, "does not match") { try swapped.verify(message, keys: [keys.publicKey()]) }
    }

    func testTruncatedSignatureFileIsRefused() throws {
        let keys = try keys()
        let text = try keys.sign(message)
        let threeLines = text.split(separator: "\n").prefix(3).joined(separator: "\n")
        assertFerryError(.signatureInvalid, "malformed minisign signature") {
            try MinisignSignature(parsing: threeLines)
        }
        let cut = String(text.prefix(text.count - 20))
        assertFerryError(.signatureInvalid, "malformed minisign signature") { try MinisignSignature(parsing: cut) }
    }

    func testGarbageSignatureFileIsRefused() {
        assertFerryError(.signatureInvalid, "malformed minisign signature") {
            try MinisignSignature(parsing: "garbage")
        }
        assertFerryError(.signatureInvalid, "malformed minisign signature") {
            try MinisignSignature(parsing: Data([0xff, 0xfe, 0x00, 0x0a]))
        }
        assertFerryError(.signatureInvalid, "malformed minisign signature") {
            try MinisignSignature(parsing: "untrusted comment: a\nnot base64!\ntrusted comment: b\nAAAA\n")
        }
    }

    func testUnknownSignatureAlgorithmIsRefused() throws {
        let keys = try keys()
        var lines = try keys.sign(message).split(separator: "\n").map(String.init)
        var raw = Array(Data(base64Encoded: lines[1]) ?? Data())
        raw[0] = UInt8(ascii: "X")
        lines[1] = Data(raw).base64EncodedString()
        assertFerryError(.signatureInvalid, "unsupported minisign signature algorithm") {
            try MinisignSignature(parsing: lines.joined(separator: "\n"))
        }
    }
}
