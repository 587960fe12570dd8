internal import CSystemd
import Glibc
import Logging

/// A swift-log handler that writes structured entries to the systemd journal (`sd_journal_sendv`).
///
/// Each entry carries `MESSAGE`, `PRIORITY` (syslog numbers), `SYSLOG_IDENTIFIER`, the code location and one
/// field per metadata key: `ferry.ref` or `ref` becomes `FERRY_REF`, likewise `FERRY_REMOTE`, `FERRY_DIGEST`;
/// any other key is upper-cased, characters outside `[A-Z0-9_]` become `_`, and it is prefixed with `FERRY_`.
/// The prefix keeps metadata from overriding `MESSAGE` or `PRIORITY`, whatever a key derived from input says.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level = .info
    /// `SYSLOG_IDENTIFIER`: the program name journalctl shows (`ferry-helper`).
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
        let fields = Self.fields(
            level: event.level, message: "\(event.message)", identifier: identifier, metadata: merged,
            file: event.file, function: event.function, line: event.line)
        Self.send(fields)
    }

    /// The journal fields (`NAME=value`) of one entry, in a stable order: `MESSAGE`, `PRIORITY`,
    /// `SYSLOG_IDENTIFIER`, `CODE_FILE`, `CODE_LINE`, `CODE_FUNC`, then metadata sorted by key.
    /// Values are kept byte for byte (newlines included: `sd_journal_sendv` frames them).
    public static func fields(
        level: Logger.Level, message: String, identifier: String, metadata: Logger.Metadata = [:],
        file: String? = nil, function: String? = nil, line: UInt? = nil
    ) -> [String] {
        var fields = [
            "MESSAGE=" + message,
            "PRIORITY=\(priority(of: level))",
            "SYSLOG_IDENTIFIER=" + identifier,
        ]
        if let file { fields.append("CODE_FILE=" + file) }
        if let line { fields.append("CODE_LINE=\(line)") }
        if let function { fields.append("CODE_FUNC=" + function) }
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            fields.append(fieldName(forMetadataKey: key) + "=" + "\(value)")
        }
        return fields
    }

    /// The syslog priority of a level: trace and debug 7, info 6, notice 5, warning 4, error 3, critical 2.
    public static func priority(of level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// The journal field name for a metadata key: `FERRY_` + the key upper-cased with every character outside
    /// `[A-Z0-9_]` replaced by `_` (a key already starting `ferry.`/`FERRY_` is not prefixed twice), at most
    /// 64 characters as journald requires.
    public static func fieldName(forMetadataKey key: String) -> String {
        var name = ""
        for scalar in key.unicodeScalars {
            switch scalar {
            case "a"..."z": name.unicodeScalars.append(Unicode.Scalar(scalar.value - 32) ?? "_")
            case "A"..."Z", "0"..."9", "_": name.unicodeScalars.append(scalar)
            default: name.append("_")
            }
        }
        if !name.hasPrefix("FERRY_") { name = "FERRY_" + name }
        return String(name.prefix(64))
    }

    /// Sends prepared fields; returns whether journald accepted them.
    @discardableResult
    public static func send(_ fields: [String]) -> Bool {
        var storage: [UInt8] = []
        var ranges: [(offset: Int, length: Int)] = []
        for field in fields {
            ranges.append((storage.count, field.utf8.count))
            storage.append(contentsOf: field.utf8)
        }
        return storage.withUnsafeMutableBytes { raw -> Bool in
            guard let base = raw.baseAddress else { return false }
            var vectors = ranges.map { iovec(iov_base: base + $0.offset, iov_len: $0.length) }
            return sd_journal_sendv(&vectors, Int32(vectors.count)) >= 0
        }
    }
}
