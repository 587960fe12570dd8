import ArgumentParser
import FerryCore
import FerryInstall
import Foundation

/// `ferry history`: what was installed, updated, downgraded, rolled back and uninstalled, by whom, in each scope.
struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "Show what was installed, updated, rolled back and removed, by whom.")

    @OptionGroup var scope: ScopeOptions
    @Argument(help: "Only this ref.") var ref: String?
    @Flag(help: "JSON output for scripts (one object per change).") var json = false

    struct Row: Encodable {
        var scope: String
        var entry: HistoryEntry
        func encode(to encoder: Encoder) throws {
            try entry.encode(to: encoder)
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(scope, forKey: .scope)
        }
        enum Key: String, CodingKey { case scope }
    }

    func run() async throws {
        let filter = try ref.map { try Ref($0) }
        let context = AgentContext()
        var rows: [Row] = []
        for (name, paths) in [(Scope.user, context.userPaths), (.system, context.systemPaths)]
        where scope.explicit == nil || scope.explicit == name {
            rows += try History.read(paths).filter { filter == nil || $0.ref == filter }
                .map { Row(scope: "\(name)", entry: $0) }
        }
        rows.sort { $0.entry.time < $1.entry.time }
        if json { return try printJSON(rows) }
        if rows.isEmpty { print("no history") }
        let formatter = ISO8601DateFormatter()
        for row in rows {
            let e = row.entry
            let user = getpwuid(e.uid).map { String(cString: $0.pointee.pw_name) } ?? "uid \(e.uid)"
            let change = [e.from?.short, e.to?.short].map { $0 ?? "-" }.joined(separator: " -> ")
            print("\(formatter.string(from: Date(timeIntervalSince1970: TimeInterval(e.time)))) \(row.scope) "
                + "\(e.action.rawValue) \(e.ref) from \(e.remote) \(change) by \(user)")
        }
    }
}

/// `ferry rollback`: back to the deployment kept before the last change (and forward again when run twice).
struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback", abstract: "Switch an app back to the release installed before the last change.",
        discussion: "System-wide this needs dev.ferry.downgrade. The newer release stays recorded, so update offers "
            + "it again.")

    @OptionGroup var scope: ScopeOptions
    @Argument(help: "The installed ref.") var ref: String
    @Flag(help: "Never prompt, not even for polkit authentication.") var noInteraction = false

    func run() async throws {
        let ref = try Ref(ref)
        let context = AgentContext()
        let target = try scope.explicit ?? findInstalled(ref, context: context).0
        let digest: Digest
        switch target {
        case .user:
            let installer = context.userInstaller()
            try installer.recover()
            digest = try installer.rollback(ref).toDigest
        case .system:
            digest = try HelperClient().rollback(ref: ref, interactive: !noInteraction)
        }
        print("\(ref): rolled back to \(digest.short) (\(target))")
    }
}
