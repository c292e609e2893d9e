#!/usr/bin/env bash
# Install every tool the ops tests need (promtool; a Docker Compose v2 CLI). Called by
# `make tools` (and so by `make test`). Idempotent and quick once installed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
echo "promtool: $(bash "$HERE/ensure-promtool.sh" "$@" | tail -n1)"
echo "compose:  $(bash "$HERE/ensure-compose.sh" "$@" | tail -n1)"
