#!/usr/bin/env bash
# Runs a Python test of tests/ with the services of tests/run.sh (each test puts tests/lib on
# its path for `from dx import *`):
#   py.sh faults/faults.py SCENARIO     one scenario of the fault suite
#   py.sh faults/bad_input.py           the bad-input test
#   py.sh e2e/mesh.py                   the three-instance mesh (DXSYNC_SEED repeats a run)
# SCRIPT is relative to tests/.
set -euo pipefail
. "$(dirname "$0")/dx.sh"
load_services
script=$DX_LIB_DIR/../$1; shift
exec python3 "$script" "$@"
