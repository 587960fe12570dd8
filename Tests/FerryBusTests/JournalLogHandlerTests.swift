import FerryBus
import Logging
import XCTest

final class JournalLogHandlerTests: XCTestCase {
    func testFieldsCarryMessagePriorityIdentifierAndLocation() {
        let fields = JournalLogHandler.fields(
            level: .warning, message: "signature by unknown key", identifier: "ferry-helper",
            file: "FerryInstall/Installer.swift", function: "deploy(_:)", line: 42)
        XCTAssertEqual(
            fields,
            [
                "MESSAGE=signature by unknown key", "PRIORITY=4", "SYSLOG_IDENTIFIER=ferry-helper",
                "CODE_FILE=FerryInstall/Installer.swift", "CODE_LINE=42", "CODE_FUNC=deploy(_:)",
            ])
    }

    func testFerryMetadataBecomesFerryFields() {
        let fields = JournalLogHandler.fields(
            level: .info, message: "installed", identifier: "ferry-helper",
            metadata: ["ferry.remote": "main", "ref": "org.example.App/x86_64/stable", "digest": "sha256:ab"])
        XCTAssertEqual(
            Array(fields.dropFirst(3)),
            [
                "FERRY_DIGEST=sha256:ab", "FERRY_REMOTE=main", "FERRY_REF=org.example.App/x86_64/stable",
            ])
    }

    func testMetadataCannotOverrideMessageOrPriority() {
        let fields = JournalLogHandler.fields(
            level: .debug, message: "real", identifier: "ferry",
            metadata: ["MESSAGE": "forged", "priority": "0", "_PID": "1"])
        XCTAssertEqual(fields.filter { $0.hasPrefix("MESSAGE=") }, ["MESSAGE=real"])
        XCTAssertEqual(fields.filter { $0.hasPrefix("PRIORITY=") }, ["PRIORITY=7"])
        XCTAssertTrue(fields.contains("FERRY_MESSAGE=forged"))
        XCTAssertTrue(fields.contains("FERRY_PRIORITY=0"))
        XCTAssertTrue(fields.contains("FERRY__PID=1"))
    }

    func testInvalidCharactersInKeysAreReplacedAndLongKeysTruncated() {
        XCTAssertEqual(JournalLogHandler.fieldName(forMetadataKey: "ferry.ref"), "FERRY_REF")
        XCTAssertEqual(JournalLogHandler.fieldName(forMetadataKey: "my-key.ä=x"), "FERRY_MY_KEY___X")
        XCTAssertEqual(JournalLogHandler.fieldName(forMetadataKey: ""), "FERRY_")
        let long = JournalLogHandler.fieldName(forMetadataKey: String(repeating: "k", count: 100))
        XCTAssertEqual(long.count, 64)
        XCTAssertTrue(long.hasPrefix("FERRY_KKK"))
    }

    func testValuesKeepNewlinesAndEqualsSigns() {
        let fields = JournalLogHandler.fields(
            level: .error, message: "line one\nline two", identifier: "ferry", metadata: ["ref": "a=b\nc"])
        XCTAssertEqual(fields[0], "MESSAGE=line one\nline two")
        XCTAssertEqual(fields.last, "FERRY_REF=a=b\nc")
    }

    func testPrioritiesFollowSyslog() {
        let levels: [Logger.Level] = [.trace, .debug, .info, .notice, .warning, .error, .critical]
        XCTAssertEqual(levels.map { JournalLogHandler.priority(of: $0) }, [7, 7, 6, 5, 4, 3, 2])
    }

    func testLoggingThroughTheHandlerDoesNotFailWithoutJournald() {
        var handler = JournalLogHandler(identifier: "ferry-test")
        handler[metadataKey: "ferry.ref"] = "org.example.App"
        let logger = Logger(label: "test") { _ in handler }
        logger.info("hello from FerryBusTests", metadata: ["digest": "sha256:00"])
        XCTAssertEqual(handler[metadataKey: "ferry.ref"], "org.example.App")
    }

    func testTerminalLineShowsLevelMessageAndSortedMetadata() {
        XCTAssertEqual(
            TerminalLogHandler.line(
                level: .warning, message: "signature by unknown key", identifier: "ferry",
                metadata: ["remote": "main", "ref": "org.example.App"]),
            "ferry: warning: signature by unknown key ref=org.example.App remote=main")
        XCTAssertEqual(
            TerminalLogHandler.line(level: .info, message: "installed", identifier: "ferry", metadata: ["p": "a b"]),
            "ferry: installed p=\"a b\"")
    }

    func testTerminalLineNeutralisesEscapeSequencesFromRemoteText() {
        let line = TerminalLogHandler.line(
            level: .error, message: "bad ref \u{1B}[2Jx\ny", identifier: "ferry", metadata: ["ref": "\u{1B}]0;t\u{07}"])
        XCTAssertEqual(line, "ferry: error: bad ref ?[2Jx?y ref=?]0;t?")
    }

    func testJournalIsChosenUnderSystemd() {
        XCTAssertTrue(FerryLogging.prefersJournal(environment: ["JOURNAL_STREAM": "8:1234"]))
        XCTAssertTrue(FerryLogging.prefersJournal(environment: ["INVOCATION_ID": "0123abcd"]))
        XCTAssertFalse(FerryLogging.prefersJournal(environment: ["JOURNAL_STREAM": ""]))
        XCTAssertFalse(FerryLogging.prefersJournal(environment: [:]))
        XCTAssertTrue(
            FerryLogging.makeHandler(identifier: "f", environment: ["INVOCATION_ID": "1"]) is JournalLogHandler)
        XCTAssertTrue(FerryLogging.makeHandler(identifier: "f", environment: [:]) is TerminalLogHandler)
    }
}
