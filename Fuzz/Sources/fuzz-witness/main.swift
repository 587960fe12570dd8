import FerryLog
import Foundation
import FuzzSupport

/// What a witness and the helper read from others: an add-checkpoint request body (c2sp.org/tlog-witness), a
/// tlog-proof and a consistency proof file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    _ = try? Witness.parse(input)
    if let proof = try? ReleaseProof(parsing: input) { _ = proof.serialized }
    _ = try? ReleaseProof.parseConsistency(input)
    return 0
}

/// The entry point SwiftPM's link step names `main` (see Package.swift).
@_cdecl("fuzz_witness_main")
public func fuzzMain_witness(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
