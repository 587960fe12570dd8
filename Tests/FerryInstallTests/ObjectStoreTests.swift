import FerryCore
import FerryInstall
import FerryTestSupport
import Foundation
import XCTest

/// Deployments share file objects: the same file (content, mode, time) in two apps, or in two releases of one, is
/// one inode under `objects/`; a file changed behind the store's back is not spread; garbage collection drops what
/// no kept deployment links.
final class ObjectStoreTests: XCTestCase {
    var fx: EngineFixture!

    override func setUpWithError() throws { fx = try EngineFixture() }
    override func tearDown() { fx = nil }

    static var shared: [String: Any] { ImageCrafter.file("share/assets.pak", String(repeating: "asset data ", count: 10_000)) }

    func inode(_ ref: String, _ path: String) throws -> (ino: UInt64, links: Int) {
        var st = stat()
        XCTAssertEqual(lstat("\(fx.root)/installed/\(stateName(ref))/files/\(path)", &st), 0, "\(ref) \(path)")
        return (UInt64(st.st_ino), Int(st.st_nlink))
    }

    func objectCount() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: fx.root + "/objects").count
    }

    func testTwoAppsAndTwoReleasesShareTheFilesTheyHaveInCommon() throws {
        let one = "org.example.One/x86_64/stable"
        let two = "org.example.Two/x86_64/stable"
        try fx.publish("a", one, EngineFixture.app("one", extra: [ImageCrafter.dir("share"), Self.shared]),
                       timestamp: 1_700_000_000)
        try fx.publish("a", two, EngineFixture.app("two", extra: [ImageCrafter.dir("share"), Self.shared]),
                       timestamp: 1_700_000_000)
        try fx.deploy("a", one)
        try fx.deploy("a", two)
        // One inode for the shared file: its object and the two deployments.
        XCTAssertEqual(try inode(one, "share/assets.pak").ino, try inode(two, "share/assets.pak").ino)
        XCTAssertEqual(try inode(one, "share/assets.pak").links, 3)
        XCTAssertNotEqual(try inode(one, "bin/hello").ino, try inode(two, "bin/hello").ino)
        XCTAssertEqual(try objectCount(), 3)

        // A new release of one: its unchanged file is the same inode as the previous release's.
        let before = try inode(one, "share/assets.pak").ino
        try fx.publish("a", one, EngineFixture.app("one v2", extra: [ImageCrafter.dir("share"), Self.shared]),
                       timestamp: 1_700_000_100)
        try fx.deploy("a", one)
        XCTAssertEqual(try fx.installedHello(one), "#!/bin/sh\necho one v2\n")
        XCTAssertEqual(try inode(one, "share/assets.pak").ino, before)

        // Uninstalled, the objects only they linked go; the shared one stays while two has it.
        try fx.installer.uninstall(try Ref(one))
        XCTAssertEqual(try inode(two, "share/assets.pak").links, 2)
        try fx.installer.uninstall(try Ref(two))
        XCTAssertEqual(try objectCount(), 0)
    }

    /// In `--user` scope the user owns the files and may change one: the store re-hashes an object before it is
    /// reused, so the changed bytes are not linked into the next deployment; the verified copy replaces the object.
    func testAnObjectChangedBehindTheStoresBackIsNotSpread() throws {
        let one = "org.example.One/x86_64/stable"
        let two = "org.example.Two/x86_64/stable"
        try fx.publish("a", one, EngineFixture.app("one", extra: [ImageCrafter.dir("share"), Self.shared]),
                       timestamp: 1_700_000_000)
        try fx.deploy("a", one)
        let path = "\(fx.root)/installed/\(stateName(one))/files/share/assets.pak"
        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        var changed = original
        changed[0] ^= 1
        // Same size, same mode and time: only the content differs.
        var st = stat()
        XCTAssertEqual(lstat(path, &st), 0)
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: path))
        try handle.write(contentsOf: changed)
        try handle.close()
        var times = [st.st_atim, st.st_mtim]
        XCTAssertEqual(utimensat(AT_FDCWD, path, &times, 0), 0)

        try fx.publish("a", two, EngineFixture.app("two", extra: [ImageCrafter.dir("share"), Self.shared]),
                       timestamp: 1_700_000_000)
        try fx.deploy("a", two)
        let installed = "\(fx.root)/installed/\(stateName(two))/files/share/assets.pak"
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: installed)), original)
        XCTAssertNotEqual(try inode(one, "share/assets.pak").ino, try inode(two, "share/assets.pak").ino)
        XCTAssertEqual(try inode(two, "share/assets.pak").links, 2)
    }
}
