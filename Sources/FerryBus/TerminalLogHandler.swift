import Glibc
import Logging

/// A swift-log handler that writes one readable line per entry to standard error, for terminals and plain
/// logs: `ferry: warning: signature by unknown key ref=org.example.App remote=main`.
///
/// Control characters in the message and metadata are shown as `?`, so text that came from a remote cannot
/// drive the terminal with escape sequences.
public struct TerminalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level = .info
    public let identifier: String

    public init(identifier: String, metadataProvider: Logger.MetadataProvider? = nil) {
        self.identifier = identifier
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let own = event.metadata { merged.merge(own) { _, new in new } }
        let text = Self.line(level: event.level, message: "\(event.message)", identifier: identifier, metadata: merged)
        var bytes = Array((text + "\n").utf8)
        // One write(2) per line keeps lines from concurrent threads whole.
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    /// The line for one entry (without newline): `identifier: [level: ]message key=value…`; the level is
    /// omitted for info and notice, metadata is sorted by key, values with spaces are quoted.
    public static func line(
        level: Logger.Level, message: String, identifier: String, metadata: Logger.Metadata = [:]
    ) -> String {
        var line = identifier + ": "
        switch level {
        case .info, .notice: break
        default: line += "\(level): "
        }
        line += printable(message)
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            let text = printable("\(value)")
            let quoted = text.contains(" ") || text.isEmpty ? "\"\(text)\"" : text
            line += " \(printable(key))=\(quoted)"
        }
        return line
    }

    private static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : $0 }))
    }
}
