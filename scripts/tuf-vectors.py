#!/usr/bin/env python3
"""Test vectors from securesystemslib for Ferry's TUF client (Tests/FerryTrustTests/TUFVectorTests.swift).

Prints one JSON object:
  canonical: [{"json": TEXT, "canonical_b64": ...}]  -- encode_canonical(json.loads(TEXT))
  signatures: [{"key": KEYDICT, "message_b64": ..., "sig": HEX}]  -- CryptoSigner.sign(message)
Fresh keys every run, so the test verifies real signatures rather than a frozen sample.
Needs: pip install securesystemslib[crypto]
"""
import base64
import json
import sys

from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner

TRICKY = [
    '{"b": 1, "a": 2, "A": [3, -4, 0], "": null}',
    '{"s": "quote \\" backslash \\\\ slash \\/ newline \\n tab \\t"}',
    '{"u": "caf\\u00e9 \\ud83d\\ude00 \\u0001 \\u007f", "\\u00e9": 1, "e\\u0301": 2, "z": 3}',
    '{"nested": {"z": {"y": [true, false, null, {}], "x": []}, "big": 123456789012345678901234567890}}',
    '[1, "two", {"three": 3}]',
    '{"keyids": ["b", "a"], "threshold": 1, "\\ud800\\udc00": "astral key"}',
    '{"neg": -0, "n": -12345}',
]

MESSAGE = json.dumps({"signed": "ferry test message", "n": 1}).encode()


def main() -> None:
    canonical = []
    for text in TRICKY:
        out = encode_canonical(json.loads(text))
        canonical.append({"json": text, "canonical_b64": base64.b64encode(out.encode("utf-8")).decode()})

    signers = [
        CryptoSigner.generate_ed25519(),
        CryptoSigner.generate_ecdsa(),
        CryptoSigner.generate_rsa(scheme="rsassa-pss-sha256"),
        CryptoSigner.generate_rsa(scheme="rsa-pkcs1v15-sha256"),
    ]
    signatures = []
    for signer in signers:
        sig = signer.sign(MESSAGE)
        signer.public_key.verify_signature(sig, MESSAGE)  # sanity: securesystemslib accepts its own
        signatures.append({
            "key": signer.public_key.to_dict(),
            "keyid": signer.public_key.keyid,
            "message_b64": base64.b64encode(MESSAGE).decode(),
            "sig": sig.signature,
        })
    json.dump({"canonical": canonical, "signatures": signatures}, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
