#!/usr/bin/env bash
# Runs a Python test of this folder with the services of tests/run.sh:
#   py.sh faults.py SCENARIO      one scenario of the fault suite
#   py.sh bad_input.py            the bad-input test
set -euo pipefail
: "${DXSYNC_RUN:=/tmp/dxsync-run}"
if [ -z "${DXSYNC_B_URL:-}" ]; then set -a; . "$DXSYNC_RUN/services.env"; set +a; fi
script=$1; shift
exec python3 "$(dirname "$0")/$script" "$@"
