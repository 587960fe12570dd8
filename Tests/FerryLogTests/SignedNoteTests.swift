import FerryCore
@testable import FerryLog
import XCTest

/// Signed notes, keys and checkpoints: the golang.org/x/mod/sumdb/note documentation's own example, and every
/// malformed note with its exact error.
final class SignedNoteTests: XCTestCase {
    // From the package documentation of golang.org/x/mod/sumdb/note (note.go).
    static let goSigner = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
    static let goVerifier = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    static let goText = "If you think cryptography is the answer to your problem,\n"
        + "then you don't know what your problem is.\n"
    static let goNote = goText + "\n"
        + "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6Ryy"
        + "BwJnAM=\n"

    var key: NoteSignerKey!

    override func setUpWithError() throws {
        key = try NoteSignerKey.generate(name: "example.com/log")
    }

    func parse(_ text: String) throws -> SignedNote { try SignedNote(Data(text.utf8)) }

    func assertRefused(_ data: Data, _ expected: FerryError, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SignedNote(data).verify(by: [key.verifierKey]), file: file, line: line) {
            XCTAssertEqual($0 as? FerryError, expected, file: file, line: line)
        }
    }

    func signed(_ text: String = "example.com/log\n1\n\(MerkleHash.emptyTree.base64)\n") throws -> String {
        String(decoding: try SignedNote.sign(text: text, with: [key]).serialized, as: UTF8.self)
    }

    // MARK: - Keys and signatures, against Go's documented example

    func testGoExampleKeysParseAndDeriveEachOther() throws {
        let signer = try NoteSignerKey(SignedNoteTests.goSigner)
        XCTAssertEqual(signer.verifierKey.text, SignedNoteTests.goVerifier)
        XCTAssertEqual(signer.text, SignedNoteTests.goSigner)
        XCTAssertEqual(try NoteVerifierKey(SignedNoteTests.goVerifier + "\n"), signer.verifierKey)
        XCTAssertEqual(signer.verifierKey.keyID, 0xc74f_20a3)
    }

    func testGoExampleNoteVerifiesAndSigningItGivesTheSameBytes() throws {
        let note = try parse(SignedNoteTests.goNote)
        XCTAssertEqual(note.text, SignedNoteTests.goText)
        let verified = try note.verify(by: [try NoteVerifierKey(SignedNoteTests.goVerifier)])
        XCTAssertEqual(verified.map(\.key.name), ["PeterNeumann"])
        // Ed25519 is deterministic: Ferry's signature over the same text is Go's, byte for byte.
        let goKey = try NoteSignerKey(SignedNoteTests.goSigner)
        let mine = try SignedNote.sign(text: SignedNoteTests.goText, with: [goKey])
        XCTAssertEqual(String(decoding: mine.serialized, as: UTF8.self), SignedNoteTests.goNote)
    }

    func testKeyIDIsTheFirstFourBytesOfSHA256OfNameNewlineTypeAndKey() throws {
        let verifier = key.verifierKey
        let expected = Digest.of(Data(verifier.name.utf8) + Data([0x0a, 0x01]) + Data(verifier.publicKey)).hex
        XCTAssertEqual(NoteVerifierKey.hex(verifier.keyID), String(expected.prefix(8)))
        let witness = try NoteSignerKey.generate(name: "w.example", type: .cosignature).verifierKey
        let witnessExpected = Digest.of(Data("w.example".utf8) + Data([0x0a, 0x04]) + Data(witness.publicKey)).hex
        XCTAssertEqual(NoteVerifierKey.hex(witness.keyID), String(witnessExpected.prefix(8)))
    }

    func testKeyStringsThatDoNotMatchTheirKeyAreRefused() throws {
        let vkey = key.verifierKey.text
        let parts = vkey.split(separator: "+", maxSplits: 2).map(String.init)
        let wrongID = parts[0] + "+00000000+" + parts[2]
        XCTAssertThrowsError(try NoteVerifierKey(wrongID)) {
            XCTAssertEqual($0 as? FerryError, .invalidArgument(
                "example.com/log: verifier key ID 00000000 does not match its key (\(parts[1]))"))
        }
        XCTAssertThrowsError(try NoteVerifierKey("other.example+" + parts[1] + "+" + parts[2]))
        // Key IDs are lowercase hex, as Go writes them (c74f20a3 has letters to uppercase).
        XCTAssertThrowsError(try NoteVerifierKey(SignedNoteTests.goVerifier.replacingOccurrences(
            of: "c74f20a3", with: "C74F20A3")))
        XCTAssertThrowsError(try NoteVerifierKey("bad name+" + parts[1] + "+" + parts[2])) {
            XCTAssertEqual($0 as? FerryError, .invalidArgument(
                "invalid key name \"bad name\": it must be non-empty, at most 256 bytes, with no spaces or +"))
        }
        let ecdsa = Data([0x02] + [UInt8](repeating: 1, count: 32)).base64EncodedString()
        XCTAssertThrowsError(try NoteVerifierKey("a+00000000+" + ecdsa)) {
            XCTAssertEqual($0 as? FerryError, .invalidArgument(
                "a: unsupported key type 0x02; Ferry knows 0x01 (Ed25519) and 0x04 (cosignature/v1)"))
        }
        XCTAssertThrowsError(try NoteSignerKey("PRIVATE+KEY+" + vkey))
        XCTAssertThrowsError(try NoteSignerKey(vkey))
    }

    func testCosignatureCarriesItsTimeAndVerifiesOnlyWithIt() throws {
        let witness = try NoteSignerKey.generate(name: "witness.example/w1", type: .cosignature)
        let note = try parse(try signed())
        let cosigned = note.adding(try witness.sign(text: Data(note.text.utf8), timestamp: 1_679_315_147))
        let verified = try SignedNote(cosigned.serialized).verify(by: [key.verifierKey, witness.verifierKey])
        XCTAssertEqual(verified.map(\.timestamp), [0, 1_679_315_147])
        // The signature is over "cosignature/v1\ntime T\n" + text: changing the time breaks it.
        var bytes = cosigned.signatures[1].signature
        bytes[7] ^= 1
        let moved = note.adding(NoteSignature(name: witness.name, keyID: witness.verifierKey.keyID, signature: bytes))
        XCTAssertThrowsError(try moved.verify(by: [witness.verifierKey])) {
            XCTAssertEqual($0 as? FerryError,
                           .signatureInvalid("signed note: the signature by \(witness.verifierKey) does not verify"))
        }
    }

    // MARK: - Malformed and unverifiable notes, each with its error

    func testBadSignatureRejectsTheWholeNote() throws {
        var text = try signed()
        // Change the signed text, keep the signature.
        text = text.replacingOccurrences(of: "\n1\n", with: "\n2\n")
        assertRefused(Data(text.utf8), .signatureInvalid(
            "signed note: the signature by \(key.verifierKey) does not verify"))
    }

    func testNoteByAnUnknownKeyIsRefused() throws {
        let stranger = try NoteSignerKey.generate(name: "example.com/log")
        let text = String(decoding: try SignedNote.sign(text: "hello\n", with: [stranger]).serialized, as: UTF8.self)
        assertRefused(Data(text.utf8), .untrusted(
            "signed note is not signed by a trusted key (trusted: \(key.verifierKey); "
                + "signed by: \(stranger.verifierKey))"))
    }

    func testUnknownSignaturesBesideAKnownOneAreIgnored() throws {
        let stranger = try NoteSignerKey.generate(name: "stranger.example")
        let note = try SignedNote.sign(text: "hello\n", with: [stranger, key])
        XCTAssertEqual(try SignedNote(note.serialized).verify(by: [key.verifierKey]).map(\.key), [key.verifierKey])
    }

    func testDuplicateSignatureLinesAreRefused() throws {
        let text = try signed()
        let line = String(text[text.range(of: "— ")!.lowerBound...])
        assertRefused(Data((text + line).utf8), .invalidArgument(
            "signed note has two signatures by \(key.verifierKey)"))
    }

    func testMoreThan100SignaturesAreRefused() throws {
        var note = try SignedNote(text: "hello\n", signatures: [])
        for i in 0..<101 {
            note = note.adding(NoteSignature(name: "w\(i).example", keyID: UInt32(i), signature: [1, 2, 3]))
        }
        assertRefused(note.serialized, .invalidArgument("signed note has more than 100 signatures"))
        // 100 is fine structurally (and then none of them is trusted).
        var hundred = try SignedNote(text: "hello\n", signatures: Array(note.signatures.prefix(100)))
        hundred = hundred.adding(try key.sign(text: Data("hello\n".utf8)))
        XCTAssertThrowsError(try SignedNote(hundred.serialized)) {
            XCTAssertEqual($0 as? FerryError, .invalidArgument("signed note has more than 100 signatures"))
        }
        XCTAssertNoThrow(try SignedNote(SignedNote(text: "hello\n", signatures: Array(note.signatures.prefix(100)))
            .serialized))
    }

    func testMissingBlankLineIsRefused() throws {
        let text = try signed().replacingOccurrences(of: "\n\n", with: "\n")
        assertRefused(Data(text.utf8), .invalidArgument("signed note has no blank line before its signatures"))
    }

    func testNonUTF8IsRefused() throws {
        var data = Data(try signed().utf8)
        data[2] = 0xff
        assertRefused(data, .invalidArgument("signed note is not valid UTF-8"))
    }

    func testControlCharactersAreRefused() throws {
        let text = try signed().replacingOccurrences(of: "example.com/log\n1", with: "example.com/log\r\n1")
        assertRefused(Data(text.utf8), .invalidArgument("signed note contains a control character"))
        assertRefused(Data(("a\tb\n\n" + String(try signed().split(separator: "\n").last!) + "\n").utf8),
                      .invalidArgument("signed note contains a control character"))
    }

    func testOverLongNoteIsRefusedBeforeParsing() throws {
        let text = String(repeating: "a", count: SignedNote.maxSize) + "\n"
        assertRefused(Data(text.utf8), .invalidArgument("signed note is larger than 131072 bytes"))
    }

    func testMalformedSignatureLinesAreRefused() throws {
        let good = try signed()
        let base = String(good[..<good.range(of: "— ")!.lowerBound])
        let b64 = String(good.split(separator: " ").last!.dropLast())
        for line in ["- example.com/log \(b64)", "— example.com/log", "— example.com/log  \(b64)",
                     "— example.com/log \(b64)=", "— example.com/log AAAA", "— example.com/log \(b64) x",
                     "—example.com/log \(b64)", "— exa+mple \(b64)"]
        {
            assertRefused(Data((base + line + "\n").utf8), .invalidArgument(
                "signed note has a malformed signature line 1"))
        }
        assertRefused(Data((base + "— example.com/log \(b64)").utf8), .invalidArgument(
            "signed note does not end with a newline"))
        assertRefused(Data(base.utf8), .invalidArgument("signed note has no signatures"))
    }

    // MARK: - Checkpoints

    func testCheckpointTextRoundTrips() throws {
        let root = MerkleHash.leaf(Data("x".utf8))
        let checkpoint = try Checkpoint(origin: "example.com/log", size: 20_852_163, rootHash: root,
                                        extensions: ["ext one"])
        XCTAssertEqual(checkpoint.text, "example.com/log\n20852163\n\(root.base64)\next one\n")
        XCTAssertEqual(try Checkpoint(text: checkpoint.text), checkpoint)
    }

    func testMalformedCheckpointsAreRefused() {
        let root = MerkleHash.emptyTree.base64
        let cases: [(String, String)] = [
            ("o\n1\n", "checkpoint has fewer than three lines"),
            ("o\n01\n\(root)\n", "checkpoint size \"01\" is not a decimal number"),
            ("o\n-1\n\(root)\n", "checkpoint size \"-1\" is not a decimal number"),
            ("o\n9223372036854775808\n\(root)\n", "checkpoint size \"9223372036854775808\" is not a decimal number"),
            ("o\n1\nAAAA\n", "checkpoint root hash is not the base64 of 32 bytes"),
            ("o\n1\n\(root)\n\n", "checkpoint has an empty extension line"),
            ("\n1\n\(root)\n", "checkpoint has an empty origin"),
            ("o\n1\n\(root)", "checkpoint text does not end with a newline"),
        ]
        for (text, message) in cases {
            XCTAssertThrowsError(try Checkpoint(text: text), text) {
                XCTAssertEqual($0 as? FerryError, .invalidArgument(message))
            }
        }
    }

    func testCheckpointOfAnotherOriginSignedByTheLogKeyIsRefused() throws {
        let note = try SignedNote.sign(text: "other.example/log\n0\n\(MerkleHash.emptyTree.base64)\n", with: [key])
        XCTAssertThrowsError(try Checkpoint.open(note.serialized, logKey: key.verifierKey)) {
            XCTAssertEqual($0 as? FerryError, .untrusted(
                "checkpoint origin \"other.example/log\" is not the log key's name \"example.com/log\""))
        }
    }

    func testCheckpointSignedOnlyByAWitnessIsNotTheLogs() throws {
        let witness = try NoteSignerKey.generate(name: "w.example", type: .cosignature)
        let note = try SignedNote.sign(text: "example.com/log\n0\n\(MerkleHash.emptyTree.base64)\n", with: [witness])
        XCTAssertThrowsError(try Checkpoint.open(note.serialized, logKey: key.verifierKey,
                                                 witnesses: [witness.verifierKey])) {
            XCTAssertEqual($0 as? FerryError, .untrusted(
                "checkpoint is not signed by the log key \(key.verifierKey)"))
        }
    }
}
