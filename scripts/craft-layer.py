# Writes a tar layer from a JSON spec on stdin and prints the sha256 of the uncompressed tar (its diff_id).
# Entries: name, type file|dir|symlink|link|chr|blk|fifo, data, mode, uid, gid, target, repeat, nameHex (raw name
# bytes), pax (extra pax headers); compression none|gzip|zstd (gzip without a timestamp); format pax|gnu. Tests use it to craft hostile archives that no well-behaved tool would write.
import sys, json, tarfile, io, hashlib, subprocess, gzip
spec = json.load(sys.stdin)
buf = io.BytesIO()
fmt = tarfile.GNU_FORMAT if spec.get("format") == "gnu" else tarfile.PAX_FORMAT
with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
    for e in spec["entries"]:
        name = e["name"]
        if "nameHex" in e:
            name = bytes.fromhex(e["nameHex"]).decode("utf-8", "surrogateescape")
        info = tarfile.TarInfo(name)
        if "pax" in e:
            info.pax_headers = e["pax"]
        info.mode = e.get("mode", 0o644)
        info.uid = e.get("uid", 0)
        info.gid = e.get("gid", 0)
        info.mtime = 1700000000
        kind = e.get("type", "file")
        data = None
        if kind == "file":
            data = e.get("data", "").encode() * e.get("repeat", 1)
            info.size = len(data)
        elif kind == "dir":
            info.type = tarfile.DIRTYPE
        elif kind == "symlink":
            info.type = tarfile.SYMTYPE
            info.linkname = e["target"]
        elif kind == "link":
            info.type = tarfile.LNKTYPE
            info.linkname = e["target"]
        elif kind == "chr":
            info.type = tarfile.CHRTYPE
            info.devmajor, info.devminor = 1, 3
        elif kind == "blk":
            info.type = tarfile.BLKTYPE
            info.devmajor, info.devminor = 7, 0
        elif kind == "fifo":
            info.type = tarfile.FIFOTYPE
        tar.addfile(info, io.BytesIO(data) if data is not None else None)
raw = buf.getvalue()
digest = hashlib.sha256(raw).hexdigest()
comp = spec.get("compression", "none")
if comp == "gzip":
    raw = gzip.compress(raw, mtime=0)
elif comp == "zstd":
    raw = subprocess.run(["zstd", "-q", "-c"], input=raw, stdout=subprocess.PIPE, check=True).stdout
with open(spec["output"], "wb") as f:
    f.write(raw)
print(digest)
