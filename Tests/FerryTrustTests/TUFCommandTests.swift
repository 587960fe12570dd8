import FerryCore
import FerryTestSupport
import Foundation
import XCTest

/// `ferry tuf` end to end, the way the TUF conformance suite drives it: the built binary against a python-tuf
/// repository served over HTTP by Python's http.server, options in any order, exit status 0 or 1.
final class TUFCommandTests: XCTestCase {
    /// A static HTTP server for `directory` on a free loopback port (the child prints the port it bound).
    final class HTTPServer {
        let process = Process()
        let port: Int

        init(directory: String) throws {
            let script = """
                import functools, http.server, sys
                handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
                handler.log_message = lambda *args: None
                server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
                print(server.server_address[1], flush=True)
                server.serve_forever()
                """
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-u", "-c", script, directory]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            var line = Data()
            while let byte = try out.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
                line.append(byte)
            }
            guard let port = Int(String(decoding: line, as: UTF8.self)) else {
                process.terminate()
                throw FerryError.failed("http.server did not report a port")
            }
            self.port = port
        }

        var url: String { "http://127.0.0.1:\(port)" }

        deinit {
            process.terminate()
            process.waitUntilExit()
        }
    }

    /// The built `ferry`: BuiltProducts' guess, else `.build/debug/ferry` beside this source tree.
    static var binary: String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        return [BuiltProducts.ferry, root + "/.build/debug/ferry"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        } ?? BuiltProducts.ferry
    }

    override func setUpWithError() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: Self.binary), "\(Self.binary) is not built")
    }

    func ferry(_ arguments: [String], faketime: String? = nil) throws -> CommandResult {
        let binary = Self.binary
        let command = (faketime.map { ["faketime", "-f", $0] } ?? []) + [binary, "tuf"] + arguments
        return try Command.run(command)
    }

    func testInitRefreshAndDownloadOverHTTP() throws {
        let repo = try TUFTestRepository("delegations")
        let server = try HTTPServer(directory: repo.stage(0))
        let metadata = repo.temp.file("cli-metadata")
        let targets = repo.temp.file("cli-targets")

        var result = try ferry(["--metadata-dir", metadata, "init", repo.repo + "/trusted_root.json"])
        XCTAssertEqual(result.status, 0, result.err)
        result = try ferry(["refresh", "--metadata-dir", metadata, "--metadata-url", server.url + "/metadata"])
        XCTAssertEqual(result.status, 0, result.err)
        result = try ferry([
            "--target-name", "a/deep.txt", "--metadata-url", server.url + "/metadata", "--metadata-dir", metadata,
            "--target-dir", targets, "--target-name", "top.txt", "--target-base-url", server.url + "/targets",
            "download",
        ])
        XCTAssertEqual(result.status, 0, result.err)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: targets + "/a%2Fdeep.txt")),
                       Data("from role-c\n".utf8))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: targets + "/top.txt")), Data("from targets\n".utf8))
        XCTAssertTrue(FileManager.default.fileExists(atPath: metadata + "/role-c.json"))
    }

    func testUnlistedTargetExitsOne() throws {
        let repo = try TUFTestRepository("basic")
        let server = try HTTPServer(directory: repo.stage(0))
        let metadata = repo.temp.file("cli-metadata")
        XCTAssertEqual(try ferry(["--metadata-dir", metadata, "init", repo.repo + "/trusted_root.json"]).status, 0)
        let result = try ferry([
            "--metadata-url", server.url + "/metadata", "--metadata-dir", metadata, "--target-name", "nonexistent",
            "--target-base-url", server.url + "/targets", "--target-dir", repo.temp.file("t"), "download",
        ])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.err.contains("not listed by any trusted role"), result.err)
    }

    func testFaketimeInTheFutureMakesRefreshFailAsExpired() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/faketime"), "faketime missing")
        // libfaketime's LD_PRELOAD and the AddressSanitizer runtime both want to come first: the run hangs.
        try XCTSkipIf(Sanitizer.isAddress, "faketime cannot preload into an AddressSanitizer build")
        let repo = try TUFTestRepository("basic")
        let server = try HTTPServer(directory: repo.stage(0))
        let metadata = repo.temp.file("cli-metadata")
        XCTAssertEqual(try ferry(["--metadata-dir", metadata, "init", repo.repo + "/trusted_root.json"]).status, 0)
        let result = try ferry(["--metadata-url", server.url + "/metadata", "--metadata-dir", metadata, "refresh"],
                               faketime: "+400d")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.err.contains("root metadata version 1 expired at"), result.err)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: metadata), ["root.json"])
    }

    func testRollbackExitsOneAndKeepsTrustedMetadata() throws {
        let repo = try TUFTestRepository("rollback-timestamp")
        let metadata = repo.temp.file("cli-metadata")
        XCTAssertEqual(try ferry(["--metadata-dir", metadata, "init", repo.repo + "/trusted_root.json"]).status, 0)
        do {
            let server = try HTTPServer(directory: repo.stage(0))
            XCTAssertEqual(try ferry(["--metadata-url", server.url + "/metadata", "--metadata-dir", metadata,
                                      "refresh"]).status, 0)
        }
        let trusted = try Data(contentsOf: URL(fileURLWithPath: metadata + "/timestamp.json"))
        let server = try HTTPServer(directory: repo.stage(1))
        let result = try ferry(["--metadata-url", server.url + "/metadata", "--metadata-dir", metadata, "refresh"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.err.contains("older than the trusted version 2"), result.err)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: metadata + "/timestamp.json")), trusted)
    }
}
