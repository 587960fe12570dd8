import FerryBus
import FerryCore
import Foundation
import Logging

/// One line per ref and outcome, for people and for the journal.
///
/// On a terminal or a pipe the line is printed (failures on standard error, prefixed `ferry: `). Under systemd
/// (`JOURNAL_STREAM` or `INVOCATION_ID` set, as for `ferry-update.service`) the same line goes to the journal as a
/// structured entry with `FERRY_REMOTE`, `FERRY_REF` and `FERRY_DIGEST` fields, instead of as plain output.
enum OutcomeLog {
    static let underSystemd = FerryLogging.prefersJournal(environment: ProcessInfo.processInfo.environment)

    static func success(_ line: String, ref: Ref, remote: RemoteName, digest: Digest?) {
        if underSystemd && journal(.notice, line, ref: ref, remote: remote, digest: digest) { return }
        print(line)
    }

    static func failure(_ message: String, ref: Ref, remote: RemoteName) {
        if underSystemd && journal(.error, message, ref: ref, remote: remote, digest: nil) { return }
        printError(message)
    }

    private static func journal(_ level: Logger.Level, _ message: String, ref: Ref, remote: RemoteName,
                                digest: Digest?) -> Bool {
        var metadata: Logger.Metadata = ["ref": "\(ref)", "remote": "\(remote)"]
        if let digest { metadata["digest"] = "\(digest)" }
        return JournalLogHandler.send(JournalLogHandler.fields(level: level, message: message, identifier: "ferry",
                                                               metadata: metadata))
    }
}
