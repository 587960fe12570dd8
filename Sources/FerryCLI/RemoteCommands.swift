import ArgumentParser
import FerryBus
import FerryCore
import FerryFetch
import FerryHelper
import FerryInstall
import FerryLog
import FerryTrust
import Foundation

struct RemoteAddCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remote-add",
        abstract: "Configure a remote and the keys trusted for it.",
        discussion: "Without --system or --user: --user. A system remote is written by ferry-helper after polkit "
            + "allows dev.ferry.configure-remote (administrators only).")

    @OptionGroup var scope: ScopeOptions
    @Argument(help: "A name for the remote.") var name: String
    @Argument(help: "Base URL or directory of a static OCI layout, or with --registry a registry repository prefix.")
    var url: String?
    @Option(help: "A .ferryrepo file or URL naming the URL, mirrors, keys, log, witnesses and TUF root in one step.")
    var from: String?
    @Flag(help: "With --from: trust the keys it names without asking (for scripts).") var assumeYes = false
    @Flag(help: "The URL is an OCI distribution registry (https://host/ns).") var registry = false
    @Option(name: .customLong("ed25519-key"), help: "A trusted minisign public key file.") var ed25519Keys: [String] = []
    @Option(name: .customLong("gpg-key"), help: "A trusted OpenPGP public key file.") var gpgKeys: [String] = []
    @Option(name: .customLong("tuf-root"), help: "The remote's trusted TUF root.json.") var tufRoot: String?
    @Option(name: .customLong("mirror"), help: "A mirror base URL or directory, tried in order.") var mirrors: [String] = []
    @Option(help: "Where a registry's signatures are served (lookaside).") var signatureLookaside: String?
    @Option(help: """
        For a layout that holds a registry's images (a mirror of a registry remote): the registry prefix \
        host[:port]/ns that its signatures name.
        """) var signedIdentity: String?
    @Option(help: "The remote's transparency log key (a .vkey file or the key string): releases must be logged.")
    var logKey: String?
    @Option(name: .customLong("witness"), help: "A witness key (.vkey file or string) whose cosignatures count.")
    var witnesses: [String] = []
    @Option(help: "Witness cosignatures a checkpoint needs (default: all witnesses).") var witnessQuorum: Int?
    @Option(help: "How old, in seconds, the newest witness cosignature may be (default with witnesses: 7 days; 0: no bound).")
    var maxAge: Int64?
    @Option(help: "How many current ed25519 keys must sign a key event in the log (default 1).")
    var keyThreshold: Int?
    @Flag(help: ArgumentHelp(
        "Start the remote's trust afresh: its rollback records and its trusted log checkpoint.",
        discussion: "Lifts the refusal a forked log left (the evidence stays).")) var resetTrust = false
    @Flag(help: "Never prompt, not even for polkit authentication.") var noInteraction = false

    func validate() throws {
        if (url == nil) == (from == nil) { throw ValidationError("give the remote's URL, or --from FILE|URL") }
        if from != nil, registry || !ed25519Keys.isEmpty || !gpgKeys.isEmpty || tufRoot != nil || !mirrors.isEmpty
            || signatureLookaside != nil || signedIdentity != nil || logKey != nil || !witnesses.isEmpty
            || witnessQuorum != nil || maxAge != nil || keyThreshold != nil
        {
            throw ValidationError("--from names the remote's settings and keys itself: give no other")
        }
    }

    func run() async throws {
        let name = try RemoteName(name)
        let remote: Remote
        if let from {
            remote = try await remoteFromFile(from, name: name)
        } else {
            remote = try remoteFromOptions(name)
        }
        try store(remote)
    }

    /// The remote a `.ferryrepo` describes, once its keys were shown and accepted.
    func remoteFromFile(_ source: String, name: RemoteName) async throws -> Remote {
        let location = Remote.location(source)
        let data: Data
        if location.contains("://") {
            guard let fetched = try await HTTPTransport.shared.fetch(location, maxSize: RemoteFile.maxSize) else {
                throw FerryError(.notInstalled, "\(source): not found")
            }
            data = fetched
        } else {
            guard let read = FileManager.default.contents(atPath: source) else {
                throw FerryError.invalidArgument("cannot read \(source)")
            }
            data = read
        }
        let remote = try RemoteFile(name: name, parsing: data, source: source).remote
        let keys = try TrustedKeys(remote: remote)
        let fingerprints = keys.gpg.isEmpty ? [] : try GPG.fingerprints(of: keys.gpg)
        if let root = remote.tufRoot { try Freshness.validateRoot(root) }
        let policy = try LogPolicy.of(remote)
        var lines = ["remote \(name) (\(scope.explicit ?? .user)) from \(source):", "  url: \(remote.url)"]
        lines += remote.mirrors.map { "  mirror: \($0)" }
        lines += keys.ed25519.map { "  ed25519 key \($0.keyID) (minisign)" }
        lines += fingerprints.map { "  GPG key \($0)" }
        if let policy {
            lines.append("  transparency log \(policy.logKey.name), key \(policy.logKey)")
            lines += policy.witnesses.map { "  witness \($0)" }
            if !policy.witnesses.isEmpty { lines.append("  witness quorum \(policy.quorum)") }
            if let maxAge = policy.maxAge { lines.append("  max-age \(maxAge) s") }
            lines.append("  key events need \(remote.effectiveKeyThreshold) of the current keys")
        }
        if let root = remote.tufRoot { lines.append("  TUF root \(Digest.of(root))") }
        if location.contains("://") && !location.hasPrefix("file://") {
            lines.append("This file came over the network: it is a convenience, not a source of trust. Check these "
                + "fingerprints with the publisher before you accept them.")
        }
        print(lines.joined(separator: "\n"))
        if !assumeYes {
            guard !noInteraction, isatty(0) != 0 else {
                throw FerryError.invalidArgument("remote \(name): nothing trusted; accept the keys above with "
                    + "--assume-yes, or run this on a terminal to be asked")
            }
            FileHandle.standardError.write(Data("Trust these keys for remote \(name)? [y/N] ".utf8))
            guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
                throw FerryError.failed("remote \(name): not added (declined)")
            }
        }
        return remote
    }

    /// The remote the command-line options describe.
    func remoteFromOptions(_ name: RemoteName) throws -> Remote {
        let keys = try TrustedKeys.load(ed25519Files: ed25519Keys, gpgFiles: gpgKeys)
        // Check every key before storing anything: a typo should fail here, not at the first install.
        if !keys.gpg.isEmpty { _ = try GPG.fingerprints(of: keys.gpg) }
        if keys.isEmpty { printError("warning: remote \(name) has no keys; nothing from it will install") }
        let tufData = try tufRoot.map(Freshness.loadRoot)
        // A directory (a mirror made by `ferry mirror`, a USB stick) is a `file://` URL.
        var remote = Remote(name: name, url: Remote.location(url ?? ""), isRegistry: registry,
                            mirrors: mirrors.map(Remote.location), signatureLookaside: signatureLookaside,
                            ed25519Keys: keys.ed25519.map(\.fileText),
                            gpgKeys: keys.gpg, tufRoot: tufData, signedIdentity: signedIdentity)
        remote.logKey = try logKey.map { try loadVerifierKey($0).text }
        remote.witnessKeys = try witnesses.map { try loadVerifierKey($0).text }
        remote.witnessQuorum = witnessQuorum
        remote.maxAge = maxAge
        remote.keyThreshold = keyThreshold
        try remote.validate()
        _ = try LogPolicy.of(remote)
        return remote
    }

    /// Stores the remote in the scope asked for (system: through the helper, after polkit).
    func store(_ remote: Remote) throws {
        let name = remote.name
        let keys = try TrustedKeys(remote: remote)
        let target = scope.explicit ?? .user
        switch target {
        case .user:
            let context = AgentContext()
            let previous = (try? context.userRemotes.load(name)) ?? nil
            try context.userRemotes.save(remote)
            if previous?.logKey != remote.logKey || previous?.witnessKeys != remote.witnessKeys || resetTrust {
                try ReleaseLogCheck.reset(name, paths: context.userPaths)
            }
            if resetTrust { try context.userInstaller().resetRecords(remote: name) }
            if previous?.tufRoot != remote.tufRoot {
                // A new TUF root starts trust afresh: forget the chain kept for the old one (both copies).
                try Freshness.reset(directory: context.userPaths.tuf(name))
                try Freshness.reset(directory: "\(context.cacheDirectory)/tuf/\(name)")
            }
        case .system:
            try HelperClient().configureRemote(
                name, settings: Helper1.RemoteSettings(remote: remote, resetRollbackState: resetTrust,
                                                       interactive: !noInteraction))
        }
        print("remote \(name) added (\(target)): \(remote.url), \(keys.ed25519.count) ed25519 and \(keys.gpg.count) GPG keys")
    }
}

struct RemoteDeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remote-delete", abstract: "Remove a remote.")

    @OptionGroup var scope: ScopeOptions
    @Argument(help: "The remote's name.") var name: String
    @Flag(help: "Never prompt, not even for polkit authentication.") var noInteraction = false

    func run() async throws {
        let name = try RemoteName(name)
        let target = scope.explicit ?? .user
        switch target {
        case .user: try AgentContext().userRemotes.delete(name)
        case .system: try HelperClient().configureRemote(name, settings: Helper1.RemoteSettings(remote: nil))
        }
        print("remote \(name) deleted (\(target))")
    }
}

struct RemotesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remotes", abstract: "List configured remotes.")

    @Flag(help: "JSON output for scripts.") var json = false

    struct Row: Encodable {
        var name: String
        var scope: String
        var url: String
        var registry: Bool
        var mirrors: [String]
        var ed25519Keys: Int
        var gpgKeys: Int
        var tuf: Bool
    }

    func run() async throws {
        let context = AgentContext()
        let rows = [context.systemRemotes, context.userRemotes].flatMap { store in
            store.all().map {
                Row(name: $0.name.string, scope: store.scope.rawValue, url: $0.url, registry: $0.isRegistry,
                    mirrors: $0.mirrors, ed25519Keys: $0.ed25519Keys.count, gpgKeys: $0.gpgKeys.count,
                    tuf: $0.tufRoot != nil)
            }
        }
        if json {
            try printJSON(rows)
            return
        }
        if rows.isEmpty {
            print("no remotes configured")
            return
        }
        for row in rows {
            let keys = "\(row.ed25519Keys) ed25519, \(row.gpgKeys) gpg" + (row.tuf ? ", tuf" : "")
            print("\(row.name)\t\(row.scope)\t\(row.registry ? "registry " : "")\(row.url)\t\(keys)")
        }
    }
}

struct RemoteLsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remote-ls", abstract: "List the refs a remote offers, with versions and sizes.")

    @Argument(help: "The remote's name.") var name: String
    @Flag(help: "JSON output for scripts.") var json = false

    struct Row: Encodable {
        var ref: String
        var digest: String
        var version: String?
        var size: Int64?
    }

    func run() async throws {
        let remote = try AgentContext().remote(name, for: .user)
        let source = try remote.source()
        var rows: [Row] = []
        do {
            for offered in try await source.refs() {
                // The size is the manifest's blobs; reading the manifest costs one small verified request.
                let size = try? await source.resolve(offered.ref).manifest
                let total = size.flatMap { try? Manifest.parse($0) }.flatMap { try? $0.totalSize() }
                rows.append(Row(ref: offered.ref.string, digest: offered.digest.description, version: offered.version,
                                size: total))
            }
        } catch let error as FerryError {
            throw error.prefixed("remote \(remote.name)")
        }
        if json {
            try printJSON(rows)
            return
        }
        for row in rows {
            let size = row.size.map { ProgressReporter.bytes(UInt64($0)) } ?? "?"
            print("\(row.ref)\t\(row.version ?? "-")\t\(size)\t\(row.digest.prefix(19))")
        }
    }
}

/// `ferry remote-info NAME`: a remote's keys and fingerprints, its log (trusted and served checkpoints, witnesses,
/// the age of the newest cosignature) and its freshness, for an administrator checking what is trusted.
struct RemoteInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remote-info", abstract: "Show a remote's keys, log, witnesses and freshness.")

    @OptionGroup var scope: ScopeOptions
    @Argument(help: "The remote's name.") var name: String

    func run() async throws {
        let context = AgentContext()
        let target = scope.explicit ?? ((try? context.userRemotes.load(try RemoteName(name))) != nil ? .user : .system)
        let remote = try context.remote(name, for: target)
        let keys = try TrustedKeys(remote: remote)
        var lines = ["remote \(remote.name) (\(target)): \(remote.url)\(remote.isRegistry ? " (registry)" : "")"]
        lines += remote.mirrors.map { "  mirror: \($0)" }
        let paths = target == .system ? context.systemPaths : context.userPaths
        let ledger = try RemoteLog(remote: remote, paths: paths)?.storedLedger()
        if let ledger {
            // The keys as this scope's reading of the log left them (the blessed ones, then key events).
            lines += ledger.keys.map { record in
                "  ed25519 key \(record.id): \(record.status)" + (record.added.map { " (added at log entry \($0))" } ?? "")
            }
            lines.append("  key threshold \(remote.effectiveKeyThreshold); log read up to entry \(ledger.size)")
            lines += ledger.recalls.map { "  recalled: \($0.ref) \($0.digest.prefix(19)): \($0.reason)" }
            lines += ledger.refused.suffix(5).map { "  refused log entry \($0.index): \($0.reason)" }
        } else {
            lines += keys.ed25519.map { "  ed25519 key \($0.keyID): active" }
        }
        lines += (keys.gpg.isEmpty ? [] : try GPG.fingerprints(of: keys.gpg)).map { "  GPG key \($0): active" }
        if let root = remote.tufRoot { lines.append("  TUF root \(Digest.of(root))") }
        if let identity = remote.signedIdentity { lines.append("  signed identity \(identity)") }
        if let policy = try LogPolicy.of(remote) {
            lines.append("  transparency log \(policy.logKey.name), key \(policy.logKey)")
            lines += policy.witnesses.map { "  witness \($0)" }
            lines.append("  witness quorum \(policy.quorum), max-age " + (policy.maxAge.map { "\($0) s" } ?? "none"))
            if let trusted = FileManager.default.contents(atPath: paths.log(remote.name) + "/checkpoint"),
                let checkpoint = try? Checkpoint.open(trusted, logKey: policy.logKey).checkpoint
            {
                lines.append("  trusted checkpoint: \(checkpoint.size) entries, root \(checkpoint.rootHash.base64)")
            } else {
                lines.append("  trusted checkpoint: none yet")
            }
            if let refused = FileManager.default.contents(atPath: paths.log(remote.name) + "/refused") {
                lines.append("  REFUSED: " + String(decoding: refused, as: UTF8.self))
            }
            lines.append("  served checkpoint: " + (await servedCheckpoint(remote, policy: policy)))
        }
        print(lines.joined(separator: "\n"))
    }

    /// The remote's current checkpoint, its cosignatures and their age, or why it cannot be read.
    func servedCheckpoint(_ remote: Remote, policy: LogPolicy) async -> String {
        let base = Remote.withoutTrailingSlash(remote.url)
        do {
            guard let data = try await HTTPTransport.shared.fetch(base + "/log/checkpoint", maxSize: SignedNote.maxSize)
            else {
                return "none served"
            }
            let opened = try Checkpoint.open(data, logKey: policy.logKey, witnesses: policy.witnesses)
            let cosignatures = opened.verified.filter { $0.key != policy.logKey }
            var text = "\(opened.checkpoint.size) entries, \(cosignatures.count) of \(policy.quorum) cosignatures"
            if let newest = cosignatures.map(\.timestamp).max() {
                let age = unixNow() - Int64(newest)
                text += ", newest \(age) s old"
                if let maxAge = policy.maxAge { text += age <= maxAge ? " (fresh)" : " (STALE: max-age \(maxAge) s)" }
            }
            return text
        } catch let error as FerryError {
            return "unreadable: \(error.message)"
        } catch {
            return "unreadable: \(error)"
        }
    }
}
