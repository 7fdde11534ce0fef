#!/usr/bin/env bash
# End-to-end latency benchmark (not a test): items created on a through its REST API at RATE
# per second for SECONDS; for each, the time from a's API answer to the item being committed
# in b (a trigger on b's articles records clock_timestamp(); same machine, same clock).
# Prints p50, p95, p99 and max of each of RUNS rounds (default 3) and their medians. Needs the
# services of tests/harness/services.sh (a and b).
#   tests/bench/latency.sh [RATE] [SECONDS] [RUNS]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/dx.sh"
load_services
RATE=${1:-20}
SECS=${2:-60}
RUNS=${3:-3}
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

for run in $(seq 1 "$RUNS"); do
echo "round $run of $RUNS..." >&2
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
python3 - "$TMP/sent.tsv" "$TMP/seen.tsv" "$RATE" "$SECS" "$TMP/kafka.tsv" >>"$TMP/rounds.txt" <<'PY'
import json, sys
sent = dict(l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l)
seen = dict(l.split("\t") for l in open(sys.argv[2]).read().split("\n") if l)
kafka = {}
for l in open(sys.argv[5]).read().split("\n"):
    if l:
        k, ts = l.split("\t"); kafka.setdefault(k, float(ts) / 1000)
def pcts(vals):
    vals = sorted(vals)
    q = lambda p: vals[min(len(vals) - 1, int(round(p / 100 * (len(vals) - 1))))]
    return [q(50), q(95), q(99), vals[-1]] if vals else [None] * 4
both = [i for i in sent if i in seen and i in kafka]
print(json.dumps({"sent": len(sent), "seen": sum(1 for i in sent if i in seen),
                  "total": pcts([(float(seen[i]) - float(t)) * 1000 for i, t in sent.items() if i in seen]),
                  "producer": pcts([(kafka[i] - float(sent[i])) * 1000 for i in both]),
                  "consumer": pcts([(float(seen[i]) - kafka[i]) * 1000 for i in both])}))
PY
done
qb "DROP TRIGGER dxsync_latency ON articles; DROP FUNCTION dxsync_latency_mark(); DROP TABLE dxsync_latency_marks"
python3 - "$TMP/rounds.txt" "$RATE" "$SECS" <<'PY'
import json, statistics, sys
rounds = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{len(rounds)} rounds of items created on a at {sys.argv[2]}/s for {sys.argv[3]} s; ms from a's answer")
print(f"{'round':>6} {'items':>6} {'missing':>8} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}   "
      f"{'->Kafka p50':>11} {'p99':>6}   {'Kafka->b p50':>12} {'p99':>6}")
for n, r in enumerate(rounds, 1):
    t, p, c = r["total"], r["producer"], r["consumer"]
    f = lambda v: f"{v:7.1f}" if v is not None else f"{'-':>7}"
    print(f"{n:>6} {r['sent']:>6} {r['sent'] - r['seen']:>8} {f(t[0])} {f(t[1])} {f(t[2])} {f(t[3])}   "
          f"{f(p[0]):>11} {f(p[2]):>6}   {f(c[0]):>12} {f(c[2]):>6}")
med = lambda part, i: statistics.median(r[part][i] for r in rounds if r[part][i] is not None)
print(f"{'median':>6} {'':>6} {'':>8} {med('total', 0):7.1f} {med('total', 1):7.1f} {med('total', 2):7.1f} "
      f"{med('total', 3):7.1f}   {med('producer', 0):11.1f} {med('producer', 2):6.1f}   "
      f"{med('consumer', 0):12.1f} {med('consumer', 2):6.1f}")
print("targets: p50 <= 15 ms, p99 <= 50 ms (the hook extension, no queue: p50 30-40 ms)")
print("->Kafka: a's answer to the producer handing the event to librdkafka (Kafka's CreateTime; "
      "negative when the event leaves before Directus answers); Kafka->b: from there to b's insert")
PY
