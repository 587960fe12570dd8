import ArgumentParser
import FerryBus
import FerryCore
import FerryHelper
import Foundation

/// `ferry-helper`: the root half of Ferry, activated on the system bus. It never touches the network; everything
/// it does is in the `FerryHelper` module.
struct HelperCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferry-helper",
        abstract: "Ferry's root helper: verifies staged images and installs them system-wide (D-Bus: dev.ferry.Helper1).")

    @Option(help: "Keep configuration and state under DIR/etc/ferry and DIR/var/lib/ferry (for tests).")
    var root: String = "/"
    @Option(help: "Exit after this many seconds without calls (0: never).") var idleTimeout: Int = 60
    @Option(help: "Connect to this bus address instead of the system bus.") var busAddress: String?

    func run() throws {
        guard getuid() == 0 || ProcessInfo.processInfo.environment["FERRY_HELPER_ALLOW_NONROOT"] == "1" else {
            throw FerryError.failed("ferry-helper must run as root")
        }
        FerryLogging.bootstrap(identifier: "ferry-helper")
        let service = try HelperService(root: root, busAddress: busAddress)
        try service.run(idleTimeout: idleTimeout > 0 ? .seconds(idleTimeout) : nil)
    }
}

do {
    var command = try HelperCommand.parseAsRoot()
    try command.run()
} catch let error as FerryError {
    FileHandle.standardError.write(Data("ferry-helper: \(error.message)\n".utf8))
    exit(1)
} catch let error as BusError {
    FileHandle.standardError.write(Data("ferry-helper: \(error)\n".utf8))
    exit(1)
} catch {
    HelperCommand.exit(withError: error)
}
