import ArgumentParser
import FerryCore
import FerryFetch
import FerryInstall
import FerryTrust
import Foundation

/// `ferry mirror SOURCE DEST [REF...]`: copies a remote, verified, into a directory that is a remote by itself.
struct MirrorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mirror",
        abstract: "Copy a remote's images with their signatures and TUF metadata into a directory.",
        discussion: """
            SOURCE is a configured remote (user remotes first, then system remotes), or a URL or directory with \
            the keys to check it (--ed25519-key, --gpg-key, --tuf-root). Every ref is verified against that trust \
            before it is copied; a ref that does not verify is reported and left out. DEST becomes a static OCI \
            layout: serve it from any web server, or add it as a remote or mirror by its path. Rerunning copies \
            only what DEST lacks; an interrupted run resumes.
            """)

    @Argument(help: "A configured remote's name, a URL, or a directory.") var source: String
    @Argument(help: "The directory to mirror into (created if needed).") var destination: String
    @Argument(help: "The refs to copy (default: every ref a layout remote offers).") var refs: [String] = []
    @Flag(help: "SOURCE is an OCI distribution registry (https://host/ns); with a URL source.") var registry = false
    @Option(name: .customLong("ed25519-key"), help: "A trusted minisign public key file (URL source).")
    var ed25519Keys: [String] = []
    @Option(name: .customLong("gpg-key"), help: "A trusted OpenPGP public key file (URL source).") var gpgKeys: [String] = []
    @Option(name: .customLong("tuf-root"), help: "The source's trusted TUF root.json (URL source).") var tufRoot: String?
    @Option(help: "Where a registry source's signatures are served (lookaside).") var signatureLookaside: String?
    @Option(help: "The registry prefix host[:port]/ns a layout source's signatures name (URL source).")
    var signedIdentity: String?

    func run() async throws {
        let remote = try sourceRemote()
        let refs = try refs.map { try Ref($0) }
        let context = AgentContext()
        let mirror = Mirror(remote: remote, destination: destination, transport: .shared,
                            scratch: "\(context.cacheDirectory)/mirror-\(getpid())")
        let report = try await mirror.run(refs: refs)
        for copied in report.copied {
            var line = "\(copied.ref) \(copied.digest.short): "
            if copied.blobsAdded == 0 {
                line += "already mirrored"
            } else {
                line += "added \(copied.blobsAdded) blob\(copied.blobsAdded == 1 ? "" : "s") "
                    + "(\(copied.bytesAdded) bytes)"
                if copied.blobsPresent > 0 { line += ", \(copied.blobsPresent) already there" }
                if copied.blobsReplaced > 0 { line += ", \(copied.blobsReplaced) damaged and replaced" }
            }
            print(line)
        }
        for (ref, error) in report.failed { printError("not mirrored: \(error.prefixed("\(ref)").message)") }
        let total = report.copied.reduce(Int64(0)) { $0 + $1.bytesAdded }
        print("mirrored \(report.copied.count) of \(report.copied.count + report.failed.count) refs from "
            + "\(source) into \(destination) (\(total) bytes added)")
        // A registry's signatures name the registry: the layout keeps them, and says how to trust it.
        if let prefix = remote.registryIdentityPrefix ?? remote.signedIdentity, !report.copied.isEmpty {
            print("its signatures name \(prefix)/NAME:TAG: add it with --signed-identity \(prefix)")
        }
        if let first = report.failed.first {
            throw FerryError(first.error.code, "\(report.failed.count) ref\(report.failed.count == 1 ? "" : "s") "
                + "did not verify and \(report.failed.count == 1 ? "was" : "were") not mirrored",
                cause: first.error.cause)
        }
    }

    /// The remote to copy: a configured one by name, or one made of SOURCE and the keys on the command line.
    func sourceRemote() throws -> Remote {
        let hasTrust = !ed25519Keys.isEmpty || !gpgKeys.isEmpty || tufRoot != nil || signedIdentity != nil
        if let name = try? RemoteName(source), !source.contains("/") {
            let context = AgentContext()
            for store in [context.userRemotes, context.systemRemotes] {
                if let remote = try store.load(name) {
                    guard !hasTrust, !registry, signatureLookaside == nil else {
                        throw ValidationError("remote \(name) is configured: its keys and settings are used; "
                            + "give key options only with a URL or directory")
                    }
                    return remote
                }
            }
        }
        let url = Remote.location(source)
        guard url.contains("://") else {
            throw FerryError(.notInstalled, "\(source) is neither a configured remote, a URL nor a directory")
        }
        let keys = try TrustedKeys.load(ed25519Files: ed25519Keys, gpgFiles: gpgKeys)
        var tufData: Data?
        if let tufRoot {
            guard let data = FileManager.default.contents(atPath: tufRoot) else {
                throw FerryError.invalidArgument("cannot read \(tufRoot)")
            }
            try Freshness.validateRoot(data)
            tufData = data
        }
        let remote = Remote(name: try RemoteName("source"), url: url, isRegistry: registry,
                            signatureLookaside: signatureLookaside.map(Remote.location),
                            ed25519Keys: keys.ed25519.map(\.fileText), gpgKeys: keys.gpg, tufRoot: tufData,
                            signedIdentity: signedIdentity)
        try remote.validate()
        return remote
    }
}
