import FerryCore
import FerryTestSupport
import Foundation
import XCTest

@testable import FerryTrust

/// Canonical JSON and signatures checked against securesystemslib (scripts/tuf-vectors.py makes fresh vectors
/// every run: tricky JSON through `encode_canonical`, and signatures by new ed25519, ecdsa-sha2-nistp256,
/// rsassa-pss-sha256 and rsa-pkcs1v15-sha256 keys).
final class TUFVectorTests: XCTestCase {
    struct Vectors: Decodable {
        struct Canonical: Decodable {
            var json: String
            var canonical_b64: String
        }
        struct Signature: Decodable {
            var keyid: String
            var message_b64: String
            var sig: String
        }
        var canonical: [Canonical]
        var signatures: [Signature]
    }

    nonisolated(unsafe) static var cached: (Vectors, TUFJSON)?

    func vectors() throws -> (Vectors, TUFJSON) {
        if let cached = Self.cached { return cached }
        let script = TUFTestRepository.scriptsDirectory + "/tuf-vectors.py"
        let result = try Command.check(["python3", script])
        let vectors = try JSONDecoder().decode(Vectors.self, from: result.stdout)
        let raw = try TUFJSON.parse(result.stdout)
        Self.cached = (vectors, raw)
        return (vectors, raw)
    }

    func testCanonicalJSONMatchesSecuresystemslib() throws {
        let (vectors, _) = try vectors()
        XCTAssertFalse(vectors.canonical.isEmpty)
        for vector in vectors.canonical {
            let expected = try XCTUnwrap(Data(base64Encoded: vector.canonical_b64))
            let ours = try TUFJSON.parse(Data(vector.json.utf8)).canonicalBytes()
            XCTAssertEqual(ours, expected, "canonical form of \(vector.json)")
        }
    }

    func testEverySupportedKeyTypeVerifiesSecuresystemslibSignatures() throws {
        let (vectors, raw) = try vectors()
        let keys = try XCTUnwrap(raw["signatures"]?.arrayValue)
        XCTAssertEqual(keys.count, 4)
        var schemes: [String] = []
        for (vector, entry) in zip(vectors.signatures, keys) {
            let key = try TUFKey(json: try XCTUnwrap(entry["key"]))
            schemes.append(key.scheme)
            XCTAssertTrue(key.isSupported, key.scheme)
            let message = try XCTUnwrap(Data(base64Encoded: vector.message_b64))
            XCTAssertTrue(key.verify(signatureHex: vector.sig, message: message), "\(key.scheme) signature")
            var tampered = message
            tampered[0] ^= 1
            XCTAssertFalse(key.verify(signatureHex: vector.sig, message: tampered), "\(key.scheme) tampered")
        }
        XCTAssertEqual(schemes, ["ed25519", "ecdsa-sha2-nistp256", "rsassa-pss-sha256", "rsa-pkcs1v15-sha256"])
    }

    func testSignatureByAnotherKeyIsRefused() throws {
        let (vectors, raw) = try vectors()
        let keys = try XCTUnwrap(raw["signatures"]?.arrayValue)
        let ed25519 = try TUFKey(json: try XCTUnwrap(keys[0]["key"]))
        let message = try XCTUnwrap(Data(base64Encoded: vectors.signatures[0].message_b64))
        // The ecdsa signature presented for the ed25519 key.
        XCTAssertFalse(ed25519.verify(signatureHex: vectors.signatures[1].sig, message: message))
        XCTAssertFalse(ed25519.verify(signatureHex: "not hex", message: message))
    }

    func testUnknownKeyTypeLoadsButVerifiesNothing() throws {
        let json = try TUFJSON.parse(Data(#"{"keytype":"sphincs","scheme":"x","keyval":{"public":"00"}}"#.utf8))
        let key = try TUFKey(json: json)
        XCTAssertFalse(key.isSupported)
        XCTAssertFalse(key.verify(signatureHex: "00", message: Data()))
    }

    func testDuplicateObjectKeysAreRefused() {
        XCTAssertThrowsError(try TUFJSON.parse(Data(#"{"a":1,"a":2}"#.utf8))) { error in
            XCTAssertEqual((error as? FerryError)?.code, .untrusted)
            XCTAssertTrue("\(error)".contains("duplicate key"), "\(error)")
        }
    }

    func testLoneSurrogateIsRefused() {
        XCTAssertThrowsError(try TUFJSON.parse(Data(#"{"a":"\ud800"}"#.utf8)))
    }

    func testFloatsHaveNoCanonicalForm() throws {
        let value = try TUFJSON.parse(Data(#"{"a":1.5}"#.utf8))
        XCTAssertThrowsError(try value.canonicalBytes())
    }

    func testTrailingContentIsRefused() {
        XCTAssertThrowsError(try TUFJSON.parse(Data(#"{"a":1} {}"#.utf8)))
    }

    func testDeepNestingIsRefused() {
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        XCTAssertThrowsError(try TUFJSON.parse(Data(deep.utf8)))
    }

    func testPathPatternsMatchComponentByComponent() {
        XCTAssertTrue(TUFPathPattern.matches("a/b.txt", pattern: "a/*"))
        XCTAssertFalse(TUFPathPattern.matches("a/b/c.txt", pattern: "a/*"))
        XCTAssertTrue(TUFPathPattern.matches("a/deep.txt", pattern: "a/deep*"))
        XCTAssertTrue(TUFPathPattern.matches("x1.tar", pattern: "x?.[a-t]ar"))
        XCTAssertFalse(TUFPathPattern.matches("x1.zar", pattern: "x?.[!z]ar"))
        XCTAssertTrue(TUFPathPattern.matches("*", pattern: "*"))
        XCTAssertFalse(TUFPathPattern.matches("file.txt", pattern: "dir/*"))
    }

    func testPercentEncodingMatchesPythonQuote() {
        XCTAssertEqual(TUFUpdater.percentEncode("../delegatedrole", keepSlash: false), "..%2Fdelegatedrole")
        XCTAssertEqual(TUFUpdater.percentEncode("?#", keepSlash: false), "%3F%23")
        XCTAssertEqual(TUFUpdater.percentEncode("a b/é", keepSlash: true), "a%20b/%C3%A9")
    }
}
