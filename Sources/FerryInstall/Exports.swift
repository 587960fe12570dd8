import FerryCore
import Foundation

/// Launchers and desktop entries an installed image exports, scoped to its app ID (``Ref/appID``).
///
/// A ref exports at most the launcher `exports/bin/<appID>`, which runs the image's command (config `Entrypoint` +
/// `Cmd`) from the deployment's `files/` through the `installed/<ref>` link, and the image's
/// `share/applications/<appID>.desktop` and `<appID>.*.desktop`, rewritten by ``DesktopEntry`` to run that launcher.
/// Any other name is ignored: an image from one remote must not replace another app's launcher or desktop file, nor
/// claim a name such as `firefox-esr.desktop` (and with it the `https` handler).
///
/// Every exported file belongs to one ref (state records it). A file another ref owns is never replaced, except by
/// a ref whose app ID matches the name more closely (`org.a.App.desktop` belongs to `org.a.App`, even when
/// `org.a` claimed it through `org.a.*.desktop` first); an uninstall removes only the files its ref owns.
/// All writes go through descriptors of the state tree. Failures here never fail an install.
struct Exports {
    let tree: StateTree

    /// The largest .desktop file copied; desktop entries are small.
    static let maxDesktopFile = 64 * 1024

    static func launcherFile(_ ref: Ref) -> String { "exports/bin/\(ref.appID)" }
    static func applicationFile(_ name: String) -> String { "exports/share/applications/\(name)" }

    /// Whether an image of `appID` may export the desktop file `name`.
    static func mayExport(desktopFile name: String, appID: String) -> Bool {
        guard name.hasSuffix(".desktop"), (try? DirectoryHandle.checkComponent(name)) != nil else { return false }
        return name == appID + ".desktop" || (name.hasPrefix(appID + ".") && name.count > appID.count + 9)
    }

    /// The app ID that owns an exported file by name: the longest match decides between two that both may.
    static func closeness(of file: String, to appID: String) -> Int {
        let name = (file as NSString).lastPathComponent
        if file.hasPrefix("exports/bin/") { return name == appID ? Int.max : -1 }
        return mayExport(desktopFile: name, appID: appID) ? appID.count : -1
    }

    /// Writes the exports of `ref` from its deployment `relative` and removes files of `old` it no longer exports.
    /// `owners` maps every exported file of the scope to the ref that owns it; a file another ref owns is taken
    /// only by a closer app ID, and `takenOver` lists those files so the caller can update their old owner.
    /// Returns the files `ref` now owns, relative to the state root.
    func export(ref: Ref, deployment relative: String, config: ImageConfig, replacing old: [String],
                owners: [String: Ref], takenOver: inout [String]) -> [String] {
        var written: [String] = []
        func mayWrite(_ file: String) -> Bool {
            guard let owner = owners[file], owner != ref else { return true }
            guard Exports.closeness(of: file, to: ref.appID) > Exports.closeness(of: file, to: owner.appID) else {
                return false
            }
            takenOver.append(file)
            return true
        }
        let launcher = tree.paths.root + "/" + Exports.launcherFile(ref)
        if let script = Exports.launcherScript(ref: ref, paths: tree.paths, command: config.command),
            mayWrite(Exports.launcherFile(ref)), let bin = try? tree.exportsBin(),
            (try? AtomicFile.write(Data(script.utf8), in: bin, name: ref.appID, mode: 0o755)) != nil
        {
            written.append(Exports.launcherFile(ref))
        }
        if let deployment = try? tree.openDeployment(relative),
            let apps = try? deployment.openDirectory("files/share/applications")
        {
            let names = ((try? apps.entryNames()) ?? []).filter { Exports.mayExport(desktopFile: $0, appID: ref.appID) }
            for name in names.sorted() where mayWrite(Exports.applicationFile(name)) {
                guard let data = try? apps.readFile(name, maxSize: Exports.maxDesktopFile),
                    let text = String(validating: data, as: UTF8.self),
                    let entry = try? DesktopEntry.parse(text),
                    let target = try? tree.exportsApplications(),
                    (try? AtomicFile.write(Data(entry.rewritten(launcher: launcher).utf8), in: target, name: name,
                                           mode: 0o644)) != nil
                else { continue }
                written.append(Exports.applicationFile(name))
            }
        }
        remove(old.filter { !written.contains($0) && (owners[$0] == nil || owners[$0] == ref) })
        return written
    }

    /// Exports `ref` from its deployment `relative` with the owners `state` records, replacing the files `ref` owned
    /// before and taking from their old owners the files a closer app ID takes over. Returns the files `ref` owns
    /// now; the caller records them as the ref's installation.
    func export(ref: Ref, deployment relative: String, config: ImageConfig, in state: inout InstallState)
        -> [String]
    {
        var owners: [String: Ref] = [:]
        for (key, installation) in state.installed {
            guard let other = try? Ref(key) else { continue }
            for file in installation.exports ?? [] { owners[file] = other }
        }
        var takenOver: [String] = []
        let exported = export(ref: ref, deployment: relative, config: config,
                              replacing: state.installed[ref.string]?.exports ?? [], owners: owners,
                              takenOver: &takenOver)
        for file in takenOver {
            if let owner = owners[file] { state.installed[owner.string]?.exports?.removeAll { $0 == file } }
        }
        return exported
    }

    /// Removes exported files (paths relative to the state root, as state records them).
    func remove(_ files: [String]) {
        for file in files {
            let name = (file as NSString).lastPathComponent
            if file == "exports/bin/\(name)" {
                try? tree.exportsBin().unlinkEntry(name)
            } else if file == Exports.applicationFile(name) {
                try? tree.exportsApplications().unlinkEntry(name)
            }
        }
    }

    /// A POSIX shell launcher, every word single-quoted. `nil` when the image declares no usable command.
    static func launcherScript(ref: Ref, paths: InstallPaths, command: [String]) -> String? {
        let files = "\(paths.installedLink(ref))/files"
        guard let program = AppLaunch.program(command: command, files: files) else { return nil }
        let words = ([program] + command.dropFirst()).map(shellQuote).joined(separator: " ")
        return """
            #!/bin/sh
            # Ferry launcher for \(ref) (generated; replaced on update)
            cd \(shellQuote(files)) || exit 127
            exec \(words) "$@"

            """
    }
}

/// Single-quotes a word for the POSIX shell.
func shellQuote(_ word: String) -> String {
    "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// How an installed app is started, the same way by its launcher and by `ferry run`.
public enum AppLaunch {
    /// The program an image's command names, inside the deployment's `files/` directory: the command's first word
    /// is a path in the image (leading `/` optional) that must stay beneath `files/`. `nil` when the image declares
    /// no command or names a path that leaves `files/`. The launcher and `ferry run` both start apps through it.
    public static func program(command: [String], files: String) -> String? {
        guard let first = command.first, !first.utf8.contains(0) else { return nil }
        let relative = String(first.drop { $0 == "/" })
        guard !relative.isEmpty, (try? DirectoryHandle.components(of: relative)) != nil else { return nil }
        return "\(files)/\(relative)"
    }
}
