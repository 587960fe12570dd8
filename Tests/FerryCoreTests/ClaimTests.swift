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
}
