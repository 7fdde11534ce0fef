#!/usr/bin/env bash
# Producer, a routed collection that does not exist yet when it starts (issue 14): the
# collection is created through Directus after the producer streams and written to at once,
# inside the 5 s in which the producer does not ask the catalog again. The change must reach
# Kafka (before, the lookup answered "not synced", the event was dropped and its LSN confirmed).
# A source instance of its own name (slot dxsync_<name>) on instance a's database, so no other
# test's slot is touched; slot, publication and collection are removed at the end.
. "$(dirname "$0")/../lib/dx.sh"
t_begin
P=$DXSYNC_BIN/producer/dxsync-producer
TAG=$(date +%s%N | tail -c 8)
PREFIX=itl$TAG
SRC=late$TAG
COLL=late_notes_$TAG
ADMIN=$DXSYNC_A_ADMIN_TOKEN
DB=$DXSYNC_A_DB_URL

# after t_end has stopped the processes: the slot, the publication and the collection go
cleanup() {
  psql_q "$DB" "select pg_drop_replication_slot('dxsync_$SRC') from pg_replication_slots where slot_name='dxsync_$SRC'" >/dev/null 2>&1 || true
  psql_q "$DB" "drop publication if exists dxsync_$SRC" >/dev/null 2>&1 || true
  api a "$ADMIN" DELETE "/collections/$COLL" >/dev/null 2>&1 || true
}
at_exit cleanup

cat >"$T_TMP/cfg.json" <<JSON
{ "kafka": {"brokers": "$DXSYNC_KAFKA_BROKERS", "topic_prefix": "$PREFIX", "partitions": 1},
  "instances": [
    {"name": "$SRC", "url": "$DXSYNC_A_URL", "token": "\${ITL_TOKEN_A}", "database": "$DB"},
    {"name": "b", "url": "$DXSYNC_B_URL", "token": "\${ITL_TOKEN_B}"}],
  "routes": [{"from": "$SRC", "to": "b", "collections": [
      {"collection": "$COLL", "fields": ["text"]},
      {"collection": "counters", "fields": ["name", "value"]}]}] }
JSON
export ITL_TOKEN_A=$DXSYNC_A_SYNC_TOKEN ITL_TOKEN_B=$DXSYNC_B_SYNC_TOKEN

start_proc producer "$P" --config "$T_TMP/cfg.json" --instance "$SRC" --log-level debug
check "producer starts streaming" wait_for 30 grep -q event=streaming "$T_TMP/producer.log"
check "the missing collection is reported at start-up" grep -q "event=collection_unavailable collection=\"\?$COLL" "$T_TMP/producer.log"

t0=$(date +%s.%N)
api a "$ADMIN" POST /collections "{\"collection\":\"$COLL\",\"schema\":{},\"meta\":{\"accountability\":\"all\"},\"fields\":[{\"field\":\"id\",\"type\":\"integer\",\"schema\":{\"is_primary_key\":true,\"has_auto_increment\":true}},{\"field\":\"text\",\"type\":\"string\"}]}" >/dev/null
id=$(api a "$ADMIN" POST "/items/$COLL" '{"text":"written at once"}' | json 'j["data"]["id"]')
echo "     collection created and written $(python3 -c "import time; print(f'{time.time() - $t0:.1f}')") s after the producer streamed"
marker=$(api a "$ADMIN" POST /items/counters '{"name":"late-marker","value":0}' | json 'j["data"]["id"]')

has_key() { topic_read "$1" | grep -q "\"key\":\"$2\""; }
check "a later change of another collection reaches Kafka" wait_for 30 has_key "$PREFIX.$SRC.counters" "$marker"
check "the change of the new collection reaches Kafka" wait_for 20 has_key "$PREFIX.$SRC.$COLL" "$id"
msg=$(topic_read "$PREFIX.$SRC.$COLL" | head -n 1)
if [ -n "$msg" ]; then
  got=$(json 'json.loads(j["payload"])["action"], json.loads(j["payload"])["data"]' <<<"$msg")
  check "its event is a create with the routed data ($got)" test "$got" = "('create', {'id': $id, 'text': 'written at once'})"
else
  fail "its event is a create with the routed data: no event"
fi
grep -E 'event=(collection_|metadata_)' "$T_TMP/producer.log" | sed 's/^/     log: /' | head -5 || true
finish
