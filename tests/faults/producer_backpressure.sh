#!/usr/bin/env bash
# Producer under Kafka backpressure longer than wal_sender_timeout (issue 14): Kafka is stopped
# for DXSYNC_BP_DOWN seconds (default 100) while changes keep streaming, and the producer's
# queue is small (50 messages), so it waits in publish with the replication connection idle.
# It must keep that one connection (standby status updates while it waits: no reconnect in
# its log, the slot stays active with the same walsender) and every change must reach Kafka
# once Kafka is back. Kafka is started again on any exit of this script. It stops the shared
# Kafka: run it alone (holding the integration lock for the whole test). DXSYNC_BP_INSTANCE
# (default a) names the harness instance whose Directus and database it writes to.
. "$(dirname "$0")/../lib/dx.sh"
t_begin
P=$DXSYNC_BIN/producer/dxsync-producer
KAFKA_SH=$DXSYNC_SOURCE/tests/harness/kafka.sh
DOWN=${DXSYNC_BP_DOWN:-100}
TAG=$(date +%s%N | tail -c 8)
PREFIX=fbp$TAG
SRC=bp$TAG
I=${DXSYNC_BP_INSTANCE:-a}
IU=$(echo "$I" | tr '[:lower:]' '[:upper:]')
v=DXSYNC_${IU}_ADMIN_TOKEN; ADMIN=${!v}
v=DXSYNC_${IU}_DB_URL; DB=${!v}
v=DXSYNC_${IU}_URL; URL=${!v}
v=DXSYNC_${IU}_SYNC_TOKEN; export FBP_TOKEN_A=${!v}
KAFKA_PORT=${DXSYNC_KAFKA_BROKERS##*:}

kafka_up() { (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null; }
cleanup() {
  local rc=$?
  if [ -n "${writer:-}" ]; then kill "$writer" 2>/dev/null || true; fi
  if ! kafka_up; then
    echo "     starting Kafka again (cleanup)"
    "$KAFKA_SH" start >/dev/null || echo "FAIL Kafka could not be started again: start it with $KAFKA_SH start"
  fi
  stop_all_procs
  psql_q "$DB" "select pg_drop_replication_slot('dxsync_$SRC') from pg_replication_slots where slot_name='dxsync_$SRC'" >/dev/null 2>&1 || true
  psql_q "$DB" "drop publication if exists dxsync_$SRC" >/dev/null 2>&1 || true
  rm -rf "$T_TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

timeout_s=$(psql_q "$DB" "select setting::int / 1000 from pg_settings where name = 'wal_sender_timeout'")
echo "     wal_sender_timeout ${timeout_s} s, Kafka down for ${DOWN} s"
check "the outage is longer than wal_sender_timeout" test "$DOWN" -gt "$timeout_s"

cat >"$T_TMP/cfg.json" <<JSON
{ "kafka": {"brokers": "$DXSYNC_KAFKA_BROKERS", "topic_prefix": "$PREFIX", "partitions": 1,
            "properties": {"queue.buffering.max.messages": "50"}},
  "instances": [
    {"name": "$SRC", "url": "$URL", "token": "\${FBP_TOKEN_A}", "database": "$DB"},
    {"name": "b", "url": "$DXSYNC_B_URL", "token": "\${FBP_TOKEN_B}"}],
  "routes": [{"from": "$SRC", "to": "b", "collections": [
      {"collection": "counters", "fields": ["name", "value"]}]}] }
JSON
export FBP_TOKEN_B=$DXSYNC_B_SYNC_TOKEN
TOPIC=$PREFIX.$SRC.counters

start_proc producer "$P" --config "$T_TMP/cfg.json" --instance "$SRC"
check "producer starts streaming" wait_for 30 grep -q event=streaming "$T_TMP/producer.log"
walsender() { psql_q "$DB" "select coalesce(active_pid::text, 'inactive') from pg_replication_slots where slot_name = 'dxsync_$SRC'"; }
pid0=$(walsender)

# batch N: 20 counters in one request; their ids are appended to $T_TMP/ids.
batch() {
  local body
  body=$(python3 -c "import json; print(json.dumps([{'name': 'bp$TAG-$1-%d' % i, 'value': i} for i in range(20)]))")
  curl -sS --max-time 30 -X POST -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    --data-binary "$body" "$URL/items/counters" | python3 -c 'import json,sys; [print(d["id"]) for d in json.load(sys.stdin)["data"]]' >>"$T_TMP/ids"
}
arrived() {
  topic_read "$TOPIC" | python3 -c 'import json,sys
keys={json.loads(l)["key"] for l in sys.stdin}
want=[l.strip() for l in open(sys.argv[1]) if l.strip()]
missing=[k for k in want if k not in keys]
open(sys.argv[2],"w").write("\n".join(missing))
sys.exit(1 if missing else 0)' "$T_TMP/ids" "$T_TMP/missing"
}
batch 0
check "changes reach Kafka before the outage" wait_for 20 arrived

"$KAFKA_SH" stop >/dev/null
down_at=$SECONDS
check "Kafka is down" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$KAFKA_PORT) 2>/dev/null"
# changes stream all through the outage: far more than the producer's queue holds
( n=1; while (( SECONDS - down_at < DOWN - 5 )); do batch $n; n=$((n + 1)); sleep 4; done ) &
writer=$!
sleep $((DOWN - (SECONDS - down_at)))
wait "$writer" || true
writer=
check "the producer runs on while Kafka is down" kill -0 "$(cat "$T_TMP/producer.pid")"
pid_down=$(walsender)
"$KAFKA_SH" start >/dev/null
echo "     Kafka started again after $((SECONDS - down_at)) s; $(wc -l <"$T_TMP/ids") changes made"
check "the producer waited on a full queue (it had more than 50 changes to send)" test "$(wc -l <"$T_TMP/ids")" -gt 100

check "every change reaches Kafka after the outage" wait_for 120 arrived
echo "     missing: $(wc -l <"$T_TMP/missing" 2>/dev/null || echo ?)"
check "the slot kept its walsender through the outage ($pid0, then $pid_down, now $(walsender))" \
  test "$pid0" = "$pid_down" -a "$pid0" = "$(walsender)" -a "$pid0" != inactive
check "the producer never lost its replication connection" \
  bash -c "! grep -Eq 'event=(replication_lost|stream_error|replication_unavailable)' '$T_TMP/producer.log'"
check "the producer started streaming once" test "$(grep -c event=streaming "$T_TMP/producer.log")" = 1
grep -E 'event=(replication_lost|stream_error|status_failed)' "$T_TMP/producer.log" | sed 's/^/     log: /' | head -5 || true
stop_proc producer TERM
finish
