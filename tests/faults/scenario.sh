#!/usr/bin/env bash
# Runs one scenario of faults.py with the services of tests/run.sh: scenario.sh SCENARIO
set -euo pipefail
: "${DXSYNC_RUN:=/tmp/dxsync-run}"
if [ -z "${DXSYNC_B_URL:-}" ]; then set -a; . "$DXSYNC_RUN/services.env"; set +a; fi
exec python3 "$(dirname "$0")/faults.py" "$@"
