import FerryCore
import XCTest

final class ClaimTests: XCTestCase {
    let digest = Digest.of(Data("manifest".utf8))

    func testSerializeThenParseRoundTrips() throws {
        let claim = Claim(digest: digest, identity: "org.example.App/x86_64/stable", timestamp: 1_764_000_000)
        let parsed = try Claim(parsing: claim.serialized())
        XCTAssertEqual(parsed, claim)
    }

    func testParsesTheSimpleSigningFormatAsSkopeoWritesIt() throws {
        let json = """
            {"critical":{"identity":{"docker-reference":"localhost:5000/ns/app:v1"},\
            "image":{"docker-manifest-digest":"\(digest)"},"type":"atomic container signature"},\
            "optional":{"creator":"containers/image 5.0","timestamp":1700000000}}
            """
        let claim = try Claim(parsing: Data(json.utf8))
        XCTAssertEqual(claim.identity, "localhost:5000/ns/app:v1")
        XCTAssertEqual(claim.timestamp, 1_700_000_000)
    }

    func testUnknownCriticalKeyIsRefused() {
        let json = """
            {"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":"\(digest)"},\
            "type":"atomic container signature","expires":1},"optional":{}}
            """
        XCTAssertThrowsError(try Claim(parsing: Data(json.utf8))) {
            XCTAssertEqual(($0 as? FerryError)?.code, .signatureInvalid)
            XCTAssertTrue("\($0)".contains("unknown critical key \"expires\""), "\($0)")
        }
    }

    func testUnknownKeyInsideImageOrIdentityIsRefused() {
        for extra in [#""image":{"docker-manifest-digest":"D","x":1}"#, #""identity":{"docker-reference":"a","x":1}"#] {
            var json = #"{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":"D"},"type":"atomic container signature"}}"#
            let key = extra.hasPrefix("\"image") ? #""image":{"docker-manifest-digest":"D"}"# : #""identity":{"docker-reference":"a"}"#
            json = json.replacingOccurrences(of: key, with: extra).replacingOccurrences(of: "\"D\"", with: "\"\(digest)\"")
            XCTAssertThrowsError(try Claim(parsing: Data(json.utf8)), json)
        }
    }

    func testWrongTypeGarbageAndBooleanTimestampAreRefused() {
        let wrongType = #"{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":"\#(digest)"},"type":"other"}}"#
        let boolTime = #"{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":"\#(digest)"},"type":"atomic container signature"},"optional":{"timestamp":true}}"#
        let fraction = boolTime.replacingOccurrences(of: "true", with: "1.5")
        for json in [wrongType, boolTime, fraction, "not json", "[]", "{}"] {
            XCTAssertThrowsError(try Claim(parsing: Data(json.utf8)), json) {
                XCTAssertEqual(($0 as? FerryError)?.code, .signatureInvalid)
            }
        }
    }
    // MARK: duplicate keys (a parser differential: Foundation keeps the last, containers/image refuses)

    /// Attack: the signed bytes name two identities; Foundation would read the second, other readers the first.
    func testDuplicateIdentityKeyIsRefused() {
        let json = """
            {"critical":{"identity":{"docker-reference":"org.example.App/x86_64/stable",\
            "docker-reference":"org.victim.App/x86_64/stable"},\
            "image":{"docker-manifest-digest":"\(digest)"},"type":"atomic container signature"},\
            "optional":{"timestamp":1700000000}}
            """
        assertSignatureInvalid(json, "claim has a duplicate key \"docker-reference\" in $.critical.identity")
    }

    func testDuplicateKeyAtEveryDepthIsRefused() {
        let image = #""image":{"docker-manifest-digest":"\#(digest)"}"#
        let identity = #""identity":{"docker-reference":"a"}"#
        let type = #""type":"atomic container signature""#
        let cases: [(json: String, message: String)] = [
            (
                #"{"critical":{\#(identity),\#(image),\#(type)},"critical":{\#(identity),\#(image),\#(type)}}"#,
                #"duplicate key "critical" in $"#
            ),
            (#"{"critical":{\#(identity),\#(image),\#(type),\#(type)}}"#, #"duplicate key "type" in $.critical"#),
            (
                #"{"critical":{\#(identity),"image":{"docker-manifest-digest":"\#(digest)","#
                    + #""docker-manifest-digest":"\#(digest)"},\#(type)}}"#,
                #"duplicate key "docker-manifest-digest" in $.critical.image"#
            ),
            (
                #"{"critical":{\#(identity),\#(image),\#(type)},"optional":{"timestamp":1,"timestamp":2}}"#,
                #"duplicate key "timestamp" in $.optional"#
            ),
            // Ignored members are signed bytes too: a duplicate deep inside them is refused as well.
            (
                #"{"critical":{\#(identity),\#(image),\#(type)},"optional":{"x":[{"k":1},{"k":1,"k":2}]}}"#,
                #"duplicate key "k" in $.optional.x[1]"#
            ),
        ]
        for (json, message) in cases {
            assertSignatureInvalid(json, message)
        }
    }

    /// Escapes and Unicode normalization must not hide a duplicate: `docker\u002dreference` is `docker-reference`, and
    /// Foundation merges canonically equivalent keys (precomposed and decomposed "é").
    func testDuplicateKeySpelledDifferentlyIsRefused() {
        let base = #"{"critical":{"identity":{"docker-reference":"a"},"#
            + #""image":{"docker-manifest-digest":"\#(digest)"},"type":"atomic container signature"},"optional":{OPT}}"#
        let escaped = base.replacingOccurrences(
            of: "{\"docker-reference\":\"a\"}", with: #"{"docker-reference":"a","docker\u002dreference":"b"}"#
        )
        assertSignatureInvalid(escaped.replacingOccurrences(of: "OPT", with: ""), #"duplicate key "docker-reference""#)
        let normalized = base.replacingOccurrences(of: "OPT", with: "\"caf\u{E9}\":1,\"cafe\u{301}\":2")
        assertSignatureInvalid(normalized, "duplicate key")
    }

    func testEqualKeysInSiblingObjectsAreAccepted() throws {
        let json = """
            {"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":"\(digest)"},\
            "type":"atomic container signature"},\
            "optional":{"creator":"x","timestamp":5,"nested":[{"type":1},{"type":2}]}}
            """
        let claim = try Claim(parsing: Data(json.utf8))
        XCTAssertEqual(claim.timestamp, 5)
    }

    func testDuplicateKeyScannerRefusesMalformedAndDeepDocuments() {
        for text in ["", "{", #"{"a":1,}"#, #"{"a" 1}"#, #"["a\q"]"#, #"["\ud800"]"#, "[1] x",
            String(repeating: "[", count: 100) + String(repeating: "]", count: 100)] {
            XCTAssertThrowsError(try JSONDuplicateKeys.check(Data(text.utf8)), text) {
                guard case .malformed = $0 as? JSONDuplicateKeys.Finding else {
                    return XCTFail("\(text): \($0)")
                }
            }
        }
    }

    private func assertSignatureInvalid(_ json: String, _ fragment: String, line: UInt = #line) {
        XCTAssertThrowsError(try Claim(parsing: Data(json.utf8)), json, line: line) {
            XCTAssertEqual(($0 as? FerryError)?.code, .signatureInvalid, line: line)
            XCTAssertTrue("\($0)".contains(fragment), "\($0) lacks \(fragment)", line: line)
        }
    }
}
