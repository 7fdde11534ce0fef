#!/usr/bin/env bash
# Runs one of the long tests outside CI's default run (tests/soak.sh, tests/slow_remote.sh):
#   tests/lib/long_run.sh SCRIPT.py MINUTES
# Builds what is missing, starts the harness's services a b c when they are not up (and stops
# them at the end if it started them), then runs tests/SCRIPT.py MINUTES with the services'
# environment. Tables go to $DXSYNC_RUN (default /tmp/dxsync-run).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SCRIPT=$1 MINUTES=$2
export DXSYNC_RUN=${DXSYNC_RUN:-/tmp/dxsync-run}
if [ ! -x build/consumer/dxsync-consumer ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
started=0
if ! { [ -f "$DXSYNC_RUN/services.env" ] && grep -q DXSYNC_C_URL "$DXSYNC_RUN/services.env" &&
       curl -fsS -o /dev/null --max-time 3 "$(sed -n 's/^DXSYNC_C_URL=//p' "$DXSYNC_RUN/services.env")/server/ping"; }; then
  tests/harness/services.sh up a b c
  started=1
fi
trap '[ "$started" = 0 ] || tests/harness/services.sh down >/dev/null 2>&1 || true' EXIT
set -a; . "$DXSYNC_RUN/services.env"; set +a
export DXSYNC_BIN=$ROOT/build DXSYNC_SOURCE=$ROOT
python3 "tests/$SCRIPT" "$MINUTES"
