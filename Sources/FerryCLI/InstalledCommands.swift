import ArgumentParser
import FerryCore
import FerryFetch
import FerryHelper
import FerryInstall
import FerryLog
import FerryTrust
import Foundation

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List installed apps.")

    @OptionGroup var scope: ScopeOptions
    @Flag(help: "JSON output for scripts.") var json = false

    struct Row: Encodable {
        var ref: String
        var remote: String
        var digest: String
        var timestamp: Int64
        var scope: String
        var deployment: String
        /// `good`, or why not (recalled, signing key revoked), by what this scope has read of the remote's log.
        var status: String
    }

    func run() async throws {
        let context = AgentContext()
        var rows: [Row] = []
        for scope in scope.explicit.map({ [$0] }) ?? [.user, .system] {
            switch scope {
            case .user:
                rows += try context.userInstaller().installations().map {
                    Row(ref: $0.ref.string, remote: $0.installation.remote.string,
                        digest: $0.installation.digest.description, timestamp: $0.installation.timestamp,
                        scope: "user", deployment: $0.deploymentPath,
                        status: status(of: $0, scope: .user, context: context).label)
                }
            case .system:
                // Read root-owned state directly: it is world-readable, and listing needs no helper or bus.
                let installer = Installer(paths: context.systemPaths, ownership: .root)
                guard let items = try? installer.installations() else { continue }
                rows += items.map {
                    Row(ref: $0.ref.string, remote: $0.installation.remote.string,
                        digest: $0.installation.digest.description, timestamp: $0.installation.timestamp,
                        scope: "system", deployment: $0.deploymentPath,
                        status: status(of: $0, scope: .system, context: context).label)
                }
            }
        }
        if json {
            try printJSON(rows)
            return
        }
        if rows.isEmpty {
            print("nothing installed")
            return
        }
        let width = max(3, rows.map(\.ref.count).max() ?? 0)
        print("REF".padding(toLength: width, withPad: " ", startingAt: 0) + "  SCOPE   REMOTE        DIGEST               SIGNED AT")
        for row in rows {
            let date = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(row.timestamp)))
            let shortDigest = String(row.digest.prefix(19))
            print(row.ref.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                  + row.scope.padding(toLength: 6, withPad: " ", startingAt: 0) + "  "
                  + row.remote.padding(toLength: 12, withPad: " ", startingAt: 0) + "  " + shortDigest + "  " + date
                  + (row.status == "good" ? "" : "  " + row.status))
        }
    }
}

/// An installed release's status by what its scope has read of its remote's log (`good` without a log).
func status(of installed: InstalledRef, scope: Scope, context: AgentContext) -> ReleaseStatus {
    let remote = try? context.remote(installed.installation.remote.string, for: scope)
    return ReleaseStatus.of(installed, remote: remote,
                            paths: scope == .system ? context.systemPaths : context.userPaths)
}

/// Finds an installed ref, the user's install first.
func findInstalled(_ ref: Ref, context: AgentContext, scope: Scope? = nil) throws -> (Scope, InstalledRef) {
    let candidates: [(Scope, InstallPaths)] = [(.user, context.userPaths), (.system, context.systemPaths)]
    for (candidateScope, paths) in candidates where scope == nil || scope == candidateScope {
        let installer = Installer(paths: paths, ownership: candidateScope == .system ? .root : .currentUser)
        if let found = (try? installer.installations())?.first(where: { $0.ref == ref }) {
            return (candidateScope, found)
        }
    }
    throw FerryError(.notInstalled, "\(ref) is not installed")
}

struct InfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Show an installed app.")

    @Argument(help: "The installed ref.") var ref: String
    @Flag(help: "JSON output for scripts.") var json = false

    func run() async throws {
        let ref = try Ref(ref)
        let context = AgentContext()
        let (scope, item) = try findInstalled(ref, context: context)
        let configData = FileManager.default.contents(atPath: item.deploymentPath + "/config.json") ?? Data()
        let command = (try? ImageConfig.parse(configData))?.command ?? []
        let date = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(item.installation.timestamp)))
        let fields: [(String, String)] = [
            ("ref", ref.string), ("scope", scope.rawValue), ("remote", item.installation.remote.string),
            ("digest", item.installation.digest.description), ("signed", date),
            ("deployment", item.deploymentPath), ("previous", item.installation.previous ?? "none"),
            ("command", command.joined(separator: " ")),
            ("exports", (item.installation.exports ?? []).joined(separator: ", ")),
            ("status", status(of: item, scope: scope, context: context).label),
        ]
        if json {
            let object = Dictionary(uniqueKeysWithValues: fields)
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            for (key, value) in fields { print("\(key.padding(toLength: 11, withPad: " ", startingAt: 0))\(value)") }
        }
    }
}

struct UninstallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "uninstall", abstract: "Remove an installed app.")

    @OptionGroup var scope: ScopeOptions
    @Argument(help: "The installed ref.") var ref: String
    @Flag(help: "Never prompt, not even for polkit authentication.") var noInteraction = false

    func run() async throws {
        let ref = try Ref(ref)
        let context = AgentContext()
        let target = try scope.explicit ?? findInstalled(ref, context: context).0
        switch target {
        case .user: try context.userInstaller().uninstall(ref)
        case .system: try HelperClient().uninstall(ref: ref, interactive: !noInteraction)
        }
        print("\(ref): uninstalled (\(target))")
    }
}

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Start an installed app (the image's command, from its files/).")

    @Argument(help: "The installed ref.") var ref: String
    @Argument(parsing: .postTerminator, help: "Arguments for the app.") var arguments: [String] = []

    func run() async throws {
        let ref = try Ref(ref)
        let (_, item) = try findInstalled(ref, context: AgentContext())
        // The deployment the installed list names; the program is resolved exactly as the launcher resolves it.
        let deployment = item.deploymentPath
        guard let data = FileManager.default.contents(atPath: deployment + "/config.json") else {
            throw FerryError.failed("\(ref): deployment has no config.json")
        }
        let command = try ImageConfig.parse(data).command
        let files = deployment + "/files"
        guard let first = command.first, let program = AppLaunch.program(command: command, files: files) else {
            throw FerryError.failed("\(ref): the image declares no command that stays inside its files")
        }
        guard chdir(files) == 0 else { throw ioError("chdir \(files)") }
        let argv = [program] + command.dropFirst() + arguments
        var cArgs = argv.map { strdup($0) } + [nil]
        execv(program, &cArgs)
        throw FerryError.failed("\(ref): cannot run \(first): \(errnoString())")
    }
}
