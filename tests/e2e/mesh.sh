#!/usr/bin/env bash
# Runs mesh.py with the services of tests/run.sh (instances a, b and c).
set -euo pipefail
: "${DXSYNC_RUN:=/tmp/dxsync-run}"
if [ -z "${DXSYNC_C_URL:-}" ]; then set -a; . "$DXSYNC_RUN/services.env"; set +a; fi
cd "$(dirname "$0")"
exec python3 mesh.py
