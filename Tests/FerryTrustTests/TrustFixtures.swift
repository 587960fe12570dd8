import FerryCore
import FerryTestSupport
import FerryTrust
import Foundation
import XCTest

/// A GnuPG home with one fresh ed25519 signing key, made by
/// `gpg --batch --pinentry-mode loopback --passphrase '' --quick-generate-key 'NAME <EMAIL>' ed25519 sign never`.
final class GPGHome {
    let directory: TemporaryDirectory
    let fingerprint: String

    init(name: String = "Ferry Test", email: String = "e@x") throws {
        // "tg" keeps these apart from the verifier's own /tmp/g.* homes, which tests count.
        directory = try TemporaryDirectory(prefix: "tg")
        let environment = ["GNUPGHOME": directory.path]
        try Command.check(
            [
                "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
                "--quick-generate-key", "\(name) <\(email)>", "ed25519", "sign", "never",
            ],
            environment: environment
        )
        let listing = try Command.check(
            ["gpg", "--batch", "--with-colons", "--list-secret-keys"],
            environment: environment
        ).out
        guard let line = listing.split(separator: "\n").first(where: { $0.hasPrefix("fpr:") }),
            let fpr = line.split(separator: ":", omittingEmptySubsequences: false).dropFirst(9).first
        else {
            throw CocoaError(.fileReadCorruptFile)
        }
        fingerprint = String(fpr)
    }

    var path: String { directory.path }
    var environment: [String: String] { ["GNUPGHOME": directory.path] }

    @discardableResult
    func gpg(_ arguments: [String], input: Data? = nil) throws -> CommandResult {
        try Command.check(["gpg", "--batch"] + arguments, environment: environment, input: input)
    }

    /// `gpg --export [--armor] FPR`.
    func publicKey(armored: Bool) throws -> Data {
        try gpg(["--export"] + (armored ? ["--armor"] : []) + [fingerprint]).stdout
    }

    /// `gpg --sign` over `content`: a binary (or `--armor`) OpenPGP signed message.
    func sign(_ content: Data, extra: [String] = []) throws -> Data {
        try gpg(["--sign", "--local-user", fingerprint] + extra + ["--output", "-"], input: content).stdout
    }

    deinit {
        _ = try? Command.run(["gpgconf", "--homedir", directory.path, "--kill", "all"])
    }
}

/// A minisign key pair made by `minisign -G -W` (unencrypted), and signing with stock `minisign -S`.
final class MinisignKeyFiles {
    let directory: TemporaryDirectory
    let publicKeyText: String
    let secretKeyText: String

    init() throws {
        directory = try TemporaryDirectory(prefix: "ms")
        try Command.check(["minisign", "-G", "-W", "-p", directory.file("key.pub"), "-s", directory.file("key.sec")])
        publicKeyText = try String(contentsOfFile: directory.file("key.pub"), encoding: .utf8)
        secretKeyText = try String(contentsOfFile: directory.file("key.sec"), encoding: .utf8)
    }

    var publicKeyPath: String { directory.file("key.pub") }
    var secretKeyPath: String { directory.file("key.sec") }

    func publicKey() throws -> MinisignPublicKey { try MinisignPublicKey(parsing: publicKeyText) }

    /// `minisign -S -s KEY -m FILE -x FILE.minisig [-l] [-t COMMENT]` over `data`; returns the `.minisig` text.
    func sign(_ data: Data, legacy: Bool = false, trustedComment: String? = nil) throws -> String {
        let file = directory.file("message-\(UUID().uuidString)")
        try data.write(to: URL(fileURLWithPath: file))
        var arguments = ["minisign", "-S", "-s", secretKeyPath, "-m", file, "-x", file + ".minisig"]
        if legacy { arguments.append("-l") }
        if let trustedComment { arguments += ["-t", trustedComment] }
        try Command.check(arguments)
        return try String(contentsOfFile: file + ".minisig", encoding: .utf8)
    }
}

/// Asserts `body` throws a `FerryError` with `code` whose message contains `fragment`.
func assertFerryError<T>(
    _ code: FerryError.Code,
    _ fragment: String,
    file: StaticString = #filePath,
    line: UInt = #line,
    _ body: () throws -> T
) {
    do {
        _ = try body()
        XCTFail("expected \(code) containing \"\(fragment)\", got success", file: file, line: line)
    } catch let error as FerryError {
        XCTAssertEqual(error.code, code, "message: \(error.message)", file: file, line: line)
        // String.contains("") is false; an empty fragment means "any message".
        XCTAssertTrue(
            fragment.isEmpty || error.message.contains(fragment),
            "\"\(error.message)\" lacks \"\(fragment)\"",
            file: file,
            line: line
        )
    } catch {
        XCTFail("expected FerryError, got \(error)", file: file, line: line)
    }
}

/// A claim as Ferry signs it.
func claimData(digest: Digest, identity: String, timestamp: Int64? = 1_764_000_000) -> Data {
    Claim(digest: digest, identity: identity, timestamp: timestamp).serialized()
}
