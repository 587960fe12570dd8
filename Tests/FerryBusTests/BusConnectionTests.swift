import FerryBus
import FerryTestSupport
import Foundation
import Glibc
import XCTest

/// Calls between two real connections through a private dbus-daemon, plus busctl and python3-dbus as
/// independent peers.
final class BusConnectionTests: XCTestCase {
    static let name = "dev.ferry.Test"
    static let path = "/dev/ferry/Test"
    static let interface = "dev.ferry.Test1"
    static let introspection = """
        <node><interface name="dev.ferry.Test1"><method name="Echo"/></interface></node>
        """

    private var bus: PrivateBus?
    private var service: RunningService?
    private var held = HeldCalls()

    override func setUpWithError() throws {
        let bus = try PrivateBus()
        self.bus = bus
        let connection = try BusConnection(address: bus.address)
        try connection.requestName(Self.name)
        try Self.export(on: connection, held: held)
        service = RunningService(connection)
    }

    override func tearDown() {
        held.releaseAll()
        service?.stop()
        service = nil
        bus?.stop()
        bus = nil
    }

    /// The test object: Echo returns its arguments, ReadFD reads the passed file, Slow answers from another
    /// thread after 0.5 s, Gate answers from another thread once the test opens the gate, Hang answers only
    /// when the test ends, Whoami reports the caller, Progress and WorkerProgress emit signals.
    static func export(on connection: BusConnection, held: HeldCalls) throws {
        try connection.exportObject(
            path: path, interface: interface, properties: ["Version": .uint32(3)], introspectionXML: introspection
        ) { [weak connection] call in
            switch call.member {
            case "Echo":
                return .values(call.arguments)
            case "Fail":
                return .error(BusError(name: "dev.ferry.Error.InvalidArgument", message: "ref \"a/../b\" is invalid"))
            case "Throw":
                struct Local: Error {}
                throw Local()
            case "ReadFD":
                try call.requireSignature("h")
                let fd = try call.takeUnixFD(at: 0)
                defer { close(fd) }
                var buffer = [UInt8](repeating: 0, count: 256)
                let count = pread(fd, &buffer, buffer.count, 0)
                guard count >= 0 else { throw BusError.failed("read failed") }
                return .values([.string(String(decoding: buffer[0..<count], as: UTF8.self))])
            case "Slow":
                DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) {
                    call.reply([.string("slow done")])
                }
                return .deferred
            case "Gate":
                DispatchQueue.global().async {
                    held.entered.signal()
                    held.gate.wait()
                    call.reply([.string("gate opened")])
                }
                return .deferred
            case "WorkerProgress":
                let emitter = connection
                DispatchQueue.global().async {
                    for step in 1...2 {
                        try? emitter?.emitSignal(
                            path: path, interface: interface, member: "Progress",
                            arguments: [.string("worker"), .string("verify"), .uint64(UInt64(step)), .uint64(2)])
                    }
                    call.reply([])
                }
                return .deferred
            case "Relay":
                // A worker calling out through the service's own connection, here to this service's Gate.
                let caller = connection
                DispatchQueue.global().async {
                    do {
                        let relayed = try caller?.call(
                            destination: name, path: path, interface: interface, member: "Gate")
                        call.reply(relayed ?? [])
                    } catch {
                        call.replyError(error)
                    }
                }
                return .deferred
            case "Hang":
                held.hold(call)
                return .deferred
            case "Whoami":
                return .values([.uint32(try call.senderUID()), .string(call.sender)])
            case "Progress":
                try call.requireSignature("s")
                for step in 1...3 {
                    try connection?.emitSignal(
                        path: path, interface: interface, member: "Progress",
                        arguments: [call.arguments[0], .string("copy"), .uint64(UInt64(step)), .uint64(3)])
                }
                return .values([])
            case "CallerProgress":
                // Unicast to the caller, as the helper sends its Progress.
                try connection?.emitSignal(
                    path: path, interface: interface, member: "Progress",
                    arguments: [.string("mine"), .string("copy"), .uint64(1), .uint64(1)], destination: call.sender)
                return .values([])
            case "Forget":
                return .deferred  // dropped: the call answers Failed when released
            default:
                return .error(BusError(name: BusError.Names.unknownMethod, message: "no \(call.member)"))
            }
        }
    }

    private func client() throws -> BusConnection {
        try BusConnection(address: XCTUnwrap(bus).address)
    }

    private func call(
        _ connection: BusConnection, _ member: String, _ arguments: [BusValue] = [],
        timeout: Duration = .seconds(5)
    ) throws -> [BusValue] {
        try connection.call(
            destination: Self.name, path: Self.path, interface: Self.interface, member: member,
            arguments: arguments, timeout: timeout)
    }

    private func busError(_ body: () throws -> Void) -> BusError? {
        do {
            try body()
            return nil
        } catch {
            return error as? BusError
        }
    }

    // MARK: - Values

    func testEveryValueTypeRoundTrips() throws {
        let values: [BusValue] = [
            .byte(0xFE), .bool(true), .bool(false), .int16(-7), .uint16(65000), .int32(-123_456),
            .uint32(4_000_000_000),
            .int64(-9_000_000_000), .uint64(.max), .double(3.25), .string("héllo\nworld"),
            .objectPath("/dev/ferry/Helper1"), .signature("a{sv}"),
            .stringArray(["a", "", "c"]), .bytes(Data([0, 1, 2, 255])), .array(elementSignature: "(su)", []),
            .vardict([
                "url": .string("https://example.org"), "registry": .bool(true), "mirrors": .stringArray(["m1"]),
                "tuf-root": .bytes(Data([7, 8])), "nested": .vardict(["n": .int64(1)]),
            ]),
            .stringDictionary(["remote": "main", "ref": "org.example.App"]),
            .dictionary(keySignature: "u", valueSignature: "as", [(.uint32(1), .stringArray(["x"]))]),
            .structure([.string("system-bus-name"), .vardict(["name": .string(":1.1")])]),
            .array(
                elementSignature: "(sssst)",
                [.structure([.string("r"), .string("m"), .string("sha256:00"), .string("/p"), .uint64(17)])]),
            .variant(.structure([.int32(1), .variant(.string("deep"))])),
            .array(elementSignature: "ay", [.bytes(Data([1])), .bytes(Data())]),
        ]
        let connection = try client()
        let reply = try call(connection, "Echo", values)
        XCTAssertEqual(reply, values)
        XCTAssertEqual(BusValue.signature(of: reply), BusValue.signature(of: values))
    }

    func testVardictReadsBackAsSwiftDictionary() throws {
        let options = BusValue.vardict(["allow-downgrade": .bool(true), "interactive": .bool(false)])
        let reply = try call(try client(), "Echo", [options])
        let dictionary = try XCTUnwrap(reply.first?.vardictValue)
        XCTAssertEqual(dictionary["allow-downgrade"], .bool(true))
        XCTAssertEqual(dictionary["interactive"]?.boolValue, false)
        XCTAssertEqual(reply.first?.signature, "a{sv}")
    }

    func testFileDescriptorIsReadByTheService() throws {
        let directory = try TemporaryDirectory()
        try directory.write("staged", "staged layout")
        let fd = open(directory.file("staged"), O_RDONLY | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        let reply = try call(try client(), "ReadFD", [.unixFD(fd)])
        XCTAssertEqual(reply, [.string("staged layout")])
        XCTAssertEqual(fcntl(fd, F_GETFD), FD_CLOEXEC, "the caller keeps its own descriptor")
    }

    func testReceivedFileDescriptorIsADuplicateTheCallerOwns() throws {
        let directory = try TemporaryDirectory()
        try directory.write("f", "x")
        let fd = open(directory.file("f"), O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        let reply = try call(try client(), "Echo", [.unixFD(fd)])
        let received = try XCTUnwrap(reply.first?.unixFDValue)
        defer { close(received) }
        XCTAssertNotEqual(received, fd)
        var mine = stat()
        var theirs = stat()
        XCTAssertEqual(fstat(fd, &mine), 0)
        XCTAssertEqual(fstat(received, &theirs), 0)
        XCTAssertEqual(mine.st_ino, theirs.st_ino)
    }

    // MARK: - Errors

    func testFerryErrorRoundTripsWithNameAndMessage() throws {
        let error = busError { _ = try call(try client(), "Fail") }
        XCTAssertEqual(error, BusError(name: "dev.ferry.Error.InvalidArgument", message: "ref \"a/../b\" is invalid"))
    }

    func testNonBusErrorThrownByHandlerIsFailed() throws {
        let error = busError { _ = try call(try client(), "Throw") }
        XCTAssertEqual(error?.name, BusError.Names.failed)
    }

    func testWrongArgumentTypesAreInvalidArgs() throws {
        let error = busError { _ = try call(try client(), "ReadFD", [.string("not an fd")]) }
        XCTAssertEqual(error?.name, BusError.Names.invalidArgs)
        XCTAssertTrue(
            error?.message.contains("expects arguments (h), got (s)") ?? false, "\(String(describing: error))")
    }

    func testMismatchedArrayElementIsRefusedBeforeSending() throws {
        let error = busError {
            _ = try call(try client(), "Echo", [.array(elementSignature: "s", [.string("a"), .uint32(1)])])
        }
        XCTAssertEqual(error?.name, BusError.Names.invalidArgs)
        XCTAssertTrue(error?.message.contains("array of s holds a value of type u") ?? false)
    }

    func testNonBasicDictionaryKeyAndEmbeddedNulAreRefused() throws {
        let connection = try client()
        let badKey = busError {
            _ = try call(connection, "Echo", [.dictionary(keySignature: "as", valueSignature: "s", [])])
        }
        XCTAssertEqual(badKey?.name, BusError.Names.invalidArgs)
        let nul = busError { _ = try call(connection, "Echo", [.string("a\0b")]) }
        XCTAssertEqual(nul?.name, BusError.Names.invalidArgs)
        let badPath = busError { _ = try call(connection, "Echo", [.objectPath("not/a/path")]) }
        XCTAssertEqual(badPath?.name, BusError.Names.invalidArgs)
        XCTAssertEqual(try call(connection, "Echo", [.string("still fine")]), [.string("still fine")])
    }

    func testUnknownMethodIsAnsweredBySdBus() throws {
        let error = busError {
            _ = try client().call(
                destination: Self.name, path: Self.path, interface: "dev.ferry.Other", member: "Nope")
        }
        XCTAssertEqual(error?.name, BusError.Names.unknownMethod)
    }

    func testCallTimesOut() throws {
        let start = Date()
        let error = busError { _ = try call(try client(), "Hang", timeout: .milliseconds(300)) }
        XCTAssertTrue(
            [BusError.Names.timeout, BusError.Names.noReply].contains(error?.name ?? ""), "\(String(describing: error))"
        )
        XCTAssertLessThan(Date().timeIntervalSince(start), 3)
    }

    func testDroppedCallIsAnsweredFailed() throws {
        let error = busError { _ = try call(try client(), "Forget") }
        XCTAssertEqual(error?.name, BusError.Names.failed)
        XCTAssertTrue(error?.message.contains("Forget was not answered") ?? false)
    }

    // MARK: - Service behaviour

    func testDeferredReplyFromAnotherThreadWhileOtherCallsAreAnswered() throws {
        let gateClient = try client()
        let gateResult = LockedBox<Result<[BusValue], Error>>()
        let gateDone = DispatchSemaphore(value: 0)
        Thread {
            gateResult.set(
                Result {
                    try gateClient.call(
                        destination: Self.name, path: Self.path,
                        interface: Self.interface, member: "Gate")
                })
            gateDone.signal()
        }.start()
        XCTAssertEqual(held.entered.wait(timeout: .now() + 5), .success, "the service received Gate")
        XCTAssertEqual(try call(try client(), "Echo", [.string("meanwhile")]), [.string("meanwhile")])
        XCTAssertNil(gateResult.get(), "Gate is still unanswered while Echo was answered")
        held.gate.signal()
        XCTAssertEqual(gateDone.wait(timeout: .now() + 5), .success)
        XCTAssertEqual(try gateResult.get()?.get(), [.string("gate opened")])
    }

    func testWorkerCallingOutDoesNotStopTheLoop() throws {
        let relayClient = try client()
        let relayResult = LockedBox<Result<[BusValue], Error>>()
        let relayDone = DispatchSemaphore(value: 0)
        Thread {
            relayResult.set(
                Result {
                    try relayClient.call(
                        destination: Self.name, path: Self.path,
                        interface: Self.interface, member: "Relay")
                })
            relayDone.signal()
        }.start()
        XCTAssertEqual(held.entered.wait(timeout: .now() + 5), .success, "the loop dispatched the worker's Gate call")
        XCTAssertEqual(try call(try client(), "Echo", [.string("meanwhile")]), [.string("meanwhile")])
        held.gate.signal()
        XCTAssertEqual(relayDone.wait(timeout: .now() + 5), .success)
        XCTAssertEqual(try relayResult.get()?.get(), [.string("gate opened")])
    }

    func testSignalsEmittedFromAWorkerThreadReachSubscriber() throws {
        let connection = try client()
        let received = LockedBox<[BusSignal]>()
        let subscription = try connection.subscribe(sender: Self.name, member: "Progress") { signal in
            received.update { $0 = ($0 ?? []) + [signal] }
        }
        defer { subscription.cancel() }
        _ = try connection.callProcessingEvents(
            destination: Self.name, path: Self.path, interface: Self.interface, member: "WorkerProgress")
        XCTAssertEqual(received.get()?.map(\.arguments[2]), [.uint64(1), .uint64(2)])
    }

    func testLoopReturnsDisconnectedWhenTheBusGoesAway() throws {
        let service = try XCTUnwrap(service)
        bus?.stop()
        XCTAssertEqual(try service.waitForExit(seconds: 5)?.get(), .disconnected)
    }

    func testSystemConnectionHonoursSystemBusAddress() throws {
        setenv("DBUS_SYSTEM_BUS_ADDRESS", try XCTUnwrap(bus).address, 1)
        defer { unsetenv("DBUS_SYSTEM_BUS_ADDRESS") }
        XCTAssertEqual(try call(try BusConnection.system(), "Echo", [.uint32(1)]), [.uint32(1)])
    }

    func testSenderUIDAndUniqueNameComeFromTheBus() throws {
        let connection = try client()
        let reply = try call(connection, "Whoami")
        XCTAssertEqual(reply, [.uint32(getuid()), .string(try connection.uniqueName)])
    }

    func testSenderUIDOfAnotherUserIsThatUser() throws {
        let script = """
            import dbus
            bus = dbus.bus.BusConnection("\(try XCTUnwrap(bus).address)")
            uid, name = bus.call_blocking("\(Self.name)", "\(Self.path)", "\(Self.interface)", "Whoami", "", [])
            print(int(uid), name == bus.get_unique_name())
            """
        let result = try Command.check(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script])
        XCTAssertEqual(result.out.trimmingCharacters(in: .whitespacesAndNewlines), "65534 True")
    }

    /// A signal with a destination reaches that connection only, not another one with the same match rule.
    func testUnicastSignalReachesOnlyItsDestination() throws {
        let caller = try client()
        let other = try client()
        let mine = LockedBox<[BusSignal]>()
        let theirs = LockedBox<[BusSignal]>()
        let a = try caller.subscribe(sender: Self.name, member: "Progress") { signal in
            mine.update { $0 = ($0 ?? []) + [signal] }
        }
        let b = try other.subscribe(sender: Self.name, member: "Progress") { signal in
            theirs.update { $0 = ($0 ?? []) + [signal] }
        }
        defer {
            a.cancel()
            b.cancel()
        }
        _ = try caller.callProcessingEvents(
            destination: Self.name, path: Self.path, interface: Self.interface, member: "CallerProgress")
        // The other connection processes what the bus sent it while it makes a call of its own.
        _ = try other.callProcessingEvents(
            destination: Self.name, path: Self.path, interface: Self.interface, member: "Echo")
        XCTAssertEqual(mine.get()?.map(\.arguments[0]), [.string("mine")])
        XCTAssertNil(theirs.get())
    }

    /// A byte array arrives as one buffer, however it was built: a peer's 32 MiB `ay` must not become 32 Mi values.
    func testByteArrayArrivesAsOneBuffer() throws {
        let reply = try call(try client(), "Echo", [.array(elementSignature: "y", [.byte(1), .byte(2)])])
        guard case .bytes(let data)? = reply.first else { return XCTFail("\(reply)") }
        XCTAssertEqual(data, Data([1, 2]))
    }

    func testSignalsReachSubscriberDuringCall() throws {
        let connection = try client()
        let received = LockedBox<[BusSignal]>()
        let subscription = try connection.subscribe(
            sender: Self.name, path: Self.path, interface: Self.interface, member: "Progress"
        ) { signal in received.update { $0 = ($0 ?? []) + [signal] } }
        defer { subscription.cancel() }
        _ = try connection.callProcessingEvents(
            destination: Self.name, path: Self.path, interface: Self.interface, member: "Progress",
            arguments: [.string("org.example.App")], timeout: .seconds(5))
        let signals = received.get() ?? []
        XCTAssertEqual(signals.count, 3)
        XCTAssertEqual(signals.last?.member, "Progress")
        XCTAssertEqual(signals.last?.path, Self.path)
        XCTAssertEqual(
            signals.map(\.arguments),
            (1...3).map { [.string("org.example.App"), .string("copy"), .uint64(UInt64($0)), .uint64(3)] })
    }

    func testCancelledSubscriptionReceivesNothing() throws {
        let connection = try client()
        let received = LockedBox<Int>()
        let subscription = try connection.subscribe(interface: Self.interface, member: "Progress") { _ in
            received.update { $0 = ($0 ?? 0) + 1 }
        }
        subscription.cancel()
        _ = try connection.callProcessingEvents(
            destination: Self.name, path: Self.path, interface: Self.interface, member: "Progress",
            arguments: [.string("x")])
        XCTAssertNil(received.get())
    }

    func testVersionPropertyIsServed() throws {
        let connection = try client()
        let get = try connection.call(
            destination: Self.name, path: Self.path, interface: "org.freedesktop.DBus.Properties", member: "Get",
            arguments: [.string(Self.interface), .string("Version")])
        XCTAssertEqual(get, [.variant(.uint32(3))])
        let all = try connection.call(
            destination: Self.name, path: Self.path, interface: "org.freedesktop.DBus.Properties", member: "GetAll",
            arguments: [.string(Self.interface)])
        XCTAssertEqual(all.first?.vardictValue, ["Version": .uint32(3)])
        let set = busError {
            _ = try connection.call(
                destination: Self.name, path: Self.path, interface: "org.freedesktop.DBus.Properties", member: "Set",
                arguments: [.string(Self.interface), .string("Version"), .variant(.uint32(9))])
        }
        XCTAssertEqual(set?.name, BusError.Names.propertyReadOnly)
    }

    func testIntrospectReturnsTheGivenXML() throws {
        let reply = try client().call(
            destination: Self.name, path: Self.path, interface: "org.freedesktop.DBus.Introspectable",
            member: "Introspect")
        XCTAssertEqual(reply, [.string(Self.introspection)])
    }

    func testRequestingAnOwnedNameIsAddressInUse() throws {
        let error = busError { try client().requestName(Self.name) }
        XCTAssertEqual(error?.name, BusError.Names.addressInUse)
    }

    func testReleasedNameCanBeTakenByAnotherConnection() throws {
        let first = try client()
        try first.requestName("dev.ferry.Released")
        try first.requestName("dev.ferry.Released")
        try first.releaseName("dev.ferry.Released")
        try client().requestName("dev.ferry.Released")
    }

    func testIdleLoopReturnsOnlyAfterDeferredCallIsAnswered() throws {
        let bus = try XCTUnwrap(bus)
        let connection = try BusConnection(address: bus.address)
        try connection.requestName("dev.ferry.IdleTest")
        try Self.export(on: connection, held: HeldCalls())
        let started = Date()
        let idle = RunningService(connection, idleTimeout: .milliseconds(300))
        defer { idle.stop() }
        let reply = try client().call(
            destination: "dev.ferry.IdleTest", path: Self.path, interface: Self.interface, member: "Slow")
        XCTAssertEqual(reply, [.string("slow done")])
        let exit = idle.waitForExit(seconds: 3)
        XCTAssertEqual(try exit?.get(), .idle)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.8, "0.5 s of work plus 0.3 s idle")
    }

    // MARK: - Independent clients

    func testBusctlCallsTheService() throws {
        let address = try XCTUnwrap(bus).address
        let echo = try Command.check([
            "busctl", "--address=\(address)", "call", Self.name, Self.path, Self.interface, "Echo",
            "sa{sv}", "hello", "1", "interactive", "b", "true",
        ])
        XCTAssertEqual(
            echo.out.trimmingCharacters(in: .whitespacesAndNewlines), "sa{sv} \"hello\" 1 \"interactive\" b true")
        let version = try Command.check([
            "busctl", "--address=\(address)", "get-property", Self.name, Self.path, Self.interface, "Version",
        ])
        XCTAssertEqual(version.out.trimmingCharacters(in: .whitespacesAndNewlines), "u 3")
        let failure = try Command.run([
            "busctl", "--address=\(address)", "call", Self.name, Self.path, Self.interface, "ReadFD", "u", "5",
        ])
        XCTAssertNotEqual(failure.status, 0)
        XCTAssertTrue(failure.err.contains("expects arguments (h), got (u)"), failure.err)
    }

    func testPythonDbusClientCallsTheService() throws {
        let directory = try TemporaryDirectory()
        try directory.write("staged", "from python")
        let script = """
            import dbus, os
            bus = dbus.bus.BusConnection("\(try XCTUnwrap(bus).address)")
            def call(member, signature, args):
                return bus.call_blocking("\(Self.name)", "\(Self.path)", "\(Self.interface)", member, signature, args)
            fd = os.open("\(directory.file("staged"))", os.O_RDONLY)
            print(call("ReadFD", "h", [dbus.types.UnixFd(fd)]))
            echoed = call("Echo", "(sa{sv})", [("system-bus-name", {"name": dbus.String(":1.7", variant_level=1)})])
            print(echoed[0], dict(echoed[1]))
            try:
                call("Fail", "", [])
            except dbus.exceptions.DBusException as e:
                print(e.get_dbus_name())
            """
        let result = try Command.check(["/usr/bin/python3", "-c", script])
        let lines = result.out.split(separator: "\n").map(String.init)
        XCTAssertEqual(
            lines,
            [
                "from python",
                "system-bus-name {dbus.String('name'): dbus.String(':1.7', variant_level=1)}",
                "dev.ferry.Error.InvalidArgument",
            ])
    }
}

/// Calls the test service keeps unanswered until the test ends.
final class HeldCalls: @unchecked Sendable {
    private let lock = NSLock()
    private var calls: [BusMethodCall] = []

    func hold(_ call: BusMethodCall) {
        lock.lock()
        calls.append(call)
        lock.unlock()
    }

    /// Signalled by the service when a Gate call arrived; the test signals `gate` to let it answer.
    let entered = DispatchSemaphore(value: 0)
    let gate = DispatchSemaphore(value: 0)

    func releaseAll() {
        gate.signal()
        lock.lock()
        calls = []
        lock.unlock()
    }
}

/// A value shared between test threads.
final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value?

    func set(_ newValue: Value) { update { $0 = newValue } }

    func update(_ body: (inout Value?) -> Void) {
        lock.lock()
        body(&value)
        lock.unlock()
    }

    func get() -> Value? {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}
