#!/usr/bin/env python3
"""Rewrites the table of contents of a zstd:chunked image in an OCI layout so that one file's digest is another,
for Ferry's attack tests: the blob's TOC frame and footer, the layer's annotations, digest and size, the manifest
and index.json are all made consistent again, so only the TOC's claim about the file is false.

  chunked-toc-lie.py LAYOUT FILE-PATH NEW-DIGEST
"""
import hashlib, json, os, struct, subprocess, sys

layout, target, digest = sys.argv[1:4]

def blob_path(d):
    return os.path.join(layout, "blobs", "sha256", d.split(":")[1])

def write_blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(blob_path(d), "wb") as f:
        f.write(data)
    return d

index = json.load(open(os.path.join(layout, "index.json")))
entry = index["manifests"][-1]
manifest = json.load(open(blob_path(entry["digest"])))
layer = manifest["layers"][0]
blob = open(blob_path(layer["digest"]), "rb").read()
keys = [k for k in layer["annotations"] if k.endswith("manifest-position")]
offset, length, _, _ = (int(x) for x in layer["annotations"][keys[0]].split(":"))
toc = json.loads(subprocess.run(["zstd", "-d", "-c"], input=blob[offset:offset + length],
                                capture_output=True, check=True).stdout)
for e in toc["entries"]:
    if e.get("name") == target:
        e["digest"] = digest
raw = json.dumps(toc, separators=(",", ":"), sort_keys=True).encode()
compressed = subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True, check=True).stdout
head = blob[:offset - 8]  # up to the TOC's skippable frame header
new_offset = len(head) + 8
footer = struct.pack("<QQQQ", new_offset, len(compressed), len(raw), 1) + b"GNUlInUx"
new = (head + struct.pack("<II", 0x184D2A50, len(compressed)) + compressed
       + struct.pack("<II", 0x184D2A50, len(footer)) + footer)
layer["digest"] = write_blob(new)
layer["size"] = len(new)
for k in list(layer["annotations"]):
    if k.endswith("manifest-position"):
        layer["annotations"][k] = "%d:%d:%d:1" % (new_offset, len(compressed), len(raw))
    if k.endswith("manifest-checksum"):
        layer["annotations"][k] = "sha256:" + hashlib.sha256(compressed).hexdigest()
data = json.dumps(manifest, separators=(",", ":")).encode()
entry["digest"] = write_blob(data)
entry["size"] = len(data)
json.dump(index, open(os.path.join(layout, "index.json"), "w"))
