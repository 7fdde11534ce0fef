#!/usr/bin/env bash
# Fault: the Kafka broker is stopped for 30 s while changes are made; the producer waits and
# then delivers every one of them (compared by activity id).
. "$(dirname "$0")/../integration/lib.sh"
H=$DXSYNC_SOURCE/tests/harness
P=$DXSYNC_BIN/producer/dxsync-producer
PREFIX=ftk$(date +%s%N | tail -c 9)
ADMIN=$DXSYNC_A_ADMIN_TOKEN
DB=$DXSYNC_A_DB_URL
psql_q "$DB" "select pg_drop_replication_slot('dxsync_a') from pg_replication_slots where slot_name='dxsync_a'" >/dev/null
cat >"$T_TMP/cfg.json" <<JSON
{ "kafka": {"brokers": "$DXSYNC_KAFKA_BROKERS", "topic_prefix": "$PREFIX", "partitions": 3},
  "instances": [
    {"name": "a", "url": "$DXSYNC_A_URL", "token": "$DXSYNC_A_SYNC_TOKEN", "database": "$DB"},
    {"name": "b", "url": "$DXSYNC_B_URL", "token": "$DXSYNC_B_SYNC_TOKEN"}],
  "routes": [{"from": "a", "to": "b", "collections": [{"collection": "articles", "fields": ["title"]}]}] }
JSON
start_proc producer "$P" --config "$T_TMP/cfg.json" --instance a
check "producer streams" wait_for 30 grep -q event=streaming "$T_TMP/producer.log"
first=$(psql_q "$DB" "select coalesce(max(id),0) from directus_activity")
write_batch() {
  local body
  body=$(python3 -c "import json,uuid; print(json.dumps([{'id':str(uuid.uuid4()),'title':'t%d'%i} for i in range(20)]))")
  curl -sS -o /dev/null -X POST -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' --data-binary "$body" "$DXSYNC_A_URL/items/articles"
}
write_batch
"$H/kafka.sh" stop
kport=${DXSYNC_KAFKA_BROKERS##*:}
check "Kafka is really down" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$kport) 2>/dev/null"
down_at=$SECONDS
for _ in $(seq 1 10); do write_batch; sleep 2; done
while (( SECONDS - down_at < 30 )); do sleep 1; done
check "the producer is still running while Kafka is down" kill -0 "$(cat "$T_TMP/producer.pid")"
"$H/kafka.sh" start >/dev/null
up_at=$SECONDS
write_batch
all_there() {
  psql_q "$DB" "select id from directus_activity where id > $first and collection='articles' and action='create' order by id" >"$T_TMP/want"
  topic_json "$PREFIX.a.articles" | python3 -c 'import json,sys
print("\n".join(sorted({str(json.loads(json.loads(l)["payload"])["activity_id"]) for l in sys.stdin})))' >"$T_TMP/got"
  comm -23 <(sort "$T_TMP/want") <(sort "$T_TMP/got") >"$T_TMP/missing"
  [ ! -s "$T_TMP/missing" ]
}
check "every change made while Kafka was down is delivered" wait_for 120 all_there
echo "     $(wc -l <"$T_TMP/want") changes, $(wc -l <"$T_TMP/missing") missing, delivered $((SECONDS - up_at)) s after Kafka came back"
stop_proc producer TERM
finish
