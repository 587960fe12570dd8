import FerryCore
import FerryTestSupport
import Foundation
import XCTest

final class AtomicFileTests: XCTestCase {
    func testWriteReplacesTheFileAndLeavesNoTemporaryFile() throws {
        let dir = try TemporaryDirectory(prefix: "af")
        let path = dir.file("state.json")
        try AtomicFile.write(Data("one".utf8), to: path)
        try AtomicFile.write(Data("two".utf8), to: path, mode: 0o600)
        XCTAssertEqual(FileManager.default.contents(atPath: path), Data("two".utf8))
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["state.json"])
    }

    func testSymlinkReplacesTheLinkAndLeavesNoTemporaryEntry() throws {
        let dir = try TemporaryDirectory(prefix: "af")
        let link = dir.file("current")
        try AtomicFile.symlink("/one", at: link)
        try AtomicFile.symlink("/two", at: link)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: link), "/two")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["current"])
    }

    func testRecursiveSweepReachesNestedDirectories() throws {
        let dir = try TemporaryDirectory(prefix: "af")
        let gone = try Child(["true"])
        gone.wait()
        try FileManager.default.createDirectory(atPath: dir.file("org.example.App/x86_64"),
                                                withIntermediateDirectories: true)
        let nested = "org.example.App/x86_64/.stable.tmp-\(gone.pid)-9"
        XCTAssertEqual(Glibc.symlink("/nowhere", dir.file(nested)), 0)
        XCTAssertEqual(AtomicFile.sweep(dir.path), [])
        XCTAssertEqual(AtomicFile.sweep(dir.path, recursive: true), [nested])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.file("org.example.App/x86_64")), [])
    }

    func testWriteIntoAMissingDirectoryFailsWithItsName() throws {
        let dir = try TemporaryDirectory(prefix: "af")
        XCTAssertThrowsError(try AtomicFile.write(Data(), to: dir.file("missing/x"))) {
            XCTAssertTrue("\($0)".contains("missing"), "\($0)")
        }
    }

    /// Only temporary files of processes that are gone are removed: not this process's, not a live one's, and
    /// nothing that merely looks similar.
    func testSweepRemovesOnlyTheTemporaryFilesOfDeadWriters() throws {
        let dir = try TemporaryDirectory(prefix: "af")
        let gone = try Child(["true"])
        let deadPID = gone.pid
        gone.wait()
        let live = try Child(["sleep", "30"])
        defer { live.stop(signal: SIGKILL) }
        let names = [
            ".state.json.tmp-\(deadPID)-12345",   // a crashed writer's: removed
            ".state.json.tmp-\(getpid())-1",     // ours, perhaps being written by another thread: kept
            ".state.json.tmp-\(live.pid)-7",     // a live writer's: kept
            "state.json.tmp-\(deadPID)-12345",   // not a dot file: kept
            ".state.json.tmp-\(deadPID)-x",      // not the pattern: kept
            "state.json",
        ]
        for name in names { XCTAssertTrue(FileManager.default.createFile(atPath: dir.file(name), contents: Data())) }
        XCTAssertEqual(AtomicFile.sweep(dir.path), [names[0]])
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)), Set(names.dropFirst()))
    }
}
