import FerryCore
import FerryInstall
import FerryTestSupport
import Foundation
import XCTest

/// A publisher of one remote going after an app installed from another through ref names that extend its own ref:
/// nested paths under `installed/` and `deploy/` used to walk into its own deployment and follow the image's
/// symlinks. Every ref is now one escaped component and the tree is walked through descriptors only.
final class StateTreeAttackTests: VictimTestCase {

    /// The victim still runs its own image from its own remote, and its state entry is untouched.
    func assertVictimIntact(_ link: String, _ entry: InstallState.Installation?, file: StaticString = #filePath,
                            line: UInt = #line) throws {
        XCTAssertEqual(try fx.installedHello(Self.victim), "#!/bin/sh\necho victim\n", file: file, line: line)
        XCTAssertEqual(try fx.linkTarget(Self.victim), link, file: file, line: line)
        XCTAssertEqual(try fx.installation(Self.victim), entry, file: file, line: line)
        XCTAssertEqual(try fx.installation(Self.victim)?.remote.string, "a", file: file, line: line)
        XCTAssertEqual(try String(contentsOfFile: fx.outside + "/keep", encoding: .utf8), "precious\n",
                       file: file, line: line)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: fx.outside), ["keep"], file: file, line: line)
    }

    func testNestedRefsWithAbsoluteSymlinksReachNeitherTheVictimNorOutside() throws {
        let link = try fx.linkTarget(Self.victim)
        let entry = try fx.installation(Self.victim)
        // P's image: `x` aims at the victim's installed/ directory, `y` at a directory outside the tree.
        try fx.publish("b", "com.b.P", EngineFixture.app("p", extra: [
            ImageCrafter.symlink("x", to: fx.root + "/installed/org.victim.App/x86_64"),
            ImageCrafter.symlink("y", to: fx.outside),
            ImageCrafter.symlink("z", to: fx.root + "/installed"),
        ]), timestamp: 1_700_000_000)
        try fx.deploy("b", "com.b.P")
        for nested in ["com.b.P/files/x/stable", "com.b.P/files/y/evil", "com.b.P/files/z/org.victim.App"] {
            try fx.publish("b", nested, EngineFixture.app("evil"), timestamp: 1_700_000_000)
            try fx.deploy("b", nested)
            // Each nested ref is its own single entry, beside the others.
            XCTAssertEqual(try fx.installedHello(nested), "#!/bin/sh\necho evil\n")
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(fx.root)/deploy/\(stateName(nested))"))
        }
        try assertVictimIntact(link, entry)
        try fx.installer.recover(collectingGarbage: true)
        try assertVictimIntact(link, entry)
        for nested in ["com.b.P/files/x/stable", "com.b.P/files/y/evil", "com.b.P/files/z/org.victim.App"] {
            try fx.installer.uninstall(try Ref(nested))
        }
        try fx.installer.uninstall(try Ref("com.b.P"))
        try assertVictimIntact(link, entry)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: fx.root + "/installed"),
                       [stateName(Self.victim)])
    }

    /// Two ordinary updates, each harmless alone: P retargets a directory to a symlink at the victim, then the
    /// nested ref updates. Both are passwordless for the timer.
    func testTwoUpdatesOfHarmlessRefsDoNotReachTheVictim() throws {
        let link = try fx.linkTarget(Self.victim)
        let entry = try fx.installation(Self.victim)
        try fx.publish("b", "com.b.P", EngineFixture.app("p", extra: [ImageCrafter.dir("x")]), timestamp: 1_700_000_000)
        try fx.deploy("b", "com.b.P")
        try fx.publish("b", "com.b.P/files/x/stable", EngineFixture.app("n1"), timestamp: 1_700_000_000)
        try fx.deploy("b", "com.b.P/files/x/stable")
        try fx.publish("b", "com.b.P", EngineFixture.app("p", extra: [
            ImageCrafter.symlink("x", to: fx.root + "/installed/org.victim.App/x86_64"),
        ]), timestamp: 1_700_000_100)
        XCTAssertEqual(try fx.deploy("b", "com.b.P").decision, .update)
        try fx.publish("b", "com.b.P/files/x/stable", EngineFixture.app("n2"), timestamp: 1_700_000_100)
        XCTAssertEqual(try fx.deploy("b", "com.b.P/files/x/stable").decision, .update)
        XCTAssertEqual(try fx.installedHello("com.b.P/files/x/stable"), "#!/bin/sh\necho n2\n")
        try assertVictimIntact(link, entry)
        try fx.installer.recover(collectingGarbage: true)
        try assertVictimIntact(link, entry)
    }

    /// A ref whose deployment path would have landed inside P's image content (`deploy/com.b.P/<hexP>/files/sub`)
    /// found a planted `deployment.json` there and skipped extraction. Now a deployment counts as complete only
    /// when it is the ref's own, and the image installed is the signed one.
    func testPlantedDeploymentInsideAnotherImageIsNotTakenAsComplete() throws {
        let real = try fx.publish("b", "com.b.X", EngineFixture.app("signed"), timestamp: 1_700_000_000)
        let record = #"{"digest":"\#(real)","ref":"PLACEHOLDER","remote":"b","timestamp":1700000000}"#
        let p = try fx.publish("b", "com.b.P", EngineFixture.app("p", extra: [
            ImageCrafter.dir("sub"), ImageCrafter.dir("sub/\(real.hex)"), ImageCrafter.dir("sub/\(real.hex)/files"),
            ImageCrafter.dir("sub/\(real.hex)/files/bin"),
            ImageCrafter.file("sub/\(real.hex)/files/bin/hello", "#!/bin/sh\necho planted\n", mode: 0o755),
            ImageCrafter.file("sub/\(real.hex)/deployment.json", record),
        ]), timestamp: 1_700_000_000)
        try fx.deploy("b", "com.b.P")
        let crafted = "com.b.P/\(p.hex)/files/sub"
        // The same signed image X, published under the crafted ref.
        try fx.publish("b", crafted, EngineFixture.app("signed"), timestamp: 1_700_000_000)
        try fx.deploy("b", crafted)
        XCTAssertEqual(try fx.installedHello(crafted), "#!/bin/sh\necho signed\n")
        XCTAssertEqual(try fx.linkTarget(crafted), "\(fx.root)/deploy/\(stateName(crafted))/\(real.hex)")
    }

    /// A link that names another ref's deployment (planted by a crash, a bug or an earlier attack) is never the
    /// source of state: recovery re-points the ref at its own recorded deployment.
    func testRecoveryNeverTakesStateFromAnotherRefsDeployment() throws {
        let entry = try fx.installation(Self.victim)
        let link = try fx.linkTarget(Self.victim)
        try fx.publish("b", "com.b.P", EngineFixture.app("p"), timestamp: 1_750_000_000)
        try fx.deploy("b", "com.b.P")
        let foreign = try fx.linkTarget("com.b.P")
        // The victim's link aimed at B's deployment, and a link for a ref state does not know aimed there too.
        try FileManager.default.removeItem(atPath: "\(fx.root)/installed/\(stateName(Self.victim))")
        try FileManager.default.createSymbolicLink(atPath: "\(fx.root)/installed/\(stateName(Self.victim))",
                                                   withDestinationPath: foreign)
        try FileManager.default.createSymbolicLink(atPath: "\(fx.root)/installed/org.victim.App~x86_64~beta",
                                                   withDestinationPath: foreign)
        try fx.installer.recover()
        XCTAssertEqual(try fx.linkTarget(Self.victim), link)
        XCTAssertEqual(try fx.installation(Self.victim), entry)
        XCTAssertNil(try fx.installation("org.victim.App/x86_64/beta"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(fx.root)/installed/org.victim.App~x86_64~beta"))
        XCTAssertEqual(try fx.installer.state().records.keys.sorted(),
                       ["a org.victim.App/x86_64/stable", "b com.b.P"])
    }

    /// A deployment of the same ref from another remote (same digest, other record) is re-extracted, not reused.
    func testLinkToADeploymentRecordedForAnotherRemoteIsNotBelieved() throws {
        let entry = try fx.installation(Self.victim)
        let deployment = "\(fx.root)/\(entry!.deployment)/deployment.json"
        let record = try String(contentsOfFile: deployment, encoding: .utf8)
        try Data(record.replacingOccurrences(of: #""remote":"a""#, with: #""remote":"b""#).utf8)
            .write(to: URL(fileURLWithPath: deployment))
        try fx.installer.recover()
        // The link named a deployment whose record says remote b: not the victim's any more, so not installed.
        XCTAssertNil(try fx.installation(Self.victim))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(fx.root)/installed/\(stateName(Self.victim))"))
        XCTAssertEqual(try fx.installer.state().records["a \(Self.victim)"]?.digest, entry?.digest)
    }

    func testRefNamesInTheStateTreeAreSingleComponents() throws {
        let ref = "com.b.P/files/x/stable"
        try fx.publish("b", ref, EngineFixture.app("n"), timestamp: 1_700_000_000)
        let outcome = try fx.deploy("b", ref)
        XCTAssertEqual(outcome.deployment, "\(fx.root)/deploy/com.b.P~files~x~stable/\(outcome.digest.hex)")
        XCTAssertEqual(try fx.installation(ref)?.deployment, "deploy/com.b.P~files~x~stable/\(outcome.digest.hex)")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: fx.root + "/locks/refs").sorted(),
                       ["com.b.P~files~x~stable", stateName(Self.victim)])
    }
}
