import ArgumentParser
import FerryArchive
import FerryCore
import FerryInstall
import FerryLog
import FerryPublish
import FerryTrust
import Foundation

/// `ferry build DIR LAYOUT --ref REF`: packs a directory as a one-layer OCI image under `REF` in a layout.
struct BuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build", abstract: "Build an OCI image from a directory into an image layout.")

    @Argument(help: "The directory whose contents become the image's files.") var directory: String
    @Argument(help: "The OCI image layout to create or add to.") var layout: String
    @Option(help: "The ref to publish the image under, e.g. org.example.App/x86_64/stable.") var ref: String
    @Option(help: "The image's command, a path inside the image (relative to its root).") var command: String?
    @Option(help: ArgumentHelp(
        "Layer compression: gzip, zstd or zstd:chunked.",
        discussion: "zstd:chunked is a plain tar+zstd layer for every reader, with each file in frames of its own and "
            + "a table of contents, so that updates fetch only what changed (large files in content-defined chunks)."))
    var compression: String = "gzip"

    func run() async throws {
        let ref = try Ref(ref)
        let chunked = compression == "zstd:chunked"
        guard let compression = chunked ? .zstd : LayerCompression(rawValue: compression), compression != .none else {
            throw ValidationError("--compression must be gzip, zstd or zstd:chunked")
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw FerryError.invalidArgument("\(directory) is not a directory")
        }
        let image = try ImageBuilder.build(directory: directory, layout: layout, ref: ref, command: command,
                                           compression: compression, chunked: chunked)
        print("\(ref) \(image.digest)")
    }
}

/// `ferry sign LAYOUT --ref REF`: signs the claim that binds the ref's manifest digest to its identity.
struct SignCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign", abstract: "Sign an image in a layout (ed25519/minisign and/or GPG).")

    @Argument(help: "The OCI image layout.") var layout: String
    @Option(help: "The ref to sign.") var ref: String
    @Option(name: .customLong("ed25519-key"), help: "A minisign secret key file.") var ed25519Key: String?
    @Option(name: .customLong("gpg-key"), help: "A GPG key fingerprint in the user's keyring.") var gpgKey: String?
    @Option(help: "The signed identity (default: the ref; host[:port]/repo:tag for a registry).") var identity: String?
    @Option(help: "The claim timestamp in Unix seconds (default: now).") var timestamp: Int64?
    @Option(help: "The transparency log's signer key, when the layout has a log (the release is appended to it).")
    var logKey: String?

    func validate() throws {
        if ed25519Key == nil && gpgKey == nil {
            throw ValidationError("give --ed25519-key and/or --gpg-key")
        }
    }

    func run() async throws {
        let ref = try Ref(ref)
        let signer = ReleaseSigner(ed25519Key: try ed25519Key.map(loadMinisignSecretKey), gpgFingerprint: gpgKey,
                                   logKey: try logKey.map(loadLogSigner))
        let result = try signer.sign(layout: layout, ref: ref, identity: identity, timestamp: timestamp)
        for line in result.added { print("\(ref): \(line)") }
        if let (index, checkpoint) = result.logged {
            print("\(ref): logged as entry \(index) of \(checkpoint.origin) (size \(checkpoint.size))")
        }
    }

}

/// `ferry verify LAYOUT --ref REF`: checks an image the way an installer would, without installing it.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify an image in a layout: blobs, diff_ids and signatures.")

    @Argument(help: "The OCI image layout.") var layout: String
    @Option(help: "The ref to verify.") var ref: String
    @Option(name: .customLong("ed25519-key"), help: "A trusted minisign public key file.") var ed25519Keys: [String] = []
    @Option(name: .customLong("gpg-key"), help: "A trusted GPG public key file (armored or binary).") var gpgKeys: [String] = []
    @Option(help: "The identity the claim must name (default: the ref).") var identity: String?

    func run() async throws {
        let ref = try Ref(ref)
        do {
            let keys = try TrustedKeys.load(ed25519Files: ed25519Keys, gpgFiles: gpgKeys)
            let image = try ImageLayout(path: layout)
            let result = try ImageVerifier.verify(layout: image, ref: ref, identity: identity ?? ref.string, keys: keys)
            print("\(ref): OK \(result.digest), signed at \(result.claim.timestamp) by \(result.claim.signers.joined(separator: ", "))")
        } catch let error as FerryError {
            throw error.prefixed("\(layout) \(ref)")
        }
    }
}

/// Reads a minisign secret key; an encrypted key's password comes from `FERRY_KEY_PASSWORD` or the terminal.
func loadMinisignSecretKey(_ path: String) throws -> MinisignSecretKey {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw FerryError.invalidArgument("cannot read secret key \(path)")
    }
    if let key = try? MinisignSecretKey(parsing: text, password: nil) { return key }
    var password = ProcessInfo.processInfo.environment["FERRY_KEY_PASSWORD"]
    if password == nil, isatty(0) != 0, let typed = getpass("Password for \(path): ") {
        password = String(cString: typed)
    }
    return try MinisignSecretKey(parsing: text, password: password)
}
