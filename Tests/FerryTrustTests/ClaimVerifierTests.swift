import FerryCore
import FerryTestSupport
import FerryTrust
import Foundation
import XCTest

/// The claim policy: signatures made by stock `minisign` and `gpg`, checked for key, digest, identity, timestamp.
final class ClaimVerifierTests: XCTestCase {
    nonisolated(unsafe) private static var minisignKeys: MinisignKeyFiles?
    nonisolated(unsafe) private static var gpgHome: GPGHome?

    override class func tearDown() {
        minisignKeys = nil
        gpgHome = nil
        super.tearDown()
    }

    private func minisign() throws -> MinisignKeyFiles {
        if let keys = ClaimVerifierTests.minisignKeys { return keys }
        let keys = try MinisignKeyFiles()
        ClaimVerifierTests.minisignKeys = keys
        return keys
    }

    private func gpg() throws -> GPGHome {
        if let home = ClaimVerifierTests.gpgHome { return home }
        let home = try GPGHome(name: "Ferry Publisher", email: "publisher@example.org")
        ClaimVerifierTests.gpgHome = home
        return home
    }

    private let identity = "org.example.App/x86_64/stable"
    private let digest = Digest.of(Data("manifest".utf8))

    private func keys(ed25519: Bool = true, gpg useGPG: Bool = false) throws -> TrustedKeys {
        TrustedKeys(
            ed25519: ed25519 ? [try minisign().publicKey()] : [],
            gpg: useGPG ? [try gpg().publicKey(armored: true)] : []
        )
    }

    private func minisigned(_ claim: Data, by keys: MinisignKeyFiles? = nil) throws -> SignatureSet.Ed25519Pair {
        let signer = try keys ?? minisign()
        return SignatureSet.Ed25519Pair(claim: claim, minisig: Data(try signer.sign(claim).utf8))
    }

    private func verify(_ set: SignatureSet, keys: TrustedKeys) throws -> VerifiedClaim {
        try ClaimVerifier.verify(set, digest: digest, identity: identity, keys: keys)
    }

    // MARK: accepted

    func testMinisignSignedClaimVerifies() throws {
        let claim = claimData(digest: digest, identity: identity, timestamp: 1_764_000_123)
        let verified = try verify(SignatureSet(ed25519: [minisigned(claim)]), keys: keys())
        XCTAssertEqual(verified.timestamp, 1_764_000_123)
        XCTAssertEqual(verified.claim.digest, digest)
        XCTAssertEqual(verified.claim.identity, identity)
        XCTAssertEqual(verified.signers, ["ed25519:" + (try minisign().publicKey().keyID)])
    }

    func testGpgSignedClaimVerifies() throws {
        let home = try gpg()
        let claim = claimData(digest: digest, identity: identity)
        let verified = try verify(SignatureSet(gpg: [home.sign(claim)]), keys: keys(ed25519: false, gpg: true))
        XCTAssertEqual(verified.signers, ["gpg:" + home.fingerprint])
    }

    /// Policy: any one acceptable signature by a trusted key suffices; the first acceptable one supplies the claim.
    func testOneValidSignatureAmongBadOnesSuffices() throws {
        let claim = claimData(digest: digest, identity: identity, timestamp: 1_764_000_000)
        let stranger = try MinisignKeyFiles()
        let set = SignatureSet(
            gpg: [Data("garbage".utf8)],
            ed25519: [try minisigned(claim, by: stranger), try minisigned(claim)]
        )
        let verified = try verify(set, keys: keys(ed25519: true, gpg: true))
        XCTAssertEqual(verified.signers, ["ed25519:" + (try minisign().publicKey().keyID)])
    }

    /// The newest accepted claim is the release's time, whatever the order of the files; every signer is listed.
    func testTheNewestValidClaimSuppliesTheTimeAndAllSignersAreListed() throws {
        let home = try gpg()
        let older = claimData(digest: digest, identity: identity, timestamp: 100)
        let newer = claimData(digest: digest, identity: identity, timestamp: 200)
        let set = SignatureSet(gpg: [try home.sign(newer)], ed25519: [try minisigned(older)])
        let verified = try verify(set, keys: keys(ed25519: true, gpg: true))
        XCTAssertEqual(verified.timestamp, 200)
        let reversed = SignatureSet(gpg: [try home.sign(older)], ed25519: [try minisigned(newer)])
        XCTAssertEqual(try verify(reversed, keys: keys(ed25519: true, gpg: true)).timestamp, 200)
        // Only what verifies counts: without the GPG key, the older ed25519 claim is the time.
        XCTAssertEqual(try verify(set, keys: keys(ed25519: true, gpg: false)).timestamp, 100)
        XCTAssertEqual(verified.signers, ["gpg:" + home.fingerprint, "ed25519:" + (try minisign().publicKey().keyID)])
    }

    /// A corrupted GPG key file in the remote's configuration does not hide a good ed25519 signature.
    func testBrokenGpgKeyDoesNotHideGoodEd25519Signature() throws {
        let home = try gpg()
        let claim = claimData(digest: digest, identity: identity)
        let keys = TrustedKeys(ed25519: [try minisign().publicKey()], gpg: [Data("not a key".utf8)])
        let set = SignatureSet(gpg: [try home.sign(claim)], ed25519: [try minisigned(claim)])
        XCTAssertEqual(try verify(set, keys: keys).signers, ["ed25519:" + (try minisign().publicKey().keyID)])
    }

    func testBrokenGpgKeyIsReportedWhenNothingVerifies() throws {
        let claim = claimData(digest: digest, identity: identity)
        let keys = TrustedKeys(gpg: [Data("not a key".utf8)])
        assertFerryError(.invalidArgument, "GPG key #1") {
            try verify(SignatureSet(gpg: [gpg().sign(claim)]), keys: keys)
        }
    }

    // MARK: refused

    func testNoTrustedKeysIsRefusedAsUntrusted() throws {
        let claim = claimData(digest: digest, identity: identity)
        assertFerryError(.untrusted, "no trusted keys") {
            try verify(SignatureSet(ed25519: [minisigned(claim)]), keys: TrustedKeys())
        }
    }

    func testUnsignedImageIsRefused() {
        assertFerryError(.signatureInvalid, "unsigned image") { try verify(SignatureSet(), keys: keys()) }
    }

    func testSignatureByUnknownMinisignKeyIsRefusedAsUntrusted() throws {
        let claim = claimData(digest: digest, identity: identity)
        let stranger = try MinisignKeyFiles()
        assertFerryError(.untrusted, "signed by unknown minisign key \(try stranger.publicKey().keyID)") {
            try verify(SignatureSet(ed25519: [minisigned(claim, by: stranger)]), keys: keys())
        }
    }

    func testSignatureByUnknownGpgKeyIsRefusedAsUntrusted() throws {
        let mallory = try GPGHome(name: "Mallory", email: "m@example.org")
        let claim = claimData(digest: digest, identity: identity)
        assertFerryError(.untrusted, "signed by unknown key \(mallory.fingerprint)") {
            try verify(SignatureSet(gpg: [mallory.sign(claim)]), keys: keys(ed25519: false, gpg: true))
        }
    }

    func testGpgSignatureWithOnlyEd25519KeysIsRefusedAsUntrusted() throws {
        let claim = claimData(digest: digest, identity: identity)
        assertFerryError(.untrusted, "no GPG keys are trusted") {
            try verify(SignatureSet(gpg: [gpg().sign(claim)]), keys: keys())
        }
    }

    func testMinisignSignatureWithOnlyGpgKeysIsRefusedAsUntrusted() throws {
        let claim = claimData(digest: digest, identity: identity)
        assertFerryError(.untrusted, "no ed25519 keys are trusted") {
            try verify(SignatureSet(ed25519: [minisigned(claim)]), keys: keys(ed25519: false, gpg: true))
        }
    }

    /// A claim swapped in after signing (a mirror serving another release's claim file beside this minisig).
    func testAlteredClaimIsRefused() throws {
        let pair = try minisigned(claimData(digest: digest, identity: identity, timestamp: 1))
        let swapped = SignatureSet.Ed25519Pair(
            claim: claimData(digest: digest, identity: identity, timestamp: 2),
            minisig: pair.minisig
        )
        assertFerryError(.signatureInvalid, "does not match the signed data") {
            try verify(SignatureSet(ed25519: [swapped]), keys: keys())
        }
    }

    /// A genuine signature of another release, replayed for this manifest.
    func testClaimForAnotherDigestIsRefused() throws {
        let other = Digest.of(Data("another manifest".utf8))
        let claim = claimData(digest: other, identity: identity)
        assertFerryError(.signatureInvalid, "signature is for digest \(other), not \(digest)") {
            try verify(SignatureSet(ed25519: [minisigned(claim)]), keys: keys())
        }
    }

    /// A genuine signature of another app (or tag) presented under this ref.
    func testClaimForAnotherIdentityIsRefused() throws {
        let claim = claimData(digest: digest, identity: "org.example.Other/x86_64/stable")
        assertFerryError(
            .signatureInvalid,
            "signed for \"org.example.Other/x86_64/stable\", not \"org.example.App/x86_64/stable\""
        ) {
            try verify(SignatureSet(ed25519: [minisigned(claim)]), keys: keys())
        }
    }

    func testGpgClaimForAnotherIdentityIsRefused() throws {
        let claim = claimData(digest: digest, identity: "org.example.App/x86_64/beta")
        assertFerryError(.signatureInvalid, "signed for \"org.example.App/x86_64/beta\"") {
            try verify(SignatureSet(gpg: [gpg().sign(claim)]), keys: keys(ed25519: false, gpg: true))
        }
    }

    /// Without a timestamp the downgrade check has nothing to compare.
    func testClaimWithoutTimestampIsRefused() throws {
        let claim = claimData(digest: digest, identity: identity, timestamp: nil)
        assertFerryError(.signatureInvalid, "claim has no timestamp") {
            try verify(SignatureSet(ed25519: [minisigned(claim)]), keys: keys())
        }
    }

    /// A critical key we do not understand may restrict the signature in a way we would ignore.
    func testClaimWithUnknownCriticalKeyIsRefused() throws {
        let claim = Data(
            """
            {"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"\(digest)"},\
            "identity":{"docker-reference":"\(identity)"},"expires":1},"optional":{"timestamp":1764000000}}
            """.utf8
        )
        assertFerryError(.signatureInvalid, "unknown critical key") {
            try verify(SignatureSet(ed25519: [minisigned(claim)]), keys: keys())
        }
    }

    /// Attack (parser differential): a signed claim names two identities. Foundation keeps the last one (this
    /// ref), containers/image refuses the document and other readers take the first (another app); one signature
    /// must not mean two things. The last identity is the expected one, so only the duplicate check refuses it.
    private func claimWithTwoIdentities() -> Data {
        Data(
            """
            {"critical":{"identity":{"docker-reference":"org.example.Other/x86_64/stable",\
            "docker-reference":"\(identity)"},"image":{"docker-manifest-digest":"\(digest)"},\
            "type":"atomic container signature"},"optional":{"timestamp":1764000000}}
            """.utf8
        )
    }

    func testMinisignSignedClaimWithDuplicateKeyIsRefused() throws {
        let set = SignatureSet(ed25519: [try minisigned(claimWithTwoIdentities())])
        assertFerryError(
            .signatureInvalid,
            "claim-1.json.minisig: claim has a duplicate key \"docker-reference\" in $.critical.identity"
        ) {
            try verify(set, keys: keys())
        }
    }

    func testGpgSignedClaimWithDuplicateKeyIsRefused() throws {
        let set = SignatureSet(gpg: [try gpg().sign(claimWithTwoIdentities())])
        assertFerryError(.signatureInvalid, "signature-1: claim has a duplicate key \"docker-reference\"") {
            try verify(set, keys: keys(ed25519: false, gpg: true))
        }
    }

    func testClaimOfWrongTypeIsRefused() throws {
        let claim = Data(
            String(decoding: claimData(digest: digest, identity: identity), as: UTF8.self)
                .replacingOccurrences(of: "atomic container signature", with: "cosign container image signature").utf8
        )
        assertFerryError(.signatureInvalid, "claim type") {
            try verify(SignatureSet(ed25519: [minisigned(claim)]), keys: keys())
        }
    }

    func testGarbageSignaturesAreRefused() throws {
        let claim = claimData(digest: digest, identity: identity)
        let set = SignatureSet(
            gpg: [Data("garbage".utf8)],
            ed25519: [SignatureSet.Ed25519Pair(claim: claim, minisig: Data("garbage".utf8))]
        )
        assertFerryError(.signatureInvalid, "") { try verify(set, keys: keys(ed25519: true, gpg: true)) }
    }

    /// With several failing signatures, the one that got furthest explains the refusal.
    func testMostSpecificFailureIsReported() throws {
        let stranger = try MinisignKeyFiles()
        let good = claimData(digest: digest, identity: identity)
        let wrongIdentity = claimData(digest: digest, identity: "org.example.Evil/x86_64/stable")
        let set = SignatureSet(ed25519: [
            SignatureSet.Ed25519Pair(claim: good, minisig: Data("garbage".utf8)),
            try minisigned(good, by: stranger),
            try minisigned(wrongIdentity),
            SignatureSet.Ed25519Pair(claim: good + Data(" ".utf8), minisig: try minisigned(good).minisig),
        ])
        assertFerryError(.signatureInvalid, "signed for \"org.example.Evil/x86_64/stable\"") {
            try verify(set, keys: keys())
        }
    }

    func testUntrustedBeatsMalformedWhenNothingElseVerifies() throws {
        let stranger = try MinisignKeyFiles()
        let good = claimData(digest: digest, identity: identity)
        let set = SignatureSet(ed25519: [
            SignatureSet.Ed25519Pair(claim: good, minisig: Data("garbage".utf8)),
            try minisigned(good, by: stranger),
        ])
        assertFerryError(.untrusted, "signed by unknown minisign key") { try verify(set, keys: keys()) }
    }
}
