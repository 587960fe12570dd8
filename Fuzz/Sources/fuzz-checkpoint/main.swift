import FerryLog
import Foundation
import FuzzSupport

let logKey = try! NoteVerifierKey("example.com/apps/log+115f4e9f+ASByi7OuqL0Nk44EfDLhiDCHLJD5cH5yArBB2eTxLYQ+")
let witness = try! NoteVerifierKey("w1.example/witness+992a6365+BGrQrloKO91a56qcov84SCeIYPhg6sNut9CDDLxZW9qj")
/// Checkpoints (c2sp.org/tlog-checkpoint): the body parser, and opening a signed checkpoint with a fixed log key and
/// a witness key.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    _ = try? Checkpoint(text: String(decoding: input, as: UTF8.self))
    _ = try? Checkpoint.open(input, logKey: logKey, witnesses: [witness])
    _ = try? LogPolicy(logKey: logKey, witnesses: [witness], quorum: 1, maxAge: 60).open(input, now: 1_700_000_000)
    return 0
}

/// The entry point SwiftPM's link step names `main` (see Package.swift).
@_cdecl("fuzz_checkpoint_main")
public func fuzzMain_checkpoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
