import FerryCore
import FerryTestSupport
import XCTest

final class ImageLayoutTests: XCTestCase {
    func makeLayout(_ dir: TemporaryDirectory) throws -> (LayoutWriter, Descriptor, Ref) {
        let writer = try LayoutWriter(path: dir.file("layout"))
        let config = try writer.writeBlob(Data(#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.utf8),
                                          mediaType: MediaType.ociConfig)
        let manifest = Manifest(config: config, layers: [])
        let desc = try writer.writeBlob(try JSONEncoder.canonicalOCI.encode(manifest), mediaType: MediaType.ociManifest)
        let ref = try Ref("org.example.App/x86_64/stable")
        try writer.setRef(ref, to: desc)
        return (writer, desc, ref)
    }

    func testReadsRefsAndVerifiedManifest() throws {
        let dir = try TemporaryDirectory()
        let (_, desc, ref) = try makeLayout(dir)
        let layout = try ImageLayout(path: dir.file("layout"))
        XCTAssertEqual(try layout.descriptor(for: ref).digest, desc.digest)
        XCTAssertEqual(try layout.manifest(desc).layers.count, 0)
        XCTAssertEqual(try layout.refs().map(\.ref), [ref])
    }

    func testSettingARefAgainReplacesIt() throws {
        let dir = try TemporaryDirectory()
        let (writer, _, ref) = try makeLayout(dir)
        let other = try writer.writeBlob(Data("x".utf8), mediaType: MediaType.ociManifest)
        try writer.setRef(ref, to: other)
        XCTAssertEqual(try writer.readIndex().manifests.count, 1)
        XCTAssertEqual(try ImageLayout(path: dir.file("layout")).descriptor(for: ref).digest, other.digest)
    }

    func testTamperedBlobIsRefusedAsDigestMismatch() throws {
        let dir = try TemporaryDirectory()
        let (writer, desc, _) = try makeLayout(dir)
        var data = try Data(contentsOf: URL(fileURLWithPath: writer.blobPath(desc.digest)))
        data[data.count - 2] ^= 1
        try data.write(to: URL(fileURLWithPath: writer.blobPath(desc.digest)))
        XCTAssertThrowsError(try ImageLayout(path: dir.file("layout")).manifest(desc)) {
            XCTAssertEqual(($0 as? FerryError)?.code, .digestMismatch)
        }
    }

    func testSymlinkInPlaceOfABlobIsRefused() throws {
        let dir = try TemporaryDirectory()
        let (writer, desc, _) = try makeLayout(dir)
        let path = writer.blobPath(desc.digest)
        try FileManager.default.moveItem(atPath: path, toPath: dir.file("real"))
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: dir.file("real"))
        XCTAssertThrowsError(try ImageLayout(path: dir.file("layout")).manifest(desc)) {
            XCTAssertEqual(($0 as? FerryError)?.code, .invalidArgument)
            XCTAssertTrue("\($0)".contains("symlink"), "\($0)")
        }
    }

    func testSymlinkedBlobsDirectoryIsRefused() throws {
        let dir = try TemporaryDirectory()
        let (_, desc, _) = try makeLayout(dir)
        try FileManager.default.moveItem(atPath: dir.file("layout/blobs"), toPath: dir.file("elsewhere"))
        try FileManager.default.createSymbolicLink(atPath: dir.file("layout/blobs"), withDestinationPath: dir.file("elsewhere"))
        XCTAssertThrowsError(try ImageLayout(path: dir.file("layout")).manifest(desc)) {
            XCTAssertEqual(($0 as? FerryError)?.code, .invalidArgument)
        }
    }

    func testFifoInPlaceOfABlobIsRefusedWithoutHanging() throws {
        let dir = try TemporaryDirectory()
        let (writer, desc, _) = try makeLayout(dir)
        let path = writer.blobPath(desc.digest)
        try FileManager.default.removeItem(atPath: path)
        XCTAssertEqual(mkfifo(path, 0o644), 0)
        XCTAssertThrowsError(try ImageLayout(path: dir.file("layout")).manifest(desc)) {
            XCTAssertTrue("\($0)".contains("not a regular file"), "\($0)")
        }
    }

    func testFileOfAnotherOwnerIsRefusedWhenPolicyNamesTheOwner() throws {
        let dir = try TemporaryDirectory()
        let (_, desc, _) = try makeLayout(dir)
        let layout = ImageLayout(root: try DirectoryHandle(path: dir.file("layout")),
                                 policy: .init(owner: getuid() + 1))
        XCTAssertThrowsError(try layout.manifest(desc)) { XCTAssertTrue("\($0)".contains("not owned"), "\($0)") }
    }

    func testBlobLargerThanItsDescriptorIsRefused() throws {
        let dir = try TemporaryDirectory()
        let (writer, desc, _) = try makeLayout(dir)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: writer.blobPath(desc.digest)))
        handle.seekToEndOfFile()
        handle.write(Data("extra".utf8))
        try handle.close()
        XCTAssertThrowsError(try ImageLayout(path: dir.file("layout")).manifest(desc)) {
            XCTAssertTrue("\($0)".contains("larger than its descriptor"), "\($0)")
        }
    }

    func testUnknownLayerMediaTypeIsRefused() throws {
        let config = Descriptor(mediaType: MediaType.ociConfig, digest: Digest.of(Data()), size: 0)
        let layer = Descriptor(mediaType: "application/x-evil", digest: Digest.of(Data()), size: 0)
        let data = try JSONEncoder.canonicalOCI.encode(Manifest(config: config, layers: [layer]))
        XCTAssertThrowsError(try Manifest.parse(data)) { XCTAssertTrue("\($0)".contains("unsupported layer media type")) }
    }

    func testOversizedManifestIsRefused() {
        XCTAssertThrowsError(try Manifest.parse(Data(count: Manifest.maxSize + 1))) {
            XCTAssertTrue("\($0)".contains("larger than 4 MiB"))
        }
    }

    func testPathComponentsRefuseTraversal() {
        for bad in ["../x", "a/../b", "/abs", "a//b", "", "a/./b", "a\0b"] {
            XCTAssertThrowsError(try DirectoryHandle.components(of: bad), bad.debugDescription)
        }
    }
}

final class RemoteStoreTests: XCTestCase {
    func testSaveLoadDeleteRoundTripsKeysAndSettings() throws {
        let dir = try TemporaryDirectory()
        let store = RemoteStore(directory: dir.file("remotes.d"), scope: .user)
        let remote = Remote(name: try RemoteName("demo"), url: "http://127.0.0.1:8080/repo", isRegistry: false,
                            mirrors: ["http://127.0.0.1:8081/m"], signatureLookaside: nil,
                            ed25519Keys: ["untrusted comment: k\nRWQ...\n"], gpgKeys: [Data([1, 2, 3])],
                            tufRoot: Data("{}".utf8))
        try store.save(remote)
        XCTAssertEqual(try store.load(try RemoteName("demo")), remote)
        XCTAssertEqual(store.all().map(\.name.string), ["demo"])
        try store.delete(try RemoteName("demo"))
        XCTAssertNil(try store.load(try RemoteName("demo")))
        XCTAssertThrowsError(try store.delete(try RemoteName("demo"))) {
            XCTAssertEqual(($0 as? FerryError)?.code, .notInstalled)
        }
    }

    func testInvalidURLsAreRefused() throws {
        for url in ["ftp://x", "http://a b", "javascript:alert(1)", "http://x/\n"] {
            XCTAssertThrowsError(try Remote.validateURL(url), url)
        }
    }

    func testRegistryIdentityIsHostPortRepoTag() throws {
        let remote = Remote(name: try RemoteName("r"), url: "http://127.0.0.1:5000/ns", isRegistry: true)
        XCTAssertEqual(remote.identity(for: try Ref("app:v2")), "127.0.0.1:5000/ns/app:v2")
        XCTAssertEqual(remote.identity(for: try Ref("app")), "127.0.0.1:5000/ns/app:latest")
        let layoutRemote = Remote(name: try RemoteName("l"), url: "http://h/x")
        XCTAssertEqual(layoutRemote.identity(for: try Ref("a/b/c")), "a/b/c")
    }

    func testMaxAgeDefaultsToSevenDaysWithWitnessesAndZeroTurnsItOff() throws {
        var remote = Remote(name: try RemoteName("r"), url: "https://x.example/apps")
        remote.logKey = "example.com/log+01020304+AQ=="
        XCTAssertNil(remote.effectiveMaxAge)
        remote.witnessKeys = ["w.example+01020304+BA=="]
        XCTAssertEqual(remote.effectiveMaxAge, 7 * 24 * 3600)
        remote.maxAge = 0
        XCTAssertNil(remote.effectiveMaxAge)
        XCTAssertNoThrow(try remote.validate())
        remote.maxAge = -1
        XCTAssertThrowsError(try remote.validate())
    }

    func testALayoutWithASignedIdentityNamesItsRefsAsTheRegistryDid() throws {
        let mirror = Remote(name: try RemoteName("m"), url: "file:///media/usb", signedIdentity: "127.0.0.1:5000/ns")
        XCTAssertNoThrow(try mirror.validate())
        XCTAssertEqual(mirror.identity(for: try Ref("app:v2")), "127.0.0.1:5000/ns/app:v2")
        XCTAssertEqual(mirror.identity(for: try Ref("app")), "127.0.0.1:5000/ns/app:latest")
        XCTAssertEqual(Remote(name: try RemoteName("r"), url: "https://reg.example/ns", isRegistry: true)
            .registryIdentityPrefix, "reg.example/ns")
        for bad in ["", "/ns", "host/", "host//ns", "a:1:2/ns", "host/n s", "host/ns\n", "hö/ns",
                    String(repeating: "a", count: 256)] {
            XCTAssertThrowsError(try Remote.validateIdentityPrefix(bad), bad)
        }
        // A registry's identity comes from its URL: a second source of it would be ambiguous.
        let both = Remote(name: try RemoteName("r"), url: "https://reg.example/ns", isRegistry: true,
                          signedIdentity: "other.example/ns")
        XCTAssertThrowsError(try both.validate()) {
            XCTAssertEqual(($0 as? FerryError)?.message, "a registry remote's signed identity comes from its URL")
        }
    }

    func testCorruptStateIsAnErrorNotAReset() throws {
        let dir = try TemporaryDirectory()
        try dir.write("state.json", "{garbage")
        XCTAssertThrowsError(try InstallState.load(from: dir.file("state.json"))) {
            XCTAssertTrue("\($0)".contains("corrupt"))
        }
        XCTAssertEqual(try InstallState.load(from: dir.file("missing.json")), InstallState())
    }
}
