import FerryCore
import Foundation

/// Everything under a directory, for "nothing on disk changed" assertions: relative path → type, mode, owner,
/// and a content digest or link target. Never follows symlinks.
public enum TreeSnapshot {
    public static func take(_ path: String, excluding excluded: Set<String> = []) -> [String: String] {
        var result: [String: String] = [:]
        func visit(_ relative: String) {
            if excluded.contains(relative) { return }
            let full = relative.isEmpty ? path : path + "/" + relative
            var st = stat()
            guard lstat(full, &st) == 0 else { return }
            var line = "mode=\(String(st.st_mode, radix: 8)) uid=\(st.st_uid) gid=\(st.st_gid)"
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                for name in ((try? FileManager.default.contentsOfDirectory(atPath: full)) ?? []).sorted() {
                    visit(relative.isEmpty ? name : relative + "/" + name)
                }
            case S_IFREG:
                let data = FileManager.default.contents(atPath: full) ?? Data()
                line += " size=\(st.st_size) \(Digest.of(data))"
            case S_IFLNK:
                line += " -> \((try? FileManager.default.destinationOfSymbolicLink(atPath: full)) ?? "?")"
            default:
                line += " special"
            }
            result[relative.isEmpty ? "." : relative] = line
        }
        visit("")
        return result
    }

    /// Lines that differ between two snapshots, for a readable assertion message.
    public static func difference(_ a: [String: String], _ b: [String: String]) -> [String] {
        Set(a.keys).union(b.keys).sorted().compactMap { key in
            a[key] == b[key] ? nil : "\(key): \(a[key] ?? "absent") → \(b[key] ?? "absent")"
        }
    }
}

/// The one file name a ref has in a state tree (`installed/`, `deploy/`): `/` written as `~`. Spelled out here
/// rather than taken from FerryCore, so the tests check the layout instead of sharing the code under test.
public func stateName(_ ref: String) -> String { ref.replacingOccurrences(of: "/", with: "~") }
