import ArgumentParser
import FerryCore
import FerryFetch
import FerryInstall
import FerryLog
import FerryTrust
import Foundation

/// `ferry log ...`: the publisher's transparency log (DESIGN.md, "Transparency log"): keys, a new log, a monitor
/// (`audit`), and (hidden, for tests and scripts) appending raw entries and checking a whole log directory.
struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log", abstract: "Manage a transparency log (c2sp.org signed notes, checkpoints, tiles).",
        subcommands: [LogKeygenCommand.self, LogInitCommand.self, LogWitnessCommand.self, LogAuditCommand.self,
                      LogAppendCommand.self, LogVerifyCommand.self])
}

/// `ferry log keygen NAME [--witness]`: a new signed-note key pair, `NAME.key` (mode 0600) and `NAME.vkey`.
struct LogKeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Generate a signed-note key pair: NAME.key (secret, mode 0600) and NAME.vkey.",
        discussion: """
            NAME is the key's name, by convention a URL without scheme (example.com/apps/log); a log's origin is \
            its key's name. Each / in NAME becomes _ in the file names unless --output says otherwise. Existing \
            files are never overwritten.
            """)

    @Argument(help: "The key name, e.g. example.com/apps/log.") var name: String
    @Flag(help: "A witness key (cosignature/v1, type 0x04) instead of a log key (Ed25519, type 0x01).")
    var witness = false
    @Option(help: "Write PREFIX.key and PREFIX.vkey (default: NAME with / replaced by _).") var output: String?

    func run() throws {
        let key = try NoteSignerKey.generate(name: name, type: witness ? .cosignature : .ed25519)
        let prefix = output ?? name.replacingOccurrences(of: "/", with: "_")
        let keyPath = prefix + ".key"
        let vkeyPath = prefix + ".vkey"
        for path in [keyPath, vkeyPath] where FileManager.default.fileExists(atPath: path) {
            throw FerryError.invalidArgument("\(path) exists; not overwriting a key")
        }
        try writeNewFile(Data((key.text + "\n").utf8), to: keyPath, mode: 0o600)
        try writeNewFile(Data((key.verifierKey.text + "\n").utf8), to: vkeyPath, mode: 0o644)
        print("\(keyPath): secret key (keep it private)")
        print("\(vkeyPath): \(key.verifierKey.text)")
    }
}

/// `ferry log init LAYOUT --key KEY`: an empty log under `LAYOUT/log/`, origin the key's name.
struct LogInitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Start a transparency log under LAYOUT/log/ (origin = the key's name).")

    @Argument(help: "The layout directory the log is served beside.") var layout: String
    @Option(help: "The log's signer key file (from `ferry log keygen`).") var key: String

    func run() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: layout, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw FerryError.invalidArgument("\(layout) is not a directory")
        }
        let signer = try loadLogSigner(key)
        let checkpoint = try LogAppender.create(at: layout + "/log", signer: signer)
        print("\(layout)/log: log \(checkpoint.origin), size 0, root \(checkpoint.rootHash.base64)")
    }
}

/// `ferry log append LAYOUT --key KEY FILE...`: appends each file as one entry. Hidden: `ferry sign` will append
/// release entries itself; this exists for tests and for logs of other things.
struct LogAppendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "append", abstract: "Append files as entries to a log and sign a new checkpoint.",
        shouldDisplay: false)

    @Argument(help: "The layout directory whose log/ to append to.") var layout: String
    @Option(help: "The log's signer key file.") var key: String
    @Argument(help: "Files, each one entry (at most 65535 bytes).") var files: [String] = []

    func run() throws {
        let signer = try loadLogSigner(key)
        let entries = try files.map { path -> Data in
            guard let data = FileManager.default.contents(atPath: path) else {
                throw FerryError.invalidArgument("cannot read \(path)")
            }
            return data
        }
        let checkpoint = try LogAppender(path: layout + "/log", signer: signer).append(entries)
        print("\(layout)/log: size \(checkpoint.size), root \(checkpoint.rootHash.base64)")
    }
}

/// `ferry log verify LAYOUT --log-key VKEY`: checks every entry and tile of a log directory against its
/// checkpoint. Hidden: the start of `ferry log audit`, which will also fetch and remember.
struct LogVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Verify a whole log directory against its signed checkpoint.",
        shouldDisplay: false)

    @Argument(help: "The layout directory whose log/ to verify.") var layout: String
    @Option(help: "The log's verifier key: a .vkey file or the key string itself.") var logKey: String

    func run() throws {
        let key = try loadVerifierKey(logKey)
        let checkpoint = try LogVerifier.verify(try LogDirectory(path: layout + "/log"), logKey: key)
        print("\(checkpoint.origin) size \(checkpoint.size) root \(checkpoint.rootHash.base64)")
    }
}

/// `ferry log audit REMOTE|URL --log-key VKEY`: a monitor. Copies the whole log, checks every tile and entry against
/// the signed checkpoint, checks that the log only grew since the audit before (a fork or a shrink is refused and
/// both checkpoints kept as evidence), checks every release entry's signatures with the remote's keys, and prints
/// every event in order.
struct LogAuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Verify a remote's whole transparency log and list every event in it.",
        discussion: """
            SOURCE is a configured remote (its keys check the release entries) or a URL or directory (with \
            --ed25519-key/--gpg-key to check them). What the audit saw is kept in $XDG_CACHE_HOME/ferry/audit/ so \
            the next audit proves the log only grew. Exit status 1 when anything does not verify.
            """)

    @Argument(help: "A configured remote's name, a URL, or a directory.") var source: String
    @Option(help: "The log's verifier key: a .vkey file or the key string (default: the configured remote's).")
    var logKey: String?
    @Option(name: .customLong("ed25519-key"), help: "A trusted minisign public key file (URL source).")
    var ed25519Keys: [String] = []
    @Option(name: .customLong("gpg-key"), help: "A trusted OpenPGP public key file (URL source).") var gpgKeys: [String] = []
    @Flag(help: "JSON output for scripts.") var json = false

    struct Row: Encodable {
        var index: UInt64
        var kind: String
        var ref: String?
        var digest: String?
        var timestamp: Int64?
        /// Key events: the key's id; recalls: the reason.
        var key: String?
        var reason: String?
        var verified: Bool
        var problem: String?
    }

    func run() async throws {
        let context = AgentContext()
        var remote: Remote?
        if let name = try? RemoteName(source), !source.contains("/") {
            remote = try context.userRemotes.load(name) ?? context.systemRemotes.load(name)
        }
        guard let keyText = logKey ?? remote?.logKey else {
            throw ValidationError("give the log's key (--log-key): \(source) is not a remote configured with one")
        }
        let key = try loadVerifierKey(keyText)
        let base: String
        // The keys the audit starts from: the remote's as configured, or the files given; the log's key events
        // change them from there, exactly as for a client.
        let blessed: Remote
        if let remote {
            base = remote.url
            blessed = remote
        } else {
            base = Remote.location(source)
            try Remote.validateURL(base)
            blessed = Remote(name: try RemoteName("audit"), url: base,
                             ed25519Keys: try ed25519Keys.map { try readSmallFile($0) },
                             gpgKeys: try TrustedKeys.load(ed25519Files: [], gpgFiles: gpgKeys).gpg)
        }
        let trimmed = Remote.withoutTrailingSlash(base)
        let cache = "\(context.cacheDirectory)/audit/\(key.name.replacingOccurrences(of: "/", with: "_"))"
        let download = LogDownload(base: trimmed, transport: .shared)
        var rows: [Row] = []
        var directory: LogDirectory
        var checkpoint: Checkpoint
        // Full tiles kept from the last audit save bandwidth; if the log does not verify with them (a forked log
        // rewrote them), it is fetched whole again, and the growth check below says what happened.
        var attempt = 0
        while true {
            attempt += 1
            try FileManager.default.createDirectory(atPath: cache + "/log", withIntermediateDirectories: true)
            guard try await download.copy(into: cache + "/log", logKey: key) != nil else {
                throw FerryError(.notInstalled, "\(source) has no transparency log (no log/checkpoint)")
            }
            rows = []
            directory = try LogDirectory(path: cache + "/log")
            var ledger = try TrustLedger(remote: blessed, origin: key.name)
            do {
                checkpoint = try LogVerifier.verify(directory, logKey: key) { index, data in
                    rows.append(Self.row(index: index, entry: data, ledger: &ledger, remote: blessed,
                                         named: remote != nil))
                }
                break
            } catch let error as FerryError where attempt == 1 && error.code == .untrusted {
                try FileManager.default.removeItem(atPath: cache + "/log")
            }
        }
        try checkGrowth(to: checkpoint, directory: directory, cache: cache, key: key)
        try AtomicFile.write(try directory.readCheckpoint(), to: cache + "/seen-checkpoint")
        if json {
            try printJSON(rows)
        } else {
            for row in rows {
                var line = "\(row.index) \(row.kind)"
                if let ref = row.ref, let digest = row.digest, let timestamp = row.timestamp {
                    line += " \(ref) \(digest) \(TimestampPolicy.describe(timestamp))"
                }
                if let key = row.key, let timestamp = row.timestamp {
                    line += " \(key) \(TimestampPolicy.describe(timestamp))"
                }
                if let reason = row.reason { line += " (\(reason))" }
                line += row.verified ? " verified" : " NOT VERIFIED: \(row.problem ?? "")"
                print(line)
            }
            print("\(checkpoint.origin): \(checkpoint.size) entries, root \(checkpoint.rootHash.base64), "
                + "consistent with the last audit")
        }
        let bad = rows.filter { !$0.verified }
        if !bad.isEmpty {
            throw FerryError.untrusted("\(bad.count) of \(rows.count) log entries did not verify")
        }
    }

    /// One entry, read into `ledger` as a client reads it: a release's signatures checked with the keys valid at its
    /// index for the identity its ref has on `remote` (`named`: a configured remote; else the ref itself), a key
    /// event or recall verified when the ledger applied it.
    static func row(index: UInt64, entry data: Data, ledger: inout TrustLedger, remote: Remote, named: Bool) -> Row {
        let refusedBefore = ledger.refused.last
        ledger.read(data, at: index)
        let refusal = ledger.refused.last != refusedBefore ? ledger.refused.last?.reason : nil
        let entry: LogEntry
        do {
            entry = try LogEntry(parsing: data)
        } catch let error as FerryError {
            return Row(index: index, kind: "malformed", verified: false, problem: error.message)
        } catch {
            return Row(index: index, kind: "malformed", verified: false, problem: "\(error)")
        }
        switch entry {
        case .other(let kind):
            return Row(index: index, kind: kind, verified: false, problem: "unknown kind")
        case .keyEvent(let event):
            return Row(index: index, kind: event.change.rawValue, timestamp: event.timestamp,
                       key: (try? MinisignPublicKey(parsing: event.key).keyID) ?? "?", verified: refusal == nil,
                       problem: refusal)
        case .recall(let recall):
            return Row(index: index, kind: RecallEntry.kind, ref: recall.ref.string,
                       digest: recall.digest.description, timestamp: recall.timestamp, reason: recall.reason,
                       verified: refusal == nil, problem: refusal)
        case .release(let release):
            var row = Row(index: index, kind: ReleaseEntry.kind, ref: release.ref.string,
                          digest: release.digest.description, timestamp: release.timestamp, verified: false)
            do {
                let keys = try ledger.trustedKeys(forReleaseAt: index, gpg: remote.gpgKeys)
                guard !keys.isEmpty else {
                    row.problem = "no keys to check its signatures with"
                    return row
                }
                let identity = named ? remote.identity(for: release.ref) : release.ref.string
                let claim = try ClaimVerifier.verify(release.signatures, digest: release.digest, identity: identity,
                                                     keys: keys)
                guard claim.timestamp == release.timestamp else {
                    row.problem = "the entry says \(release.timestamp), its newest signed claim \(claim.timestamp)"
                    return row
                }
                row.verified = true
            } catch let error as FerryError {
                row.problem = error.message
            } catch {
                row.problem = "\(error)"
            }
            return row
        }
    }

    /// The log may only have grown since the last audit: the old checkpoint's root must be the root of the first
    /// entries of the new tree. A fork or a shrink is refused, and both checkpoints are kept as evidence.
    func checkGrowth(to checkpoint: Checkpoint, directory: LogDirectory, cache: String, key: NoteVerifierKey) throws {
        guard let seenData = FileManager.default.contents(atPath: cache + "/seen-checkpoint") else { return }
        let seen = try Checkpoint.open(seenData, logKey: key).checkpoint
        var problem: String?
        if seen.size > checkpoint.size {
            problem = "the log shrank from \(seen.size) to \(checkpoint.size) entries"
        } else {
            let root = try MerkleTree.rootHash(size: seen.size, reader: directory.hashReader(treeSize: seen.size,
                                                                                               tilesOf: checkpoint.size))
            if root != seen.rootHash {
                problem = "the log forked: its first \(seen.size) entries hash to \(root.base64), the checkpoint "
                    + "audited before signed \(seen.rootHash.base64)"
            }
        }
        guard let problem else { return }
        let evidence = "\(cache)/evidence-\(unixNow())"
        try FileManager.default.createDirectory(atPath: evidence, withIntermediateDirectories: true)
        try AtomicFile.write(seenData, to: evidence + "/checkpoint-before")
        try AtomicFile.write(try directory.readCheckpoint(), to: evidence + "/checkpoint-now")
        throw FerryError.untrusted("\(checkpoint.origin): \(problem); both checkpoints kept in \(evidence)")
    }
}

/// Reads a log signer key file (at most 4 KiB), refusing a witness key.
func loadLogSigner(_ path: String) throws -> NoteSignerKey {
    let key = try NoteSignerKey(try readSmallFile(path))
    guard key.type == .ed25519 else {
        throw FerryError.invalidArgument("\(path) is a witness key; a log needs an Ed25519 (type 0x01) key")
    }
    return key
}

/// A verifier key given as a file or as the key string itself (DESIGN.md: `--log-key` and `--witness` take both).
func loadVerifierKey(_ argument: String) throws -> NoteVerifierKey {
    if argument.contains("+"), !FileManager.default.fileExists(atPath: argument) {
        return try NoteVerifierKey(argument)
    }
    return try NoteVerifierKey(try readSmallFile(argument))
}

/// A key file's text (at most 4 KiB).
func readSmallFile(_ path: String) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw ioError("open \(path)") }
    defer { close(fd) }
    let data = try readAll(fd: fd, maxSize: 4096, what: path)
    guard let text = String(data: data, encoding: .utf8) else {
        throw FerryError.invalidArgument("\(path) is not UTF-8 text")
    }
    return text
}

/// Creates `path` with `mode`, failing if anything is there (`O_EXCL`: a key is never overwritten), and syncs it.
private func writeNewFile(_ data: Data, to path: String, mode: mode_t) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
    guard fd >= 0 else { throw ioError("create \(path)") }
    defer { close(fd) }
    _ = fchmod(fd, mode)
    try writeAll(fd: fd, data: data, what: path)
    guard fsync(fd) == 0 else { throw ioError("fsync \(path)") }
}
