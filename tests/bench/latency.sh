#!/usr/bin/env bash
# End-to-end latency benchmark (not a test): items created on a through its REST API at RATE
# per second for SECONDS; for each, the time from a's API answer to the item being committed
# in b (a trigger on b's articles records clock_timestamp(); same machine, same clock).
# Prints p50, p95, p99 and max. Needs the services of tests/harness/services.sh (a and b).
#   tests/bench/latency.sh [RATE] [SECONDS]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/dx.sh"
load_services
RATE=${1:-20}
SECS=${2:-60}
BIN=${DXSYNC_BIN:-$ROOT/build}
TMP=$(mktemp -d /tmp/dxsync-latency.XXXXXX)
T_TMP=$TMP
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
qb() { psql "$DXSYNC_B_DB_URL" -XAtqc "$1"; }

qb "CREATE TABLE IF NOT EXISTS dxsync_latency_marks (id text PRIMARY KEY, at timestamptz);
    TRUNCATE dxsync_latency_marks;
    CREATE OR REPLACE FUNCTION dxsync_latency_mark() RETURNS trigger LANGUAGE plpgsql AS
      \$\$ BEGIN INSERT INTO dxsync_latency_marks VALUES (NEW.id::text, clock_timestamp())
           ON CONFLICT DO NOTHING; RETURN NEW; END \$\$;
    DROP TRIGGER IF EXISTS dxsync_latency ON articles;
    CREATE TRIGGER dxsync_latency AFTER INSERT ON articles FOR EACH ROW EXECUTE FUNCTION dxsync_latency_mark();"
psql "$DXSYNC_A_DB_URL" -XAtqc "select pg_drop_replication_slot('dxsync_a') from pg_replication_slots where slot_name='dxsync_a'" >/dev/null

PREFIX=lat$(date +%s)
cat >"$TMP/cfg.json" <<JSON
{ "kafka": {"brokers": "$DXSYNC_KAFKA_BROKERS", "topic_prefix": "$PREFIX", "partitions": 3},
  "instances": [
    {"name": "a", "url": "$DXSYNC_A_URL", "token": "$DXSYNC_A_SYNC_TOKEN", "database": "$DXSYNC_A_DB_URL"},
    {"name": "b", "url": "$DXSYNC_B_URL", "token": "$DXSYNC_B_SYNC_TOKEN"}],
  "routes": [{"from": "a", "to": "b", "collections": [{"collection": "articles", "fields": ["title", "rating"]}]}] }
JSON
"$BIN/producer/dxsync-producer" --config "$TMP/cfg.json" --instance a >"$TMP/producer.log" 2>&1 & pids+=($!)
"$BIN/consumer/dxsync-consumer" --config "$TMP/cfg.json" --remote b >"$TMP/consumer.log" 2>&1 & pids+=($!)
wait_for 20 grep -q event=streaming "$TMP/producer.log" || die "the producer does not stream"
wait_for 60 grep -q partition_assigned "$TMP/consumer.log" || die "the consumer was not assigned its partitions"
# Warm-up (not measured): a few items through the whole path, as in a process that has run for a while.
for n in 1 2 3 4 5; do
  curl -sS -o /dev/null -X POST -H "Authorization: Bearer $DXSYNC_A_ADMIN_TOKEN" -H 'Content-Type: application/json' \
    --data-binary "{\"title\":\"warm-up $n\"}" "$DXSYNC_A_URL/items/articles"
done
marks_ge() { [ "$(qb "select count(*) from dxsync_latency_marks")" -ge "$1" ]; }
wait_for 10 marks_ge 5 || true
qb "TRUNCATE dxsync_latency_marks"

python3 - "$DXSYNC_A_URL" "$DXSYNC_A_ADMIN_TOKEN" "$RATE" "$SECS" >"$TMP/sent.tsv" <<'PY'
import json, sys, time, uuid, urllib.request
url, token, rate, secs = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
start = time.time(); n = 0
while time.time() - start < secs:
    due = start + n / rate
    if due > time.time(): time.sleep(due - time.time())
    i = str(uuid.uuid4())
    req = urllib.request.Request(url + "/items/articles", method="POST",
        data=json.dumps({"id": i, "title": f"latency {n}", "rating": n}).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
    print(f"{i}\t{time.time():.6f}", flush=True); n += 1
PY
wait_for 30 marks_ge "$(wc -l <"$TMP/sent.tsv")" || true # what has not arrived by then is counted missing
qb "select id, extract(epoch from at) from dxsync_latency_marks" | tr '|' '\t' >"$TMP/seen.tsv"
# Kafka's timestamp of each event (set by the producer when it hands the event over): splits
# the time into the producer's part and the consumer's part.
topic_read "$PREFIX.a.articles" '%k\t%T\n' >"$TMP/kafka.tsv"
qb "DROP TRIGGER dxsync_latency ON articles; DROP FUNCTION dxsync_latency_mark(); DROP TABLE dxsync_latency_marks"
python3 - "$TMP/sent.tsv" "$TMP/seen.tsv" "$RATE" "$SECS" "$TMP/kafka.tsv" <<'PY'
import sys
sent = dict(l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l)
seen = dict(l.split("\t") for l in open(sys.argv[2]).read().split("\n") if l)
kafka = {}
for l in open(sys.argv[5]).read().split("\n"):
    if l:
        k, ts = l.split("\t"); kafka.setdefault(k, float(ts) / 1000)
lat = sorted((float(seen[i]) - float(t)) * 1000 for i, t in sent.items() if i in seen)
missing = len(sent) - len(lat)
def pct(p): return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]
print(f"items: {len(sent)} created on a at {sys.argv[3]}/s for {sys.argv[4]} s; {len(lat)} seen on b, {missing} missing")
if lat:
    print(f"latency from a's answer to b's commit: p50 {pct(50):.1f} ms  p95 {pct(95):.1f} ms  p99 {pct(99):.1f} ms  max {lat[-1]:.1f} ms")
    print("targets: p50 < 45 ms, p99 < 100 ms (hook extension: p50 30-40, p95 40-56, max 46-72 ms)")
    both = [i for i in sent if i in seen and i in kafka]
    for name, vals in (("a's answer -> Kafka (producer)", sorted((kafka[i] - float(sent[i])) * 1000 for i in both)),
                       ("Kafka -> b's commit (consumer)", sorted((float(seen[i]) - kafka[i]) * 1000 for i in both))):
        if vals:
            q = lambda p: vals[min(len(vals) - 1, int(round(p / 100 * (len(vals) - 1))))]
            print(f"  {name:32s} p50 {q(50):.1f} ms  p95 {q(95):.1f} ms  p99 {q(99):.1f} ms  max {vals[-1]:.1f} ms")
PY
