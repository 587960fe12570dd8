import ArgumentParser
import FerryCore
import Foundation

/// The `ferry` command: the agent (install, update, ...) and the publisher's tools (build, sign, verify).
public struct Ferry: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ferry",
        abstract: "Install and update signed software published as OCI images.",
        version: FerryVersion.string,
        subcommands: [
            RemoteAddCommand.self, RemoteDeleteCommand.self, RemotesCommand.self, RemoteLsCommand.self,
            RemoteInfoCommand.self,
            InstallCommand.self, UpdateCommand.self, ListCommand.self, InfoCommand.self, UninstallCommand.self,
            RunCommand.self, BuildCommand.self, SignCommand.self, VerifyCommand.self, TUFCommand.self,
            DebugHashCommand.self, DebugLogFillCommand.self, DebugLogUpdateCommand.self, LogCommand.self, KeyCommand.self, RecallCommand.self, HistoryCommand.self, RollbackCommand.self, MirrorCommand.self, WitnessCommand.self,
        ]
    )

    public init() {}

    /// Entry point: parses, runs, and maps outcomes to the documented exit codes
    /// (0 success, 1 failure, 2 usage error).
    public static func runMain(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) async -> Int32 {
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch let error as FerryError {
            printError(error.message)
            return 1
        } catch let code as ExitCode {
            return code.rawValue
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                return 0
            }
            printError(fullMessage(for: error), prefixed: false)
            return code == .validationFailure ? 2 : code.rawValue
        }
    }
}

public enum FerryVersion {
    public static let string = "0.1.0"
}

/// One line on standard error, `ferry: ` first.
func printError(_ message: String, prefixed: Bool = true) {
    let line = (prefixed ? "ferry: " : "") + message + (message.hasSuffix("\n") ? "" : "\n")
    FileHandle.standardError.write(Data(line.utf8))
}

/// Prints `value` as pretty, sorted JSON (`--json` output for scripts).
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// The current time as Unix seconds.
func unixNow() -> Int64 { Int64(Date().timeIntervalSince1970) }
