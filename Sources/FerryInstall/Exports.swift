import FerryCore
import Foundation

/// Launchers and desktop entries an installed image exports.
///
/// The launcher `exports/bin/<first ref component>` runs the image's command (config `Entrypoint` + `Cmd`) from the
/// deployment's `files/`, through the `installed/<ref>` link so it follows updates. The image's
/// `share/applications/*.desktop` files are copied to `exports/share/applications/` with `Exec=` pointing at the
/// launcher. When two refs share a first component, the most recent install owns the launcher.
struct Exports {
    let paths: InstallPaths

    /// The largest .desktop file copied; desktop entries are small.
    static let maxDesktopFile = 64 * 1024

    /// Writes the exports of `ref` and removes files of `replacing` that are no longer exported.
    /// Returns the exported files relative to the state root. Failures here never fail an install.
    mutating func export(ref: Ref, deployment: String, config: ImageConfig, replacing old: [String]) -> [String] {
        var written: [String] = []
        let command = config.command
        let launcher = "\(paths.exportsBin)/\(ref.launcherName)"
        if let script = Exports.launcherScript(ref: ref, paths: paths, command: command) {
            if (try? makeDirectory(paths.exportsBin)) != nil,
                (try? AtomicFile.write(Data(script.utf8), to: launcher, mode: 0o755)) != nil
            {
                written.append(String(launcher.dropFirst(paths.root.count + 1)))
            }
        }
        if let apps = try? DirectoryHandle(path: deployment + "/files"),
            let appDir = try? apps.openDirectory("share/applications")
        {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: deployment + "/files/share/applications"))
                ?? []).filter { $0.hasSuffix(".desktop") }.sorted()
            for name in names {
                guard (try? DirectoryHandle.components(of: name))?.count == 1,
                    let data = try? appDir.readFile(name, maxSize: Exports.maxDesktopFile)
                else { continue }
                let rewritten = Exports.rewriteDesktopEntry(String(decoding: data, as: UTF8.self), launcher: launcher)
                let target = "\(paths.exportsApplications)/\(name)"
                if (try? makeDirectory(paths.exportsApplications)) != nil,
                    (try? AtomicFile.write(Data(rewritten.utf8), to: target, mode: 0o644)) != nil
                {
                    written.append(String(target.dropFirst(paths.root.count + 1)))
                }
            }
        }
        remove(old.filter { !written.contains($0) })
        return written
    }

    func remove(_ files: [String]) {
        for file in files where (try? DirectoryHandle.components(of: file)) != nil {
            unlink("\(paths.root)/\(file)")
        }
    }

    /// A POSIX shell launcher, every word single-quoted. `nil` when the image declares no command.
    static func launcherScript(ref: Ref, paths: InstallPaths, command: [String]) -> String? {
        guard let first = command.first, !first.isEmpty, !first.utf8.contains(0) else { return nil }
        let files = "\(paths.installedLink(ref))/files"
        let program: String
        if first.hasPrefix("/") || first.contains("/") {
            let relative = first.hasPrefix("/") ? String(first.drop { $0 == "/" }) : first
            guard (try? DirectoryHandle.components(of: relative)) != nil else { return nil }
            program = "\(files)/\(relative)"
        } else {
            program = "\(files)/\(first)"
        }
        let words = ([program] + command.dropFirst()).map(shellQuote).joined(separator: " ")
        return """
            #!/bin/sh
            # Ferry launcher for \(ref) (generated; replaced on update)
            cd \(shellQuote(files)) || exit 127
            exec \(words) "$@"

            """
    }

    /// Rewrites `Exec=` and `TryExec=` keys to run the launcher, keeping field codes such as `%U`.
    static func rewriteDesktopEntry(_ text: String, launcher: String) -> String {
        var lines: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("Exec=") {
                let args = line.dropFirst(5).split(separator: " ", omittingEmptySubsequences: true).dropFirst()
                    .filter { $0.hasPrefix("%") }
                lines.append((["Exec=" + launcher] + args.map(String.init)).joined(separator: " "))
            } else if line.hasPrefix("TryExec=") {
                lines.append("TryExec=" + launcher)
            } else {
                lines.append(String(line))
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// Single-quotes a word for the POSIX shell.
func shellQuote(_ word: String) -> String {
    "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
