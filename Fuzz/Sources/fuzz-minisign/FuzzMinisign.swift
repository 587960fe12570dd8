import Foundation
import FerryTrust
import FuzzSupport

/// The key seed corpora are signed with (Fuzz/corpus/fuzz-minisign/key.pub); a signature that parses is
/// verified against it, so the verification path sees fuzzed key ids, signatures and trusted comments.
let fixedKey: MinisignPublicKey? = try? MinisignPublicKey(parsing: """
    untrusted comment: minisign public key 9F3F66CFDFDB47DB
    RWTbR9vfz2Y/n7dbDAte9ffJNC4QRYkuBpHn6SxZDJNe1wxBxD989c6R

    """)
let signedMessage = Data("hello\n".utf8)

/// Minisign public keys, signatures (plus verification) and unencrypted secret keys.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    guard let fixedKey else { fatalError("fixed minisign key does not parse") }
    if let signature = try? MinisignSignature(parsing: input) {
        _ = try? signature.verify(signedMessage, keys: [fixedKey])
        _ = try? signature.verify(input, keys: [fixedKey])
    }
    let text = String(decoding: input, as: UTF8.self)
    _ = try? MinisignPublicKey(parsing: text)
    // Only unencrypted keys: an encrypted one costs a full scrypt run per input.
    _ = try? MinisignSecretKey(parsing: text, password: nil)
    return 0
}

/// The entry point SwiftPM's link step names `main` (see Package.swift).
@_cdecl("fuzz_minisign_main")
public func fuzzMain_minisign(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
