#!/usr/bin/env bash
# Runs the public TUF conformance suite (https://github.com/theupdateframework/tuf-conformance) against
# `ferry tuf`. The suite is NOT vendored in Ferry and is not on PyPI: obtain a checkout separately, e.g.
#   git clone https://github.com/theupdateframework/tuf-conformance /path/to/tuf-conformance
# and install its Python dependencies (pytest, tuf, securesystemslib[crypto]; see its pyproject.toml; tuf 7.0.1 +
# securesystemslib 1.6.0 from scripts/deps.sh work) and faketime (apt). See docs/tuf-conformance.md.
#
# usage: scripts/tuf-conformance.sh CHECKOUT [BUILD_DIR] [extra pytest args...]
#   CHECKOUT   the suite checkout (the directory holding tuf_conformance/)
#   BUILD_DIR  where the ferry binary is (default .build/debug)
# Extra args go to pytest, e.g. `-k rollback`, `--junitxml=out.xml`, `--expected-failures "test_a test_b"`.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
CHECKOUT=$(cd "$1" && pwd); shift
BUILD=.build/debug
if [ $# -ge 1 ] && [ "${1#-}" = "$1" ]; then BUILD=$1; shift; fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD="$REPO/$BUILD" ;; esac
FERRY=$(readlink -f "$BUILD/ferry")
[ -x "$FERRY" ] || { echo "tuf-conformance: no ferry binary at $BUILD/ferry (swift build --product ferry)" >&2; exit 2; }
[ -d "$CHECKOUT/tuf_conformance" ] || { echo "tuf-conformance: $CHECKOUT has no tuf_conformance/ package" >&2; exit 2; }
command -v faketime >/dev/null || echo "tuf-conformance: warning: faketime not installed; expiry tests will fail" >&2

# The suite's --entrypoint must be one executable path (it is split on spaces), so wrap `ferry tuf`.
T=$(mktemp -d /tmp/ferry-tuf-conformance.XXXX)
trap 'rm -rf "$T"' EXIT
printf '#!/bin/sh\nexec "%s" tuf "$@"\n' "$FERRY" > "$T/ferry-tuf-client"
chmod +x "$T/ferry-tuf-client"

# Run from the checkout: the static-repository tests open tuf_conformance/static_data relative to the cwd.
cd "$CHECKOUT"
exec python3 -m pytest tuf_conformance -p no:cacheprovider -rfE --entrypoint "$T/ferry-tuf-client" "$@"
