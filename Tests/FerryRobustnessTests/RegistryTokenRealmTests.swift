import FerryCore
import FerryFetch
import FerryTestSupport
import Foundation
import XCTest

/// The registry's bearer-token dance against a registry on 127.0.0.1 (`scripts/test-http-server.py` serving the
/// v2 manifest path) whose `WWW-Authenticate` challenge is hostile. The realm comes from the server: it must be an
/// http(s) URL, and the user's stored registry credential goes only to the registry's own host or over https.
final class RegistryTokenRealmTests: XCTestCase {
    static let manifestPath = "/v2/ns/app/manifests/v1"
    /// `user:secret`, as `containers/auth.json` stores it.
    static let credential = Data("user:secret".utf8).base64EncodedString()
    var scratch: TemporaryDirectory!
    var registry: StaticServer!
    var other: StaticServer!
    var manifest: Data!
    var savedAuthFile: String?

    override func setUpWithError() throws {
        scratch = try TemporaryDirectory(prefix: "rt")
        let layout = scratch.file("layout")
        let image = try ImageCrafter.publish(layout: layout, ref: "org.example.Reg/x86_64/stable",
                                             layers: [[ImageCrafter.file("bin/hello", "hi\n", mode: 0o755)]])
        manifest = try Data(contentsOf: URL(fileURLWithPath: layout + "/" + ImageLayout.blobPath(image.digest)))
        // The registry's root: the manifest at its v2 path, and a token endpoint that answers any realm request.
        let root = scratch.file("registry")
        try FileManager.default.createDirectory(atPath: root + "/v2/ns/app/manifests",
                                                withIntermediateDirectories: true)
        try manifest.write(to: URL(fileURLWithPath: root + Self.manifestPath))
        try Data(#"{"token":"registry-token"}"#.utf8).write(to: URL(fileURLWithPath: root + "/token"))
        registry = try StaticServer(root: root, scratch: scratch)
        other = try StaticServer(root: root, scratch: scratch)
        // The credential is stored for the registry's host:port only, as `podman login` would store it.
        let authFile = scratch.file("auth.json")
        let auth = #"{"auths":{"127.0.0.1:\#(registry.port)":{"auth":"\#(Self.credential)"}}}"#
        try Data(auth.utf8).write(to: URL(fileURLWithPath: authFile))
        savedAuthFile = ProcessInfo.processInfo.environment["REGISTRY_AUTH_FILE"]
        setenv("REGISTRY_AUTH_FILE", authFile, 1)
    }

    override func tearDown() {
        if let savedAuthFile { setenv("REGISTRY_AUTH_FILE", savedAuthFile, 1) } else { unsetenv("REGISTRY_AUTH_FILE") }
        registry?.stop()
        other?.stop()
        scratch = nil
    }

    /// The registry answers the first manifest request with `challenge`, then serves the manifest.
    func challenge(_ challenge: String) throws {
        try registry.setFaults([Self.manifestPath: ["mode": "challenge", "challenge": challenge, "times": 1]])
    }

    func resolve() async throws -> Data {
        let remote = Remote(name: try RemoteName("reg"), url: registry.url + "/ns", isRegistry: true)
        let transport = HTTPTransport(stallTimeout: .seconds(2), connectTimeout: .seconds(2))
        return try await remote.source(transport: transport).resolve(try Ref("app:v1")).manifest
    }

    func assertRefused(_ fragment: String, file: StaticString = #filePath, line: UInt = #line) async {
        do {
            _ = try await resolve()
            XCTFail("a hostile realm was accepted", file: file, line: line)
        } catch let error as FerryError {
            XCTAssertEqual(error.code, .invalidArgument, error.message, file: file, line: line)
            XCTAssertTrue(error.message.contains(fragment), "\"\(error.message)\" lacks \"\(fragment)\"",
                          file: file, line: line)
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
        }
    }

    /// Attack: a `file://` realm made the agent read a local file and send its `token` to the registry.
    func testFileRealmIsRefusedAndTheFileIsNotRead() async throws {
        let secret = scratch.file("secret.json")
        try Data(#"{"token":"local-secret"}"#.utf8).write(to: URL(fileURLWithPath: secret))
        try challenge(#"Bearer realm="file://\#(secret)",service="reg""#)
        await assertRefused(
            "registry 127.0.0.1:\(registry.port): token realm \"file://\(secret)\" is not an http(s) URL"
        )
        // The request that followed the challenge, if any, carried no token read from the file.
        XCTAssertFalse(registry.requests().contains { $0.authorization?.contains("local-secret") == true })
        XCTAssertEqual(registry.requests().map(\.path), [Self.manifestPath])
    }

    func testRealmOfAnotherSchemeOrWithoutHostIsRefused() async throws {
        for realm in ["ftp://127.0.0.1/token", "http+unix://%2Frun%2Fdocker.sock/token", "/token", "http:///token"] {
            try challenge(#"Bearer realm="\#(realm)""#)
            await assertRefused("token realm \(realm.debugDescription) is not an http(s) URL")
        }
    }

    /// Attack: a realm on another host over plain http received the stored credential. Ferry still asks that
    /// realm for an anonymous token (public images need nothing more), but without the credential.
    func testCredentialIsNotSentOverPlainHTTPToAnotherHost() async throws {
        try challenge(#"Bearer realm="\#(other.url)/token",service="reg",scope="repository:ns/app:pull""#)
        let served = try await resolve()
        XCTAssertEqual(served, manifest)
        let tokenRequests = other.requests().filter { $0.path == "/token" }
        XCTAssertEqual(tokenRequests.count, 1)
        XCTAssertNil(tokenRequests.first?.authorization)
        // The token itself goes back to the registry only.
        XCTAssertEqual(registry.requests().last?.authorization, "Bearer registry-token")
    }

    /// The credential still works where the user configured it: a realm on the registry's own host and port.
    func testCredentialIsSentToARealmOnTheRegistryItself() async throws {
        try challenge(#"Bearer realm="\#(registry.url)/token",service="reg""#)
        let served = try await resolve()
        XCTAssertEqual(served, manifest)
        let tokenRequests = registry.requests().filter { $0.path == "/token" }
        XCTAssertEqual(tokenRequests.map(\.authorization), ["Basic \(Self.credential)"])
    }
}
