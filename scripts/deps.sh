#!/usr/bin/env bash
# Installs what Ferry needs to build, test and run its demo on Debian 12: the C libraries, the real peers the
# tests talk to (dbus-daemon, polkitd, gpg, minisign, skopeo, umoci, docker-registry), python3-seccomp for running
# the helper under its unit's sandbox (scripts/unit-sandbox.py), python-tuf for the TUF tests, and Go with
# golang.org/x/mod (the transparency log's interop peer, scripts/tlog-interop). Safe to run again; installs only
# what is missing unless FERRY_DEPS_FORCE=1.
set -euo pipefail

packages=(
  pkg-config libsodium-dev libgpgme-dev libsystemd-dev libarchive-dev libzstd-dev zlib1g-dev
  dbus polkitd systemd gnupg skopeo umoci docker-registry minisign signify-openbsd zstd
  python3 python3-dbus python3-seccomp curl ca-certificates passwd util-linux procps faketime time libglib2.0-bin strace
  golang-go golang-golang-x-mod-dev
)
pip_packages=(tuf==7.0.1 securesystemslib==1.6.0 "cryptography>=42")

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${FERRY_DEPS_FORCE:-0}" = 1 ] || [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${packages[@]}"
fi

python=$(command -v python3)
if ! "$python" -c 'import tuf, securesystemslib' 2>/dev/null; then
  "$python" -m pip install --quiet --disable-pip-version-check "${pip_packages[@]}" \
    || "$python" -m pip install --quiet --break-system-packages "${pip_packages[@]}"
fi
