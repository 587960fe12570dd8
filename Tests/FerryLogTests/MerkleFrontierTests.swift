import FerryCore
@testable import FerryLog
import Foundation
import XCTest

/// The frontier a client keeps gives the RFC 6962 root of every size, against the literal definition.
final class MerkleFrontierTests: XCTestCase {
    func testTheFrontierRootIsTheTreeRootAtEverySize() throws {
        let entries = (0..<300).map { Data("entry \($0)".utf8) }
        var frontier = MerkleFrontier()
        XCTAssertEqual(frontier.root, .emptyTree)
        for (index, entry) in entries.enumerated() {
            frontier.append(entry: entry)
            XCTAssertEqual(frontier.root, NaiveMerkleTree(entries: Array(entries[...index])).hash(0, index + 1),
                           "size \(index + 1)")
            XCTAssertEqual(frontier.hashes.count, (index + 1).nonzeroBitCount)
        }
        // Stored and restored, it goes on where it was.
        var restored = try XCTUnwrap(MerkleFrontier(size: frontier.size, hashes: frontier.hashes))
        restored.append(entry: Data("more".utf8))
        XCTAssertEqual(restored.root, NaiveMerkleTree(entries: entries + [Data("more".utf8)]).hash(0, 301))
        // A count of hashes that does not match the size is refused.
        XCTAssertNil(MerkleFrontier(size: 300, hashes: Array(frontier.hashes.dropLast())))
    }

    func testStagedEntriesAreStrict() throws {
        let entries = [Data("a".utf8), Data(), Data(repeating: 7, count: 300)]
        let data = try StagedEntries.encode(from: 12, entries)
        let decoded = try StagedEntries.decode(data)
        XCTAssertEqual(decoded.from, 12)
        XCTAssertEqual(decoded.entries, entries)
        for bad in [Data(), Data("from x\n".utf8), Data("12\n".utf8), data.dropLast(), Data("from 1\n\u{0}".utf8),
                    Data("from 1099511627777\n".utf8)] {
            XCTAssertThrowsError(try StagedEntries.decode(bad), "\(bad)")
        }
    }
}
