import ArgumentParser
import FerryCore
import FerryInstall
import FerryLog
import FerryTrust
import Foundation

/// What every trust operation on a layout's log needs: the layout, the `.ferryrepo` users were blessed with (the
/// keys and threshold the log's key events start from), the keys that sign the statement, and the log's signer.
struct TrustOperationOptions: ParsableArguments {
    @Argument(help: "The OCI image layout whose log/ receives the entry.") var layout: String
    @Option(name: .customLong("from"), help: ArgumentHelp(
        "The .ferryrepo users bless the remote with.",
        discussion: "Its keys and key-threshold are where clients start; the log is read from there, as clients "
            + "read it, so that an entry they would refuse is never written."))
    var repoFile: String
    @Option(name: .customLong("ed25519-key"), help: "A current minisign secret key to sign with (repeat for a threshold).") var signingKeys: [String] = []
    @Option(help: "The transparency log's signer key (the new checkpoint is signed with it).") var logKey: String

    /// The ledger as clients will have it after reading the whole log, and the appender for the next entry.
    func open() throws -> (TrustLedger, LogAppender, [MinisignSecretKey]) {
        guard !signingKeys.isEmpty else { throw ValidationError("give at least one --ed25519-key to sign with") }
        guard let data = FileManager.default.contents(atPath: repoFile) else {
            throw FerryError.invalidArgument("cannot read \(repoFile)")
        }
        let remote = try RemoteFile(name: RemoteName("publisher"), parsing: data, source: repoFile).remote
        let signer = try loadLogSigner(logKey)
        guard let configured = remote.logKey, try NoteVerifierKey(configured) == signer.verifierKey else {
            throw FerryError.invalidArgument("\(repoFile) does not name the log key \(signer.name) (log-key)")
        }
        let appender = try LogAppender(path: layout + "/log", signer: signer)
        var ledger = try TrustLedger(remote: remote, origin: signer.name)
        _ = try LogVerifier.verify(appender.directory, logKey: signer.verifierKey) { index, entry in
            ledger.read(entry, at: index)
        }
        return (ledger, appender, try signingKeys.map(loadMinisignSecretKey))
    }

    /// Signs `statement` with every key, checks that clients would apply `entry` (built from the signatures) after
    /// `ledger`, and appends it. Returns the entry's index and the new checkpoint.
    func append(statement: Data, kind: String, ledger: TrustLedger, appender: LogAppender,
                keys: [MinisignSecretKey]) throws -> (UInt64, Checkpoint)
    {
        let signatures = try keys.map {
            Data(try $0.sign(statement, trustedComment: "ferry \(kind) of \(appender.signer.name)").utf8)
        }
        let entry = try SignedStatement(kind: kind, statement: statement, signatures: signatures).serialized()
        var next = ledger
        next.read(entry, at: ledger.size)
        if next.refused.count != ledger.refused.count || next.refused.last != ledger.refused.last,
            let refusal = next.refused.last
        {
            throw FerryError.untrusted("not written: clients would refuse it: \(refusal.reason)")
        }
        let checkpoint = try appender.append([entry])
        return (checkpoint.size - 1, checkpoint)
    }
}

/// `ferry key add|remove|revoke`: changes a remote's keys in-band, by a signed entry in its log.
struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key", abstract: "Change a remote's ed25519 keys in-band: add, remove or revoke, in its log.",
        discussion: """
            Each change is a log entry signed by key-threshold of the remote's current keys. Every client applies \
            them in log order, the helper included, with no new blessing. remove: nothing logged after it counts \
            as signed by the key; revoke: also what it signed with a claim from --since on (default now), logged \
            before or not. See docs/trust.md.
            """,
        subcommands: [KeyAddCommand.self, KeyRemoveCommand.self, KeyRevokeCommand.self])
}

/// The key a key event names: a `.pub` file.
private func publicKeyLine(_ path: String) throws -> MinisignPublicKey {
    try MinisignPublicKey(parsing: try readSmallFile(path))
}

private func writeKeyEvent(_ change: KeyChange, key path: String, since: Int64?, options: TrustOperationOptions)
    throws
{
    let key = try publicKeyLine(path)
    let (ledger, appender, keys) = try options.open()
    let now = unixNow()
    // Never before the last event applied (a clock that went back would have every client refuse it).
    let timestamp = max(now, ledger.lastEventTime ?? now)
    let event = KeyEvent(change: change, origin: appender.signer.name, key: key.base64, timestamp: timestamp,
                         since: change == .revoke ? since ?? timestamp : nil)
    let (index, checkpoint) = try options.append(statement: try event.statement(), kind: change.rawValue,
                                                 ledger: ledger, appender: appender, keys: keys)
    print("\(change.rawValue) \(key.keyID): logged as entry \(index) of \(checkpoint.origin) (size "
        + "\(checkpoint.size)); witness the new checkpoint (ferry log witness) so clients accept it")
}

struct KeyAddCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "Add a key to the remote's keys.")
    @OptionGroup var options: TrustOperationOptions
    @Option(help: "The new key's minisign .pub file.") var key: String

    func run() throws { try writeKeyEvent(.add, key: key, since: nil, options: options) }
}

struct KeyRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Retire a key: releases logged after this are not signed by it.")
    @OptionGroup var options: TrustOperationOptions
    @Option(help: "The key's minisign .pub file.") var key: String

    func run() throws { try writeKeyEvent(.remove, key: key, since: nil, options: options) }
}

struct KeyRevokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke", abstract: "Revoke a key: its signatures on claims from --since on are invalid.")
    @OptionGroup var options: TrustOperationOptions
    @Option(help: "The key's minisign .pub file.") var key: String
    @Option(help: ArgumentHelp(
        "Claims from this time on (Unix seconds) are invalid (default: now).",
        discussion: "Back-date it to when the key was lost.")) var since: Int64?

    func run() throws { try writeKeyEvent(.revoke, key: key, since: since, options: options) }
}

/// `ferry recall LAYOUT --ref REF --digest DIGEST --reason TEXT`: a signed entry that tells every client not to
/// install one release, and to move off it.
struct RecallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recall", abstract: "Recall a release: clients refuse it and move installed copies off it.",
        discussion: """
            The recall is a log entry signed by one current key. Clients refuse to install the release and \
            show the reason; `ferry update` (the timer included) moves an installed copy to a newer good release, \
            or back to the kept previous deployment. Publish the fix, or re-sign the previous good image \
            (a new claim), so that clients have somewhere to go. See docs/trust.md.
            """)
    @OptionGroup var options: TrustOperationOptions
    @Option(help: "The recalled release's ref.") var ref: String
    @Option(help: "The recalled release's manifest digest.") var digest: String
    @Option(help: "Why, in one line: users see it.") var reason: String

    func run() throws {
        let (ledger, appender, keys) = try options.open()
        let recall = RecallEntry(origin: appender.signer.name, ref: try Ref(ref), digest: try Digest(parsing: digest),
                                 reason: reason, timestamp: unixNow())
        let (index, checkpoint) = try options.append(statement: try recall.statement(), kind: RecallEntry.kind,
                                                     ledger: ledger, appender: appender, keys: keys)
        print("recall of \(recall.ref) \(recall.digest.short): logged as entry \(index) of \(checkpoint.origin) "
            + "(size \(checkpoint.size)); witness the new checkpoint (ferry log witness) so clients accept it")
    }
}
