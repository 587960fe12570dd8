import Glibc
import Logging

/// Chooses where Ferry's executables log.
public enum FerryLogging {
    /// Whether systemd connected standard error to the journal or started the process as a unit
    /// (`JOURNAL_STREAM` or `INVOCATION_ID` set and not empty).
    public static func prefersJournal(environment: [String: String]) -> Bool {
        !(environment["JOURNAL_STREAM"] ?? "").isEmpty || !(environment["INVOCATION_ID"] ?? "").isEmpty
    }

    /// A handler for `identifier`: ``JournalLogHandler`` under systemd, ``TerminalLogHandler`` otherwise.
    public static func makeHandler(
        identifier: String, level: Logger.Level = .info, environment: [String: String]
    ) -> any LogHandler {
        if prefersJournal(environment: environment) {
            var handler = JournalLogHandler(identifier: identifier)
            handler.logLevel = level
            return handler
        }
        var handler = TerminalLogHandler(identifier: identifier)
        handler.logLevel = level
        return handler
    }

    /// Installs ``makeHandler(identifier:level:environment:)`` as the process's logging backend
    /// (`LoggingSystem.bootstrap`, which may run once per process).
    public static func bootstrap(identifier: String, level: Logger.Level = .info) {
        let environment = currentEnvironment()
        LoggingSystem.bootstrap { _ in makeHandler(identifier: identifier, level: level, environment: environment) }
    }

    private static func currentEnvironment() -> [String: String] {
        var environment: [String: String] = [:]
        for key in ["JOURNAL_STREAM", "INVOCATION_ID"] {
            if let value = getenv(key) { environment[key] = String(cString: value) }
        }
        return environment
    }
}
