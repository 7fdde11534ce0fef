#!/usr/bin/env bash
# Soak test (not in CI's default run): the three-instance mesh under a workload and a random
# fault every few minutes for MINUTES minutes (default 60), RSS, descriptors and lag sampled
# each minute (tests/soak.py says what it checks). The table is printed and appended to
# $DXSYNC_RUN/soak-table.txt (default /tmp/dxsync-run); tests/lib/long_run.sh starts what is
# needed.
#   tests/soak.sh [MINUTES]
exec bash "$(dirname "$0")/lib/long_run.sh" soak.py "${1:-60}"
