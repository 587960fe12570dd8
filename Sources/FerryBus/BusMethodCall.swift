internal import CSystemd
import Foundation
import Glibc
import Synchronization

/// An incoming method call on an exported object, answered exactly once with ``reply(_:)`` or
/// ``replyError(_:)`` from any thread.
///
/// A call dropped without an answer is answered with `org.freedesktop.DBus.Error.Failed` when released, so a
/// caller never waits for its timeout because a handler forgot it. File descriptors among the ``arguments`` are
/// owned by the call and closed when it is released; ``takeUnixFD(at:)`` hands one to the handler.
public final class BusMethodCall: @unchecked Sendable {
    /// The object path called.
    public let path: String
    /// The interface called (empty when the caller named none).
    public let interface: String
    public let member: String
    /// The arguments, decoded generically: check their shape with ``requireSignature(_:)`` before use.
    public let arguments: [BusValue]
    /// The caller's unique bus name (`:1.42`), as the bus daemon stamped it; empty on a peer-to-peer connection.
    public let sender: String

    private let connection: BusConnection
    private let message: OpaquePointer
    /// Whether the call was answered, the descriptors it still owns, and the caller's uid once asked.
    private let state: Mutex<(answered: Bool, ownedFDs: [Int32], uid: UInt32?)>
    /// Whether this call counts as work in flight for the loop's idle timeout.
    var countsAsInFlight = false

    init(
        connection: BusConnection, message: OpaquePointer, path: String, interface: String, member: String,
        arguments: [BusValue], ownedFDs: [Int32]
    ) {
        self.connection = connection
        self.message = sd_bus_message_ref(message)
        self.path = path
        self.interface = interface
        self.member = member
        self.arguments = arguments
        state = Mutex((false, ownedFDs, nil))
        sender = sd_bus_message_get_sender(message).map { String(cString: $0) } ?? ""
    }

    deinit {
        if claimAnswer() {
            connection.sendReply(to: message, .failure(BusError.failed("\(member) was not answered")))
            connection.callFinished(counted: countsAsInFlight)
        }
        for fd in state.withLock({ $0.ownedFDs }) { close(fd) }
        let message = self.message
        _ = try? connection.withBus { _ throws(BusError) in sd_bus_message_unref(message) }
    }

    /// The signature of the arguments as sent (`"hssa{sv}"`).
    public var signature: String { BusValue.signature(of: arguments) }

    /// Throws `org.freedesktop.DBus.Error.InvalidArgs` unless the arguments have exactly `expected` signature.
    /// After it returns, the handler may index ``arguments`` and match cases knowing their types.
    public func requireSignature(_ expected: String) throws {
        guard signature == expected else {
            throw BusError.invalidArgs("\(member) expects arguments (\(expected)), got (\(signature))")
        }
    }

    /// Moves the descriptor of top-level argument `index` (an `h`) to the caller, who must close it.
    public func takeUnixFD(at index: Int) throws -> Int32 {
        guard arguments.indices.contains(index), let fd = arguments[index].unixFDValue else {
            throw BusError.invalidArgs("argument \(index) of \(member) is not a file descriptor")
        }
        let taken = state.withLock { state in
            state.ownedFDs.firstIndex(of: fd).map { state.ownedFDs.remove(at: $0) } != nil
        }
        guard taken else {
            throw BusError.invalidArgs("file descriptor argument \(index) of \(member) was taken already")
        }
        return fd
    }

    /// The caller's effective uid, as the bus daemon knows it from the socket
    /// (`org.freedesktop.DBus.GetConnectionUnixUser`).
    ///
    /// Never taken from the message or /proc: a caller cannot claim another uid, and a recycled pid cannot
    /// stand in for it.
    public func senderUID() throws -> UInt32 {
        if let uid = state.withLock({ $0.uid }) { return uid }
        let reply = try connection.call(
            destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
            member: "GetConnectionUnixUser", arguments: [.string(sender)])
        guard let uid = reply.first?.uint32Value else {
            throw BusError.failed("GetConnectionUnixUser returned \(reply)")
        }
        state.withLock { $0.uid = uid }
        return uid
    }

    /// Answers with `values` (nothing for a method without outputs). Later answers are ignored.
    public func reply(_ values: [BusValue] = []) {
        finish(.success(values))
    }

    /// Answers with `error`. Later answers are ignored.
    public func replyError(_ error: BusError) {
        finish(.failure(error))
    }

    /// Answers with `error`'s name and message, or `Failed` for an error that is not a ``BusError``.
    public func replyError(_ error: any Error) {
        finish(.failure(error as? BusError ?? BusError.failed("\(error)")))
    }

    func finish(_ result: Result<[BusValue], BusError>) {
        guard claimAnswer() else { return }
        connection.sendReply(to: message, result)
        connection.callFinished(counted: countsAsInFlight)
    }

    /// Marks the call answered without sending anything (sd-bus answers it instead).
    func discard() {
        _ = claimAnswer()
    }

    private func claimAnswer() -> Bool {
        state.withLock { state in
            if state.answered { return false }
            state.answered = true
            return true
        }
    }
}
