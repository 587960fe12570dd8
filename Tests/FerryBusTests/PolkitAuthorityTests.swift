import FerryBus
import FerryTestSupport
import Foundation
import Glibc
import XCTest

/// CheckAuthorization against a real polkitd on a private bus, with a temporary action file and rule.
///
/// Without logind polkit sees no session, so only `allow_any` defaults and rules decide. Root subjects are
/// always authorized by polkit, so subjects here are connections of a child process running as `nobody`.
final class PolkitAuthorityTests: XCTestCase {
    /// Unique per test process so parallel test runs cannot see each other's actions.
    static let prefix = "dev.ferry.testbus.p\(getpid())"
    static let policyPath = "/usr/share/polkit-1/actions/\(prefix).policy"
    static let rulePath = "/etc/polkit-1/rules.d/10-\(prefix).rules"

    private var bus: PrivateBus?
    private var polkitd: ChildProcess?
    private var nobody: ChildProcess?
    private var connection: BusConnection?
    private var nobodyName = ""

    override func setUpWithError() throws {
        try Self.installFiles()
        let bus = try PrivateBus()
        self.bus = bus
        polkitd = try ChildProcess(
            ["/usr/lib/polkit-1/polkitd", "--no-debug"], environment: ["DBUS_SYSTEM_BUS_ADDRESS": bus.address])
        let connection = try BusConnection(address: bus.address)
        self.connection = connection
        try waitForOwner("org.freedesktop.PolicyKit1", on: connection)
        let script = """
            import dbus, sys
            bus = dbus.bus.BusConnection("\(bus.address)")
            print(bus.get_unique_name(), flush=True)
            sys.stdin.read()
            """
        let nobody = try ChildProcess(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script])
        self.nobody = nobody
        nobodyName = nobody.firstLine()
        XCTAssertTrue(nobodyName.hasPrefix(":"), "nobody's connection printed \(nobodyName)")
    }

    override func tearDown() {
        nobody?.stop()
        polkitd?.stop()
        connection = nil
        bus?.stop()
        Self.removeFiles()
    }

    static func installFiles() throws {
        func action(_ id: String, _ any: String) -> String {
            """
              <action id="\(prefix).\(id)">
                <description>test</description><message>test</message>
                <defaults><allow_any>\(any)</allow_any><allow_inactive>\(any)</allow_inactive>
                <allow_active>\(any)</allow_active></defaults>
              </action>
            """
        }
        let policy = """
            <?xml version="1.0" encoding="UTF-8"?>
            <!DOCTYPE policyconfig PUBLIC "-//freedesktop//DTD PolicyKit Policy Configuration 1.0//EN"
             "http://www.freedesktop.org/standards/PolicyKit/1/policyconfig.dtd">
            <policyconfig>
            \(action("yes", "yes"))
            \(action("no", "no"))
            \(action("admin", "auth_admin"))
            \(action("ruled", "no"))
            </policyconfig>
            """
        let rule = """
            polkit.addRule(function(action, subject) {
                if (action.id == "\(prefix).ruled" && subject.user == "nobody"
                    && action.lookup("ref") == "org.example.App") {
                    return polkit.Result.YES;
                }
            });
            """
        try write(policy, to: policyPath)
        try write(rule, to: rulePath)
    }

    /// Writes mode 0644: polkitd silently ignores rules files it considers unsafe.
    private static func write(_ text: String, to path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o644)
    }

    static func removeFiles() {
        unlink(policyPath)
        unlink(rulePath)
    }

    private func waitForOwner(_ name: String, on connection: BusConnection) throws {
        for _ in 0..<500 {
            let reply = try connection.call(
                destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
                member: "NameHasOwner", arguments: [.string(name)])
            if reply.first?.boolValue == true { return }
            usleep(10_000)
        }
        XCTFail("\(name) never appeared on the bus")
    }

    private func check(
        _ action: String, busName: String? = nil, details: [String: String] = [:],
        interactive: Bool = false
    ) throws -> PolkitResult {
        let authority = PolkitAuthority(connection: try XCTUnwrap(connection))
        return try authority.checkAuthorization(
            action: "\(Self.prefix).\(action)", busName: busName ?? nobodyName, details: details,
            allowInteraction: interactive)
    }

    func testActionAllowedForAnyoneIsAuthorized() throws {
        let result = try check("yes")
        XCTAssertTrue(result.isAuthorized)
        XCTAssertFalse(result.isChallenge)
    }

    func testActionDeniedForAnyoneIsNotAuthorized() throws {
        let result = try check("no")
        XCTAssertFalse(result.isAuthorized)
        XCTAssertFalse(result.isChallenge)
    }

    func testAdminActionWithoutInteractionIsAChallenge() throws {
        let result = try check("admin")
        XCTAssertFalse(result.isAuthorized)
        XCTAssertTrue(result.isChallenge)
    }

    func testRuleGrantsActionToUnixUserForTheDetailsItNames() throws {
        XCTAssertTrue(try check("ruled", details: ["ref": "org.example.App", "remote": "main"]).isAuthorized)
        XCTAssertFalse(try check("ruled", details: ["ref": "org.example.Other"]).isAuthorized)
    }

    func testRootSubjectIsAlwaysAuthorized() throws {
        let root = try XCTUnwrap(connection).uniqueName
        XCTAssertTrue(try check("no", busName: root).isAuthorized)
    }

    func testUnknownBusNameIsAnError() throws {
        XCTAssertThrowsError(try check("yes", busName: ":1.9999")) { error in
            XCTAssertTrue((error as? BusError)?.name.hasPrefix("org.freedesktop.") ?? false, "\(error)")
        }
    }
}
