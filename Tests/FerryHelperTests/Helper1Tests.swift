import FerryBus
import FerryCore
import FerryTestSupport
import FerryTrust
import Foundation
import XCTest

@testable import FerryHelper

/// The wire contract on its own: what each end encodes, the other decodes, and what it refuses.
final class Helper1Tests: XCTestCase {
    func testDeployOptionsRoundTrip() throws {
        for options in [
            Helper1.DeployOptions(),
            Helper1.DeployOptions(allowDowngrade: true, switchRemote: true, interactive: true),
            Helper1.DeployOptions(switchRemote: true),
            Helper1.DeployOptions(allowStale: true),
        ] {
            XCTAssertEqual(try Helper1.DeployOptions(decoding: options.encoded), options)
            XCTAssertEqual(options.encoded.signature, "a{sv}")
        }
    }

    func testUnknownOptionWrongTypeAndDuplicateAreRefused() {
        let unknown = BusValue.vardict(["allow-downgrade": .bool(true), "force": .bool(true)])
        XCTAssertThrowsError(try Helper1.DeployOptions(decoding: unknown)) {
            XCTAssertEqual($0 as? FerryError, FerryError(.invalidArgument, "unknown option \"force\""))
        }
        let wrongType = BusValue.vardict(["interactive": .string("yes")])
        XCTAssertThrowsError(try Helper1.CallOptions(decoding: wrongType, for: .uninstall)) {
            XCTAssertEqual($0 as? FerryError, FerryError(.invalidArgument, "option \"interactive\" must have type b"))
        }
        let twice = BusValue.dictionary(keySignature: "s", valueSignature: "v", [
            (.string("interactive"), .variant(.bool(true))), (.string("interactive"), .variant(.bool(false))),
        ])
        XCTAssertThrowsError(try Helper1.CallOptions(decoding: twice, for: .rollback)) {
            XCTAssertEqual($0 as? FerryError, FerryError(.invalidArgument, "option \"interactive\" given twice"))
        }
        XCTAssertThrowsError(try Helper1.CallOptions(decoding: .stringArray([]), for: .rollback)) {
            XCTAssertEqual($0 as? FerryError, FerryError(.invalidArgument, "options must be a{sv}"))
        }
        // Deploy's own options are not Uninstall's.
        let deployOnly = BusValue.vardict(["allow-downgrade": .bool(true)])
        XCTAssertThrowsError(try Helper1.CallOptions(decoding: deployOnly, for: .uninstall))
    }

    func testRemoteSettingsRoundTripAndRemoval() throws {
        let name = try RemoteName("demo")
        // A minisign public key line: "Ed", an 8-byte key ID, 32 bytes of key.
        let key = (Data("Ed".utf8) + Data(repeating: 7, count: 8) + Data(repeating: 9, count: 32)).base64EncodedString()
        let remote = Remote(name: name, url: "https://example.org/apps", isRegistry: false,
                            mirrors: ["https://mirror.example.org/apps"], signatureLookaside: nil,
                            ed25519Keys: [key], gpgKeys: [], tufRoot: Data("{}".utf8),
                            signedIdentity: "registry.example.org:5000/ns")
        let settings = Helper1.RemoteSettings(remote: remote, interactive: true)
        let decoded = try Helper1.RemoteSettings(decoding: settings.encoded, name: name)
        XCTAssertEqual(decoded.remote?.url, remote.url)
        XCTAssertEqual(decoded.remote?.mirrors, remote.mirrors)
        XCTAssertEqual(decoded.remote?.ed25519Keys, [key])
        XCTAssertEqual(decoded.remote?.tufRoot, remote.tufRoot)
        XCTAssertEqual(decoded.remote?.signedIdentity, remote.signedIdentity)
        XCTAssertEqual(decoded.remote, remote)
        XCTAssertTrue(decoded.interactive)
        XCTAssertFalse(decoded.resetRollbackState)

        let removal = try Helper1.RemoteSettings(decoding: Helper1.RemoteSettings(remote: nil).encoded, name: name)
        XCTAssertNil(removal.remote)
        XCTAssertFalse(removal.resetRollbackState)
        let reset = Helper1.RemoteSettings(remote: nil, resetRollbackState: true)
        XCTAssertTrue(try Helper1.RemoteSettings(decoding: reset.encoded, name: name).resetRollbackState)
    }

    func testRemoteSettingsWithoutKeysOrURLAreRefusedBeforePolkit() throws {
        let name = try RemoteName("demo")
        XCTAssertThrowsError(try Helper1.RemoteSettings(decoding: .vardict(["registry": .bool(true)]), name: name)) {
            XCTAssertEqual($0 as? FerryError, FerryError(.invalidArgument, "remote demo: settings need a url"))
        }
        let keyless = BusValue.vardict(["url": .string("https://example.org/apps")])
        XCTAssertThrowsError(try Helper1.RemoteSettings(decoding: keyless, name: name)) {
            XCTAssertEqual($0 as? FerryError,
                           FerryError(.invalidArgument, "remote demo: a system remote needs at least one key"))
        }
        let badKey = BusValue.vardict(["url": .string("https://example.org/apps"),
                                       "ed25519-keys": .stringArray(["not a key"])])
        XCTAssertThrowsError(try Helper1.RemoteSettings(decoding: badKey, name: name)) {
            XCTAssertEqual($0 as? FerryError, FerryError(.invalidArgument, "remote demo: an ed25519 key does not parse"))
        }
    }

    func testInstalledRowsRoundTripAndMalformedRepliesAreErrors() throws {
        let rows = [
            Helper1.Installed(ref: try Ref("org.example.App/x86_64/stable"), remote: try RemoteName("demo"),
                              digest: try Digest(parsing: "sha256:" + String(repeating: "ab", count: 32)),
                              deployment: "/var/lib/ferry/deploy/x/y", timestamp: 1_700_000_000),
        ]
        XCTAssertEqual(try Helper1.Installed.decode(Helper1.Installed.encode(rows)), rows)
        XCTAssertEqual(try Helper1.Installed.decode(Helper1.Installed.encode([])), [])
        XCTAssertThrowsError(try Helper1.Installed.decode([.string("x")]))
        let badRow = BusValue.array(elementSignature: "(sssst)", [
            .structure([.string("../etc"), .string("demo"), .string("sha256:00"), .string("/"), .uint64(0)]),
        ])
        XCTAssertThrowsError(try Helper1.Installed.decode([badRow])) {
            XCTAssertEqual($0 as? FerryError, FerryError(.failed, "ferry-helper: malformed ListInstalled row"))
        }
    }

    func testProgressArgumentsRoundTripAndForeignShapesAreIgnored() throws {
        let progress = Helper1.Progress(ref: try Ref("org.example.App"), phase: "copy", done: 1, total: 2)
        XCTAssertEqual(Helper1.Progress(arguments: progress.arguments), progress)
        XCTAssertEqual(BusValue.signature(of: progress.arguments), "sstt")
        XCTAssertNil(Helper1.Progress(arguments: [.string("org.example.App"), .string("copy"), .uint32(1), .uint64(2)]))
        XCTAssertNil(Helper1.Progress(arguments: [.string("../x"), .string("copy"), .uint64(1), .uint64(2)]))
    }

    /// Every code crosses the bus and comes back as itself, with its message.
    func testEveryErrorCodeRoundTrips() {
        for code in FerryError.Code.allCases {
            let error = FerryError(code, "message of \(code)")
            let wire = Helper1.busError(error)
            XCTAssertEqual(wire.name, "dev.ferry.Error." + code.rawValue)
            XCTAssertEqual(Helper1.ferryError(wire), error)
        }
    }

    func testForeignBusErrorsMapToFerryErrors() {
        XCTAssertEqual(Helper1.busError(BusError.invalidArgs("bad")).name, "dev.ferry.Error.InvalidArgument")
        XCTAssertEqual(Helper1.busError(CocoaError(.fileNoSuchFile)).name, "dev.ferry.Error.Failed")
        XCTAssertEqual(Helper1.ferryError(BusError(name: BusError.Names.accessDenied, message: "no")),
                       FerryError(.notAuthorized, "the system bus refused the call: no"))
        XCTAssertEqual(Helper1.ferryError(BusError(name: "dev.ferry.Error.Nonsense", message: "m")),
                       FerryError(.failed, "ferry-helper: m (dev.ferry.Error.Nonsense)"))
    }

    /// The embedded introspection document is the shipped file and declares every method with its signature.
    func testIntrospectionIsTheShippedFileAndDeclaresEveryMethod() throws {
        let shipped = try String(contentsOfFile: Testbed.repositoryRoot() + "/dbus/dev.ferry.Helper1.xml", encoding: .utf8)
        XCTAssertEqual(Helper1.introspectionXML, shipped)
        for method in Helper1.Method.allCases {
            guard let start = shipped.range(of: "<method name=\"\(method.rawValue)\">"),
                let end = shipped.range(of: "</method>", range: start.upperBound..<shipped.endIndex)
            else { return XCTFail("\(method.rawValue) is not in the XML") }
            let body = shipped[start.upperBound..<end.lowerBound]
            let inputs = body.components(separatedBy: "\n").filter { $0.contains("direction=\"in\"") }
            let types = inputs.compactMap { line -> String? in
                guard let t = line.range(of: "type=\"") else { return nil }
                return String(line[t.upperBound...].prefix { $0 != "\"" })
            }
            XCTAssertEqual(types.joined(), method.signature, method.rawValue)
            for option in method.options.keys where method != .configureRemote {
                XCTAssertTrue(body.contains(option) || shipped.contains(option), "\(option) undocumented")
            }
        }
        XCTAssertTrue(shipped.contains("<signal name=\"\(Helper1.Progress.member)\">"))
    }
}

/// The polkit action for each decision: the table the policy file and the timer's rule are written against.
final class PolkitPolicyTests: XCTestCase {
    func testDeployActions() {
        XCTAssertEqual(PolkitPolicy.deployAction(decision: .install, switchingRemote: false), "dev.ferry.install")
        XCTAssertEqual(PolkitPolicy.deployAction(decision: .update, switchingRemote: false), "dev.ferry.update")
        XCTAssertEqual(PolkitPolicy.deployAction(decision: .downgrade, switchingRemote: false), "dev.ferry.downgrade")
        XCTAssertNil(PolkitPolicy.deployAction(decision: .nothingToDo, switchingRemote: false))
    }

    /// Moving an app to another remote is never passwordless, whatever its timestamps say.
    func testSwitchingRemoteIsAlwaysADowngrade() {
        for decision in [TimestampPolicy.Decision.install, .update, .downgrade] {
            XCTAssertEqual(PolkitPolicy.deployAction(decision: decision, switchingRemote: true), "dev.ferry.downgrade")
        }
        XCTAssertNil(PolkitPolicy.deployAction(decision: .nothingToDo, switchingRemote: true))
    }

    /// So is a deploy that accepted an expired TUF view (`--allow-stale`): freshness stops freeze attacks.
    func testAcceptingAStaleViewIsAlwaysADowngrade() {
        for decision in [TimestampPolicy.Decision.install, .update, .downgrade] {
            XCTAssertEqual(PolkitPolicy.deployAction(decision: decision, switchingRemote: false, acceptingStale: true),
                           "dev.ferry.downgrade")
        }
        XCTAssertNil(PolkitPolicy.deployAction(decision: .nothingToDo, switchingRemote: false, acceptingStale: true))
    }

    /// Every action the helper asks for is declared in the shipped policy, and the timer's rule grants only update.
    func testEveryActionIsDeclaredInThePolicyFile() throws {
        let policy = try String(contentsOfFile: Testbed.repositoryRoot() + "/polkit/dev.ferry.policy", encoding: .utf8)
        for action in [PolkitPolicy.install, PolkitPolicy.update, PolkitPolicy.downgrade, PolkitPolicy.uninstall,
                       PolkitPolicy.configureRemote, PolkitPolicy.rollback] {
            XCTAssertTrue(policy.contains("<action id=\"\(action)\">"), action)
        }
        let rule = try String(contentsOfFile: Testbed.repositoryRoot() + "/polkit/50-ferry-update.rules",
                              encoding: .utf8)
        XCTAssertTrue(rule.contains(PolkitPolicy.update))
        XCTAssertFalse(rule.contains(PolkitPolicy.downgrade))
    }
}
