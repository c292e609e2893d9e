#!/usr/bin/env bash
# Install `promtool` (Prometheus' config/rules/metrics checker) for the ops tests.
#
# Only the one binary is taken from Debian's `prometheus` package (downloaded with
# `apt-get download`, unpacked with `dpkg-deb`); nothing is installed system-wide and no
# service is set up. Idempotent: does nothing when a working promtool is already there.
#
#   docker/tools/ensure-promtool.sh [DEST_DIR]     # default: var/tools/bin of the repo
#
# Prints the path of the promtool binary on its last line. Exits non-zero, loudly, when it
# cannot install it (no apt-get, no network, ...): the ops tests must not silently skip.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="${1:-${RF_TOOLS_DIR:-$ROOT/var/tools/bin}}"
mkdir -p "$DEST"

if [[ -x "$DEST/promtool" ]] && "$DEST/promtool" --version >/dev/null 2>&1; then
  echo "$DEST/promtool"; exit 0
fi
if command -v promtool >/dev/null 2>&1 && promtool --version >/dev/null 2>&1; then
  command -v promtool; exit 0
fi

die() { echo "ensure-promtool: $*" >&2; exit 1; }
command -v apt-get >/dev/null 2>&1 || die "no apt-get here; install promtool (Prometheus >= 2.42) on PATH yourself"
command -v dpkg-deb >/dev/null 2>&1 || die "no dpkg-deb here; install promtool on PATH yourself"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
chmod 777 "$TMP"   # lets apt's sandbox user write the .deb when we run as root

fetch() { (cd "$TMP" && apt-get download -qq prometheus >/dev/null 2>&1); }
if ! fetch; then
  # Package lists missing or stale: refresh them (needs root), then try once more.
  if [[ "$(id -u)" == "0" ]]; then
    apt-get update -qq >/dev/null 2>&1 || true
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n apt-get update -qq >/dev/null 2>&1 || true
  fi
  fetch || die "apt-get download prometheus failed (run 'apt-get update' as root, check the network)"
fi

DEB="$(ls "$TMP"/prometheus_*.deb 2>/dev/null | head -n1)"
[[ -n "$DEB" ]] || die "apt-get download produced no prometheus_*.deb"
dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$TMP" ./usr/bin/promtool \
  || die "no usr/bin/promtool in $DEB"
install -m 0755 "$TMP/usr/bin/promtool" "$DEST/promtool"
"$DEST/promtool" --version >/dev/null 2>&1 || die "installed $DEST/promtool does not run"
echo "$DEST/promtool"
