#!/usr/bin/env bash
# Producer against real PostgreSQL, Kafka and Directus: changes made through Directus's REST
# API (create, update, batch update, delete; uuid and integer keys) appear on the right topics,
# in commit order per key, with correct envelopes and only the routed fields; changes by the
# sync user and of a collection that is not routed do not; kill -9 mid-stream loses nothing;
# the slot's confirmed LSN advances on an idle source.
. "$(dirname "$0")/../lib/dx.sh"
t_begin
P=$DXSYNC_BIN/producer/dxsync-producer
PREFIX=itp$(date +%s%N | tail -c 9)
ADMIN=$DXSYNC_A_ADMIN_TOKEN
DB=$DXSYNC_A_DB_URL

# A fresh slot: what earlier tests changed must not leak into these topics.
psql_q "$DB" "select pg_drop_replication_slot('dxsync_a') from pg_replication_slots where slot_name='dxsync_a'" >/dev/null
# A collection that no route names.
api a "$ADMIN" GET /collections/unrouted_notes >/dev/null 2>&1 || api a "$ADMIN" POST /collections \
  '{"collection":"unrouted_notes","schema":{},"meta":{"accountability":"all"},"fields":[{"field":"id","type":"integer","schema":{"is_primary_key":true,"has_auto_increment":true}},{"field":"text","type":"string"}]}' >/dev/null

cat >"$T_TMP/cfg.json" <<JSON
{ "kafka": {"brokers": "$DXSYNC_KAFKA_BROKERS", "topic_prefix": "$PREFIX", "partitions": 3},
  "instances": [
    {"name": "a", "url": "$DXSYNC_A_URL", "token": "\${ITP_TOKEN_A}", "database": "$DB"},
    {"name": "b", "url": "$DXSYNC_B_URL", "token": "\${ITP_TOKEN_B}"}],
  "routes": [{"from": "a", "to": "b", "collections": [
      {"collection": "articles", "fields": ["title", "rating"]},
      {"collection": "counters", "fields": ["name", "value"]}]}] }
JSON
export ITP_TOKEN_A=$DXSYNC_A_SYNC_TOKEN ITP_TOKEN_B=$DXSYNC_B_SYNC_TOKEN

start_proc producer "$P" --config "$T_TMP/cfg.json" --instance a --metrics-addr 127.0.0.1:29464 --log-level debug
check "producer starts streaming" wait_for 30 grep -q event=streaming "$T_TMP/producer.log"
check "it read its sync user from the database (no request to Directus)" \
  grep -q "event=sync_user instance=a user=$DXSYNC_A_SYNC_USER_ID from=database" "$T_TMP/producer.log"

u1=$(python3 -c 'import uuid; print(uuid.uuid4())'); u2=$(python3 -c 'import uuid; print(uuid.uuid4())')
api a "$ADMIN" POST /items/articles "[{\"id\":\"$u1\",\"title\":\"one\",\"body\":\"not routed\",\"rating\":\"7\"},{\"id\":\"$u2\",\"title\":\"two\",\"rating\":2}]" >/dev/null
api a "$ADMIN" PATCH "/items/articles/$u1" '{"title":"one-b"}' >/dev/null
api a "$ADMIN" PATCH /items/articles "{\"keys\":[\"$u1\",\"$u2\"],\"data\":{\"rating\":9}}" >/dev/null
api a "$ADMIN" PATCH "/items/articles/$u2" '{"body":"only an unrouted field"}' >/dev/null
api a "$ADMIN" DELETE "/items/articles/$u2" >/dev/null
cid=$(api a "$ADMIN" POST /items/counters '{"name":"visits","value":1}' | json 'j["data"]["id"]')
api a "$ADMIN" PATCH "/items/counters/$cid" '{"value":2}' >/dev/null
api a "$ADMIN" DELETE "/items/counters/$cid" >/dev/null
api a "$DXSYNC_A_SYNC_TOKEN" POST /items/articles '{"title":"written by the sync user"}' >/dev/null
api a "$ADMIN" POST /items/unrouted_notes '{"text":"x"}' >/dev/null
# Markers, committed after everything above, on both topics: what is not on a topic once its
# marker is there was not sent.
marker=$(api a "$ADMIN" POST /items/counters '{"name":"marker","value":0}' | json 'j["data"]["id"]')
amarker=$(api a "$ADMIN" POST /items/articles '{"title":"marker"}' | json 'j["data"]["id"]')
has_markers() {
  topic_read "$PREFIX.a.counters" >"$T_TMP/counters.json" && grep -q "\"key\":\"$marker\"" "$T_TMP/counters.json" &&
    topic_read "$PREFIX.a.articles" >"$T_TMP/articles.json" && grep -q "\"key\":\"$amarker\"" "$T_TMP/articles.json"
}
check "events reach Kafka (the markers are there)" wait_for 20 has_markers

python3 - "$T_TMP" "$u1" "$u2" "$cid" "$DXSYNC_A_ADMIN_USER_ID" >"$T_TMP/verdict" <<'PY'
import json, sys
tmp, u1, u2, cid, admin = sys.argv[1:]
def load(name):
    msgs = [json.loads(l) for l in open(f"{tmp}/{name}.json")]
    return [(m, json.loads(m["payload"])) for m in msgs]
arts, ctrs = load("articles"), load("counters")
out = []
def ok(cond, what): out.append(("ok   " if cond else "FAIL ") + what)
def seq(msgs, key):
    evs = [(m["partition"], m["offset"], e) for m, e in msgs if m["key"] == str(key)]
    evs.sort(key=lambda x: x[1])
    ok(len({p for p, _, _ in evs}) <= 1, f"all events of {key} in one partition")
    return [e for _, _, e in evs]
e1, e2, ec = seq(arts, u1), seq(arts, u2), seq(ctrs, cid)
if not (len(e1) == 3 and len(e2) == 3 and len(ec) == 3):
    print(f"FAIL events per key: u1 {len(e1)}, u2 {len(e2)}, counter {len(ec)} (want 3 each)")
    print("\n".join(out)); sys.exit(0)
ok([e["action"] for e in e1] == ["create", "update", "update"], f"u1 actions {[e['action'] for e in e1]}")
ok([e["action"] for e in e2] == ["create", "update", "delete"], f"u2 actions {[e['action'] for e in e2]} (the unrouted-only update is not sent)")
ok([e["action"] for e in ec] == ["create", "update", "delete"], f"counter actions {[e['action'] for e in ec]}")
ok(all(a["activity_id"] < b["activity_id"] for a, b in zip(e1, e1[1:])), "u1 in commit order")
c = e1[0]
ok(c["data"] == {"id": u1, "title": "one", "rating": 7}, f"create data routed and typed: {c['data']}")
ok(c["key"] == u1 and c["source"] == "a" and c["collection"] == "articles" and c["version"] == 1, "create envelope")
ok(c["event_id"] == f"a:{c['activity_id']}" and c["user"] == admin and c["timestamp"].endswith("Z") and c["lsn"].count("/") == 1, "event_id, user, timestamp, lsn")
ok(e1[1]["delta"] == {"title": "one-b"} and e1[1]["data"]["title"] == "one-b" and "body" not in e1[1]["data"], f"update delta {e1[1]['delta']}")
ok(e1[2]["delta"] == {"rating": 9} and e2[1]["delta"] == {"rating": 9}, "batch update: one event per item")
ok(e2[2]["data"] is None and e2[2]["delta"] is None, "delete has no data")
ok(ec[0]["key"] == int(cid) and ec[0]["data"]["id"] == int(cid) and ec[0]["data"]["value"] == 1, f"integer key typed: {ec[0]['key']!r}")
ok(not any("sync user" in json.dumps(e) for _, e in arts), "the sync user's change is not sent")
ok(all(m["headers"][:6:2] == ["dxsync-event-id", "dxsync-action", "dxsync-source"] for m, _ in arts + ctrs), "headers")
ok(all(dict(zip(m["headers"][::2], m["headers"][1::2]))["dxsync-event-id"] == e["event_id"] for m, e in arts), "header event id matches")
print("\n".join(out))
PY
cat "$T_TMP/verdict"
T_COUNT=$((T_COUNT + $(grep -c . "$T_TMP/verdict"))); T_FAILED=$((T_FAILED + $(grep -c '^FAIL' "$T_TMP/verdict" || true)))
metrics=$(curl -s http://127.0.0.1:29464/metrics)
check "metrics count published events" grep -Eq 'dxsync_producer_events_published_total\{source="a"\} ([1-9][0-9]*)' <<<"$metrics"
rc=0; topic_exists "$PREFIX.a.unrouted_notes" || rc=$?
check "no topic for the unrouted collection (Kafka says it does not exist)" test "$rc" = 1

# Idle source: WAL moves on (other tables), the slot's confirmed LSN follows.
psql_q "$DB" "create table if not exists itp_noise(x int); insert into itp_noise select generate_series(1,1000)" >/dev/null
target=$(psql_q "$DB" "select pg_current_wal_lsn()")
advanced() { test "$(psql_q "$DB" "select confirmed_flush_lsn >= '$target'::pg_lsn from pg_replication_slots where slot_name='dxsync_a'")" = t; }
check "confirmed LSN advances on an idle source" wait_for 30 advanced

# kill -9 mid-stream: 2,000 changes, the producer killed twice while they stream; every change
# must be on Kafka afterwards (duplicates allowed).
first=$(psql_q "$DB" "select coalesce(max(id),0) from directus_activity")
(
  for b in $(seq 1 40); do
    body=$(python3 -c "import json,uuid; print(json.dumps([{'id':str(uuid.uuid4()),'title':'k%d'%i,'rating':i} for i in range(50)]))")
    curl -sS -o /dev/null -X POST -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' --data-binary "$body" "$DXSYNC_A_URL/items/articles"
  done
) &
writer=$!
sleep 1.5; stop_proc producer KILL
start_proc producer "$P" --config "$T_TMP/cfg.json" --instance a
sleep 2; stop_proc producer KILL
start_proc producer "$P" --config "$T_TMP/cfg.json" --instance a
wait $writer
want=$(psql_q "$DB" "select count(*) from directus_activity where id > $first and collection='articles' and action='create'")
check "2,000 changes were made" test "$want" = 2000
all_there() {
  psql_q "$DB" "select id from directus_activity where id > $first and collection='articles' and action='create' order by id" >"$T_TMP/want"
  topic_read "$PREFIX.a.articles" >"$T_TMP/topic.json" || return 1
  python3 -c 'import json,sys
ids=set()
for l in sys.stdin:
    ids.add(json.loads(json.loads(l)["payload"])["activity_id"])
print("\n".join(str(i) for i in sorted(ids)))' <"$T_TMP/topic.json" >"$T_TMP/got"
  comm -23 <(sort "$T_TMP/want") <(sort "$T_TMP/got") >"$T_TMP/missing"
  [ ! -s "$T_TMP/missing" ]
}
check "after kill -9 twice, every change is on Kafka" wait_for 60 all_there
echo "     missing: $(wc -l <"$T_TMP/missing"), events on the topic: $(wc -l <"$T_TMP/topic.json")"
stop_proc producer TERM
check "the producer stops cleanly on SIGTERM" grep -q event=stopped "$T_TMP/producer.log"

# snapshot: every current row, as snapshot events, from one consistent view.
expect_exit 0 "snapshot --collection counters" "$P" --config "$T_TMP/cfg.json" --instance a snapshot --collection counters
rows=$(psql_q "$DB" "select count(*) from counters")
expect_output "rows acknowledged by Kafka" "snapshot reports the acknowledged rows"
topic_read "$PREFIX.a.counters" >"$T_TMP/counters.json"
snaps=$(python3 -c 'import json,sys
n=0
for l in sys.stdin:
    e=json.loads(json.loads(l)["payload"])
    if e["action"]=="snapshot" and e["activity_id"] is None and e["event_id"].startswith("a:snapshot:") and "id" in e["data"]: n+=1
print(n)' <"$T_TMP/counters.json")
check "one snapshot event per row ($snaps of $rows)" test "$snaps" = "$rows"
expect_exit 2 "snapshot of a collection no route names" "$P" --config "$T_TMP/cfg.json" --instance a snapshot --collection unrouted_notes

# A token no user of the database has: the producer asks Directus (GET /users/me), which
# refuses it, and stops naming the instance; the token itself is in no line.
ITP_TOKEN_A=dxsync-no-such-token-0042 expect_exit 1 "a token no user has stops the producer" \
  "$P" --config "$T_TMP/cfg.json" --instance a
expect_output "the token of instance a is not valid" "it says the token is not valid"
check "the token is not printed" bash -c "! grep -q dxsync-no-such-token-0042 '$T_TMP/out'"
finish
