#!/usr/bin/python3
"""Ferry's benchmark: Ferry against skopeo + umoci and a bare `curl | tar`, in one run, one table.

Usage (as root; it starts a private system bus, polkitd and ferry-helper like scripts/demo.sh):
  scripts/bench.py [--build DIR] [--work DIR] [--quick] [--reps N] [--json FILE] [--log-only]
Environment: BENCH_QUICK=1 (64 MiB image, 2,000 files, fewer repetitions), BENCH_REPS=N, BENCH_WORK=DIR.

Generated images (cached in the work directory between runs, keyed by their parameters):
  big    8 gzip layers, half random bytes and half text, 1 GiB uncompressed (quick: 64 MiB)
  big-v2 the same with layer 6 regenerated (the incremental update)
  files  one layer of 20,000 small files (quick: 2,000)
  tiny   a small image published under 50 refs (the no-op update)
They are signed with `ferry sign` (minisign key), served by scripts/test-http-server.py (which logs the bytes of
every request) and pushed to a local docker-registry for skopeo.

The transparency-log rows: a log of 1,000,000 release entries (quick: 100,000; one signed release entry repeated,
appended with the hidden `ferry debug-log-fill`), served by the same web server. One update's log work is
`ferry debug-log-update`: what the agent fetches for an entry near the end when the installing side trusts the
checkpoint 1,000 entries earlier (checkpoint, the entry's bundle, the proof tiles), and the CPU time of the helper's
offline check. The audit is `ferry log audit` of the whole log from an empty cache (every tile and entry fetched and
recomputed, every entry's signature checked).
"""
import argparse, gzip, hashlib, io, json, os, random, shutil, signal, statistics, subprocess, sys, tarfile, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER = "ferry-bench"
BIG_REF = "org.bench.Big/x86_64/stable"
FILES_REF = "org.bench.Files/x86_64/stable"
TINY_REFS = ["org.bench.Tiny%02d/x86_64/stable" % i for i in range(50)]
CHANGED_LAYER = 5


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def run(cmd, check=True, env=None, capture=False, **kw):
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE, **kw)
    if check and r.returncode != 0:
        raise SystemExit("bench: %s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr.decode()[-2000:]))
    return r


# ---------------------------------------------------------------------------------------------------- images

def text_block(rng, size):
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(2000)]
    out, n = [], 0
    while n < size:
        line = (" ".join(rng.choices(words, k=12)) + "\n").encode()
        out.append(line)
        n += len(line)
    return b"".join(out)[:size]


def make_layer(path, seed, size, files_per_layer=8):
    """A gzip layer of `files_per_layer` files: half random bytes, half text. Returns (diff_id, digest, size)."""
    rng = random.Random(seed)
    per = size // files_per_layer
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        d = tarfile.TarInfo("data%d" % seed)
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 1700000000
        tar.addfile(d)
        text = text_block(rng, min(per, 4 << 20))
        for i in range(files_per_layer):
            if i % 2 == 0:
                data = rng.randbytes(per)
            else:
                data = (text * (per // len(text) + 1))[:per]
                data = rng.randbytes(64) + data[64:]
            info = tarfile.TarInfo("data%d/file%d.bin" % (seed, i))
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return write_gzip_blob(path, raw.getvalue())


def make_files_layer(path, count, seed=4242):
    rng = random.Random(seed)
    text = text_block(rng, 1 << 20)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = max(1, count // 100)
        for d in range(dirs):
            info = tarfile.TarInfo("share/d%03d" % d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1700000000
            tar.addfile(info)
        for i in range(count):
            size = rng.randint(100, 4000)
            off = rng.randint(0, len(text) - size)
            data = text[off:off + size]
            info = tarfile.TarInfo("share/d%03d/f%05d.txt" % (i % dirs, i))
            info.size, info.mode, info.mtime = size, 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return write_gzip_blob(path, raw.getvalue())


def write_gzip_blob(layout, raw):
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    p = subprocess.run(["gzip", "-6", "-n", "-c"], input=raw, stdout=subprocess.PIPE, check=True)
    return (diff_id,) + write_blob(layout, p.stdout)


def write_blob(layout, data):
    hexd = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(layout, "blobs/sha256"), exist_ok=True)
    with open(os.path.join(layout, "blobs/sha256", hexd), "wb") as f:
        f.write(data)
    return "sha256:" + hexd, len(data)


def make_image(layout, layers):
    """layers: [(diff_id, digest, size)] -> manifest descriptor (dict)."""
    config = {"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
              "config": {"Entrypoint": ["/bin/true"]},
              "rootfs": {"type": "layers", "diff_ids": [l[0] for l in layers]}}
    cdig, csize = write_blob(layout, json.dumps(config, sort_keys=True).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdig, "size": csize},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l[1], "size": l[2]}
                           for l in layers]}
    mdig, msize = write_blob(layout, json.dumps(manifest, sort_keys=True).encode())
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdig, "size": msize,
            "platform": {"architecture": "amd64", "os": "linux"}}


def write_index(layout, refs, name="index.json"):
    manifests = [dict(desc, annotations={"org.opencontainers.image.ref.name": ref}) for ref, desc in refs]
    with open(os.path.join(layout, name), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": manifests}, f)


def generate(work, ferry, big_size, file_count):
    key = "v3-%d-%d" % (big_size, file_count)
    layout = os.path.join(work, "layout")
    stamp = os.path.join(work, "images.json")
    if os.path.exists(stamp):
        with open(stamp) as f:
            meta = json.load(f)
        if meta.get("key") == key:
            log("reusing images in %s" % work)
            return meta
    log("generating images (%d MiB in 8 layers, %d small files)" % (big_size >> 20, file_count))
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(layout)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    layer_size = big_size // 8
    layers = [make_layer(layout, seed, layer_size) for seed in range(8)]
    changed = make_layer(layout, 100 + CHANGED_LAYER, layer_size)
    layers_v2 = list(layers)
    layers_v2[CHANGED_LAYER] = changed
    big = make_image(layout, layers)
    big2 = make_image(layout, layers_v2)
    files = make_image(layout, [make_files_layer(layout, file_count)])
    tiny = make_image(layout, [make_files_layer(layout, 20, seed=7)])
    subprocess.run(["minisign", "-G", "-W", "-p", os.path.join(work, "minisign.pub"), "-s",
                    os.path.join(work, "minisign.key")], check=True, stdout=subprocess.DEVNULL)
    now = int(time.time())
    key_args = ["--ed25519-key", os.path.join(work, "minisign.key")]
    # v2 first, signed later than v1; then v1 last so that index.json serves v1.
    write_index(layout, [(BIG_REF, big2)])
    run([ferry, "sign", layout, "--ref", BIG_REF, "--timestamp", str(now - 60)] + key_args)
    all_refs = [(BIG_REF, big), (FILES_REF, files)] + [(r, tiny) for r in TINY_REFS]
    write_index(layout, all_refs)
    for ref, _ in all_refs:
        run([ferry, "sign", layout, "--ref", ref, "--timestamp", str(now - 3600)] + key_args)
    write_index(layout, all_refs, "index-v1.json")
    write_index(layout, [(BIG_REF, big2)] + all_refs[1:], "index-v2.json")
    # A layout with plain tags for skopeo (same blobs, hard-linked).
    push = os.path.join(work, "push")
    os.makedirs(os.path.join(push, "blobs/sha256"))
    for name in os.listdir(os.path.join(layout, "blobs/sha256")):
        os.link(os.path.join(layout, "blobs/sha256", name), os.path.join(push, "blobs/sha256", name))
    shutil.copy(os.path.join(layout, "oci-layout"), push)
    write_index(push, [("big", big), ("files", files)])
    meta = {"key": key, "big": big, "big2": big2, "files": files, "big_layers": layers,
            "changed_layer_size": changed[2], "big_size": big_size, "file_count": file_count,
            "big_compressed": sum(l[2] for l in layers)}
    with open(stamp, "w") as f:
        json.dump(meta, f)
    return meta


# ---------------------------------------------------------------------------------------------------- services

class Services:
    def __init__(self, work, build):
        self.work, self.build = work, build
        self.t = os.path.join(work, "run")
        shutil.rmtree(self.t, ignore_errors=True)
        os.makedirs(self.t)
        os.chmod(work, 0o755)
        os.chmod(self.t, 0o755)
        self.procs, self.helper, self.bus_pid = [], None, None
        self.created_user = False
        self.installed_policy = False
        self.rule = "/etc/polkit-1/rules.d/10-ferry-bench.rules"

    def start(self, meta):
        t = self.t
        if run(["id", USER], check=False).returncode != 0:
            run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
                 "/usr/sbin/nologin", USER])
            self.created_user = True
        # Private system bus, as scripts/demo.sh does.
        os.makedirs(t + "/system.d")
        shutil.copy(REPO + "/dbus/dev.ferry.Helper1.conf", t + "/system.d/")
        with open(t + "/bus.conf", "w") as f:
            f.write("""<busconfig><type>system</type><listen>unix:path=%s/bus</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><deny own="*"/><deny send_type="method_call"/>
<allow send_type="signal"/><allow send_requested_reply="true" send_type="method_return"/>
<allow send_requested_reply="true" send_type="error"/><allow receive_type="method_call"/>
<allow receive_type="method_return"/><allow receive_type="error"/><allow receive_type="signal"/>
<allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
<allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
</policy><includedir>/usr/share/dbus-1/system.d</includedir><includedir>%s/system.d</includedir></busconfig>
""" % (t, t))
        r = subprocess.run(["dbus-daemon", "--config-file=" + t + "/bus.conf", "--fork", "--print-pid=1",
                            "--print-address=2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
        self.bus_pid = int(r.stdout.split()[0])
        self.bus = r.stderr.decode().strip().splitlines()[0]
        policy = "/usr/share/polkit-1/actions/dev.ferry.policy"
        if not os.path.exists(policy) or open(policy, "rb").read() != open(REPO + "/polkit/dev.ferry.policy", "rb").read():
            shutil.copy(REPO + "/polkit/dev.ferry.policy", policy)
            os.chmod(policy, 0o644)
            self.installed_policy = True
        with open(self.rule, "w") as f:
            f.write("""polkit.addRule(function(action, subject) {
    if ((action.id == "dev.ferry.install" || action.id == "dev.ferry.update" || action.id == "dev.ferry.uninstall")
        && subject.user == "%s") { return polkit.Result.YES; }
});
""" % USER)
        os.chmod(self.rule, 0o644)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus)
        self.procs.append(subprocess.Popen(["/usr/lib/polkit-1/polkitd", "--no-debug"], env=env,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.wait_name("org.freedesktop.PolicyKit1")
        # Static web server with its per-request byte log.
        self.http_log = t + "/http.log"
        open(self.http_log, "w").close()
        http = subprocess.Popen(["/usr/bin/python3", REPO + "/scripts/test-http-server.py", "--root",
                                 os.path.join(self.work, "layout"), "--log", self.http_log],
                                stdout=subprocess.PIPE)
        self.procs.append(http)
        self.url = "http://127.0.0.1:%s" % http.stdout.readline().split()[1].decode()
        # docker-registry for skopeo.
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        with open(t + "/registry.yml", "w") as f:
            f.write("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/registry\n"
                    "http:\n  addr: 127.0.0.1:%d\n" % (t, port))
        self.procs.append(subprocess.Popen(["/usr/bin/docker-registry", "serve", t + "/registry.yml"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.registry = "127.0.0.1:%d" % port
        for _ in range(100):
            if run(["curl", "-sf", "http://%s/v2/" % self.registry], check=False).returncode == 0:
                break
            time.sleep(0.1)
        for tag in ("big", "files"):
            run(["skopeo", "copy", "--dest-tls-verify=false", "oci:%s/push:%s" % (self.work, tag),
                 "docker://%s/bench/%s:latest" % (self.registry, tag)])

    def wait_name(self, name):
        for _ in range(200):
            if run(["busctl", "--address=" + self.bus, "status", name], check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise SystemExit("bench: %s did not appear on the bus" % name)

    def start_helper(self, root):
        """A fresh helper with its own --root (cold blob store), the bench remote configured in it."""
        self.stop_helper()
        self.ensure_policy()
        template = self.t + "/root-template"
        if os.path.isdir(template + "/etc/ferry"):
            shutil.copytree(template + "/etc/ferry", root + "/etc/ferry", symlinks=True)
        os.makedirs(root + "/etc/ferry/remotes.d", exist_ok=True)
        self.helper_log = open(self.t + "/helper.log", "a")
        self.helper = subprocess.Popen([self.build + "/ferry-helper", "--root", root, "--bus-address", self.bus,
                                        "--idle-timeout", "0"], stdout=self.helper_log, stderr=self.helper_log)
        self.wait_name("dev.ferry.Helper1")
        if not os.path.isdir(template):
            env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus, FERRY_SYSTEM_ROOT=root)
            run([self.build + "/ferry", "remote-add", "--system", "bench", self.url, "--ed25519-key",
                 os.path.join(self.work, "minisign.pub"), "--no-interaction"], env=env)
            shutil.copytree(root + "/etc/ferry", template + "/etc/ferry", symlinks=True)

    def ensure_policy(self):
        # Tests running at the same time install and remove the same policy file; polkitd reloads it.
        policy = "/usr/share/polkit-1/actions/dev.ferry.policy"
        want = open(REPO + "/polkit/dev.ferry.policy", "rb").read()
        if not os.path.exists(policy) or open(policy, "rb").read() != want:
            shutil.copy(REPO + "/polkit/dev.ferry.policy", policy)
            os.chmod(policy, 0o644)
            self.installed_policy = True
            time.sleep(1)

    def helper_hwm_kib(self):
        if not self.helper:
            return 0
        with open("/proc/%d/status" % self.helper.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def stop_helper(self):
        if self.helper:
            self.helper.terminate()
            self.helper.wait()
            self.helper = None
            for _ in range(100):
                if run(["busctl", "--address=" + self.bus, "status", "dev.ferry.Helper1"], check=False).returncode:
                    break
                time.sleep(0.05)

    def stop(self):
        self.stop_helper()
        for p in self.procs:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.bus_pid:
            try:
                os.kill(self.bus_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if os.path.exists(self.rule):
            os.unlink(self.rule)
        if self.installed_policy:
            os.unlink("/usr/share/polkit-1/actions/dev.ferry.policy")
        if self.created_user:
            run(["userdel", USER], check=False)
        # The generated images stay (reused by the next run); the registry copy and scratch homes go.
        shutil.rmtree(self.t, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------- measuring

class Home:
    """A fresh home for the bench user (empty XDG cache, data and config: a cold install)."""
    counter = 0

    def __init__(self, svc, root=None):
        Home.counter += 1
        self.svc = svc
        self.path = os.path.join(svc.t, "home%d" % Home.counter)
        os.makedirs(self.path)
        shutil.chown(self.path, USER)
        self.root = root or os.path.join(svc.t, "noroot")

    def env(self):
        return ["env", "-i", "HOME=" + self.path, "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
                "DBUS_SYSTEM_BUS_ADDRESS=" + self.svc.bus, "FERRY_SYSTEM_ROOT=" + self.root]

    def cmd(self, argv):
        return ["runuser", "-u", USER, "--"] + self.env() + argv

    def ferry(self, *args, check=True):
        return run(self.cmd([self.svc.build + "/ferry"] + list(args)), check=check)

    def timed(self, argv):
        """Runs argv as the bench user under /usr/bin/time -v: (seconds, max RSS KiB)."""
        out = os.path.join(self.path, ".time.out")
        t0 = time.monotonic()
        r = subprocess.run(self.cmd(["/usr/bin/time", "-v", "-o", out] + argv), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        dt = time.monotonic() - t0
        if r.returncode != 0:
            raise SystemExit("bench: %s failed: %s" % (" ".join(argv), r.stderr.decode()[-2000:]))
        rss = 0
        with open(out) as f:
            for line in f:
                if "Maximum resident set size" in line:
                    rss = int(line.split()[-1])
        return dt, rss

    def remove(self):
        run(["chmod", "-R", "u+rwX", self.path], check=False)
        shutil.rmtree(self.path, ignore_errors=True)


def drop_caches():
    # Page cache is left warm on purpose (the images come from a local server; we measure CPU and I/O paths, not
    # the disk the server reads from). Only dirty data is flushed so one run's writeback does not tax the next.
    os.sync()


def bench(args):
    quick = args.quick
    reps = args.reps or (3 if quick else 5)
    big_size = (64 << 20) if quick else (1 << 30)
    file_count = 2000 if quick else 20000
    ferry = args.build + "/ferry"
    meta = generate(args.work, ferry, big_size, file_count)
    svc = Services(args.work, args.build)
    results = {"reps": reps, "quick": quick, "rows": {}}
    rows = results["rows"]

    def record(name, values, unit, **extra):
        rows[name] = dict(values=values, median=statistics.median(values), unit=unit, **extra)
        log("%-40s median %.3f %s  %s" % (name, rows[name]["median"], unit, " ".join("%.3f" % v for v in values)))

    try:
        svc.start(meta)
        agent_rss = []
        helper_rss = []
        layers = meta["big_layers"]
        for image, ref, tag in (("big", BIG_REF, "big"), ("files", FILES_REF, "files")):
            user_t, sys_t, sk_t, floor_t = [], [], [], []
            for rep in range(reps):
                # ferry install --user, cold
                h = Home(svc)
                h.ferry("remote-add", "--user", "bench", svc.url, "--ed25519-key",
                        os.path.join(args.work, "minisign.pub"))
                drop_caches()
                dt, rss = h.timed([ferry, "install", "--user", "bench", ref, "--no-interaction"])
                user_t.append(dt)
                agent_rss.append(rss)
                h.remove()
                # ferry install --system, cold (fresh helper root and fresh user cache)
                root = os.path.join(svc.t, "root-%s-%d" % (image, rep))
                svc.start_helper(root)
                h = Home(svc, root)
                drop_caches()
                dt, rss = h.timed([ferry, "install", "--system", "bench", ref, "--no-interaction"])
                sys_t.append(dt)
                agent_rss.append(rss)
                helper_rss.append(svc.helper_hwm_kib())
                svc.stop_helper()
                shutil.rmtree(root, ignore_errors=True)
                h.remove()
                # skopeo copy + umoci unpack, same image from docker-registry
                h = Home(svc)
                drop_caches()
                script = ("skopeo copy -q --src-tls-verify=false docker://%s/bench/%s:latest oci:%s/oci:latest && "
                          "umoci unpack --rootless --image %s/oci:latest %s/bundle"
                          % (svc.registry, tag, h.path, h.path, h.path))
                dt, _ = h.timed(["/bin/sh", "-c", script])
                sk_t.append(dt)
                h.remove()
                # curl | tar, each layer in order, from the web server: the floor (no verification at all)
                h = Home(svc)
                manifest = json.load(open(os.path.join(args.work, "layout/blobs/sha256",
                                                       meta[image]["digest"].split(":")[1])))
                cmds = ["mkdir -p %s/rootfs" % h.path] + [
                    "curl -sf %s/blobs/sha256/%s | tar -xzf - -C %s/rootfs"
                    % (svc.url, l["digest"].split(":")[1], h.path) for l in manifest["layers"]]
                drop_caches()
                dt, _ = h.timed(["/bin/sh", "-c", " && ".join(cmds)])
                floor_t.append(dt)
                h.remove()
            record("%s: ferry install --user" % image, user_t, "s")
            record("%s: ferry install --system" % image, sys_t, "s")
            record("%s: skopeo copy + umoci unpack" % image, sk_t, "s")
            record("%s: curl | tar (floor)" % image, floor_t, "s")

        # No-op update of 50 installed refs (--user).
        h = Home(svc)
        h.ferry("remote-add", "--user", "bench", svc.url, "--ed25519-key", os.path.join(args.work, "minisign.pub"))
        for ref in TINY_REFS:
            h.ferry("install", "--user", "bench", ref, "--no-interaction")
        noop = []
        for rep in range(reps):
            dt, rss = h.timed([ferry, "update", "--user", "--no-interaction"])
            noop.append(dt)
        record("no-op update, 50 refs (--user)", noop, "s")
        h.remove()

        # Incremental update: one of 8 layers changed; bytes fetched from the server's request log.
        layout = os.path.join(args.work, "layout")
        inc_bytes, inc_time = [], []
        for rep in range(max(1, reps // 2)):
            shutil.copy(os.path.join(layout, "index-v1.json"), os.path.join(layout, "index.json"))
            h = Home(svc)
            h.ferry("remote-add", "--user", "bench", svc.url, "--ed25519-key",
                    os.path.join(args.work, "minisign.pub"))
            h.ferry("install", "--user", "bench", BIG_REF, "--no-interaction")
            shutil.copy(os.path.join(layout, "index-v2.json"), os.path.join(layout, "index.json"))
            start = os.path.getsize(svc.http_log)
            dt, rss = h.timed([ferry, "update", "--user", "--no-interaction", BIG_REF])
            agent_rss.append(rss)
            with open(svc.http_log) as f:
                f.seek(start)
                fetched = sum(json.loads(line)["bytes"] for line in f if line.strip())
            inc_bytes.append(fetched / meta["changed_layer_size"])
            inc_time.append(dt)
            h.remove()
        shutil.copy(os.path.join(layout, "index-v1.json"), os.path.join(layout, "index.json"))
        record("incremental update: bytes / changed layer", inc_bytes, "x",
               changed_layer=meta["changed_layer_size"])
        record("incremental update time", inc_time, "s")
        record("peak RSS agent (max of runs)", [max(agent_rss) / 1024], "MiB")
        record("peak RSS helper (max of runs)", [max(helper_rss) / 1024], "MiB")

        # Hashing throughput: the biggest layer blob file (warm in the page cache), Ferry vs openssl.
        hfile = os.path.join(svc.t, "hash.bin")
        with open(hfile, "wb") as f:
            chunk = random.Random(9).randbytes(64 << 20)
            for _ in range(max(1, big_size // len(chunk))):
                f.write(chunk)
        size = os.path.getsize(hfile)
        run(["cat", hfile])
        fh, oh = [], []
        for rep in range(reps):
            t0 = time.monotonic()
            run([ferry, "debug-hash", hfile])
            fh.append(size / (time.monotonic() - t0) / 1e6)
            t0 = time.monotonic()
            run(["openssl", "dgst", "-sha256", hfile])
            oh.append(size / (time.monotonic() - t0) / 1e6)
        record("sha256: ferry debug-hash", fh, "MB/s")
        record("sha256: openssl dgst", oh, "MB/s")
        os.unlink(hfile)
    finally:
        svc.stop()
    results["meta"] = {"big_size": meta["big_size"], "big_compressed": meta["big_compressed"],
                       "file_count": meta["file_count"], "changed_layer_size": meta["changed_layer_size"]}
    return results


def bench_log(args, results):
    """The transparency-log rows (see the module docstring)."""
    quick = args.quick
    reps = args.reps or (3 if quick else 5)
    size = 100_000 if quick else 1_000_000
    ferry = args.build + "/ferry"
    work = os.path.join(args.work, "log-%d" % size)
    layout = os.path.join(work, "layout")
    ready = os.path.join(work, "ready")
    if not os.path.exists(ready):
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(os.path.join(work, "app", "bin"))
        log("building a log of %d entries in %s" % (size, work))
        run(["minisign", "-G", "-W", "-p", work + "/minisign.pub", "-s", work + "/minisign.key"])
        run([ferry, "log", "keygen", "bench.example/log", "--output", work + "/log"])
        with open(os.path.join(work, "app", "bin", "hello"), "w") as f:
            f.write("#!/bin/sh\necho hello\n")
        run([ferry, "build", work + "/app", layout, "--ref", BIG_REF])
        run([ferry, "log", "init", layout, "--key", work + "/log.key"])
        run([ferry, "sign", layout, "--ref", BIG_REF, "--ed25519-key", work + "/minisign.key", "--log-key",
             work + "/log.key"])
        bundle = open(os.path.join(layout, "log/tile/entries/000.p/1"), "rb").read()
        with open(work + "/entry", "wb") as f:
            f.write(bundle[2:2 + int.from_bytes(bundle[:2], "big")])
        t0 = time.monotonic()
        run([ferry, "debug-log-fill", layout, "--key", work + "/log.key", "--entry", work + "/entry",
             "--count", str(size - 1), "--keep-checkpoint", "%d:%s/trusted" % (size - 1000, work)])
        log("log of %d entries built in %.1f s" % (size, time.monotonic() - t0))
        open(ready, "w").close()
    port_file = os.path.join(work, "http.port")
    server = subprocess.Popen(["/usr/bin/python3", os.path.join(REPO, "scripts/test-http-server.py"), "--root", layout,
                               "--log", os.path.join(work, "http.log")], stdout=open(port_file, "w"))
    try:
        for _ in range(100):
            if os.path.getsize(port_file) > 0:
                break
            time.sleep(0.05)
        url = "http://127.0.0.1:" + open(port_file).read().split()[1]
        proof, bundle, verify = [], [], []
        for _ in range(reps):
            out = run([ferry, "debug-log-update", url, "--log-key", work + "/log.vkey", "--index", str(size - 500),
                       "--trusted", work + "/trusted"], capture=True).stdout
            answer = json.loads(out)
            proof.append((answer["checkpoint_bytes"] + answer["tile_bytes"]) / 1024)
            bundle.append(answer["bundle_bytes"] / 1024)
            verify.append(answer["verify_cpu_ms"])
        rows = results["rows"]

        def record(name, values, unit):
            rows[name] = dict(values=values, median=statistics.median(values), unit=unit)
            log("%-40s median %.3f %s" % (name, rows[name]["median"], unit))

        record("log update: checkpoint + proof tiles", proof, "KiB")
        record("log update: the entry's bundle", bundle, "KiB")
        record("log update: helper check CPU", verify, "ms")
        audit = []
        for _ in range(1 if not quick else 2):
            home = os.path.join(work, "audit-home")
            shutil.rmtree(home, ignore_errors=True)
            os.makedirs(home)
            env = dict(os.environ, HOME=home, XDG_CACHE_HOME=home + "/.cache", XDG_CONFIG_HOME=home + "/.config")
            t0 = time.monotonic()
            run([ferry, "log", "audit", url, "--log-key", work + "/log.vkey", "--ed25519-key",
                 work + "/minisign.pub", "--json"], env=env)
            audit.append(time.monotonic() - t0)
            shutil.rmtree(home, ignore_errors=True)
        record("log audit, whole log, cold", audit, "s")
        results["log_size"] = size
    finally:
        server.terminate()
        server.wait()


def table(results):
    r = results["rows"]
    m = lambda k: r[k]["median"]
    lines = []
    if "meta" not in results:
        lines.append("Ferry bench, transparency log only (%d entries)" % results["log_size"])
        lines.append("")
        lines.append("| measurement | median | ratio | target | ok |")
        lines.append("|---|---:|---:|---|---|")
        log_rows(lines, results)
        return "\n".join(lines)
    meta = results["meta"]
    lines.append("Ferry bench (%s; %d reps; big image %d MiB in 8 gzip layers, %d MiB compressed; %d small files)"
                 % ("quick" if results["quick"] else "full", results["reps"], meta["big_size"] >> 20,
                    meta["big_compressed"] >> 20, meta["file_count"]))
    lines.append("")
    lines.append("| measurement | median | ratio | target | ok |")
    lines.append("|---|---:|---:|---|---|")

    def row(name, value, ratio=None, target="", ok=None):
        lines.append("| %s | %s | %s | %s | %s |" % (name, value, "" if ratio is None else "%.2fx" % ratio, target,
                                                  "" if ok is None else ("yes" if ok else "NO")))

    for image in ("big", "files"):
        sk = m("%s: skopeo copy + umoci unpack" % image)
        user = m("%s: ferry install --user" % image)
        system = m("%s: ferry install --system" % image)
        floor = m("%s: curl | tar (floor)" % image)
        row("%s: curl \\| tar (floor)" % image, "%.2f s" % floor, floor / sk, "(vs skopeo+umoci)")
        row("%s: skopeo copy + umoci unpack" % image, "%.2f s" % sk, 1.0)
        row("%s: ferry install --user" % image, "%.2f s" % user, user / sk, "<= 0.70x skopeo+umoci",
            user / sk <= 0.7)
        row("%s: ferry install --system" % image, "%.2f s" % system, system / user, "<= 1.20x --user",
            system / user <= 1.2)
    noop = m("no-op update, 50 refs (--user)")
    row("no-op update, 50 refs", "%.3f s" % noop, None, "< 1 s", noop < 1)
    inc = m("incremental update: bytes / changed layer")
    row("incremental update (1 of 8 layers), bytes fetched", "%.2f MiB" % (inc * meta["changed_layer_size"] / 2**20),
        inc, "<= 1.05x changed layer", inc <= 1.05)
    row("incremental update time", "%.2f s" % m("incremental update time"))
    a, hl = m("peak RSS agent (max of runs)"), m("peak RSS helper (max of runs)")
    row("peak RSS agent", "%.1f MiB" % a, None, "< 64 MiB", a < 64)
    row("peak RSS helper", "%.1f MiB" % hl, None, "< 64 MiB", hl < 64)
    fh, oh = m("sha256: ferry debug-hash"), m("sha256: openssl dgst")
    row("sha256 openssl dgst", "%.0f MB/s" % oh, 1.0)
    row("sha256 ferry (DigestHasher)", "%.0f MB/s" % fh, fh / oh, ">= 0.80x openssl", fh / oh >= 0.8)
    if "log_size" in results:
        log_rows(lines, results)
    return "\n".join(lines)


def log_rows(lines, results):
    r = results["rows"]
    m = lambda k: r[k]["median"]
    n = results["log_size"]
    proof, bundle = m("log update: checkpoint + proof tiles"), m("log update: the entry's bundle")
    verify, audit = m("log update: helper check CPU"), m("log audit, whole log, cold")
    lines.append("| log of %d: one update, checkpoint + proof tiles | %.1f KiB | | <= 64 KiB | %s |"
                 % (n, proof, "yes" if proof <= 64 else "NO"))
    lines.append("| log of %d: one update, the entry's bundle | %.1f KiB | | (the new entries) | |" % (n, bundle))
    lines.append("| log of %d: one update, helper check CPU | %.2f ms | | <= 50 ms | %s |"
                 % (n, verify, "yes" if verify <= 50 else "NO"))
    lines.append("| log of %d: ferry log audit, whole log, cold | %.1f s | | | |" % (n, audit))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(REPO, ".build-bench/release"))
    ap.add_argument("--work", default=os.environ.get("BENCH_WORK", "/var/tmp/ferry-bench"))
    ap.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1")
    ap.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", "0")))
    ap.add_argument("--json")
    ap.add_argument("--generate-only", action="store_true", help="only build (or reuse) the images")
    ap.add_argument("--log-only", action="store_true", help="only the transparency-log rows")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (private system bus, polkitd, ferry-helper)")
    args.build = os.path.abspath(args.build)
    if args.quick:
        args.work += "-quick"
    os.makedirs(args.work, exist_ok=True)
    if args.generate_only:
        generate(args.work, args.build + "/ferry", (64 << 20) if args.quick else (1 << 30),
                 2000 if args.quick else 20000)
        return
    if args.log_only:
        results = {"reps": args.reps, "quick": args.quick, "rows": {}}
    else:
        results = bench(args)
    bench_log(args, results)
    out = table(results)
    print(out)
    path = args.json or os.path.join(args.work, "results.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(args.work, "table.md"), "w") as f:
        f.write(out + "\n")


if __name__ == "__main__":
    main()
