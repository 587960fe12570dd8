import FerryBus
import FerryCore
import FerryInstall
import Foundation
import Synchronization

/// Emits `Progress(s ref, s phase, t done, t total)`, at most ten times a second per phase, to the caller only.
///
/// Unicast (the signal's destination is the caller's unique name): what one user installs, and when, is none of
/// the other bus clients' business, and a broadcast would reach every one of them that adds a match rule.
final class ProgressSignal: Sendable {
    let connection: BusConnection
    let ref: Ref
    /// The caller's unique name (`:1.42`).
    let destination: String
    /// The phase last sent and when: the engine reports from whichever thread copies or extracts.
    private let last = Mutex<(phase: DeployPhase?, sent: Date)>((nil, .distantPast))

    init(connection: BusConnection, ref: Ref, destination: String) {
        self.connection = connection
        self.ref = ref
        self.destination = destination
    }

    func report(_ phase: DeployPhase, _ done: UInt64, _ total: UInt64) {
        let now = Date()
        let due = last.withLock { last in
            guard phase != last.phase || done >= total || now.timeIntervalSince(last.sent) >= 0.1 else { return false }
            last = (phase, now)
            return true
        }
        guard due else { return }
        _ = ServiceNotifier.status("\(ref): \(phase.rawValue) \(done)/\(total)")
        let signal = Helper1.Progress(ref: ref, phase: phase.rawValue, done: done, total: total)
        try? connection.emitSignal(
            path: Helper1.objectPath, interface: Helper1.interface, member: Helper1.Progress.member,
            arguments: signal.arguments, destination: destination)
    }
}
