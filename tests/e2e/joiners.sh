#!/usr/bin/env bash
# Runs joiners.py with the services of tests/run.sh (instances a and d).
set -euo pipefail
: "${DXSYNC_RUN:=/tmp/dxsync-run}"
if [ -z "${DXSYNC_D_URL:-}" ]; then set -a; . "$DXSYNC_RUN/services.env"; set +a; fi
cd "$(dirname "$0")"
exec python3 joiners.py
