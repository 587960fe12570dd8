#!/usr/bin/env python3
"""Builds TUF repositories with python-tuf (an independent implementation) for Ferry's TUF client tests.

    tuf-repo.py SCENARIO OUT

writes OUT/trusted_root.json (the root the client starts from) and OUT/stage-N/{metadata,targets}/ for each
step of the scenario: the repository as a server would serve it at that step. Tests point the client at one
stage after another and assert what it accepts (Tests/FerryTrustTests/TUFUpdaterTests.swift says what each
scenario expects). Consistent-snapshot repositories carry only versioned snapshot/targets files and
hash-prefixed targets; the others only unversioned ones, so a client using the wrong names fails.

Needs: pip install tuf securesystemslib[crypto]   (tested with tuf 7.0.1, securesystemslib 1.6.0)
"""
import copy
import os
import sys
from datetime import datetime, timedelta, timezone
from urllib import parse

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

TOP = ["root", "timestamp", "snapshot", "targets"]
FUTURE = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=365)
PAST = datetime(2001, 1, 1, tzinfo=timezone.utc)


def new_key() -> CryptoSigner:
    return CryptoSigner.generate_ed25519()


class Repo:
    def __init__(self, consistent: bool = True, key_kind=new_key):
        self.consistent = consistent
        self.signers = {role: [key_kind()] for role in TOP}
        self.root = Metadata(Root(expires=FUTURE, consistent_snapshot=consistent))
        for role in TOP:
            for signer in self.signers[role]:
                self.root.signed.add_key(signer.public_key, role)
        self.timestamp = Metadata(Timestamp(expires=FUTURE))
        self.snapshot = Metadata(Snapshot(expires=FUTURE))
        self.targets = Metadata(Targets(expires=FUTURE))
        self.delegated: dict[str, Metadata] = {}
        self.delegated_signers: dict[str, list] = {}
        self.root_history: list[bytes] = []
        self.artifacts: dict[str, bytes] = {}
        self.publish_root()

    # --- root -----------------------------------------------------------
    def publish_root(self, extra_signers=(), only_signers=None) -> None:
        """Signs the current root (its own root keys plus extra_signers, or exactly only_signers)."""
        self.root.signatures.clear()
        signers = only_signers if only_signers is not None else [*self.signers["root"], *extra_signers]
        for signer in signers:
            self.root.sign(signer, append=True)
        self.root_history.append(self.root.to_bytes(JSONSerializer()))

    def rotate(self, role: str, new_signers: list, threshold: int | None = None) -> None:
        """Replaces role's keys in root (root version not bumped here)."""
        for keyid in list(self.root.signed.roles[role].keyids):
            self.root.signed.revoke_key(keyid, role)
        for signer in new_signers:
            self.root.signed.add_key(signer.public_key, role)
        if threshold is not None:
            self.root.signed.roles[role].threshold = threshold
        self.signers[role] = new_signers

    def next_root(self) -> None:
        self.root.signed.version += 1

    # --- targets --------------------------------------------------------
    def add_target(self, role: str, path: str, data: bytes) -> None:
        md = self.targets if role == "targets" else self.delegated[role]
        md.signed.targets[path] = TargetFile.from_data(path, data, ["sha256", "sha512"])
        self.artifacts[path] = data

    def delegate(self, parent: str, role: DelegatedRole | None, signers: list, succinct: SuccinctRoles | None = None):
        parent_md = self.targets if parent == "targets" else self.delegated[parent]
        if parent_md.signed.delegations is None:
            parent_md.signed.delegations = Delegations({}, roles=None if succinct else {}, succinct_roles=succinct)
        delegations = parent_md.signed.delegations
        for signer in signers:
            delegations.keys[signer.public_key.keyid] = signer.public_key
        names = list(succinct.get_roles()) if succinct else [role.name]
        if role is not None:
            delegations.roles[role.name] = role
        for name in names:
            self.delegated[name] = Metadata(Targets(expires=FUTURE))
            self.delegated_signers[name] = signers

    # --- publishing -----------------------------------------------------
    def targets_roles(self):
        yield "targets", self.targets, self.signers["targets"]
        for name, md in self.delegated.items():
            yield name, md, self.delegated_signers[name]

    def publish(self, out: str, update_meta: bool = True, snapshot_hashes: bool = True) -> None:
        meta_dir = os.path.join(out, "metadata")
        target_dir = os.path.join(out, "targets")
        os.makedirs(meta_dir)
        os.makedirs(target_dir)
        for version, data in enumerate(self.root_history, start=1):
            write(os.path.join(meta_dir, f"{version}.root.json"), data)
        write(os.path.join(meta_dir, "root.json"), self.root_history[-1])

        for name, md, signers in self.targets_roles():
            data = sign(md, signers)
            if update_meta:
                self.snapshot.signed.meta[f"{name}.json"] = MetaFile(version=md.signed.version)
            self.write_versioned(meta_dir, name, md.signed.version, data)

        snapshot_bytes = sign(self.snapshot, self.signers["snapshot"])
        self.write_versioned(meta_dir, "snapshot", self.snapshot.signed.version, snapshot_bytes)
        if update_meta:
            if snapshot_hashes:
                self.timestamp.signed.snapshot_meta = MetaFile.from_data(
                    self.snapshot.signed.version, snapshot_bytes, ["sha256"])
            else:
                self.timestamp.signed.snapshot_meta = MetaFile(version=self.snapshot.signed.version)
        write(os.path.join(meta_dir, "timestamp.json"), sign(self.timestamp, self.signers["timestamp"]))

        for path, data in self.artifacts.items():
            if self.consistent:
                dirname, sep, basename = path.rpartition("/")
                for digest in TargetFile.from_data(path, data, ["sha256", "sha512"]).hashes.values():
                    write(os.path.join(target_dir, f"{dirname}{sep}{digest}.{basename}"), data)
            else:
                write(os.path.join(target_dir, path), data)

    def write_versioned(self, meta_dir: str, name: str, version: int, data: bytes) -> None:
        quoted = parse.quote(name, "")
        if self.consistent:
            write(os.path.join(meta_dir, f"{version}.{quoted}.json"), data)
        else:
            write(os.path.join(meta_dir, f"{quoted}.json"), data)


def sign(md: Metadata, signers) -> bytes:
    md.signatures.clear()
    for signer in signers:
        md.sign(signer, append=True)
    return md.to_bytes(JSONSerializer())


def write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def basic(repo: Repo) -> Repo:
    repo.add_target("targets", "file1.txt", b"hello ferry\n")
    repo.add_target("targets", "dir/file2.txt", b"second file\n")
    return repo


def bump_all(repo: Repo) -> None:
    repo.targets.signed.version += 1
    repo.snapshot.signed.version += 1
    repo.timestamp.signed.version += 1


# --- scenarios: each is a list of stage-building steps ---------------------------------------------


def scenario_basic(out: str, consistent: bool = True, key_kind=new_key) -> Repo:
    repo = basic(Repo(consistent=consistent, key_kind=key_kind))
    repo.publish(stage(out, 0))
    # stage 1: a new release of file1.txt
    repo.add_target("targets", "file1.txt", b"hello again\n")
    bump_all(repo)
    repo.publish(stage(out, 1))
    return repo


def scenario_rotation(out: str) -> None:
    """stage 1: root v2 moves to two new keys with threshold 2 (signed by old key and both new),
    then root v3 goes back to one fresh key, threshold 1 (signed by both v2 keys and the v3 key)."""
    repo = basic(Repo())
    repo.publish(stage(out, 0))
    old = repo.signers["root"]
    v2 = [new_key(), new_key()]
    repo.rotate("root", v2, threshold=2)
    repo.next_root()
    repo.publish_root(extra_signers=old)
    v3 = [new_key()]
    repo.rotate("root", v3, threshold=1)
    repo.next_root()
    repo.publish_root(extra_signers=v2)
    repo.publish(stage(out, 1))


def scenario_rotation_unsigned_by_old(out: str) -> None:
    """stage 1: root v2 with a new key, signed only by that new key (the old root never agreed)."""
    repo = basic(Repo())
    repo.publish(stage(out, 0))
    repo.rotate("root", [new_key()])
    repo.next_root()
    repo.publish_root()
    repo.publish(stage(out, 1))


def scenario_rotation_new_threshold_unmet(out: str) -> None:
    """stage 1: root v2 with two new keys, threshold 2, signed by the old key and only one new key."""
    repo = basic(Repo())
    repo.publish(stage(out, 0))
    old = repo.signers["root"]
    v2 = [new_key(), new_key()]
    repo.rotate("root", v2, threshold=2)
    repo.next_root()
    repo.publish_root(only_signers=[*old, v2[0]])
    repo.publish(stage(out, 1))


def scenario_expired(role: str):
    def build(out: str) -> None:
        repo = basic(Repo())
        repo.publish(stage(out, 0))
        md = {"timestamp": repo.timestamp, "snapshot": repo.snapshot, "targets": repo.targets}[role]
        md.signed.expires = PAST
        bump_all(repo)
        repo.publish(stage(out, 1))
    return build


def scenario_rollback_timestamp(out: str) -> None:
    """stage 0: timestamp v2; stage 1: the old timestamp v1 replayed."""
    repo = basic(Repo())
    repo.publish(stage(out, 1))
    repo.timestamp.signed.version += 1
    repo.publish(stage(out, 0))


def scenario_rollback_targets(out: str) -> None:
    """stage 0: targets v2; stage 1: new snapshot v3 / timestamp v3 listing the old targets v1."""
    repo = basic(Repo())
    v1_targets = copy.deepcopy(repo.targets)
    bump_all(repo)
    repo.publish(stage(out, 0))
    repo.targets = v1_targets
    repo.snapshot.signed.version += 1
    repo.timestamp.signed.version += 1
    repo.publish(stage(out, 1))


def scenario_fast_forward(out: str) -> None:
    """stage 0: a compromised timestamp key published timestamp v1000 and snapshot v1000.
    stage 1: the same repository replays version 1 signed by the old keys (rollback, refused).
    stage 2: root v2 rotates timestamp and snapshot keys; timestamp and snapshot start again at version 1."""
    repo = basic(Repo())
    repo.timestamp.signed.version = 1000
    repo.snapshot.signed.version = 1000
    repo.publish(stage(out, 0))
    repo.timestamp.signed.version = 1
    repo.snapshot.signed.version = 1
    repo.publish(stage(out, 1))
    repo.rotate("timestamp", [new_key()])
    repo.rotate("snapshot", [new_key()])
    repo.next_root()
    repo.publish_root()
    repo.publish(stage(out, 2))


def scenario_delegations(out: str) -> None:
    repo = Repo()
    ka, kc, kt, kf, kb = (new_key() for _ in range(5))
    repo.delegate("targets", DelegatedRole("role-a", [ka.public_key.keyid], 1, False, paths=["a/*"]), [ka])
    repo.delegate("role-a", DelegatedRole("role-c", [kc.public_key.keyid], 1, False, paths=["a/deep*"]), [kc])
    repo.delegate("targets", DelegatedRole("role-b", [kb.public_key.keyid], 1, False, paths=["b/*"]), [kb])
    repo.delegate("targets", DelegatedRole("role-t", [kt.public_key.keyid], 1, True, paths=["t/*"]), [kt])
    repo.delegate("targets", DelegatedRole("role-f", [kf.public_key.keyid], 1, False, paths=["*", "t/*"]), [kf])
    repo.add_target("role-a", "a/one.txt", b"from role-a\n")
    repo.add_target("role-c", "a/deep.txt", b"from role-c\n")
    repo.add_target("role-b", "a/evil.txt", b"role-b is not trusted for a/\n")
    repo.add_target("role-f", "t/shadowed.txt", b"behind a terminating role\n")
    repo.add_target("role-f", "fall.txt", b"from role-f\n")
    repo.add_target("targets", "top.txt", b"from targets\n")
    repo.publish(stage(out, 0))


def scenario_diamond(out: str) -> None:
    """Two delegators name one role: parent-a and parent-b both delegate "release", each to its own key, for
    team-a/* and team-b/*. release is signed by parent-a's key only, so it is valid through A and not through B."""
    repo = Repo()
    ka, kb, kra, krb = (new_key() for _ in range(4))
    repo.delegate("targets", DelegatedRole("parent-a", [ka.public_key.keyid], 1, False, paths=["team-a/*"]), [ka])
    repo.delegate("targets", DelegatedRole("parent-b", [kb.public_key.keyid], 1, False, paths=["team-b/*"]), [kb])
    repo.delegate("parent-a", DelegatedRole("release", [kra.public_key.keyid], 1, False, paths=["team-a/*"]), [kra])
    repo.delegate("parent-b", DelegatedRole("release", [krb.public_key.keyid], 1, False, paths=["team-b/*"]), [krb])
    repo.delegated_signers["release"] = [kra]
    repo.add_target("release", "team-a/app.txt", b"trusted A\n")
    repo.add_target("release", "team-b/app.txt", b"malicious B\n")
    repo.publish(stage(out, 0))


def scenario_hash_bins(out: str) -> None:
    """Succinct hash bins: bit_length 3, roles bin-0 .. bin-7, each target in the bin its path hash picks."""
    repo = Repo()
    key = new_key()
    succinct = SuccinctRoles([key.public_key.keyid], 1, 3, "bin")
    repo.delegate("targets", None, [key], succinct=succinct)
    for i in range(6):
        path = f"pkg/file-{i}.txt"
        repo.add_target(succinct.get_role_for_target(path), path, f"content {i}\n".encode())
    repo.publish(stage(out, 0))


def scenario_hash_prefixes(out: str) -> None:
    """16 delegated roles with explicit path_hash_prefixes, one hex digit each."""
    import hashlib

    repo = Repo()
    key = new_key()
    for digit in "0123456789abcdef":
        role = DelegatedRole(f"prefix-{digit}", [key.public_key.keyid], 1, False, path_hash_prefixes=[digit])
        repo.delegate("targets", role, [key])
    for i in range(6):
        path = f"pkg/file-{i}.txt"
        digit = hashlib.sha256(path.encode()).hexdigest()[0]
        repo.add_target(f"prefix-{digit}", path, f"content {i}\n".encode())
    repo.publish(stage(out, 0))


def scenario_keys(kind: str):
    kinds = {
        "ecdsa": CryptoSigner.generate_ecdsa,
        "rsa-pss": lambda: CryptoSigner.generate_rsa(scheme="rsassa-pss-sha256"),
        "rsa-pkcs1v15": lambda: CryptoSigner.generate_rsa(scheme="rsa-pkcs1v15-sha256"),
    }
    return lambda out: scenario_basic(out, key_kind=kinds[kind])


SCENARIOS = {
    "basic": scenario_basic,
    "basic-plain": lambda out: scenario_basic(out, consistent=False),
    "keys-ecdsa": scenario_keys("ecdsa"),
    "keys-rsa-pss": scenario_keys("rsa-pss"),
    "keys-rsa-pkcs1v15": scenario_keys("rsa-pkcs1v15"),
    "rotation": scenario_rotation,
    "rotation-unsigned-by-old": scenario_rotation_unsigned_by_old,
    "rotation-new-threshold-unmet": scenario_rotation_new_threshold_unmet,
    "expired-timestamp": scenario_expired("timestamp"),
    "expired-snapshot": scenario_expired("snapshot"),
    "expired-targets": scenario_expired("targets"),
    "rollback-timestamp": scenario_rollback_timestamp,
    "rollback-targets": scenario_rollback_targets,
    "fast-forward": scenario_fast_forward,
    "delegations": scenario_delegations,
    "diamond": scenario_diamond,
    "hash-bins": scenario_hash_bins,
    "hash-prefixes": scenario_hash_prefixes,
}

def stage(out: str, n: int) -> str:
    return os.path.join(out, f"stage-{n}")


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in SCENARIOS:
        sys.exit(f"usage: tuf-repo.py {{{'|'.join(SCENARIOS)}}} OUT")
    name, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    SCENARIOS[name](out)
    # The initial trusted root: version 1 as every scenario first signs it.
    first = sorted(d for d in os.listdir(out) if d.startswith("stage-"))[0]
    with open(os.path.join(out, first, "metadata", "1.root.json"), "rb") as f:
        write(os.path.join(out, "trusted_root.json"), f.read())


if __name__ == "__main__":
    main()
