#!/usr/bin/python3
"""Runs a command inside the sandbox a systemd service unit declares, without systemd.

    unit-sandbox.py UNIT [--relocate ROOT] [--keep PATH]... [--user NAME] -- COMMAND [ARG]...

Ferry's tests run the real helper (and the timer's agent) under the sandbox of the unit files that ship, read from
those files, so a unit that breaks or weakens the program fails `make test` instead of a user's install. Run as
root. What is reproduced, from the [Service] section:

- PrivateNetwork=yes            a new network namespace (only loopback, down)
- ProtectSystem=strict|full|yes a mount namespace: everything (or /usr, /boot, /efi, and /etc for full) read-only
- ReadWritePaths=, StateDirectory=, ConfigurationDirectory=, CacheDirectory=, LogsDirectory=
                                writable again; with --relocate ROOT, path P means ROOT/P (the program's `--root`)
                                and the *Directory= ones are created as systemd would (owned by User=)
- PrivateTmp=yes                empty /tmp and /var/tmp (--keep PATH binds what the test needs back, e.g. the
                                private bus socket, which stands in for /run/dbus/system_bus_socket)
- ProtectHome=yes|read-only|tmpfs  /home, /root and /run/user hidden (read-only for read-only)
- PrivateDevices=yes            a /dev with only null, zero, full, random, urandom and tty
- ProtectKernelTunables=yes     /proc/sys and /sys read-only
- User=, Group= (or --user)     setpriv --reuid --regid --init-groups
- CapabilityBoundingSet=, NoNewPrivileges=  setpriv --bounding-set, --no-new-privs
- SystemCallFilter=, SystemCallErrorNumber=, SystemCallArchitectures=native
                                one seccomp filter built with libseccomp from the groups as `systemd-analyze
                                syscall-filter` expands them, combined as systemd combines the lines: the first line
                                decides allow-list or deny-list (an allow-list starts from @default), later lines
                                add to or take from that list in order, `~` inverting
- RestrictAddressFamilies=      a seccomp filter on socket()'s family (EAFNOSUPPORT, as systemd answers)
- UMask=                        the umask (systemd's default 0022 without it)

Not reproduced (each takes away something neither Ferry program uses; `systemd-analyze security` scores them):
MemoryDenyWriteExecute=, RestrictNamespaces=, RestrictRealtime=, RestrictSUIDSGID=, LockPersonality=, ProtectClock=,
ProtectHostname=, ProtectKernelModules=, ProtectKernelLogs=, ProtectControlGroups=, ProtectProc=, Environment=
(the caller sets the environment), and bringing loopback up in the new network namespace.

Anything the unit sets in those keys that this script cannot reproduce stops it with an error, so a test never
passes on a sandbox that was silently left out. Stages: this process works out the filters, unshares and mounts,
then execs setpriv, which execs this script again with --seccomp (the filters arrive in a memfd); that loads them
and execs COMMAND, so COMMAND keeps this PID.
"""

import ctypes
import errno
import os
import grp
import json
import pwd
import re
import seccomp
import socket
import subprocess
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1

libc = ctypes.CDLL(None, use_errno=True)


def fail(message):
    print("unit-sandbox: " + message, file=sys.stderr)
    sys.exit(1)


def check(result, what):
    if result < 0:
        code = ctypes.get_errno()
        fail("%s: %s" % (what, os.strerror(code)))
    return result


class Unit:
    """The [Service] section of a unit file: every assignment of each key, in order (systemd's list semantics)."""

    def __init__(self, path):
        self.path = path
        self.values = {}
        section = None
        with open(path, encoding="utf-8") as f:
            text = f.read().replace("\\\n", " ")
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            if section != "Service" or "=" not in line:
                continue
            key, value = line.split("=", 1)
            self.values.setdefault(key.strip(), []).append(value.strip())

    def all(self, key):
        return self.values.get(key, [])

    def last(self, key, default=""):
        values = self.all(key)
        return values[-1] if values else default

    def flag(self, key):
        value = self.last(key, "no").lower()
        if value in ("yes", "true", "on", "1"):
            return True
        if value in ("no", "false", "off", "0"):
            return False
        fail("%s=%s: not a boolean this script reproduces" % (key, value))

    def words(self, key):
        """A list setting: words of every assignment; an empty assignment resets the list."""
        words = []
        for value in self.all(key):
            if value == "":
                words = []
            else:
                words.extend(value.split())
        return words


# ---------------------------------------------------------------------------------------------------- mounts

def relocated(root, path):
    return root + path if root else path


def state_directories(unit, root):
    """The *Directory= settings as (path, writable) under their systemd bases, created like systemd creates them."""
    bases = {"StateDirectory": "/var/lib", "ConfigurationDirectory": "/etc", "CacheDirectory": "/var/cache",
             "LogsDirectory": "/var/log"}
    user = unit.last("User")
    paths = []
    for key, base in bases.items():
        for name in unit.words(key):
            path = relocated(root, base + "/" + name.split(":")[0])
            os.makedirs(path, mode=0o755, exist_ok=True)
            if user and key != "ConfigurationDirectory":
                entry = pwd.getpwnam(user)
                os.chown(path, entry.pw_uid, entry.pw_gid)
            paths.append(path)
    return paths


def mount(source, target, fstype, flags, data=None):
    check(libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(), ctypes.c_ulong(flags),
                     data and data.encode()), "mount %s on %s" % (source or fstype, target))


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]


def set_read_only(path, read_only, recursive=True):
    """mount_setattr(2) on the tree at path: only the read-only attribute changes, every other flag stays."""

    number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, "mount_setattr")
    attr = MountAttr(MOUNT_ATTR_RDONLY if read_only else 0, 0 if read_only else MOUNT_ATTR_RDONLY, 0, 0)
    check(libc.syscall(ctypes.c_long(number), ctypes.c_int(AT_FDCWD), path.encode(),
                       ctypes.c_uint(AT_RECURSIVE if recursive else 0), ctypes.byref(attr),
                       ctypes.c_size_t(ctypes.sizeof(attr))), "mount_setattr " + path)


def mount_points():
    """This namespace's mount points, parents first (field 5 of mountinfo, octal escapes undone)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        points = [line.split()[4] for line in f]
    return [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), p) for p in points]


def bind(source, target, read_only=None):
    mount(source, target, None, MS_BIND | MS_REC)
    if read_only is not None:
        set_read_only(target, read_only)


def bind_back(fd, path):
    """Binds the inode opened (O_PATH) before an overmount back at its old path, creating the mount point."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.isdir("/proc/self/fd/%d" % fd):
        os.makedirs(path, exist_ok=True)
    elif not os.path.lexists(path):
        open(path, "w").close()
    bind("/proc/self/fd/%d" % fd, path)


def private_devices():
    """A /dev like systemd's PrivateDevices=yes: the harmless pseudo-devices, nothing with hardware behind it."""
    old = os.open("/dev", os.O_PATH | os.O_DIRECTORY)
    mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755")
    for name in ("null", "zero", "full", "random", "urandom", "tty"):
        open("/dev/" + name, "w").close()
        bind("/proc/self/fd/%d/%s" % (old, name), "/dev/" + name)
    os.makedirs("/dev/shm", mode=0o1777)
    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, "/dev/" + name)
    os.close(old)


def build_namespaces(unit, root, keep, programs=()):
    if any(p.lstrip("-").startswith("+") for p in unit.words("ReadWritePaths")):
        fail("ReadWritePaths with '+' (RootDirectory=) is not reproduced")
    # A '-' path may be missing; any other missing path stops the service, as it stops systemd's start.
    rw = [relocated(root, p.lstrip("-")) for p in unit.words("ReadWritePaths")
          if not p.startswith("-") or os.path.exists(relocated(root, p.lstrip("-")))]
    rw += state_directories(unit, root)
    flags = CLONE_NEWNS
    if unit.flag("PrivateNetwork"):
        flags |= CLONE_NEWNET
    check(libc.unshare(ctypes.c_int(flags)), "unshare")
    mount(None, "/", None, MS_REC | MS_PRIVATE)

    # Everything the test needs that an overmount below would hide, opened first: the relocated root, kept paths.
    kept = {path: os.open(path, os.O_PATH) for path in ([root] if root else []) + keep}
    # This script (run again after setpriv) and the program it starts, read-only: a checkout under /tmp would
    # otherwise vanish behind PrivateTmp=, as it would never do on a real system.
    programs = {path: os.open(path, os.O_PATH) for path in programs if path not in kept}
    writable = {path: os.open(path, os.O_PATH) for path in rw}

    protect = unit.last("ProtectSystem", "no").lower()
    if protect == "strict":
        # Every mount read-only but the API file systems (ProtectKernelTunables= and PrivateDevices= handle those);
        # one mount at a time, so that a mount the host made read-only under /proc or /sys stays so.
        for point in mount_points():
            if not any(point == api or point.startswith(api + "/") for api in ("/proc", "/dev", "/sys")):
                set_read_only(point, True, recursive=False)
    elif protect in ("yes", "true", "full"):
        for path in ["/usr", "/boot", "/efi"] + (["/etc"] if protect == "full" else []):
            if os.path.isdir(path):
                bind(path, path, read_only=True)
    elif protect not in ("no", "false"):
        fail("ProtectSystem=%s is not reproduced" % protect)

    if unit.flag("PrivateTmp"):
        for path in ("/tmp", "/var/tmp"):
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    home = unit.last("ProtectHome", "no").lower()
    if home in ("yes", "true", "tmpfs", "read-only"):
        for path in ("/home", "/root", "/run/user"):
            if not os.path.isdir(path):
                continue
            if home == "read-only":
                bind(path, path, read_only=True)
            else:
                mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "mode=0755")
    elif home not in ("no", "false"):
        fail("ProtectHome=%s is not reproduced" % home)
    if unit.flag("PrivateDevices"):
        private_devices()
    if unit.flag("ProtectKernelTunables"):
        bind("/proc/sys", "/proc/sys", read_only=True)
        set_read_only("/sys", True)

    for path, fd in kept.items():
        bind_back(fd, path)
    for path, fd in writable.items():
        bind_back(fd, path)
        set_read_only(path, False)
    for path, fd in programs.items():
        bind_back(fd, path)
        set_read_only(path, True, recursive=False)
    for fd in list(kept.values()) + list(writable.values()) + list(programs.values()):
        os.close(fd)
    os.chdir("/")


# ---------------------------------------------------------------------------------------------------- credentials

def capability_names():
    """Every capability this kernel knows, as setpriv names them (`cap_chown` → `chown`)."""
    out = subprocess.run(["setpriv", "--list-caps"], check=True, capture_output=True, text=True).stdout
    return [name.strip() for name in out.split()]


def bounding_set(unit):
    """CapabilityBoundingSet= as systemd combines it: assignments OR together, `~` inverts one, empty resets."""
    known = capability_names()
    result = None
    for value in unit.all("CapabilityBoundingSet"):
        if value == "":
            result = set()
            continue
        invert = value.startswith("~")
        names = set()
        for word in value.lstrip("~").split():
            name = word.lower()
            name = name[4:] if name.startswith("cap_") else name
            if name not in known:
                fail("CapabilityBoundingSet: unknown capability " + word)
            names.add(name)
        if invert:
            names = set(known) - names
        result = names if result is None else result | names
    return result


def setpriv_command(unit, user):
    command = ["setpriv"]
    caps = bounding_set(unit)
    if caps is not None:
        command.append("--bounding-set=" + ",".join(["-all"] + ["+" + c for c in sorted(caps)]))
    if unit.flag("NoNewPrivileges"):
        command.append("--no-new-privs")
    user = user or unit.last("User")
    if user and user != "root":
        entry = pwd.getpwnam(user)
        group = unit.last("Group")
        gid = grp.getgrnam(group).gr_gid if group else entry.pw_gid
        command += ["--reuid=%d" % entry.pw_uid, "--regid=%d" % gid, "--init-groups", "--inh-caps=-all"]
    return command


# ---------------------------------------------------------------------------------------------------- seccomp

def expand(group, cache={}):
    """The system calls of `@group` (nested groups included), as `systemd-analyze syscall-filter` lists them."""
    if not group.startswith("@"):
        return {group}
    if group not in cache:
        out = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True, text=True)
        if out.returncode != 0:
            fail("systemd-analyze syscall-filter %s: %s" % (group, out.stderr.strip()))
        names = set()
        for line in out.stdout.splitlines()[1:]:
            word = line.strip()
            if word and not word.startswith("#"):
                names |= expand(word)
        cache[group] = names
    return cache[group]


def syscall_filter(unit):
    """SystemCallFilter= lines combined as systemd does: (allow-list?, the set of names), or None for no filter."""
    allow_list = None
    names = set()
    for value in unit.all("SystemCallFilter"):
        if value == "":
            allow_list, names = None, set()
            continue
        invert = value.startswith("~")
        if allow_list is None:
            allow_list = not invert
            if allow_list:
                names |= expand("@default")
        for word in value.lstrip("~").split():
            if ":" in word:
                fail("SystemCallFilter: per-call errno (%s) is not reproduced" % word)
            if invert == allow_list:
                names -= expand(word)
            else:
                names |= expand(word)
    return None if allow_list is None else (allow_list, names)


def error_number(unit):
    """SystemCallErrorNumber=: an errno name, or None for systemd's default of killing the process."""
    value = unit.last("SystemCallErrorNumber")
    if not value or value == "kill":
        return None
    if not hasattr(errno, value):
        fail("SystemCallErrorNumber=%s is not reproduced" % value)
    return value


def address_families(unit):
    """RestrictAddressFamilies=: (deny-list?, family numbers), or None when unrestricted."""
    words = unit.words("RestrictAddressFamilies")
    if not words:
        return None
    if words == ["none"]:
        return (False, [])
    invert = words[0].startswith("~")
    families = []
    for word in [words[0].lstrip("~")] + words[1:]:
        family = getattr(socket, word, None)
        if family is None:
            fail("RestrictAddressFamilies: unknown family " + word)
        families.append(int(family))
    return (invert, families)


def seccomp_plan(unit):
    """What the --seccomp stage loads, worked out before the mounts (the unit file may live where they hide)."""
    arches = unit.words("SystemCallArchitectures")
    if arches and arches != ["native"]:
        fail("SystemCallArchitectures=%s is not reproduced" % " ".join(arches))
    plan = {"families": address_families(unit), "filter": None, "errno": error_number(unit)}
    calls = syscall_filter(unit)
    if calls is not None:
        plan["filter"] = {"allow_list": calls[0], "names": sorted(calls[1])}
    return plan


def load_seccomp(plan):

    # libseccomp filters only the native ABI and kills calls through any other: SystemCallArchitectures=native.
    if plan["families"] is not None:
        invert, families = plan["families"]
        f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        limit = 64
        for family in range(limit):
            if (family in families) == invert:
                f.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.EQ, family))
        if not invert:
            f.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.GE, limit))
        f.load()
    if plan["filter"] is None:
        return
    denied = seccomp.ERRNO(getattr(errno, plan["errno"])) if plan["errno"] else seccomp.KILL_PROCESS
    allow_list = plan["filter"]["allow_list"]
    f = seccomp.SyscallFilter(defaction=denied if allow_list else seccomp.ALLOW)
    for name in plan["filter"]["names"]:
        # Calls of other ABIs (chown32, …) resolve to negative pseudo numbers; systemd skips them too.
        if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) >= 0:
            f.add_rule(seccomp.ALLOW if allow_list else denied, name)
    f.load()


# ---------------------------------------------------------------------------------------------------- main

def main(argv):
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        fail("usage: unit-sandbox.py UNIT [--relocate ROOT] [--keep PATH]... [--user NAME] -- COMMAND [ARG]...")
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    if options and options[0] == "--seccomp":
        with os.fdopen(int(options[1]), encoding="utf-8") as f:
            plan = json.load(f)
        load_seccomp(plan)
        os.execvp(command[0], command)
    unit_path, root, keep, user = None, None, [], None
    i = 0
    while i < len(options):
        if options[i] in ("--relocate", "--keep", "--user"):
            if i + 1 >= len(options):
                fail("%s needs a value" % options[i])
            value = options[i + 1]
            if options[i] == "--relocate":
                root = os.path.realpath(value)
            elif options[i] == "--keep":
                keep.append(os.path.realpath(value))
            else:
                user = value
            i += 2
        elif unit_path is None:
            unit_path = os.path.realpath(options[i])
            i += 1
        else:
            fail("unexpected argument " + options[i])
    if os.getuid() != 0:
        fail("needs root (it builds namespaces and drops privileges the way systemd does)")
    unit = Unit(unit_path)
    plan = os.memfd_create("unit-sandbox-plan", 0)
    os.write(plan, json.dumps(seccomp_plan(unit)).encode())
    os.lseek(plan, 0, os.SEEK_SET)
    os.set_inheritable(plan, True)
    programs = [os.path.realpath(__file__)]
    if os.path.isabs(command[0]) and os.path.exists(command[0]):
        # Run by its real path: only the file itself is bound back, not symlinks on the way to it (.build/debug).
        command[0] = os.path.realpath(command[0])
        programs.append(command[0])
    build_namespaces(unit, root, keep, programs)
    os.umask(int(unit.last("UMask", "0022"), 8))
    setpriv = setpriv_command(unit, user)
    os.execvp(setpriv[0], setpriv + ["--", "/usr/bin/python3", os.path.realpath(__file__), "--seccomp", str(plan),
                                      "--"] + command)


if __name__ == "__main__":
    main(sys.argv[1:])
