import FerryCore
import Foundation

/// A claim that a trusted key signed, for the expected digest and identity, with a timestamp.
public struct VerifiedClaim: Sendable, Equatable {
    public var claim: Claim
    /// The claim's `optional.timestamp` (Unix seconds), present by construction.
    public var timestamp: Int64
    /// Every key whose signature verified with an acceptable claim: `gpg:<FINGERPRINT>` or `ed25519:<KEYID>`.
    public var signers: [String]

    public init(claim: Claim, timestamp: Int64, signers: [String]) {
        self.claim = claim
        self.timestamp = timestamp
        self.signers = signers
    }
}

/// Decides whether an image's signatures bind its manifest digest to the expected identity.
///
/// Policy: any one signature that verifies with a trusted key and carries an acceptable claim suffices, whatever
/// its kind (a remote that trusts both GPG and ed25519 keys accepts either). A claim is acceptable when it parses
/// strictly (unknown `critical` keys are refused), names exactly `digest`, exactly `identity`, and has a timestamp.
/// Signatures are tried in order, GPG (`signature-N`) first, then ed25519 (`claim-N.json.minisig`); the first
/// acceptable one supplies the returned claim and timestamp, the others only add to ``VerifiedClaim/signers``.
/// The caller derives `identity` from its own configuration and the ref, never from the staged data: that binding
/// stops an attacker from presenting a genuinely signed image of another app (or another tag) under this ref.
public enum ClaimVerifier {
    /// How far a signature got; when none verifies, the error of the one that got furthest is reported, since it
    /// says most precisely what is wrong (a claim for another digest beats an unknown key beats garbage).
    private enum Stage: Int, Comparable {
        case malformed, untrusted, badSignature, badClaim, noTimestamp, wrongDigest, wrongIdentity
        static func < (a: Stage, b: Stage) -> Bool { a.rawValue < b.rawValue }
    }

    /// Verifies `signatures` against `keys` and returns the first acceptable claim.
    /// - Throws: `.untrusted` "no trusted keys" when `keys` is empty; `.signatureInvalid` "unsigned image" when
    ///   there is no signature; otherwise the most specific failure among the signatures (`.untrusted` for an
    ///   unknown signer, `.signatureInvalid` for a bad signature or an unacceptable claim: "signed for X, not Y",
    ///   "signature is for digest …", "claim has no timestamp"), or `.invalidArgument` for an unusable trusted GPG
    ///   key file when no other signature verified.
    public static func verify(
        _ signatures: SignatureSet,
        digest: Digest,
        identity: String,
        keys: TrustedKeys
    ) throws -> VerifiedClaim {
        guard !keys.isEmpty else { throw FerryError.untrusted("no trusted keys") }
        guard !signatures.isEmpty else { throw FerryError.signatureInvalid("unsigned image") }

        var accepted: [(claim: Claim, timestamp: Int64, signer: String)] = []
        var worst: (stage: Stage, error: FerryError)?
        func note(_ stage: Stage, _ error: FerryError) {
            if let current = worst, current.stage >= stage { return }
            worst = (stage, error)
        }
        func consider(content: Data, signer: String, file: String) {
            do {
                let (claim, timestamp) = try check(content, digest: digest, identity: identity)
                accepted.append((claim, timestamp, signer))
            } catch let failure as ClaimFailure {
                note(failure.stage, failure.error.prefixed(file))
            } catch {
                note(.badClaim, FerryError.signatureInvalid("\(file): \(error)"))
            }
        }

        if !signatures.gpg.isEmpty {
            if keys.gpg.isEmpty {
                note(.untrusted, FerryError.untrusted("GPG signature present, but no GPG keys are trusted"))
            } else {
                GPG.withLock {
                    let keyring: GPGKeyring
                    do {
                        keyring = try GPGKeyring(keys: keys.gpg)
                    } catch let error as FerryError {
                        // A broken GPG key file must not hide a good ed25519 signature; if nothing else verifies,
                        // this configuration error is what the user needs to see.
                        note(.untrusted, error)
                        return
                    } catch {
                        note(.untrusted, FerryError.failed("\(error)"))
                        return
                    }
                    defer { keyring.close() }
                    for (index, message) in signatures.gpg.enumerated() {
                        let name = SignatureSet.gpgFileName(index + 1)
                        do {
                            let verification = try keyring.verify(message, maxContentSize: Claim.maxSize)
                            consider(
                                content: verification.content,
                                signer: "gpg:" + verification.fingerprint,
                                file: name
                            )
                        } catch let error as FerryError {
                            note(stage(of: error), error.prefixed(name))
                        } catch {
                            note(.malformed, FerryError.signatureInvalid("\(name): \(error)"))
                        }
                    }
                }
            }
        }
        for (index, pair) in signatures.ed25519.enumerated() {
            let name = SignatureSet.minisigFileName(index + 1)
            guard !keys.ed25519.isEmpty else {
                note(.untrusted, FerryError.untrusted("ed25519 signature present, but no ed25519 keys are trusted"))
                break
            }
            let signature: MinisignSignature
            do {
                signature = try MinisignSignature(parsing: pair.minisig)
            } catch let error as FerryError {
                note(.malformed, error.prefixed(name))
                continue
            } catch {
                note(.malformed, FerryError.signatureInvalid("\(name): \(error)"))
                continue
            }
            if let why = keys.retired[signature.keyID], !keys.ed25519.contains(where: { $0.keyID == signature.keyID }) {
                note(.untrusted, FerryError.untrusted("\(name): signed by \(signature.keyID), which \(why)"))
                continue
            }
            do {
                _ = try signature.verify(pair.claim, keys: keys.ed25519)
                // A revoked key: its claims from the revocation's time on count for nothing, logged before or not.
                if let limit = keys.notAfter[signature.keyID],
                    let (_, timestamp) = try? check(pair.claim, digest: digest, identity: identity), timestamp >= limit
                {
                    let why = keys.retired[signature.keyID] ?? "the remote revoked"
                    note(.untrusted, FerryError.untrusted("\(name): signed by \(signature.keyID), which \(why)"))
                    continue
                }
                consider(content: pair.claim, signer: "ed25519:" + signature.keyID, file: name)
            } catch let error as FerryError {
                note(stage(of: error), error.prefixed(name))
            } catch {
                note(.malformed, FerryError.signatureInvalid("\(name): \(error)"))
            }
        }

        // The newest accepted claim is the release's time: every accepted claim is authentic for this digest and
        // identity, and a publisher re-signing an image (another key, a new claim) makes it newer.
        guard let newest = accepted.max(by: { $0.timestamp < $1.timestamp }) else {
            throw worst?.error ?? FerryError.signatureInvalid("no acceptable signature")
        }
        var signers: [String] = []
        for entry in accepted where !signers.contains(entry.signer) { signers.append(entry.signer) }
        return VerifiedClaim(claim: newest.claim, timestamp: newest.timestamp, signers: signers)
    }

    private struct ClaimFailure: Error {
        var stage: Stage
        var error: FerryError
    }

    /// Checks a verified claim's content against what the caller expects.
    private static func check(
        _ content: Data,
        digest: Digest,
        identity: String
    ) throws -> (Claim, Int64) {
        let claim: Claim
        do {
            claim = try Claim(parsing: content)
        } catch let error as FerryError {
            throw ClaimFailure(stage: .badClaim, error: FerryError.signatureInvalid(error.message))
        }
        guard claim.digest == digest else {
            throw ClaimFailure(
                stage: .wrongDigest,
                error: FerryError.signatureInvalid(
                    "signature is for digest \(claim.digest), not \(digest)"
                )
            )
        }
        guard claim.identity == identity else {
            throw ClaimFailure(
                stage: .wrongIdentity,
                error: FerryError.signatureInvalid(
                    "signed for \(quoted(claim.identity)), not \(quoted(identity))"
                )
            )
        }
        guard let timestamp = claim.timestamp else {
            throw ClaimFailure(
                stage: .noTimestamp,
                error: FerryError.signatureInvalid(
                    "claim has no timestamp (needed to refuse downgrades)"
                )
            )
        }
        return (claim, timestamp)
    }

    private static func stage(of error: FerryError) -> Stage {
        switch error.code {
        case .untrusted: return .untrusted
        case .signatureInvalid: return .badSignature
        default: return .malformed
        }
    }

    /// Claims come from the publisher's side: quote them so control characters cannot forge log lines.
    private static func quoted(_ text: String) -> String {
        String(text.prefix(300)).debugDescription
    }
}
