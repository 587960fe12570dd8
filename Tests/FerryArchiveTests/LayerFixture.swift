import FerryArchive
import FerryCore
import FerryTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// A scratch area for one test: `root/` (the extraction target), `outside/` (a sentinel directory beside it that
/// no archive may touch), and crafted layers written with Python's tarfile module (Debian's /usr/bin/python3).
final class LayerFixture {
    let tmp: TemporaryDirectory
    var root: String { tmp.file("root") }
    var outside: String { tmp.file("outside") }
    private var counter = 0

    init() throws {
        tmp = try TemporaryDirectory(prefix: "fa")
        try FileManager.default.createDirectory(atPath: tmp.file("root"), withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: tmp.file("outside"), withIntermediateDirectories: false)
        try tmp.write("outside/file", "sentinel\n")
    }

    /// An extractor over `root`.
    func extractor(limits: ExtractionLimits = .standard, ownership: LayerExtractor.Ownership = .root) throws
        -> LayerExtractor
    {
        LayerExtractor(target: try DirectoryHandle(path: root), limits: limits, ownership: ownership)
    }

    /// One tar entry for ``layer(_:compression:)``.
    static func file(_ name: String, _ data: String = "data\n", mode: Int = 0o644, uid: Int = 0, repeat count: Int = 1)
        -> [String: Any]
    { ["name": name, "type": "file", "data": data, "mode": mode, "uid": uid, "gid": uid, "repeat": count] }
    static func dir(_ name: String, mode: Int = 0o755) -> [String: Any] { ["name": name, "type": "dir", "mode": mode] }
    static func symlink(_ name: String, to target: String) -> [String: Any] {
        ["name": name, "type": "symlink", "target": target]
    }
    static func hardlink(_ name: String, to target: String) -> [String: Any] {
        ["name": name, "type": "link", "target": target]
    }
    static func special(_ name: String, _ type: String) -> [String: Any] { ["name": name, "type": type] }

    /// Writes a tar of `entries` (in this order; `format` "pax" or "gnu"), compressed as asked; returns its path
    /// and its diff_id.
    func layer(_ entries: [[String: Any]], compression: LayerCompression = .none, format: String = "pax") throws
        -> (path: String, diffID: Digest)
    {
        counter += 1
        let output = tmp.file("layer\(counter)")
        let spec: [String: Any] = [
            "output": output, "entries": entries, "compression": compression.rawValue, "format": format,
        ]
        let input = try JSONSerialization.data(withJSONObject: spec)
        // scripts/craft-layer.py: Python's tarfile writes names exactly as given (absolute, `..`, devices).
        let result = try Command.check(["/usr/bin/python3", Testbed.repositoryRoot() + "/scripts/craft-layer.py"],
                                       input: input)
        let hex = result.out.trimmingCharacters(in: .whitespacesAndNewlines)
        return (output, try Digest(algorithm: .sha256, hex: hex))
    }

    /// Applies the layer file at `path`.
    @discardableResult
    func apply(_ extractor: LayerExtractor, _ layer: (path: String, diffID: Digest),
               compression: LayerCompression = .none) throws -> ExtractionStats
    {
        let fd = open(layer.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FerryError.failed("cannot open \(layer.path)") }
        defer { close(fd) }
        return try extractor.apply(layerFD: fd, compression: compression, diffID: layer.diffID)
    }

    /// Everything under `path`: relative name → type, mode, owner, size, content digest or link target.
    /// Does not follow symlinks.
    static func snapshot(_ path: String) throws -> [String: String] {
        var result: [String: String] = [:]
        func visit(_ relative: String) throws {
            let full = relative.isEmpty ? path : path + "/" + relative
            var st = stat()
            guard lstat(full, &st) == 0 else { throw FerryError.failed("lstat \(full)") }
            var line = "mode=\(String(st.st_mode, radix: 8)) uid=\(st.st_uid) gid=\(st.st_gid)"
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                for name in try FileManager.default.contentsOfDirectory(atPath: full).sorted() {
                    try visit(relative.isEmpty ? name : relative + "/" + name)
                }
            case S_IFREG:
                let data = try Data(contentsOf: URL(fileURLWithPath: full))
                line += " size=\(data.count) \(Digest.of(data).short)"
            case S_IFLNK:
                line += " -> " + (try FileManager.default.destinationOfSymbolicLink(atPath: full))
            default:
                line += " special"
            }
            result[relative.isEmpty ? "." : relative] = line
        }
        try visit("")
        return result
    }

    /// Entry names under `root`, excluding the root itself.
    func rootNames() throws -> [String] {
        try LayerFixture.snapshot(root).keys.filter { $0 != "." }.sorted()
    }

    /// Asserts `body` throws a FerryError with `code` and a message containing `fragment`.
    static func assertRefused(
        _ code: FerryError.Code, _ fragment: String, file: StaticString = #filePath, line: UInt = #line,
        _ body: () throws -> Void
    ) {
        do {
            try body()
            XCTFail("expected \(code.rawValue) containing \"\(fragment)\", nothing was thrown", file: file, line: line)
        } catch let error as FerryError {
            XCTAssertEqual(error.code, code, "\(error.message)", file: file, line: line)
            XCTAssertTrue(error.message.contains(fragment), "message: \(error.message)", file: file, line: line)
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }
}
