#!/usr/bin/env bash
# The consumer's restart cost against the history its topics keep (not a test): a's topic of
# articles (6 partitions) gets EVENTS already-applied events over KEYS keys, published over the
# last year (tests/tools/histfill, in the event format; b's group committed at the end), then one
# fresh create behind them; the table gives start -> first apply (from the consumer's start until
# that create is readable on Directus b) and peak RSS, for an empty history and for EVENTS, with
# their ratio:
#   - the store built once from the whole history (consumer.horizon_s 0: a member running for a
#     year), with the store's keys and disk size
#   - a restart after a clean stop, and after kill -9
#   - a second member joining a running one (a create every 50 ms meanwhile): the longest gap in
#     the first member's applied answers, and when the joining member applies
#   - a fresh member with no local state (the store deleted)
# The restarts and the fresh member are timed RUNS times (the median is shown, each round beside).
#   tests/bench/history.sh [EVENTS] [KEYS] [RUNS]      (default 2000000 500000 3)
# Uses the services of tests/harness/services.sh up a b.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/dx.sh"
load_services
export DXSYNC_BIN=${DXSYNC_BIN:-$ROOT/build}
[ -x "$DXSYNC_BIN/tests/histfill" ] || die "build first (cmake --build build): $DXSYNC_BIN/tests/histfill"
command -v mdb_stat >/dev/null || apt_need lmdb-utils
T_TMP=$(mktemp -d /tmp/dxsync-bench-history.XXXXXX)
export T_TMP
trap 'rm -rf "$T_TMP"' EXIT
python3 "$ROOT/tests/bench/history.py" "${1:-2000000}" "${2:-500000}" "${3:-3}"
