import ArgumentParser
import FerryCore
import FerryFetch
import FerryInstall
import FerryTrust
import Foundation

/// Where the agent finds things, from the environment: the user's XDG directories and `$FERRY_SYSTEM_ROOT`
/// (default `/`) for system remotes and installs.
struct AgentContext {
    var environment: [String: String]

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    var systemRoot: String { environment["FERRY_SYSTEM_ROOT"].flatMap { $0.isEmpty ? nil : $0 } ?? "/" }
    var userRemotes: RemoteStore {
        RemoteStore(directory: XDG.configHome(environment) + "/ferry/remotes.d", scope: .user)
    }
    var systemRemotes: RemoteStore {
        RemoteStore(directory: joinPath(systemRoot, "etc/ferry/remotes.d"), scope: .system)
    }
    var userPaths: InstallPaths { InstallPaths.user(environment: environment) }
    var systemPaths: InstallPaths { InstallPaths.system(prefix: systemRoot) }
    var cacheDirectory: String { XDG.cacheHome(environment) + "/ferry" }

    func remoteStore(_ scope: Scope) -> RemoteStore { scope == .system ? systemRemotes : userRemotes }

    /// Finds a remote. A user install may use a user or a system remote (user first); a system install only
    /// a system remote, since the helper trusts nothing else.
    func remote(_ name: String, for scope: Scope) throws -> Remote {
        let name = try RemoteName(name)
        let stores = scope == .system ? [systemRemotes] : [userRemotes, systemRemotes]
        for store in stores {
            if let remote = try store.load(name) { return remote }
        }
        throw FerryError(.notInstalled, "remote \(name) is not configured\(scope == .system ? " system-wide" : "")")
    }

    func userInstaller() -> Installer { Installer(paths: userPaths, ownership: .currentUser) }

    func fetcher(progress: ProgressReporter) -> Fetcher {
        Fetcher(cacheDirectory: cacheDirectory, progress: progress)
    }
}

/// `--system` / `--user` on the commands that act on one scope.
struct ScopeOptions: ParsableArguments {
    @Flag(help: "System-wide (through ferry-helper and polkit).") var system = false
    @Flag(help: "For this user only (no privilege needed).") var user = false

    func validate() throws {
        if system && user { throw ValidationError("--system and --user exclude each other") }
    }

    /// The scope asked for, or `nil` when neither flag was given.
    var explicit: Scope? { system ? .system : (user ? .user : nil) }
}
