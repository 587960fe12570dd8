import ArgumentParser
import FerryCore
import FerryFetch
import FerryTrust
import Foundation

/// `ferry tuf`: the TUF client behind the command-line protocol of the public TUF conformance suite.
///
/// ```
/// ferry tuf --metadata-dir DIR init TRUSTED_ROOT
/// ferry tuf --metadata-url URL --metadata-dir DIR refresh
/// ferry tuf --metadata-url URL --metadata-dir DIR --target-name PATH... --target-base-url URL \
///     --target-dir DIR download
/// ```
/// Options come in any order. Exit status 0 on full success, 1 on any failure.
public struct TUFCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "tuf",
        abstract: "Run the TUF client workflow (the TUF conformance suite's client protocol).",
        discussion: """
            init TRUSTED_ROOT   store TRUSTED_ROOT as the trusted root in --metadata-dir; no request is made
            refresh             update trusted metadata from --metadata-url
            download            refresh, then fetch each --target-name from --target-base-url into --target-dir
            """
    )

    @Option(name: .customLong("metadata-dir"), help: "Directory of trusted metadata (root.json, ...).")
    var metadataDir: String

    @Option(name: .customLong("metadata-url"), help: "Base URL of the repository's metadata.")
    var metadataURL: String?

    @Option(name: .customLong("target-name"), help: "Target path to download (repeatable).")
    var targetNames: [String] = []

    @Option(name: .customLong("target-base-url"), help: "Base URL of the repository's targets.")
    var targetBaseURL: String?

    @Option(name: .customLong("target-dir"), help: "Directory downloaded targets are stored in.")
    var targetDir: String?

    @Argument(help: "init, refresh or download.")
    var subcommand: String

    @Argument(help: "The trusted root file (init only).")
    var trustedRoot: String?

    public init() {}

    public func validate() throws {
        switch subcommand {
        case "init":
            guard trustedRoot != nil else { throw ValidationError("init needs TRUSTED_ROOT") }
        case "refresh":
            guard metadataURL != nil else { throw ValidationError("refresh needs --metadata-url") }
        case "download":
            guard metadataURL != nil, targetBaseURL != nil, targetDir != nil, !targetNames.isEmpty else {
                throw ValidationError("download needs --metadata-url, --target-name, --target-base-url, --target-dir")
            }
        default:
            throw ValidationError("unknown subcommand \(subcommand.debugDescription): use init, refresh or download")
        }
        if subcommand != "init", trustedRoot != nil {
            throw ValidationError("unexpected argument \(trustedRoot ?? "")")
        }
    }

    public func run() async throws {
        switch subcommand {
        case "init":
            guard let trustedRoot else { throw ExitCode.failure }
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: trustedRoot))
            } catch {
                throw FerryError.failed("cannot read \(trustedRoot): \(error.localizedDescription)")
            }
            try TUFUpdater.initialize(metadataDirectory: metadataDir, trustedRoot: data)
        case "refresh":
            try await makeUpdater().refresh()
        default:
            let updater = try makeUpdater()
            try await updater.refresh()
            guard let targetBaseURL, let targetDir else { throw ExitCode.failure }
            do {
                try FileManager.default.createDirectory(atPath: targetDir, withIntermediateDirectories: true)
            } catch {
                throw FerryError.failed("cannot create \(targetDir): \(error.localizedDescription)")
            }
            for name in targetNames {
                guard let info = try await updater.targetInfo(path: name) else {
                    throw FerryError.failed("target \(name.debugDescription) is not listed by any trusted role")
                }
                try await updater.download(target: info, baseURL: targetBaseURL, to: targetDir)
            }
        }
    }

    private func makeUpdater() throws -> TUFUpdater {
        try TUFUpdater(metadataDirectory: metadataDir, metadataBaseURL: metadataURL ?? "",
                       fetcher: HTTPTUFFetcher())
    }
}

/// TUF fetches over the agent's HTTP transport (bounded reads; `file://` URLs read local files).
/// 403, 404 and 410 mean "no such file", which ends the search for newer root versions.
struct HTTPTUFFetcher: TUFFetcher {
    func fetch(_ url: String, maxLength: Int) async throws -> Data? {
        let response = try await HTTPTransport.shared.get(url, maxSize: maxLength)
        switch response.status {
        case 200: return response.body
        case 403, 404, 410: return nil
        default: throw FerryError.failed("\(url): HTTP \(response.status)")
        }
    }
}
