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
            only what DEST lacks; an interrupted run resumes. With --to-registry, DEST is a registry repository \
            prefix (https://host/ns): the verified images are pushed there (the ref NAME:TAG as host/ns/NAME:TAG) \
            and their signatures written to the --dest-lookaside directory, to be served as that registry's \
            signature lookaside.
            """)

    @Argument(help: "A configured remote's name, a URL, or a directory.") var source: String
    @Argument(help: "The directory to mirror into (created if needed), or with --to-registry a registry URL.")
    var destination: String
    @Argument(help: "The refs to copy (default: every ref a layout remote offers).") var refs: [String] = []
    @Flag(help: "SOURCE is an OCI distribution registry (https://host/ns); with a URL source.") var registry = false
    @Option(name: .customLong("ed25519-key"), help: "A trusted minisign public key file (URL source).")
    var ed25519Keys: [String] = []
    @Option(name: .customLong("gpg-key"), help: "A trusted OpenPGP public key file (URL source).") var gpgKeys: [String] = []
    @Option(name: .customLong("tuf-root"), help: "The source's trusted TUF root.json (URL source).") var tufRoot: String?
    @Option(help: "Where a registry source's signatures are served (lookaside).") var signatureLookaside: String?
    @Option(help: "The registry prefix host[:port]/ns a layout source's signatures name (URL source).")
    var signedIdentity: String?
    @Flag(help: "DEST is an OCI distribution registry (https://host/ns) to push to.") var toRegistry = false
    @Option(help: "With --to-registry: the directory to write the pushed images' signatures into (a lookaside).")
    var destLookaside: String?

    func validate() throws {
        if destLookaside != nil && !toRegistry { throw ValidationError("--dest-lookaside needs --to-registry") }
    }

    func run() async throws {
        let remote = try sourceRemote()
        let refs = try refs.map { try Ref($0) }
        let context = AgentContext()
        var push: RegistryPush?
        var layout = destination
        if toRegistry {
            try Remote.validateURL(destination, what: "registry URL")
            push = try RegistryPush(destination: destination, lookaside: destLookaside, transport: .shared)
            // The images are verified into a layout kept in the cache (so a rerun resumes), then pushed from it.
            layout = "\(context.cacheDirectory)/push/\(Digest.of(Data(destination.utf8)).hex.prefix(16))"
        }
        let mirror = Mirror(remote: remote, destination: layout, transport: .shared,
                            scratch: "\(context.cacheDirectory)/mirror-\(getpid())")
        var report = try await mirror.run(refs: refs)
        if let push { try await pushAll(&report, from: layout, with: push, remote: remote) }
        for copied in report.copied where !toRegistry {
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
        if let size = report.logSize { print("transparency log: \(size) entries") }
        for (ref, error) in report.failed { printError("not mirrored: \(error.prefixed("\(ref)").message)") }
        let total = report.copied.reduce(Int64(0)) { $0 + $1.bytesAdded }
        print("mirrored \(report.copied.count) of \(report.copied.count + report.failed.count) refs from "
            + "\(source) into \(destination) (\(total) bytes added)")
        // A registry's signatures name the registry: the layout keeps them, and says how to trust it.
        if !toRegistry, let prefix = remote.registryIdentityPrefix ?? remote.signedIdentity, !report.copied.isEmpty {
            print("its signatures name \(prefix)/NAME:TAG: add it with --signed-identity \(prefix)")
        }
        if let first = report.failed.first {
            throw FerryError(first.error.code, "\(report.failed.count) ref\(report.failed.count == 1 ? "" : "s") "
                + "did not verify and \(report.failed.count == 1 ? "was" : "were") not mirrored",
                cause: first.error.cause)
        }
    }

    /// Pushes every verified ref from the staging layout; a ref whose push fails moves to the failures.
    func pushAll(_ report: inout Mirror.Report, from path: String, with push: RegistryPush, remote: Remote)
        async throws
    {
        let layout = try ImageLayout(path: path)
        var copied: [Mirror.Copied] = []
        for entry in report.copied {
            do {
                let descriptor = try layout.descriptor(for: entry.ref)
                let data = try layout.readBlob(descriptor, maxSize: Int64(Manifest.maxSize))
                let manifest = try Manifest.parse(data)
                let signatures = try layout.signatures(ref: entry.ref, digest: descriptor.digest)
                let pushed = try await push.push(layout: path, ref: entry.ref, descriptor: descriptor,
                                                 manifest: manifest, manifestData: data, signatures: signatures)
                var line = "\(entry.ref) \(descriptor.digest.short): pushed to \(push.imageName(entry.ref)), "
                    + "\(pushed.blobsSent) blob\(pushed.blobsSent == 1 ? "" : "s") sent (\(pushed.bytesSent) bytes)"
                if pushed.blobsPresent > 0 { line += ", \(pushed.blobsPresent) already there" }
                print(line)
                let signed = remote.identity(for: entry.ref)
                if signed != push.imageName(entry.ref) {
                    print("  its signatures name \(signed): use the registry as a --mirror of the source's registry "
                        + "remote, or sign for \(push.imageName(entry.ref))")
                }
                copied.append(entry)
            } catch let error as FerryError {
                report.failed.append((entry.ref, error))
            }
        }
        report.copied = copied
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
        let tufData = try tufRoot.map(Freshness.loadRoot)
        let remote = Remote(name: try RemoteName("source"), url: url, isRegistry: registry,
                            signatureLookaside: signatureLookaside.map(Remote.location),
                            ed25519Keys: keys.ed25519.map(\.fileText), gpgKeys: keys.gpg, tufRoot: tufData,
                            signedIdentity: signedIdentity)
        try remote.validate()
        return remote
    }
}
