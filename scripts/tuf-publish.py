#!/usr/bin/env python3
"""Publishes TUF metadata for a Ferry OCI layout with python-tuf (an independent implementation).

    tuf-publish.py --keys KEYDIR --metadata DIR --layout LAYOUT [--ref REF]... [options]

Each run writes the next version of timestamp, snapshot and targets into DIR (served as LAYOUT_URL/tuf/ when DIR is
LAYOUT/tuf), with consistent snapshots: N.root.json (and root.json), timestamp.json, V.snapshot.json, V.targets.json.
A targets entry's path is the ref; its length and sha256 are the manifest's, read from LAYOUT/index.json
(DESIGN.md, "Freshness (TUF)"). The first run creates one ed25519 key per top-level role in KEYDIR (keep it out of
the served tree) and root version 1; KEYDIR/root.json is then the root a remote is configured with (--tuf-root).

Options:
  --ref REF                     list only these refs (default: every ref in index.json)
  --target REF=sha256:HEX:LEN   list REF with this digest and length instead (a "mixed" repository for tests)
  --timestamp-expired           sign a timestamp that expired long ago (what a frozen mirror serves)
  --expires-days N              expiry of timestamp, snapshot and targets (default 30)
  --rotate-keys                 new root version: fresh keys for every role, signed by old and new root keys

Needs: pip install tuf securesystemslib[crypto]   (tested with tuf 7.0.1, securesystemslib 1.6.0)
"""
import argparse
import json
import os
import sys
from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives import serialization
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

TOP = ["root", "timestamp", "snapshot", "targets"]
PAST = datetime(2001, 1, 1, tzinfo=timezone.utc)
REF_ANNOTATION = "org.opencontainers.image.ref.name"


def write(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def save_key(keys: str, role: str, signer: CryptoSigner) -> None:
    write(os.path.join(keys, f"{role}.pem"), signer.private_bytes)


def load_key(keys: str, role: str) -> CryptoSigner:
    with open(os.path.join(keys, f"{role}.pem"), "rb") as f:
        private = serialization.load_pem_private_key(f.read(), password=None)
    return CryptoSigner(private)


def to_bytes(md: Metadata) -> bytes:
    return md.to_bytes(JSONSerializer(compact=False))


def publish_root(root: Metadata, signers: list, directory: str, keys: str) -> None:
    root.signatures.clear()
    for signer in signers:
        root.sign(signer, append=True)
    data = to_bytes(root)
    write(os.path.join(directory, f"{root.signed.version}.root.json"), data)
    write(os.path.join(directory, "root.json"), data)
    if root.signed.version == 1:
        write(os.path.join(keys, "root.json"), data)


def targets_from_layout(layout: str, refs: list, overrides: list) -> dict:
    with open(os.path.join(layout, "index.json"), "rb") as f:
        index = json.load(f)
    found = {}
    for manifest in index.get("manifests", []):
        ref = (manifest.get("annotations") or {}).get(REF_ANNOTATION)
        if ref and (not refs or ref in refs):
            algorithm, hexdigest = manifest["digest"].split(":", 1)
            found[ref] = TargetFile(length=manifest["size"], hashes={algorithm: hexdigest}, path=ref)
    for override in overrides:
        ref, digest = override.split("=", 1)
        algorithm, hexdigest, length = digest.split(":")
        found[ref] = TargetFile(length=int(length), hashes={algorithm: hexdigest}, path=ref)
    missing = [ref for ref in refs if ref not in found]
    if missing:
        sys.exit(f"tuf-publish: {', '.join(missing)} not in {layout}/index.json")
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", required=True)
    parser.add_argument("--metadata", required=True)
    parser.add_argument("--layout", required=True)
    parser.add_argument("--ref", action="append", default=[])
    parser.add_argument("--target", action="append", default=[])
    parser.add_argument("--timestamp-expired", action="store_true")
    parser.add_argument("--expires-days", type=int, default=30)
    parser.add_argument("--rotate-keys", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.keys, mode=0o700, exist_ok=True)
    os.makedirs(args.metadata, exist_ok=True)
    os.chmod(args.metadata, 0o755)
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=args.expires_days)

    root_path = os.path.join(args.metadata, "root.json")
    if not os.path.exists(root_path):
        signers = {role: CryptoSigner.generate_ed25519() for role in TOP}
        for role, signer in signers.items():
            save_key(args.keys, role, signer)
        root = Metadata(Root(expires=datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=365),
                             consistent_snapshot=True))
        for role, signer in signers.items():
            root.signed.add_key(signer.public_key, role)
        publish_root(root, [signers["root"]], args.metadata, args.keys)
        previous = {"timestamp": 0, "snapshot": 0, "targets": 0}
    else:
        signers = {role: load_key(args.keys, role) for role in TOP}
        with open(root_path, "rb") as f:
            root = Metadata.from_bytes(f.read())
        with open(os.path.join(args.metadata, "timestamp.json"), "rb") as f:
            timestamp = Metadata.from_bytes(f.read())
        snapshot_version = timestamp.signed.snapshot_meta.version
        with open(os.path.join(args.metadata, f"{snapshot_version}.snapshot.json"), "rb") as f:
            snapshot = Metadata.from_bytes(f.read())
        previous = {"timestamp": timestamp.signed.version, "snapshot": snapshot_version,
                    "targets": snapshot.signed.meta["targets.json"].version}

    if args.rotate_keys:
        old_root_signer = signers["root"]
        new = {role: CryptoSigner.generate_ed25519() for role in TOP}
        for role in TOP:
            for keyid in list(root.signed.roles[role].keyids):
                root.signed.revoke_key(keyid, role)
            root.signed.add_key(new[role].public_key, role)
            save_key(args.keys, role, new[role])
        signers = new
        root.signed.version += 1
        publish_root(root, [old_root_signer, signers["root"]], args.metadata, args.keys)

    targets = Metadata(Targets(version=previous["targets"] + 1, expires=expires))
    targets.signed.targets = targets_from_layout(args.layout, args.ref, args.target)
    targets.sign(signers["targets"])
    targets_bytes = to_bytes(targets)
    write(os.path.join(args.metadata, f"{targets.signed.version}.targets.json"), targets_bytes)

    snapshot = Metadata(Snapshot(version=previous["snapshot"] + 1, expires=expires))
    snapshot.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
    snapshot.sign(signers["snapshot"])
    snapshot_bytes = to_bytes(snapshot)
    write(os.path.join(args.metadata, f"{snapshot.signed.version}.snapshot.json"), snapshot_bytes)

    timestamp = Metadata(Timestamp(version=previous["timestamp"] + 1,
                                   expires=PAST if args.timestamp_expired else expires))
    timestamp.signed.snapshot_meta = MetaFile(version=snapshot.signed.version, length=len(snapshot_bytes))
    timestamp.sign(signers["timestamp"])
    write(os.path.join(args.metadata, "timestamp.json"), to_bytes(timestamp))
    print(f"root {root.signed.version} timestamp {timestamp.signed.version} snapshot {snapshot.signed.version} "
          f"targets {targets.signed.version}: {', '.join(sorted(targets.signed.targets))}")


if __name__ == "__main__":
    main()
