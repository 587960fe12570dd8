import FerryCore
import Foundation
import XCTest

/// Sizes in a manifest are the publisher's (or a mirror's) word: adding them up must not trap.
final class ManifestTests: XCTestCase {
    let config = Descriptor(mediaType: MediaType.ociConfig, digest: Digest.of(Data("config".utf8)), size: 100)

    func layer(_ size: Int64, _ n: Int = 0) -> Descriptor {
        Descriptor(mediaType: MediaType.ociLayerGzip, digest: Digest.of(Data("layer \(n)".utf8)), size: size)
    }

    /// The manifest as a hostile publisher writes it; `JSONEncoder` keeps each size as given.
    func manifestData(layers: [Descriptor]) throws -> Data {
        try JSONEncoder.canonicalOCI.encode(Manifest(config: config, layers: layers))
    }

    func assertOverflow(file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Any) {
        XCTAssertThrowsError(try body(), file: file, line: line) {
            XCTAssertEqual(($0 as? FerryError)?.code, .invalidArgument, "\($0)", file: file, line: line)
            XCTAssertEqual(
                ($0 as? FerryError)?.message,
                "manifest sizes overflow: the blobs add up to more than 2^63-1 bytes",
                file: file, line: line
            )
        }
    }

    /// Attack: two layers of `Int64.max` bytes each; `reduce(0, +)` over them traps (a crash in the root helper).
    func testLayerSizesSummingPastInt64MaxAreRefused() throws {
        let data = try manifestData(layers: [layer(Int64.max, 1), layer(Int64.max, 2)])
        assertOverflow { try Manifest.parse(data) }
    }

    /// The config's size counts too: one layer of `Int64.max` plus the 100-byte config overflows.
    func testConfigPlusOneHugeLayerIsRefused() throws {
        let data = try manifestData(layers: [layer(Int64.max)])
        assertOverflow { try Manifest.parse(data) }
    }

    func testTotalSizeOfDescriptorsIsChecked() throws {
        assertOverflow { try [layer(Int64.max - 1, 1), layer(2, 2)].totalSize() }
        XCTAssertEqual(try [layer(Int64.max - 1, 1), layer(1, 2)].totalSize(), Int64.max)
        XCTAssertEqual(try [Descriptor]().totalSize(), 0)
    }

    func testTotalSizeIsConfigPlusLayers() throws {
        let manifest = try Manifest.parse(try manifestData(layers: [layer(1000, 1), layer(24, 2)]))
        XCTAssertEqual(try manifest.totalSize(), 1124)
    }

    /// A descriptor built in code may carry a negative size; the sum refuses it rather than shrinking.
    func testNegativeSizeInASumIsRefused() {
        XCTAssertThrowsError(try [layer(10, 1), layer(-5, 2)].totalSize()) {
            XCTAssertEqual(($0 as? FerryError)?.message, "descriptor with negative size")
        }
    }

    /// Negative sizes never get past decoding: a size of -1 would make "the whole blob" end before it starts.
    func testNegativeLayerSizeIsRefusedByParsing() throws {
        let data = try manifestData(layers: [layer(-1)])
        XCTAssertThrowsError(try Manifest.parse(data)) {
            XCTAssertEqual(($0 as? FerryError)?.code, .invalidArgument)
            XCTAssertEqual(($0 as? FerryError)?.message, "malformed manifest: descriptor with negative size")
        }
    }
}
