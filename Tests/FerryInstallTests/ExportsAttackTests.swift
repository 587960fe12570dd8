import FerryCore
import FerryInstall
import FerryTestSupport
import Foundation
import XCTest

/// Exports are scoped to the app ID, owned by one ref, and desktop entries are rewritten as GLib reads them.
final class ExportsAttackTests: VictimTestCase {
    override class var victimImage: [[String: Any]] {
        EngineFixture.app("victim", extra: [
            ImageCrafter.dir("share"), ImageCrafter.dir("share/applications"),
            ImageCrafter.file("share/applications/org.victim.App.desktop",
                              "[Desktop Entry]\nType=Application\nName=Victim\nExec=hello %U\n"),
        ])
    }

    var applications: String { fx.root + "/exports/share/applications" }

    func exported() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: applications).sorted()
    }

    static func desktopFiles(_ files: [String: String]) -> [[String: Any]] {
        [ImageCrafter.dir("share"), ImageCrafter.dir("share/applications")]
            + files.sorted { $0.key < $1.key }.map { ImageCrafter.file("share/applications/\($0.key)", $0.value) }
    }

    func testImageExportsOnlyDesktopFilesNamedForItsAppID() throws {
        let victimEntry = try String(contentsOfFile: applications + "/org.victim.App.desktop", encoding: .utf8)
        let entry = "[Desktop Entry]\nType=Application\nName=Evil\nExec=hello %u\nMimeType=x-scheme-handler/https;\n"
        try fx.publish("b", "com.evil.Thing", EngineFixture.app("evil", extra: Self.desktopFiles([
            "org.victim.App.desktop": entry, "firefox-esr.desktop": entry, "com.evil.Thing.desktop": entry,
            "com.evil.Thing.viewer.desktop": entry, "com.evil.ThingElse.desktop": entry,
        ])), timestamp: 1_700_000_000)
        try fx.deploy("b", "com.evil.Thing")
        XCTAssertEqual(try exported(),
                       ["com.evil.Thing.desktop", "com.evil.Thing.viewer.desktop", "org.victim.App.desktop"])
        XCTAssertEqual(try String(contentsOfFile: applications + "/org.victim.App.desktop", encoding: .utf8),
                       victimEntry)
        XCTAssertEqual(try fx.installation("com.evil.Thing")?.exports?.sorted(), [
            "exports/bin/com.evil.Thing", "exports/share/applications/com.evil.Thing.desktop",
            "exports/share/applications/com.evil.Thing.viewer.desktop",
        ])
        // Uninstalling the intruder removes only what it owns.
        try fx.installer.uninstall(try Ref("com.evil.Thing"))
        XCTAssertEqual(try exported(), ["org.victim.App.desktop"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: fx.root + "/exports/bin/org.victim.App"))
    }

    func testAnotherBranchOfTheAppDoesNotTakeTheLauncherOrDesktopFile() throws {
        let launcher = try String(contentsOfFile: fx.root + "/exports/bin/org.victim.App", encoding: .utf8)
        try fx.publish("a", "org.victim.App/x86_64/beta", EngineFixture.app("beta", extra: Self.desktopFiles([
            "org.victim.App.desktop": "[Desktop Entry]\nType=Application\nName=Beta\nExec=hello\n",
        ])), timestamp: 1_700_000_000)
        try fx.deploy("a", "org.victim.App/x86_64/beta")
        XCTAssertEqual(try String(contentsOfFile: fx.root + "/exports/bin/org.victim.App", encoding: .utf8), launcher)
        XCTAssertTrue(launcher.contains("installed/org.victim.App~x86_64~stable/files"), launcher)
        XCTAssertEqual(try fx.installation("org.victim.App/x86_64/beta")?.exports, [])
        try fx.installer.uninstall(try Ref("org.victim.App/x86_64/beta"))
        XCTAssertEqual(try String(contentsOfFile: fx.root + "/exports/bin/org.victim.App", encoding: .utf8), launcher)
        XCTAssertEqual(try exported(), ["org.victim.App.desktop"])
    }

    /// `org.victim` may export `org.victim.*.desktop`, but `org.victim.App.desktop` belongs to `org.victim.App`.
    func testCloserAppIDKeepsItsOwnDesktopFile() throws {
        try fx.publish("a", "org.victim", EngineFixture.app("short", extra: Self.desktopFiles([
            "org.victim.App.desktop": "[Desktop Entry]\nType=Application\nName=Squat\nExec=hello\n",
            "org.victim.Tool.desktop": "[Desktop Entry]\nType=Application\nName=Tool\nExec=hello\n",
        ])), timestamp: 1_700_000_000)
        try fx.deploy("a", "org.victim")
        XCTAssertEqual(try exported(), ["org.victim.App.desktop", "org.victim.Tool.desktop"])
        XCTAssertTrue(try String(contentsOfFile: applications + "/org.victim.App.desktop", encoding: .utf8)
            .contains("Name=Victim"))
        XCTAssertEqual(try fx.installation("org.victim")?.exports?.contains(
            "exports/share/applications/org.victim.App.desktop"), false)
    }

    func testDesktopEntryWithSpacesAroundEqualsIsRewrittenAndRunsTheLauncher() throws {
        let marker = fx.scratch.file("pwned")
        let ran = fx.scratch.file("launched")
        let entry = """
            [Desktop Entry]
            Type=Application
            Name=Thing
             Exec = sh -c 'touch \(marker)' %U
            TryExec =sh
            DBusActivatable=true
            Exec[de]=sh -c 'touch \(marker)'

            [Desktop Action second]
            Name=Second
            Exec=sh -c 'touch \(marker)'

            """
        try fx.publish("b", "com.evil.Thing", [
            ImageCrafter.dir("bin"),
            ImageCrafter.file("bin/hello", "#!/bin/sh\ntouch \(ran)\n", mode: 0o755),
        ] + Self.desktopFiles(["com.evil.Thing.desktop": entry]), timestamp: 1_700_000_000)
        try fx.deploy("b", "com.evil.Thing")
        let launcher = fx.root + "/exports/bin/com.evil.Thing"
        let rewritten = try String(contentsOfFile: applications + "/com.evil.Thing.desktop", encoding: .utf8)
        XCTAssertEqual(rewritten, """
            [Desktop Entry]
            Type=Application
            Name=Thing
            Exec=\(launcher) %U
            TryExec=\(launcher)

            [Desktop Action second]
            Name=Second
            Exec=\(launcher)

            """)
        // GLib, the desktop's own reader, launches the launcher and nothing else.
        let gio = try Command.run(["gio", "launch", applications + "/com.evil.Thing.desktop"])
        XCTAssertEqual(gio.status, 0, gio.err)
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: ran) { usleep(50_000) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: ran), "the launcher did not run")
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "the image's own command ran")
    }

    func testAmbiguousDesktopEntriesAreNotExported() throws {
        let cases = [
            "com.evil.Thing.dup.desktop": "[Desktop Entry]\nType=Application\nName=A\nExec=hello\n Exec =sh -c id\n",
            "com.evil.Thing.group.desktop":
                "[Desktop Entry]\nName=A\nExec=hello\n[Desktop Entry]\nExec=sh -c id\n",
            "com.evil.Thing.garbage.desktop": "[Desktop Entry]\nName=A\nExec=hello\nthis is not a key\n",
            "com.evil.Thing.before.desktop": "Exec=sh -c id\n[Desktop Entry]\nName=A\nExec=hello\n",
            "com.evil.Thing.cr.desktop": "[Desktop Entry]\nName=A\nExec=hello\r\n",
            "com.evil.Thing.order.desktop": "[Desktop Action x]\nExec=sh\n[Desktop Entry]\nName=A\nExec=hello\n",
        ]
        try fx.publish("b", "com.evil.Thing", EngineFixture.app("evil", extra: Self.desktopFiles(cases)),
                       timestamp: 1_700_000_000)
        try fx.deploy("b", "com.evil.Thing")
        XCTAssertEqual(try exported(), ["org.victim.App.desktop"])
    }
}
