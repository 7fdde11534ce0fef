#!/usr/bin/env bash
# A remote that answers every request 1.5 s late for MINUTES minutes (default 20; not in CI's
# default run): partitions keep moving, memory stays flat (tests/slow_remote.py says what it
# checks). The table is printed and appended to $DXSYNC_RUN/slow-remote-table.txt (default
# /tmp/dxsync-run); tests/lib/long_run.sh starts what is needed.
#   tests/slow_remote.sh [MINUTES]
exec bash "$(dirname "$0")/lib/long_run.sh" slow_remote.py "${1:-20}"
