import FerryCore
import Foundation

/// A desktop entry file read the way GLib's key file parser reads it, strictly, so that what Ferry rewrites is
/// exactly what the desktop will run.
///
/// GLib trims whitespace around `=`, merges repeated groups and lets the last of two equal keys win, and every
/// group (`[Desktop Action …]` too) may carry its own `Exec`. A line-prefix rewrite misses ` Exec =cmd` or a second
/// `Exec=` and the desktop then runs the image's command line instead of the launcher. So the file is parsed into
/// groups and keys, anything ambiguous is refused (a duplicate key or group, a line that is no comment, group or
/// key, a key before the first group, control characters), and the entry is written out anew: `Exec` becomes the
/// launcher with the field codes it had, `TryExec` the launcher, and `DBusActivatable` is dropped (the desktop would
/// start the app through a bus name instead of `Exec`).
struct DesktopEntry: Equatable {
    struct Line: Equatable {
        enum Kind: Equatable {
            case comment(String)
            case key(String, String)
        }
        var kind: Kind
    }

    struct Group: Equatable {
        var name: String
        var lines: [Line]
    }

    /// Comments before the first group.
    var header: [String] = []
    var groups: [Group] = []

    /// Why a file is not exported.
    struct Refusal: Error, Equatable, CustomStringConvertible {
        var description: String
    }

    static func parse(_ text: String) throws -> DesktopEntry {
        for scalar in text.unicodeScalars where scalar.value < 0x20 && scalar != "\n" && scalar != "\t" {
            throw Refusal(description: "control character U+\(String(scalar.value, radix: 16)) in the file")
        }
        var entry = DesktopEntry()
        var seenGroups = Set<String>()
        var seenKeys = Set<String>()
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.drop { $0 == " " || $0 == "\t" }
            if line.isEmpty || line.hasPrefix("#") {
                if entry.groups.isEmpty {
                    entry.header.append(String(raw))
                } else {
                    entry.groups[entry.groups.count - 1].lines.append(Line(kind: .comment(String(raw))))
                }
                continue
            }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count >= 3 else { throw Refusal(description: "malformed group line") }
                let name = String(line.dropFirst().dropLast())
                guard name.unicodeScalars.allSatisfy({ $0 != "[" && $0 != "]" }) else {
                    throw Refusal(description: "malformed group name")
                }
                guard seenGroups.insert(name).inserted else {
                    throw Refusal(description: "group [\(name.prefix(64))] appears twice")
                }
                if entry.groups.isEmpty, name != "Desktop Entry" {
                    throw Refusal(description: "the first group is not [Desktop Entry]")
                }
                entry.groups.append(Group(name: name, lines: []))
                seenKeys = []
                continue
            }
            guard !entry.groups.isEmpty else { throw Refusal(description: "a key before the first group") }
            guard let equals = line.firstIndex(of: "=") else {
                throw Refusal(description: "a line that is no comment, group or key")
            }
            let key = line[..<equals].trimmingCharacters(in: CharacterSet(charactersIn: " \t"))
            let value = String(line[line.index(after: equals)...].drop { $0 == " " || $0 == "\t" })
            guard DesktopEntry.isValidKey(key) else { throw Refusal(description: "invalid key \(key.prefix(64))") }
            guard seenKeys.insert(key).inserted else {
                throw Refusal(description: "key \(key) appears twice in [\(entry.groups.last!.name.prefix(64))]")
            }
            entry.groups[entry.groups.count - 1].lines.append(Line(kind: .key(key, value)))
        }
        guard !entry.groups.isEmpty else { throw Refusal(description: "no [Desktop Entry] group") }
        return entry
    }

    /// `[A-Za-z0-9-]+` with an optional `[locale]`, as the Desktop Entry Specification writes keys.
    static func isValidKey(_ key: String) -> Bool {
        var base = Substring(key)
        if let open = key.firstIndex(of: "[") {
            guard key.hasSuffix("]") else { return false }
            let locale = key[key.index(after: open)..<key.index(before: key.endIndex)]
            guard !locale.isEmpty,
                locale.unicodeScalars.allSatisfy({ $0.isASCII && (isAlnum($0) || "_.@-".unicodeScalars.contains($0)) })
            else { return false }
            base = key[..<open]
        }
        return !base.isEmpty && base.unicodeScalars.allSatisfy { $0.isASCII && (isAlnum($0) || $0 == "-") }
    }

    private static func isAlnum(_ s: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(s) || ("A"..."Z").contains(s) || ("0"..."9").contains(s)
    }

    /// The key without its `[locale]`.
    static func baseKey(_ key: String) -> Substring { key.split(separator: "[", maxSplits: 1).first ?? Substring(key) }

    /// Field codes the launcher may receive; the deprecated ones are dropped, as the specification says.
    static let fieldCodes: Set<String> = ["%f", "%F", "%u", "%U", "%i", "%c", "%k"]

    /// This entry with every group's `Exec` running `launcher` (keeping the field codes), `TryExec` naming it,
    /// and `DBusActivatable` removed. Localized variants of those keys are removed too.
    func rewritten(launcher: String) -> String {
        var out = header
        for group in groups {
            out.append("[\(group.name)]")
            for line in group.lines {
                switch line.kind {
                case .comment(let text):
                    out.append(text)
                case .key(let key, let value):
                    switch DesktopEntry.baseKey(key) {
                    case "Exec":
                        guard key == "Exec" else { continue }
                        let codes = value.split(separator: " ").map(String.init)
                            .filter { DesktopEntry.fieldCodes.contains($0) }
                        out.append((["Exec=" + DesktopEntry.escapeValue(DesktopEntry.quoteArgument(launcher))] + codes)
                            .joined(separator: " "))
                    case "TryExec":
                        guard key == "TryExec" else { continue }
                        out.append("TryExec=" + DesktopEntry.escapeValue(launcher))
                    case "DBusActivatable":
                        continue
                    default:
                        out.append("\(key)=\(value)")
                    }
                }
            }
        }
        var text = out.joined(separator: "\n")
        if !text.hasSuffix("\n") { text += "\n" }
        return text
    }

    /// Quotes an `Exec` argument when it holds a reserved character (Desktop Entry Specification, "The Exec key").
    static func quoteArgument(_ word: String) -> String {
        let reserved = " \t\n\"'\\><~|&;$*?#()`"
        guard word.contains(where: { reserved.contains($0) }) else { return word }
        var quoted = "\""
        for c in word {
            if "\"`$\\".contains(c) { quoted.append("\\") }
            quoted.append(c)
        }
        return quoted + "\""
    }

    /// Escapes a string value for the key file (`\` is itself an escape there).
    static func escapeValue(_ value: String) -> String { value.replacingOccurrences(of: "\\", with: "\\\\") }
}
