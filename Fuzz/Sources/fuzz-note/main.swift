import FerryLog
import Foundation
import FuzzSupport

/// A fixed verifier key: signatures in the input that name it are checked, the others ignored.
let key = try! NoteVerifierKey("example.com/apps/log+115f4e9f+ASByi7OuqL0Nk44EfDLhiDCHLJD5cH5yArBB2eTxLYQ+")
/// Signed notes and note keys (c2sp.org/signed-note): the note parser, verification by a fixed key (which must
/// not crash whatever the signature lines claim), and both key-string parsers.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    if let note = try? SignedNote(input) {
        _ = try? note.verify(by: [key])
        _ = note.serialized
    }
    let text = String(decoding: input, as: UTF8.self)
    _ = try? NoteVerifierKey(text)
    _ = try? NoteSignerKey(text)
    return 0
}

/// The entry point SwiftPM's link step names `main` (see Package.swift).
@_cdecl("fuzz_note_main")
public func fuzzMain_note(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
