import FerryCore
import XCTest

final class DigestTests: XCTestCase {
    func testSha256OfKnownInputMatchesStandardVector() {
        XCTAssertEqual(Digest.of(Data("abc".utf8)).description,
                       "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testSha512IsSupported() throws {
        let digest = Digest.of(Data("abc".utf8), algorithm: .sha512)
        XCTAssertEqual(digest.hex.count, 128)
        XCTAssertEqual(try Digest(parsing: digest.description), digest)
    }

    func testParsingRefusesUppercaseHexWrongLengthAndUnknownAlgorithms() {
        let good = "sha256:" + String(repeating: "a", count: 64)
        XCTAssertNoThrow(try Digest(parsing: good))
        for bad in [
            "sha256:" + String(repeating: "A", count: 64), "sha256:" + String(repeating: "a", count: 63),
            "sha256:" + String(repeating: "a", count: 65), "md5:" + String(repeating: "a", count: 32),
            "sha256" + String(repeating: "a", count: 64), "sha256:../../etc/passwd", "", ":",
        ] {
            XCTAssertThrowsError(try Digest(parsing: bad), bad) {
                XCTAssertEqual(($0 as? FerryError)?.code, .invalidArgument)
            }
        }
    }

    func testBlobVerifierRefusesOneByteMoreThanTheDescriptor() throws {
        let data = Data("hello".utf8)
        var verifier = BlobVerifier(digest: Digest.of(data), size: 4)
        XCTAssertThrowsError(try verifier.consume(data)) {
            XCTAssertEqual(($0 as? FerryError)?.code, .digestMismatch)
            XCTAssertTrue("\($0)".contains("larger than its descriptor"))
        }
    }

    func testBlobVerifierRefusesShortAndAlteredBlobs() throws {
        let data = Data("hello".utf8)
        var short = BlobVerifier(digest: Digest.of(data), size: 5)
        try short.consume(data.prefix(4))
        XCTAssertThrowsError(try short.finish()) { XCTAssertTrue("\($0)".contains("is 4 bytes")) }
        var altered = BlobVerifier(digest: Digest.of(data), size: 5)
        try altered.consume(Data("hellO".utf8))
        XCTAssertThrowsError(try altered.finish()) { XCTAssertEqual(($0 as? FerryError)?.code, .digestMismatch) }
        var good = BlobVerifier(digest: Digest.of(data), size: 5)
        try good.consume(data)
        XCTAssertNoThrow(try good.finish())
    }
}

final class RefTests: XCTestCase {
    func testAcceptsDesignExamples() throws {
        for good in ["org.vsekai.Client/x86_64/stable", "app:1.0", "ns/app:latest", "a", "A_b-c.d/e:_tag"] {
            XCTAssertNoThrow(try Ref(good), good)
        }
        let ref = try Ref("ns/app:v1.2")
        XCTAssertEqual(ref.name, "ns/app")
        XCTAssertEqual(ref.tag, "v1.2")
        XCTAssertEqual(try Ref("org.vsekai.Client/x86_64/stable").launcherName, "org.vsekai.Client")
    }

    func testRefusesTraversalAbsoluteNulAndOversizeRefs() {
        let bad = [
            "", "/etc", "..", "a/../b", "a/..", "./a", "a//b", "a/", ".hidden", "-flag", "a\0b", "a b",
            String(repeating: "a", count: 256), "a:", "a:-x", "a:" + String(repeating: "t", count: 129), "a:b:c/d",
            "ü", "a\nb",
        ]
        for string in bad {
            XCTAssertThrowsError(try Ref(string), string.debugDescription) {
                XCTAssertEqual(($0 as? FerryError)?.code, .invalidArgument)
            }
        }
    }

    func testEscapedFileNameIsOneComponent() throws {
        let ref = try Ref("a/b:c")
        XCTAssertEqual(ref.escapedFileName, "a~b:c")
        XCTAssertEqual(Ref(escapedFileName: "a~b:c"), ref)
        // Names no ref escapes to: a slash, a component that is not one, a dot name (AtomicFile's temporaries).
        for name in ["a/b", "a~~b", "~a", ".a.tmp-1-2", "a~", ""] {
            XCTAssertNil(Ref(escapedFileName: name), name)
        }
        let longest = try Ref(String(repeating: "a/", count: 127) + "b")
        XCTAssertEqual(longest.escapedFileName.utf8.count, 255)
    }

    func testRemoteNameIsOneSafeComponent() {
        XCTAssertNoThrow(try RemoteName("demo-1.x_y"))
        for bad in ["", "..", "a/b", ".a", "a\0", String(repeating: "x", count: 65)] {
            XCTAssertThrowsError(try RemoteName(bad), bad.debugDescription)
        }
    }
}
