import ArgumentParser
@testable import FerryCLI
import XCTest

/// The command line parsed through swift-argument-parser itself, as its own tests do (AssertParseCommand style).
final class CommandParsingTests: XCTestCase {
    func parse<T: ParsableCommand>(_ type: T.Type, _ arguments: [String]) throws -> T {
        let command = try Ferry.parseAsRoot(arguments)
        return try XCTUnwrap(command as? T, "\(arguments) parsed as \(Swift.type(of: command))")
    }

    func testInstallTakesScopeRemoteRefAndFlags() throws {
        let install = try parse(InstallCommand.self, ["install", "--system", "demo", "org.x.App/x86_64/stable", "--no-interaction"])
        XCTAssertTrue(install.scope.system)
        XCTAssertEqual(install.remote, "demo")
        XCTAssertEqual(install.ref, "org.x.App/x86_64/stable")
        XCTAssertTrue(install.noInteraction)
        XCTAssertFalse(install.assumeYes)
    }

    func testSystemAndUserTogetherAreAUsageError() {
        XCTAssertThrowsError(try Ferry.parseAsRoot(["install", "--system", "--user", "demo", "a"]))
    }

    func testUpdateTakesRefsAndDowngradeFlag() throws {
        let update = try parse(UpdateCommand.self, ["update", "--user", "a", "b", "--allow-downgrade"])
        XCTAssertEqual(update.refs, ["a", "b"])
        XCTAssertTrue(update.allowDowngrade)
        XCTAssertEqual(update.scope.explicit, .user)
    }

    func testRemoteAddCollectsRepeatedKeysAndMirrors() throws {
        let add = try parse(RemoteAddCommand.self, [
            "remote-add", "--user", "r", "https://h/ns", "--registry", "--ed25519-key", "a.pub", "--ed25519-key", "b.pub",
            "--gpg-key", "k.asc", "--mirror", "https://m1", "--mirror", "https://m2", "--signature-lookaside", "https://l",
        ])
        XCTAssertEqual(add.ed25519Keys, ["a.pub", "b.pub"])
        XCTAssertEqual(add.mirrors, ["https://m1", "https://m2"])
        XCTAssertTrue(add.registry)
        XCTAssertEqual(add.signatureLookaside, "https://l")
    }

    func testRunPassesArgumentsAfterTheTerminator() throws {
        let run = try parse(RunCommand.self, ["run", "app", "--", "--flag", "x"])
        XCTAssertEqual(run.arguments, ["--flag", "x"])
    }

    func testBuildDefaultsToGzip() throws {
        let build = try parse(BuildCommand.self, ["build", "dir", "layout", "--ref", "a"])
        XCTAssertEqual(build.compression, "gzip")
        XCTAssertNil(build.command)
    }

    func testSignNeedsAKey() {
        XCTAssertThrowsError(try Ferry.parseAsRoot(["sign", "layout", "--ref", "a"]))
    }
}
