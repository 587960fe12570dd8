import FerryCore

/// A path inside a layer, checked and normalised: relative, no `..`, no empty or `.` components.
///
/// `./a//b/` becomes `a/b`; the empty path is the layer's root directory.
struct EntryPath: Hashable {
    let components: [String]

    /// Checks `raw` (a path from a tar header). `what` names the field in messages ("entry", "hard link target").
    /// Refuses absolute paths and `..` (both escape the target directory), over-long paths and names.
    init(_ raw: String, what: String, limits: ExtractionLimits) throws {
        let shown = EntryPath.shown(raw)
        guard raw.utf8.count <= limits.maxPathLength else {
            throw FerryError.unsafeArchive("\(what) \(shown): path longer than \(limits.maxPathLength) bytes")
        }
        guard !raw.hasPrefix("/") else {
            throw FerryError.unsafeArchive("\(what) \(shown): absolute path")
        }
        var parts: [String] = []
        for part in raw.split(separator: "/", omittingEmptySubsequences: true) where part != "." {
            guard part != ".." else {
                throw FerryError.unsafeArchive("\(what) \(shown): path contains a '..' component")
            }
            guard part.utf8.count <= 255 else {
                throw FerryError.unsafeArchive("\(what) \(shown): path component longer than 255 bytes")
            }
            parts.append(String(part))
        }
        components = parts
    }

    init(components: [String]) { self.components = components }

    var isRoot: Bool { components.isEmpty }
    var name: String { components.last ?? "" }
    var parent: EntryPath { EntryPath(components: Array(components.dropLast())) }
    var string: String { components.joined(separator: "/") }
    func appending(_ name: String) -> EntryPath { EntryPath(components: components + [name]) }

    /// A path as it appears in messages: quoted, escaped, cut at 200 characters.
    static func shown(_ raw: String) -> String { String(raw.prefix(200)).debugDescription }
}
