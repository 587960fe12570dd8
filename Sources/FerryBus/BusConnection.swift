internal import CSystemd
import Foundation
import Glibc

/// A connection to a D-Bus bus through sd-bus: method calls, signals, exported objects and the event loop.
///
/// Threading: an sd-bus connection is not thread-safe, so every `sd_bus_*` call made through this class is
/// serialized by one lock. Any thread may call ``call(destination:path:interface:member:arguments:timeout:)``,
/// ``emitSignal(path:interface:member:arguments:)`` or reply to a ``BusMethodCall``; incoming calls, signals
/// and asynchronous replies are dispatched only by the thread inside ``run(idleTimeout:until:)`` (one at a time),
/// which holds the lock while a callback runs and wakes up whenever another thread touched the connection.
/// Long work belongs on another thread: return ``BusReply/deferred`` and reply from there, and the loop keeps
/// answering other calls meanwhile.
public final class BusConnection: @unchecked Sendable {
    private let lock = NSRecursiveLock()
    private var bus: OpaquePointer?
    /// A non-blocking pipe: writing a byte wakes the loop out of `poll`.
    private let wakeRead: Int32
    private let wakeWrite: Int32

    // State below is guarded by `lock`.
    private var objects: [String: ExportedObject] = [:]
    private var subscriptions: [Int: SignalSubscriber] = [:]
    private var nextSubscriptionID = 0
    private var loopRunning = false
    private var loopThread: pthread_t?
    private var stopRequested = false
    private var callsInFlight = 0
    private var lastActivity = monotonicMicroseconds()

    /// Connects to the system bus (`sd_bus_open_system`), which honours `DBUS_SYSTEM_BUS_ADDRESS`.
    public static func system() throws -> BusConnection {
        var bus: OpaquePointer?
        try check(sd_bus_open_system(&bus), "cannot connect to the system bus")
        guard let bus else { throw BusError.failed("cannot connect to the system bus") }
        return try BusConnection(bus: bus)
    }

    /// Connects as a bus client to the bus at `address` (`unix:path=/run/…`), as `sd_bus_new`,
    /// `sd_bus_set_address`, `sd_bus_set_bus_client` and `sd_bus_start` do.
    public convenience init(address: String) throws {
        var created: OpaquePointer?
        try check(sd_bus_new(&created), "cannot create bus connection")
        guard let bus = created else { throw BusError.failed("cannot create bus connection") }
        do {
            try check(sd_bus_set_address(bus, address), "invalid bus address \(address)")
            try check(sd_bus_set_bus_client(bus, 1), "cannot configure bus connection")
            try check(sd_bus_negotiate_fds(bus, 1), "cannot enable fd passing")
            try check(sd_bus_start(bus), "cannot connect to \(address)")
        } catch {
            sd_bus_unref(bus)
            throw error
        }
        try self.init(bus: bus)
    }

    private init(bus: OpaquePointer) throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            let code = errno
            sd_bus_flush_close_unref(bus)
            throw BusError.fromErrno(-code, "cannot create wake-up pipe")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        self.bus = bus
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    deinit {
        lock.lock()
        for object in objects.values { sd_bus_slot_unref(object.slot) }
        for subscriber in subscriptions.values { sd_bus_slot_unref(subscriber.slot) }
        objects = [:]
        subscriptions = [:]
        if let bus { sd_bus_flush_close_unref(bus) }
        bus = nil
        lock.unlock()
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    /// Runs `body` with the bus under the lock, then wakes the loop so that it notices whatever `body`
    /// read from or queued on the socket.
    func withBus<T>(_ body: (OpaquePointer) throws(BusError) -> T) throws(BusError) -> T {
        lock.lock()
        defer {
            lock.unlock()
            wake()
        }
        guard let bus else { throw BusError(name: BusError.Names.disconnected, message: "connection is closed") }
        return try body(bus)
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    // MARK: - Identity and names

    /// This connection's unique name on the bus (`:1.42`).
    public var uniqueName: String {
        get throws {
            try withBus { bus throws(BusError) in
                var name: UnsafePointer<CChar>?
                try check(sd_bus_get_unique_name(bus, &name), "cannot get unique name")
                guard let name else { throw BusError.failed("bus has no unique name") }
                return String(cString: name)
            }
        }
    }

    /// Asks the bus for the well-known `name` without queueing (`RequestName` with `DO_NOT_QUEUE`).
    ///
    /// Throws the bus's error (`AccessDenied` when policy forbids owning it) or `AddressInUse` when another
    /// connection owns it. Owning it already is success.
    public func requestName(_ name: String) throws {
        let reply = try call(
            destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
            member: "RequestName", arguments: [.string(name), .uint32(4)])
        switch reply.first?.uint32Value {
        case 1, 4: return  // primary owner, already owner
        case 3: throw BusError(name: BusError.Names.addressInUse, message: "\(name) is owned by another connection")
        default: throw BusError.failed("cannot own \(name): unexpected reply \(reply)")
        }
    }

    /// The unique name (`:1.42`) of the connection that owns the well-known `name` now
    /// (`org.freedesktop.DBus.GetNameOwner`); throws `NameHasNoOwner` when nobody does.
    ///
    /// Signals carry their sender's unique name, never a well-known one: to accept a service's signals only,
    /// match on this name (a well-known name in a match rule is resolved by the daemon, not by sd-bus).
    public func nameOwner(_ name: String) throws -> String {
        let reply = try call(
            destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
            member: "GetNameOwner", arguments: [.string(name)])
        guard let owner = reply.first?.stringValue, owner.hasPrefix(":") else {
            throw BusError.failed("GetNameOwner(\(name)) returned \(reply)")
        }
        return owner
    }

    /// Gives up the well-known `name` (`ReleaseName`); not owning it is not an error.
    ///
    /// An idle service releases its name before exiting and then drains what was already queued
    /// (`run(idleTimeout:)` once more with a short timeout), so a call racing with the exit goes to the next
    /// activated instance instead of being lost.
    public func releaseName(_ name: String) throws {
        _ = try call(
            destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
            member: "ReleaseName", arguments: [.string(name)])
    }

    // MARK: - Calling methods

    /// Calls a method and waits for its reply (`sd_bus_message_new_method_call` + `sd_bus_call`).
    ///
    /// An error reply is thrown as ``BusError`` with the peer's name and message; no reply within `timeout`
    /// is `org.freedesktop.DBus.Error.Timeout` (or `NoReply`). File descriptors in the reply are duplicates
    /// the caller owns.
    ///
    /// While another thread runs the loop, the call is sent asynchronously and this thread waits for the loop
    /// to deliver the reply, so a worker asking polkit (which may wait minutes for a password) does not stop
    /// the loop from answering other calls. Without a running loop, or on the loop thread itself (from a
    /// handler), it blocks the connection until the reply arrives: keep such calls short.
    public func call(
        destination: String?, path: String, interface: String?, member: String,
        arguments: [BusValue] = [], timeout: Duration = .seconds(25)
    ) throws -> [BusValue] {
        if loopRunsOnAnotherThread {
            let box = ResultBox()
            try callAsync(
                destination: destination, path: path, interface: interface, member: member,
                arguments: arguments, timeout: timeout
            ) { result in box.set(result) }
            // sd-bus answers a timeout itself; the extra second only covers a loop that stopped meanwhile.
            box.wait(atMost: timeout + .seconds(1))
            return try box.get()
        }
        return try withBus { bus throws(BusError) in
            let message = try newMethodCall(bus, destination, path, interface, member, arguments)
            defer { sd_bus_message_unref(message) }
            var error = sd_bus_error(name: nil, message: nil, _need_free: 0)
            defer { sd_bus_error_free(&error) }
            var reply: OpaquePointer?
            let r = sd_bus_call(bus, message, microseconds(timeout), &error, &reply)
            defer { if let reply { sd_bus_message_unref(reply) } }
            if r < 0 { throw BusError.from(error, r, "\(interface ?? "").\(member) on \(destination ?? "peer")") }
            guard let reply else { return [] }
            var reader = BusMessageReader(reply)
            do throws(BusError) {
                return try reader.readAll()
            } catch {
                reader.closeDuplicatedFDs()
                throw error
            }
        }
    }

    /// Sends a method call and returns at once; `completion` runs on the loop thread when the reply, an error
    /// reply or the timeout arrives (`sd_bus_call_async`). Nothing is delivered unless some thread runs the loop.
    public func callAsync(
        destination: String?, path: String, interface: String?, member: String,
        arguments: [BusValue] = [], timeout: Duration = .seconds(25),
        completion: @escaping @Sendable (Result<[BusValue], BusError>) -> Void
    ) throws {
        try withBus { bus throws(BusError) in
            let message = try newMethodCall(bus, destination, path, interface, member, arguments)
            defer { sd_bus_message_unref(message) }
            let pending = Unmanaged.passRetained(PendingCall(completion)).toOpaque()
            var slot: OpaquePointer?
            let r = sd_bus_call_async(bus, &slot, message, busAsyncReplyCallback, pending, microseconds(timeout))
            guard r >= 0, let slot else {
                Unmanaged<PendingCall>.fromOpaque(pending).release()
                throw BusError.fromErrno(r, "cannot send \(interface ?? "").\(member)")
            }
            // The bus owns the slot from here on and releases the completion when the slot goes away.
            sd_bus_slot_set_destroy_callback(slot, releasePendingCall)
            sd_bus_slot_set_floating(slot, 1)
            sd_bus_slot_unref(slot)
        }
    }

    /// Calls a method and runs the loop on this thread until the reply arrives, so that signals (a helper's
    /// progress) reach their subscribers meanwhile. When another thread is running the loop already, this
    /// thread just waits for that loop to deliver the reply. Calling it from a loop callback is an error
    /// (the loop could never deliver the reply to itself).
    public func callProcessingEvents(
        destination: String?, path: String, interface: String?, member: String,
        arguments: [BusValue] = [], timeout: Duration = .seconds(25)
    ) throws -> [BusValue] {
        lock.lock()
        let onLoopThread = loopThread.map { pthread_equal($0, pthread_self()) != 0 } ?? false
        let loopElsewhere = loopRunning && !onLoopThread
        lock.unlock()
        if onLoopThread { throw BusError.failed("cannot wait for a reply on the thread running the loop") }
        if loopElsewhere {
            return try call(
                destination: destination, path: path, interface: interface, member: member,
                arguments: arguments, timeout: timeout)
        }
        let box = ResultBox()
        try callAsync(
            destination: destination, path: path, interface: interface, member: member,
            arguments: arguments, timeout: timeout
        ) { result in box.set(result) }
        try run(until: { box.isSet })
        return try box.get()
    }

    /// Whether a thread other than the current one is inside ``run(idleTimeout:until:)``.
    private var loopRunsOnAnotherThread: Bool {
        lock.lock()
        defer { lock.unlock() }
        guard loopRunning, let loopThread else { return false }
        return pthread_equal(loopThread, pthread_self()) == 0
    }

    private func newMethodCall(
        _ bus: OpaquePointer, _ destination: String?, _ path: String, _ interface: String?, _ member: String,
        _ arguments: [BusValue]
    ) throws(BusError) -> OpaquePointer {
        var created: OpaquePointer?
        try check(
            sd_bus_message_new_method_call(bus, &created, destination, path, interface, member),
            "invalid method call \(interface ?? "").\(member) on \(path)")
        guard let message = created else { throw BusError.failed("cannot create method call") }
        do {
            try BusMessageWriter.append(arguments, to: message)
        } catch {
            sd_bus_message_unref(message)
            throw error
        }
        return message
    }

    // MARK: - Signals

    /// Emits a signal from `path` (`sd_bus_message_new_signal` + `sd_bus_send`).
    ///
    /// With a `destination` (a unique name such as `:1.42`) the signal is unicast
    /// (`sd_bus_message_set_destination`): the bus delivers it to that connection only, so what it says about one
    /// caller's work is not broadcast to every client that adds a match rule. Without one it goes to every match.
    public func emitSignal(path: String, interface: String, member: String, arguments: [BusValue] = [],
                           destination: String? = nil) throws {
        try withBus { bus throws(BusError) in
            var created: OpaquePointer?
            try check(
                sd_bus_message_new_signal(bus, &created, path, interface, member),
                "invalid signal \(interface).\(member) on \(path)")
            guard let message = created else { throw BusError.failed("cannot create signal") }
            defer { sd_bus_message_unref(message) }
            if let destination {
                try check(sd_bus_message_set_destination(message, destination),
                          "invalid destination \(destination.prefix(100)) for \(interface).\(member)")
            }
            try BusMessageWriter.append(arguments, to: message)
            try check(sd_bus_send(bus, message, nil), "cannot send signal \(interface).\(member)")
        }
    }

    /// Subscribes to signals matching a D-Bus match rule (`type='signal',sender=…,member=…`) through
    /// `sd_bus_add_match`; `handler` runs on the loop thread for each one, until the subscription is cancelled.
    public func subscribe(matchRule: String, handler: @escaping @Sendable (BusSignal) -> Void) throws
        -> BusSubscription
    {
        try withBus { bus throws(BusError) in
            let subscriber = SignalSubscriber(handler: handler)
            var slot: OpaquePointer?
            let r = sd_bus_add_match(
                bus, &slot, matchRule, busSignalCallback, Unmanaged.passUnretained(subscriber).toOpaque())
            guard r >= 0, let slot else { throw BusError.fromErrno(r, "cannot add match \(matchRule)") }
            subscriber.slot = slot
            nextSubscriptionID += 1
            subscriptions[nextSubscriptionID] = subscriber
            return BusSubscription(connection: self, id: nextSubscriptionID)
        }
    }

    /// Subscribes to signals by fields; `nil` fields match anything. Values must not contain `'`.
    public func subscribe(
        sender: String? = nil, path: String? = nil, interface: String? = nil, member: String? = nil,
        handler: @escaping @Sendable (BusSignal) -> Void
    ) throws -> BusSubscription {
        var rule = "type='signal'"
        for (key, value) in [("sender", sender), ("path", path), ("interface", interface), ("member", member)] {
            guard let value else { continue }
            guard !value.contains("'") else { throw BusError.invalidArgs("match value \(value) contains a quote") }
            rule += ",\(key)='\(value)'"
        }
        return try subscribe(matchRule: rule, handler: handler)
    }

    func cancelSubscription(_ id: Int) {
        lock.lock()
        defer { lock.unlock() }
        guard let subscriber = subscriptions.removeValue(forKey: id) else { return }
        sd_bus_slot_unref(subscriber.slot)
    }

    // MARK: - Exporting objects

    /// Serves `interface` at object `path`: method calls go to `handler` on the loop thread, with their
    /// arguments decoded; `properties` answer `org.freedesktop.DBus.Properties.Get/GetAll` (read-only);
    /// `introspectionXML`, when given, is the whole document `Introspect` returns for `path`.
    ///
    /// The handler returns ``BusReply/values(_:)`` or ``BusReply/error(_:)`` to answer at once, throws to
    /// answer with an error (a ``BusError`` as is, anything else as `Failed`), or returns
    /// ``BusReply/deferred`` and later calls ``BusMethodCall/reply(_:)`` from any thread.
    public func exportObject(
        path: String, interface: String, properties: [String: BusValue] = [:], introspectionXML: String? = nil,
        handler: @escaping @Sendable (BusMethodCall) throws -> BusReply
    ) throws {
        try withBus { bus throws(BusError) in
            let exported = ExportedInterface(handler: handler, properties: properties)
            if let object = objects[path] {
                object.interfaces[interface] = exported
                if let introspectionXML { object.introspectionXML = introspectionXML }
                return
            }
            var slot: OpaquePointer?
            let r = sd_bus_add_object(bus, &slot, path, busObjectCallback, Unmanaged.passUnretained(self).toOpaque())
            guard r >= 0, let slot else { throw BusError.fromErrno(r, "cannot export object \(path)") }
            let object = ExportedObject(slot: slot)
            object.interfaces[interface] = exported
            object.introspectionXML = introspectionXML
            objects[path] = object
        }
    }

    /// Dispatches one incoming method call on the loop thread; returns 1 when handled, 0 to let sd-bus
    /// answer `UnknownMethod`.
    fileprivate func dispatch(_ message: OpaquePointer) -> Int32 {
        lastActivity = monotonicMicroseconds()
        let path = sd_bus_message_get_path(message).map { String(cString: $0) } ?? ""
        let interface = sd_bus_message_get_interface(message).map { String(cString: $0) }
        let member = sd_bus_message_get_member(message).map { String(cString: $0) } ?? ""
        guard let object = objects[path] else { return 0 }

        var reader = BusMessageReader(message)
        let arguments: [BusValue]
        do {
            arguments = try reader.readAll()
        } catch {
            reader.closeDuplicatedFDs()
            sendReply(to: message, .failure(error))
            return 1
        }
        let call = BusMethodCall(
            connection: self, message: message, path: path, interface: interface ?? "", member: member,
            arguments: arguments, ownedFDs: reader.duplicatedFDs)

        switch interface {
        case "org.freedesktop.DBus.Properties":
            call.finish(object.answerProperties(member: member, arguments: arguments))
            return 1
        case "org.freedesktop.DBus.Introspectable" where member == "Introspect":
            call.reply([.string(object.introspectionXML ?? object.generatedIntrospection(path: path))])
            return 1
        default:
            break
        }
        let exported: ExportedInterface?
        if let interface {
            exported = object.interfaces[interface]
        } else {
            exported = object.interfaces.count == 1 ? object.interfaces.values.first : nil
        }
        guard let exported else {
            call.discard()
            return 0
        }
        callsInFlight += 1
        call.countsAsInFlight = true
        do {
            switch try exported.handler(call) {
            case .values(let values): call.reply(values)
            case .error(let error): call.replyError(error)
            case .deferred: break
            }
        } catch let error as BusError {
            call.replyError(error)
        } catch {
            call.replyError(BusError.failed("\(error)"))
        }
        return 1
    }

    /// Sends the reply to `call` (values or an error). Ignored when the caller asked for no reply or is gone.
    func sendReply(to call: OpaquePointer, _ result: Result<[BusValue], BusError>) {
        _ = try? withBus { bus throws(BusError) in
            guard sd_bus_message_get_expect_reply(call) > 0 else { return }
            var created: OpaquePointer?
            switch result {
            case .success(let values):
                try check(sd_bus_message_new_method_return(call, &created), "cannot create reply")
                guard let reply = created else { return }
                defer { sd_bus_message_unref(reply) }
                do throws(BusError) {
                    try BusMessageWriter.append(values, to: reply)
                } catch {
                    // Never leave the caller waiting: a reply we cannot encode becomes an error reply.
                    sendReply(to: call, .failure(BusError.failed("cannot encode reply: \(error.message)")))
                    return
                }
                try check(sd_bus_send(bus, reply, nil), "cannot send reply")
            case .failure(let failure):
                var error = sd_bus_error(name: nil, message: nil, _need_free: 0)
                defer { sd_bus_error_free(&error) }
                let text = failure.message.replacingOccurrences(of: "\0", with: " ")
                // sd_bus_error_set returns the errno the name maps to, not success; check the name instead.
                _ = sd_bus_error_set(&error, failure.name.replacingOccurrences(of: "\0", with: ""), text)
                if error.name == nil || sd_bus_message_new_method_error(call, &created, &error) < 0 {
                    // A handler's malformed error name still yields an answer.
                    sd_bus_error_free(&error)
                    _ = sd_bus_error_set(&error, BusError.Names.failed, "\(failure.name): \(text)")
                    try check(sd_bus_message_new_method_error(call, &created, &error), "cannot create error reply")
                }
                guard let reply = created else { return }
                defer { sd_bus_message_unref(reply) }
                try check(sd_bus_send(bus, reply, nil), "cannot send error reply")
            }
        }
    }

    /// Called once per exported call when it has been answered (or dropped).
    func callFinished(counted: Bool) {
        lock.lock()
        if counted { callsInFlight -= 1 }
        lastActivity = monotonicMicroseconds()
        lock.unlock()
        wake()
    }

    // MARK: - The loop

    /// Why ``run(idleTimeout:until:)`` returned.
    public enum LoopExit: Sendable, Equatable {
        /// ``stop()`` was called.
        case stopped
        /// `idleTimeout` passed with no incoming call and no call waiting for its deferred reply.
        case idle
        /// The `until` condition became true.
        case conditionMet
        /// The bus closed the connection.
        case disconnected
    }

    /// Dispatches incoming calls, signals and replies on this thread (`sd_bus_process`, then `poll` on the bus
    /// fd and the wake-up pipe, as `sd_bus_wait` would) until ``stop()``, the condition, idleness or disconnection.
    ///
    /// `until` is checked after every dispatch round on this thread; `idleTimeout` counts from the last
    /// incoming call or reply and never expires while a deferred call is unanswered. Only one thread may run
    /// the loop at a time.
    @discardableResult
    public func run(idleTimeout: Duration? = nil, until condition: (() -> Bool)? = nil) throws -> LoopExit {
        lock.lock()
        guard !loopRunning else {
            lock.unlock()
            throw BusError.failed("the loop of this connection is already running on another thread")
        }
        loopRunning = true
        loopThread = pthread_self()
        lastActivity = monotonicMicroseconds()
        lock.unlock()
        defer {
            lock.lock()
            loopRunning = false
            loopThread = nil
            stopRequested = false
            lock.unlock()
        }
        let idleMicroseconds = idleTimeout.map { microseconds($0) }
        while true {
            lock.lock()
            guard let bus else {
                lock.unlock()
                return .disconnected
            }
            var r: Int32
            repeat { r = sd_bus_process(bus, nil) } while r > 0
            if r < 0 {
                lock.unlock()
                if r == -ECONNRESET || r == -ENOTCONN || r == -EPIPE { return .disconnected }
                throw BusError.fromErrno(r, "cannot process bus messages")
            }
            let fd = sd_bus_get_fd(bus)
            let events = sd_bus_get_events(bus)
            var busTimeout: UInt64 = .max
            sd_bus_get_timeout(bus, &busTimeout)
            let busy = callsInFlight > 0
            let last = lastActivity
            let stop = stopRequested
            lock.unlock()

            if stop { return .stopped }
            if let condition, condition() { return .conditionMet }
            let now = monotonicMicroseconds()
            var waitMicroseconds: UInt64 = .max
            if busTimeout != .max { waitMicroseconds = busTimeout > now ? busTimeout - now : 0 }
            if let idleMicroseconds, !busy {
                let deadline = last + idleMicroseconds
                if now >= deadline { return .idle }
                waitMicroseconds = min(waitMicroseconds, deadline - now)
            }
            let timeoutMs: Int32 =
                waitMicroseconds == .max ? -1 : Int32(clamping: (waitMicroseconds + 999) / 1000)
            var fds = [
                pollfd(fd: fd, events: Int16(truncatingIfNeeded: events), revents: 0),
                pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
            ]
            let polled = poll(&fds, 2, timeoutMs)
            if polled < 0 && errno != EINTR {
                throw BusError.fromErrno(-errno, "cannot wait for bus messages")
            }
            if fds[1].revents != 0 {
                var drain = [UInt8](repeating: 0, count: 64)
                while read(wakeRead, &drain, drain.count) > 0 {}
            }
        }
    }

    /// Makes the thread in ``run(idleTimeout:until:)`` return ``LoopExit/stopped``. Callable from any thread.
    public func stop() {
        lock.lock()
        stopRequested = true
        lock.unlock()
        wake()
    }
}

/// What a method handler answers.
public enum BusReply: Sendable {
    /// Reply now with these values (`[]` for a method without outputs).
    case values([BusValue])
    /// Reply now with this error.
    case error(BusError)
    /// The handler keeps the ``BusMethodCall`` and replies later, from any thread.
    case deferred
}

/// A signal delivered to a subscriber.
public struct BusSignal: Sendable {
    public var sender: String
    public var path: String
    public var interface: String
    public var member: String
    /// The signal's arguments. File descriptors are closed when the handler returns; duplicate to keep one.
    public var arguments: [BusValue]
}

/// An active signal subscription; ``cancel()`` ends it (the connection keeps it alive until then).
public final class BusSubscription: Sendable {
    private let connection: BusConnection
    private let id: Int

    init(connection: BusConnection, id: Int) {
        self.connection = connection
        self.id = id
    }

    /// Stops delivery to the handler (`sd_bus_slot_unref` of the match).
    public func cancel() {
        connection.cancelSubscription(id)
    }
}

// MARK: - Internal bookkeeping

private final class ExportedInterface {
    let handler: @Sendable (BusMethodCall) throws -> BusReply
    let properties: [String: BusValue]

    init(handler: @escaping @Sendable (BusMethodCall) throws -> BusReply, properties: [String: BusValue]) {
        self.handler = handler
        self.properties = properties
    }
}

private final class ExportedObject {
    let slot: OpaquePointer
    var interfaces: [String: ExportedInterface] = [:]
    var introspectionXML: String?

    init(slot: OpaquePointer) {
        self.slot = slot
    }

    func answerProperties(member: String, arguments: [BusValue]) -> Result<[BusValue], BusError> {
        switch member {
        case "Get":
            guard arguments.count == 2, let name = arguments[0].stringValue, let property = arguments[1].stringValue
            else { return .failure(.invalidArgs("Get expects (ss)")) }
            guard let interface = interfaces[name] else {
                return .failure(BusError(name: BusError.Names.unknownInterface, message: "no interface \(name)"))
            }
            guard let value = interface.properties[property] else {
                return .failure(BusError(name: BusError.Names.unknownProperty, message: "no property \(property)"))
            }
            return .success([.variant(value)])
        case "GetAll":
            guard arguments.count == 1, let name = arguments[0].stringValue else {
                return .failure(.invalidArgs("GetAll expects (s)"))
            }
            guard let interface = interfaces[name] else {
                return .failure(BusError(name: BusError.Names.unknownInterface, message: "no interface \(name)"))
            }
            return .success([.vardict(interface.properties)])
        case "Set":
            return .failure(BusError(name: BusError.Names.propertyReadOnly, message: "properties are read-only"))
        default:
            return .failure(BusError(name: BusError.Names.unknownMethod, message: "no method Properties.\(member)"))
        }
    }

    func generatedIntrospection(path: String) -> String {
        var xml = """
            <!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
             "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
            <node>
             <interface name="org.freedesktop.DBus.Introspectable">
              <method name="Introspect"><arg name="xml" type="s" direction="out"/></method>
             </interface>
             <interface name="org.freedesktop.DBus.Properties">
              <method name="Get">
               <arg type="s" direction="in"/><arg type="s" direction="in"/><arg type="v" direction="out"/>
              </method>
              <method name="GetAll"><arg type="s" direction="in"/><arg type="a{sv}" direction="out"/></method>
             </interface>

            """
        for (name, interface) in interfaces.sorted(by: { $0.key < $1.key }) {
            xml += " <interface name=\"\(name)\">\n"
            for (property, value) in interface.properties.sorted(by: { $0.key < $1.key }) {
                xml += "  <property name=\"\(property)\" type=\"\(value.signature)\" access=\"read\"/>\n"
            }
            xml += " </interface>\n"
        }
        return xml + "</node>\n"
    }
}

private final class SignalSubscriber {
    let handler: @Sendable (BusSignal) -> Void
    var slot: OpaquePointer?

    init(handler: @escaping @Sendable (BusSignal) -> Void) {
        self.handler = handler
    }
}

private final class PendingCall {
    let completion: @Sendable (Result<[BusValue], BusError>) -> Void

    init(_ completion: @escaping @Sendable (Result<[BusValue], BusError>) -> Void) {
        self.completion = completion
    }
}

/// The outcome of an asynchronous call, handed from the loop thread to the waiting caller.
private final class ResultBox: @unchecked Sendable {
    private let condition = NSCondition()
    private var result: Result<[BusValue], BusError>?

    func set(_ value: Result<[BusValue], BusError>) {
        condition.lock()
        result = value
        condition.broadcast()
        condition.unlock()
    }

    var isSet: Bool {
        condition.lock()
        defer { condition.unlock() }
        return result != nil
    }

    func wait(atMost duration: Duration) {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        while result == nil, condition.wait(until: deadline) {}
        condition.unlock()
    }

    func get() throws -> [BusValue] {
        condition.lock()
        defer { condition.unlock() }
        guard let result else {
            throw BusError(name: BusError.Names.noReply, message: "the loop delivered no reply in time")
        }
        return try result.get()
    }
}

// MARK: - C callbacks (sd-bus calls these on the loop thread, with the connection lock held)

private func busObjectCallback(
    _ message: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ error: UnsafeMutablePointer<sd_bus_error>?
) -> Int32 {
    guard let message, let userdata else { return 0 }
    let connection = Unmanaged<BusConnection>.fromOpaque(userdata).takeUnretainedValue()
    return connection.dispatch(message)
}

private func busSignalCallback(
    _ message: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ error: UnsafeMutablePointer<sd_bus_error>?
) -> Int32 {
    guard let message, let userdata else { return 0 }
    let subscriber = Unmanaged<SignalSubscriber>.fromOpaque(userdata).takeUnretainedValue()
    var reader = BusMessageReader(message)
    defer { reader.closeDuplicatedFDs() }
    guard let arguments = try? reader.readAll() else { return 0 }
    subscriber.handler(
        BusSignal(
            sender: sd_bus_message_get_sender(message).map { String(cString: $0) } ?? "",
            path: sd_bus_message_get_path(message).map { String(cString: $0) } ?? "",
            interface: sd_bus_message_get_interface(message).map { String(cString: $0) } ?? "",
            member: sd_bus_message_get_member(message).map { String(cString: $0) } ?? "",
            arguments: arguments))
    return 0
}

private func busAsyncReplyCallback(
    _ message: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ error: UnsafeMutablePointer<sd_bus_error>?
) -> Int32 {
    guard let message, let userdata else { return 0 }
    let pending = Unmanaged<PendingCall>.fromOpaque(userdata).takeUnretainedValue()
    if sd_bus_message_is_method_error(message, nil) > 0 {
        let failure = sd_bus_message_get_error(message)?.pointee
        let name = failure?.name.map { String(cString: $0) } ?? BusError.Names.failed
        let text = failure?.message.map { String(cString: $0) } ?? ""
        pending.completion(.failure(BusError(name: name, message: text)))
        return 0
    }
    var reader = BusMessageReader(message)
    do {
        pending.completion(.success(try reader.readAll()))
    } catch {
        reader.closeDuplicatedFDs()
        pending.completion(.failure(error))
    }
    return 0
}

private func releasePendingCall(_ userdata: UnsafeMutableRawPointer?) {
    guard let userdata else { return }
    Unmanaged<PendingCall>.fromOpaque(userdata).release()
}

// MARK: - Time

/// CLOCK_MONOTONIC in microseconds, the clock of `sd_bus_get_timeout`.
func monotonicMicroseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
}

/// A duration in microseconds, at least 1 (0 would mean "the default" to sd-bus).
func microseconds(_ duration: Duration) -> UInt64 {
    let (seconds, attoseconds) = duration.components
    guard seconds >= 0 else { return 1 }
    let total = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000)
    if total.overflow { return .max - 1 }
    return max(1, total.partialValue + UInt64(attoseconds / 1_000_000_000_000))
}
