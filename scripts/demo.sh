#!/usr/bin/env bash
# Ferry's demo: the whole story on one machine, cleaned up afterwards.
# A publisher signs an app, logs every release in a transparency log that a witness cosigns, and serves it from a
# plain web server; an administrator blesses the remote (its keys, its log key, the witness) once; an unprivileged
# desktop user installs and updates it system-wide without a password; a replayed old release and a forked log are
# refused; the publisher rotates its key in-band and recalls a bad release, and the user's updates follow with no
# new blessing and no password; the user copies the remote to a "USB stick" and installs from it with the network
# cut.
# Needs root (it starts a private system bus, polkitd and the helper).
set -euo pipefail
BUILD=${1:-.build/debug}
REPO=$(cd "$(dirname "$0")/.." && pwd)
FERRY=$(readlink -f "$BUILD/ferry")
HELPER=$(readlink -f "$BUILD/ferry-helper")
REF=org.example.Hello/x86_64/stable
DEMO_USER=ferry-demo
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it starts a private system bus, polkitd and ferry-helper)" >&2; exit 1; }

T=$(mktemp -d /tmp/ferry-demo.XXXX)
chmod 755 "$T"
pids=()
created_user=0
installed_policy=0
cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  [ -f "$T/bus.pid" ] && kill "$(cat "$T/bus.pid")" 2>/dev/null
  rm -f /etc/polkit-1/rules.d/10-ferry-demo.rules
  [ "$installed_policy" = 1 ] && rm -f /usr/share/polkit-1/actions/dev.ferry.policy
  [ "$created_user" = 1 ] && userdel "$DEMO_USER" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
as_user() {
  runuser -u "$DEMO_USER" -- env -i HOME="$T/home" PATH=/usr/bin:/bin LANG=C.UTF-8 \
    DBUS_SYSTEM_BUS_ADDRESS="$BUS" FERRY_SYSTEM_ROOT="$T/root" "$FERRY" "$@"
}

step "A private system bus, polkitd with Ferry's policy, and ferry-helper as root"
mkdir -p "$T/system.d" "$T/root/etc/ferry/remotes.d" "$T/home"
cp "$REPO/dbus/dev.ferry.Helper1.conf" "$T/system.d/"
sed -e "s|@SOCKET@|$T/bus|" -e "s|@SERVICES@|$T/system.d|" "$REPO/scripts/private-system-bus.conf" > "$T/bus.conf"
dbus-daemon --config-file="$T/bus.conf" --fork --print-pid=3 --print-address=4 3>"$T/bus.pid" 4>"$T/bus.address"
BUS=$(cat "$T/bus.address")
if ! cmp -s "$REPO/polkit/dev.ferry.policy" /usr/share/polkit-1/actions/dev.ferry.policy; then
  install -m 0644 "$REPO/polkit/dev.ferry.policy" /usr/share/polkit-1/actions/dev.ferry.policy
  installed_policy=1
fi
# The administrator's blessing: the desktop user may install and update from blessed remotes, no password.
install -m 0644 /dev/stdin /etc/polkit-1/rules.d/10-ferry-demo.rules <<JS
polkit.addRule(function(action, subject) {
    if ((action.id == "dev.ferry.install" || action.id == "dev.ferry.update") && subject.user == "$DEMO_USER") {
        return polkit.Result.YES;
    }
});
JS
# Started as root, polkitd switches to its own user itself.
DBUS_SYSTEM_BUS_ADDRESS="$BUS" /usr/lib/polkit-1/polkitd --no-debug >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do busctl --address="$BUS" status org.freedesktop.PolicyKit1 >/dev/null 2>&1 && break; sleep 0.1; done
"$HELPER" --root "$T/root" --bus-address "$BUS" --idle-timeout 0 >"$T/helper.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do busctl --address="$BUS" status dev.ferry.Helper1 >/dev/null 2>&1 && break; sleep 0.1; done
echo "bus $BUS; helper pid ${pids[1]}; state under $T/root/var/lib/ferry"

step "The publisher builds, signs and logs Hello v1; a witness cosigns the log; a plain web server serves it"
mkdir -p "$T/pub"
minisign -G -W -p "$T/pub/minisign.pub" -s "$T/pub/minisign.key" >/dev/null
"$FERRY" log keygen demo.example/apps/log --output "$T/pub/log" >/dev/null
"$FERRY" log keygen witness.example/w1 --witness --output "$T/w1" >/dev/null
mkdir -p "$T/pub/layout"
"$FERRY" log init "$T/pub/layout" --key "$T/pub/log.key"
# A witness run by someone else (here: on this machine): it cosigns only checkpoints consistent with what it saw.
"$FERRY" witness serve --key "$T/w1.key" --log "$T/pub/log.vkey" --state "$T/w1-state" > "$T/w1.out" &
pids+=($!)
for _ in $(seq 100); do grep -q "^listening on" "$T/w1.out" 2>/dev/null && break; sleep 0.1; done
WITNESS=$(sed -n 's/^listening on //p' "$T/w1.out")
witness_log() { "$FERRY" log witness "$T/pub/layout" --witness "$WITNESS" --witness-key "$T/w1.vkey"; }
make_app() {
  rm -rf "$T/pub/app"; mkdir -p "$T/pub/app/bin" "$T/pub/app/share/applications"
  printf '#!/bin/sh\necho "Hello from Ferry demo app %s"\n' "$1" > "$T/pub/app/bin/hello"
  chmod 755 "$T/pub/app/bin/hello"
  printf '[Desktop Entry]\nType=Application\nName=Hello\nExec=hello\n' > "$T/pub/app/share/applications/org.example.Hello.desktop"
  DIGEST=$("$FERRY" build "$T/pub/app" "$T/pub/layout" --ref "$REF" --command /bin/hello --compression zstd)
  echo "$DIGEST"
  DIGEST=${DIGEST##* }
  "$FERRY" sign "$T/pub/layout" --ref "$REF" --ed25519-key "${3:-$T/pub/minisign.key}" --timestamp "$2" \
    --log-key "$T/pub/log.key"
}
make_app v1 "$(($(date +%s) - 60))"
witness_log
cp "$T/pub/layout/index.json" "$T/pub/index-v1.json"
/usr/bin/python3 "$REPO/scripts/test-http-server.py" --root "$T/pub/layout" --log "$T/http.log" > "$T/http.port" &
pids+=($!)
for _ in $(seq 50); do [ -s "$T/http.port" ] && break; sleep 0.1; done
URL="http://127.0.0.1:$(cut -d' ' -f2 "$T/http.port")"
"$FERRY" verify "$T/pub/layout" --ref "$REF" --ed25519-key "$T/pub/minisign.pub"

# The .ferryrepo the publisher hands out: everything a remote is blessed with, in one file.
cat > "$T/pub/demo.ferryrepo" <<TOML
url = "$URL"
ed25519-keys = ["$(tail -n 1 "$T/pub/minisign.pub")"]
log-key = "$(cat "$T/pub/log.vkey")"
witness-keys = ["$(cat "$T/w1.vkey")"]
TOML

step "The administrator blesses the remote once from the publisher's .ferryrepo (ConfigureRemote; polkit: admin)"
FERRY_SYSTEM_ROOT="$T/root" DBUS_SYSTEM_BUS_ADDRESS="$BUS" \
  "$FERRY" remote-add --system demo --from "$T/pub/demo.ferryrepo" --assume-yes --no-interaction
FERRY_SYSTEM_ROOT="$T/root" "$FERRY" remotes

step "An unprivileged desktop user installs Hello system-wide, without a password"
id "$DEMO_USER" >/dev/null 2>&1 || { useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$DEMO_USER"; created_user=1; }
chown "$DEMO_USER" "$T/home"
as_user install --system demo "$REF" --no-interaction
as_user list --system
as_user run "$REF"
echo "deployment: $(stat -c '%U %A' "$T/root/var/lib/ferry/installed/${REF//\//\~}/files/bin/hello") files/bin/hello"

step "The publisher releases v2 (logged, witnessed); the user updates"
make_app v2 "$(date +%s)"
witness_log
cp "$T/pub/layout/index.json" "$T/pub/index-v2.json"
as_user update --system --no-interaction
as_user run "$REF"

step "A compromised mirror serves the signed v1 again: refused, v2 stays"
cp "$T/pub/index-v1.json" "$T/pub/layout/index.json"
if as_user update --system --no-interaction; then echo "demo: replayed v1 was accepted!" >&2; exit 1; fi
as_user run "$REF"

step "A thief of the log key serves v3 on a rewritten (forked) log: the witness refuses it, and so does the user"
cp -a "$T/pub/layout/log" "$T/pub/log-real"
rm -rf "$T/pub/layout/log"
"$FERRY" log init "$T/pub/layout" --key "$T/pub/log.key"
make_app v3 "$(($(date +%s) + 1))"
if witness_log; then echo "demo: the witness cosigned a fork!" >&2; exit 1; fi
if as_user update --system --no-interaction; then echo "demo: the forked log was accepted!" >&2; exit 1; fi
as_user run "$REF"
rm -rf "$T/pub/layout/log"; mv "$T/pub/log-real" "$T/pub/layout/log"

step "The publisher rotates its key in-band: key-add signed by the old key, key-remove signed by the new, in the log"
minisign -G -W -p "$T/pub/new.pub" -s "$T/pub/new.key" >/dev/null
trust_op() { "$FERRY" "$@" --from "$T/pub/demo.ferryrepo" --log-key "$T/pub/log.key"; }
trust_op key add "$T/pub/layout" --ed25519-key "$T/pub/minisign.key" --key "$T/pub/new.pub"
trust_op key remove "$T/pub/layout" --ed25519-key "$T/pub/new.key" --key "$T/pub/minisign.pub"
make_app v4 "$(($(date +%s) + 2))" "$T/pub/new.key"
V4=$DIGEST
witness_log
echo "The user's update (as the timer would run it) installs v4, signed by the new key: no new blessing, no password"
as_user update --system --no-interaction
as_user run "$REF"
as_user remote-info --system demo | grep -E "ed25519 key|recalled"

step "v4 crashes on start: the publisher recalls it; the next update moves back to v2 on its own"
trust_op recall "$T/pub/layout" --ed25519-key "$T/pub/new.key" --ref "$REF" --digest "$V4" --reason "crashes on start"
witness_log
as_user update --system --no-interaction
as_user run "$REF"
as_user list --system
if as_user install --system demo "$REF" --no-interaction; then echo "demo: a recalled release installed!" >&2; exit 1; fi

step "The publisher's server is back to v2; the user copies the remote to a USB stick (verified as it copies)"
cp "$T/pub/index-v2.json" "$T/pub/layout/index.json"
install -d -o "$DEMO_USER" "$T/usb"
as_user mirror demo "$T/usb"
find "$T/usb" -type f | sed "s|^$T/||" | sort

step "Another machine, no network at all (unshare -n): the administrator blesses the stick, the user installs"
admin() { FERRY_SYSTEM_ROOT="$T/root" DBUS_SYSTEM_BUS_ADDRESS="$BUS" "$FERRY" "$@"; }
admin remote-add --system usb "$T/usb" --ed25519-key "$T/pub/minisign.pub" --no-interaction \
  --log-key "$T/pub/log.vkey" --witness "$T/w1.vkey"
admin uninstall --system "$REF" --no-interaction
unshare -n bash -c "$(declare -f as_user); DEMO_USER=$DEMO_USER T=$T BUS=$BUS FERRY=$FERRY \
  as_user install --system usb $REF --no-interaction"
as_user run "$REF"
as_user history --system

step "Done: the launcher and desktop entry the install exported"
cat "$T/root/var/lib/ferry/exports/bin/org.example.Hello"
echo
echo "demo finished; cleaning up"
