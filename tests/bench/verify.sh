#!/usr/bin/env bash
# verify benchmark (not a test): N counters (default 100,000) written by SQL into a and b alike
# (no activity: nothing is published), then `dxsync-consumer --remote b verify --collection
# counters` timed; then one value changed on b and verify timed again (it must find it).
# Prints items/s and the consumer's peak RSS. Needs the services of tests/harness/services.sh.
#   tests/bench/verify.sh [N]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/dx.sh"
load_services
N=${1:-100000}
BIN=${DXSYNC_BIN:-$ROOT/build}
TMP=$(mktemp -d /tmp/dxsync-verify.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

for db in "$DXSYNC_A_DB_URL" "$DXSYNC_B_DB_URL"; do
  psql "$db" -XAtqc "TRUNCATE counters RESTART IDENTITY;
    INSERT INTO counters (name, value) SELECT 'c' || g, g FROM generate_series(1, $N) g;" >/dev/null
done
cat >"$TMP/cfg.json" <<JSON
{ "kafka": {"brokers": "$DXSYNC_KAFKA_BROKERS", "topic_prefix": "vbench"},
  "instances": [
    {"name": "a", "url": "$DXSYNC_A_URL", "token": "$DXSYNC_A_SYNC_TOKEN", "database": "$DXSYNC_A_DB_URL"},
    {"name": "b", "url": "$DXSYNC_B_URL", "token": "$DXSYNC_B_SYNC_TOKEN"}],
  "routes": [{"from": "a", "to": "b", "collections": [{"collection": "counters", "fields": ["name", "value"]}]}] }
JSON
run() { # LABEL: one timed verify, its summary, items/s and peak RSS
  python3 - "$BIN/consumer/dxsync-consumer" "$TMP/cfg.json" "$N" "$1" <<'PY'
import resource, subprocess, sys, time
exe, cfg, n, label = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
t0 = time.monotonic()
r = subprocess.run([exe, "--config", cfg, "--remote", "b", "verify", "--collection", "counters"],
                   capture_output=True, text=True)
t = time.monotonic() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print("\n".join(l for l in r.stdout.splitlines() if l.startswith("#") or l.startswith("different")))
print(f"{label:<28} {n} items in {t:.1f} s: {n / t:,.0f} items/s, exit {r.returncode}, peak RSS {rss:.1f} MB")
PY
}
run "in sync:"
psql "$DXSYNC_B_DB_URL" -XAtqc "UPDATE counters SET value = -1 WHERE id = $((N / 2))" >/dev/null
run "one value changed on b:"
for db in "$DXSYNC_A_DB_URL" "$DXSYNC_B_DB_URL"; do
  psql "$db" -XAtqc "TRUNCATE counters RESTART IDENTITY" >/dev/null
done
