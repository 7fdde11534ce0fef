#!/usr/bin/env bash
# Producer, an item with a 10 MB string (issue 14). A Directus whose MAX_PAYLOAD_SIZE is raised
# stores such items; its change is written here as Directus writes it (the row, its activity and
# its revision in one transaction, by SQL, since the harness's Directus keeps the 1 MB default).
# The event holds the string twice (data and delta), about 20 MB: it must reach Kafka whole and
# the changes behind it must follow (before, anything past 8 MiB stopped the producer). The
# producer's peak RSS is printed. A source of its own name on a's database, removed at the end.
. "$(dirname "$0")/../lib/dx.sh"
t_begin
P=$DXSYNC_BIN/producer/dxsync-producer
TAG=$(date +%s%N | tail -c 8)
PREFIX=ilg$TAG
SRC=large$TAG
ADMIN=$DXSYNC_A_ADMIN_TOKEN
DB=$DXSYNC_A_DB_URL
SIZE=10000000

# after t_end has stopped the processes: the slot, the publication and the large item go (a
# later test that snapshots a's articles would meet a 10 MB row that b and d refuse)
ITEM=
cleanup() {
  psql_q "$DB" "select pg_drop_replication_slot('dxsync_$SRC') from pg_replication_slots where slot_name='dxsync_$SRC'" >/dev/null 2>&1 || true
  psql_q "$DB" "drop publication if exists dxsync_$SRC" >/dev/null 2>&1 || true
  [ -z "$ITEM" ] || api a "$ADMIN" DELETE "/items/articles/$ITEM" >/dev/null 2>&1 || true
}
at_exit cleanup

cat >"$T_TMP/cfg.json" <<JSON
{ "kafka": {"brokers": "$DXSYNC_KAFKA_BROKERS", "topic_prefix": "$PREFIX", "partitions": 1},
  "instances": [
    {"name": "$SRC", "url": "$DXSYNC_A_URL", "token": "\${ILG_TOKEN_A}", "database": "$DB"},
    {"name": "b", "url": "$DXSYNC_B_URL", "token": "\${ILG_TOKEN_B}"}],
  "routes": [{"from": "$SRC", "to": "b", "collections": [
      {"collection": "articles", "fields": ["title", "body"]},
      {"collection": "counters", "fields": ["name", "value"]}]}] }
JSON
export ILG_TOKEN_A=$DXSYNC_A_SYNC_TOKEN ILG_TOKEN_B=$DXSYNC_B_SYNC_TOKEN

start_proc producer "$P" --config "$T_TMP/cfg.json" --instance "$SRC"
check "producer starts streaming" wait_for 30 grep -q event=streaming "$T_TMP/producer.log"

id=$(python3 -c 'import uuid; print(uuid.uuid4())')
ITEM=$id
api a "$ADMIN" POST /items/articles "{\"id\":\"$id\",\"title\":\"large\",\"body\":\"small\"}" >/dev/null
admin_id=$(api a "$ADMIN" GET /users/me | json 'j["data"]["id"]')
# the update as Directus writes it: row, activity, revision (data: the whole item; delta: the change)
psql "$DB" -Xqv ON_ERROR_STOP=1 >/dev/null <<SQL
begin;
update articles set body = repeat('x', $SIZE) where id = '$id';
with act as (
  insert into directus_activity (action, "user", ip, user_agent, collection, item, origin)
  values ('update', '$admin_id', '127.0.0.1', 'producer_large.sh', 'articles', '$id', 'http://localhost')
  returning id)
insert into directus_revisions (activity, collection, item, data, delta)
select act.id, 'articles', '$id',
       json_build_object('id', '$id', 'title', 'large', 'body', repeat('x', $SIZE), 'rating', null, 'cover', null),
       json_build_object('body', repeat('x', $SIZE))
from act;
commit;
SQL
marker=$(api a "$ADMIN" POST /items/counters '{"name":"large-marker","value":1}' | json 'j["data"]["id"]')

has_key() { topic_read "$1" '%k\n' | grep -qx "$2"; }
check "the change behind the large one reaches Kafka" wait_for 60 has_key "$PREFIX.$SRC.counters" "$marker"
topic_read "$PREFIX.$SRC.articles" >"$T_TMP/articles.json" || true
got=$(python3 - "$T_TMP/articles.json" "$id" <<'PY'
import json, sys
out = []
for line in open(sys.argv[1]):
    m = json.loads(line)
    e = json.loads(m["payload"])
    if e["key"] == sys.argv[2]:
        out.append(f'{e["action"]}:{len(m["payload"])}:{len(e["data"].get("body") or "")}:{len((e.get("delta") or {}).get("body") or "")}')
print(" ".join(out))
PY
)
echo "     events of the item (action:bytes:data.body:delta.body): $got"
big=$(awk '{print $2}' <<<"$got")
check "the update reaches Kafka whole, the 10 MB string in data and delta" \
  test "$(cut -d: -f1,3,4 <<<"$big")" = "update:$SIZE:$SIZE"
check "the producer still streams" running "$(proc_pid producer)"
pid=$(proc_pid producer)
echo "     producer peak RSS: $(awk '/VmHWM/ {printf "%.1f MB", $2 / 1024}' "/proc/$pid/status")"
p_stop() { stop_proc producer TERM 30; return "$STOP_RC"; }
expect_exit 0 "the producer stops cleanly" p_stop
finish
