import ArgumentParser
import FerryCore
import FerryLog
import Foundation

/// `ferry log ...`: the publisher's transparency log (DESIGN.md, "Transparency log"): keys, a new log, and (hidden,
/// for tests and scripts until `ferry sign` appends) appending entries and checking a whole log.
struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log", abstract: "Manage a transparency log (c2sp.org signed notes, checkpoints, tiles).",
        subcommands: [LogKeygenCommand.self, LogInitCommand.self, LogAppendCommand.self, LogVerifyCommand.self])
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

private func readSmallFile(_ path: String) throws -> String {
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
