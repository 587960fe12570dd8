import FerryCore
import Foundation
import XCTest

/// The subset of TOML remote files use, checked before TOMLKit parses anything: what Ferry writes and what a
/// `.ferryrepo` holds passes; the inputs that abort toml++ (found by `fuzz-ferryrepo`) and TOML outside the subset
/// are refused with the line.
final class TOMLSubsetTests: XCTestCase {
    func testWhatRemoteFilesHoldPasses() throws {
        let good = [
            "# Ferry remote x\nkey-threshold = 1\nlog-key = 'e.com/log+6916001d+ATHT'\nmax-age = 100\n"
                + "mirrors = [ 'https://m.com/x', 'file:///tmp' ]\nregistry = false\nurl = 'https://e.com/a'\n",
            "url = \"https://a.example/x\" # a comment\r\ned25519-keys = [\n  \"RWQ\\u00e9\", # first\n  'RWR',\n]\n",
            "gpg-keys = [\"\"\"\n-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDME\n-----END PGP PUBLIC KEY BLOCK-----\n\"\"\"]\n",
            "tuf-root = '''\nAAAA\nBBBB\n'''\nwitness-quorum = +2\nmax-age = -0\n", "", "\n\n# only\n",
        ]
        for text in good { XCTAssertNoThrow(try TOMLSubset.check(text, what: "f"), text) }
    }

    func testInputsThatAbortTomlPlusPlusAndTOMLOutsideTheSubsetAreRefused() throws {
        let bad: [(String, String)] = [
            ("[;", "f: line 1: not a bare key"),
            ("y21 =[}", "f: line 1: not a string, integer, boolean or array"),
            ("url = 'x'\n[table]\n", "f: line 2: not a bare key"),
            ("a.b = 1", "f: line 1: a key without ="),
            ("\"quoted\" = 1", "f: line 1: not a bare key"),
            ("x = 1.5", "f: line 1: unexpected text after a value"),
            ("x = 1979-05-27", "f: line 1: unexpected text after a value"),
            ("x = [[1]]", "f: line 1: an array inside an array"),
            ("x = [1 2]", "f: line 1: array values must be separated by commas"),
            ("x = { a = 1 }", "f: line 1: not a string, integer, boolean or array"),
            ("x = 'a\nb'", "f: line 1: a line break in a one-line string"),
            ("x = \"\\q\"", "f: line 1: an unknown escape in a string"),
            ("x = \"\\u12\"", "f: line 1: a bad \\u escape"),
            ("x = \"abc", "f: line 1: an unterminated string"),
            ("x = \"\u{1}\"", "f: line 1: a control character in a string"),
            ("x = 'a' y", "f: line 1: unexpected text after a value"),
            ("x =", "f: line 1: a key without a value"),
            ("x = \"\"\"a\"\"\"\"", "f: line 1: quotes after a closing \"\"\""),
            ("x = 1\ry = 2", "f: line 1: unexpected text after a value"),
            ("# a\rb", "f: line 1: a bare carriage return"),
        ]
        for (text, message) in bad {
            XCTAssertThrowsError(try TOMLSubset.check(text, what: "f"), text) { error in
                XCTAssertTrue((error as? FerryError)?.message.hasPrefix(message) ?? false, "\(text): \(error)")
            }
        }
    }
}
