#!/usr/bin/env bash
# Producer benchmark (not a test): 100,000 Directus-shaped activity+revision inserts made
# directly in SQL, then
#   ceiling:  pg_recvlogical decoding the same WAL (same publication, pgoutput) to /dev/null
#   producer: dxsync-producer from commit to Kafka acknowledgement (until the slot's confirmed
#             LSN passes the end of the inserts)
# Prints events/s of both, the ratio (target >= 0.8) and the producer's peak RSS (target < 20 MB).
# Needs the services of tests/harness/services.sh (PostgreSQL and Kafka; Directus is not used).
#   tests/bench/producer.sh [EVENTS]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/dx.sh"
load_services
N=${1:-100000}
BIN=${DXSYNC_BIN:-$ROOT/build}
DB=$DXSYNC_PG_URL/dxsync_bench
TMP=$(mktemp -d /tmp/dxsync-bench.XXXXXX)
T_TMP=$TMP
PID=
cleanup() { [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
q() { psql "$DB" -XAtqc "$1"; }

psql "$DXSYNC_PG_URL/postgres" -XAtqc "DROP DATABASE IF EXISTS dxsync_bench WITH (FORCE)" 2>/dev/null || true
for s in dxsync_bench bench_ceiling; do
  psql "$DXSYNC_PG_URL/postgres" -XAtqc "select pg_drop_replication_slot('$s') from pg_replication_slots where slot_name='$s'" >/dev/null
done
psql "$DXSYNC_PG_URL/postgres" -XAtqc "CREATE DATABASE dxsync_bench"
q "
CREATE TABLE directus_activity (id serial PRIMARY KEY, action varchar(45) NOT NULL, \"user\" uuid,
  timestamp timestamptz NOT NULL DEFAULT now(), ip varchar(50), user_agent text,
  collection varchar(64) NOT NULL, item varchar(255) NOT NULL, origin varchar(255));
CREATE TABLE directus_revisions (id serial PRIMARY KEY, activity integer NOT NULL REFERENCES directus_activity(id),
  collection varchar(64) NOT NULL, item varchar(255) NOT NULL, data json, delta json, parent integer, version uuid);
CREATE TABLE articles (id uuid PRIMARY KEY, title varchar(255), body text, rating integer);"

PREFIX=bench$(date +%s)
cat >"$TMP/cfg.json" <<JSON
{ "kafka": {"brokers": "$DXSYNC_KAFKA_BROKERS", "topic_prefix": "$PREFIX", "partitions": 6},
  "instances": [
    {"name": "bench", "url": "http://127.0.0.1:1", "token": "unused", "database": "$DB",
     "sync_user": "00000000-0000-0000-0000-000000000000"},
    {"name": "sink", "url": "http://127.0.0.1:1", "token": "unused"}],
  "routes": [{"from": "bench", "to": "sink", "collections": [{"collection": "articles", "fields": ["title", "body", "rating"]}]}] }
JSON
# First start creates the slot, the publication and the topic; then it stops.
"$BIN/producer/dxsync-producer" --config "$TMP/cfg.json" --instance bench >"$TMP/p0.log" 2>&1 &
PID=$!
wait_for 10 grep -q event=streaming "$TMP/p0.log" || true
kill -TERM $PID; wait $PID || true; PID=
q "select pg_create_logical_replication_slot('bench_ceiling', 'pgoutput')" >/dev/null

echo "inserting $N activity+revision pairs (transactions of 100, as Directus batches)..." >&2
q "
DO \$\$
DECLARE b int; a int;
BEGIN
  FOR b IN 0..($N/100 - 1) LOOP
    FOR i IN 1..100 LOOP
      INSERT INTO directus_activity (action, \"user\", collection, item, ip, user_agent, origin)
        VALUES ('create', 'e1e260ff-05b0-4648-aef0-a8adaf64428d', 'articles', md5((b*100+i)::text)::uuid::text,
                '127.0.0.1', 'bench', 'http://localhost') RETURNING id INTO a;
      INSERT INTO directus_revisions (activity, collection, item, data, delta)
        VALUES (a, 'articles', md5((b*100+i)::text)::uuid::text,
                json_build_object('title', 'title ' || (b*100+i), 'body', repeat('lorem ipsum ', 8), 'rating', i),
                json_build_object('title', 'title ' || (b*100+i), 'body', repeat('lorem ipsum ', 8), 'rating', i));
    END LOOP;
    COMMIT;
  END LOOP;
END \$\$;"
END_LSN=$(q "select pg_current_wal_lsn()")

echo "ceiling: pg_recvlogical to /dev/null..." >&2
t0=$(date +%s.%N)
pg_recvlogical -d "$DB" --slot bench_ceiling --start -o proto_version=1 -o publication_names=dxsync_bench \
  --endpos "$END_LSN" -f /dev/null --no-loop
t1=$(date +%s.%N)

echo "producer: commit to Kafka acknowledgement..." >&2
"$BIN/producer/dxsync-producer" --config "$TMP/cfg.json" --instance bench >"$TMP/p1.log" 2>&1 &
PID=$!
while [ "$(q "select confirmed_flush_lsn >= '$END_LSN'::pg_lsn from pg_replication_slots where slot_name='dxsync_bench'")" != t ]; do
  sleep 0.05
  kill -0 $PID 2>/dev/null || { cat "$TMP/p1.log" >&2; echo "producer died" >&2; exit 1; }
done
t3=$(date +%s.%N)
# The clock starts when the producer starts streaming (after connecting and creating topics),
# as pg_recvlogical's starts with its connection.
t2=$(sed -n 's/^\([^ ]*\) info producer event=streaming.*/\1/p' "$TMP/p1.log" | head -n 1 |
  python3 -c 'import sys,datetime; print(datetime.datetime.strptime(sys.stdin.read().strip(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp())')
rss_kb=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
cpu_s=$(awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' /proc/$PID/stat)
kill -TERM $PID; wait $PID || true; PID=
[ -n "${DXSYNC_BENCH_LOG:-}" ] && cp "$TMP/p1.log" "$DXSYNC_BENCH_LOG"
events=$(topic_count "$PREFIX.bench.articles")

python3 - "$N" "$t0" "$t1" "$t2" "$t3" "$rss_kb" "$events" "$cpu_s" <<'PY'
import sys
n, t0, t1, t2, t3, rss, events, cpu = int(sys.argv[1]), *map(float, sys.argv[2:6]), int(sys.argv[6]), int(sys.argv[7]), float(sys.argv[8])
ceil = n / (t1 - t0); prod = n / (t3 - t2)
print(f"events:                         {n} (on Kafka: {events})")
print(f"pg_recvlogical (ceiling):       {ceil:10.0f} events/s  ({t1 - t0:.2f} s)")
print(f"dxsync-producer:                {prod:10.0f} events/s  ({t3 - t2:.2f} s from streaming start to the last Kafka ack)")
print(f"ratio producer/ceiling:         {prod / ceil:10.2f}  (target >= 0.8)")
print(f"producer CPU time:              {cpu:10.2f} s (all threads, including start-up)")
print(f"producer peak RSS:              {rss / 1024:10.1f} MB  (target < 20 MB)")
PY
psql "$DXSYNC_PG_URL/postgres" -XAtqc "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name in ('dxsync_bench','bench_ceiling')" >/dev/null
