#!/usr/bin/env bash
# dxsync-consumer against the real Kafka and Directus b, events produced straight into Kafka:
# create, update and delete of uuid-key (articles) and integer-key (counters) items land with
# only the routed fields; an update of a missing item creates it; a create of an existing item
# updates it; a delete of a missing item succeeds; updates that touch no routed field are
# skipped; per-key order holds across batches for the patterns that broke the hook extension
# (create+update, create+delete, 10 quick updates); resent older events (a producer restart)
# do not move an item back; a primary key not named id is learnt; the
# same upserts work with an admin token; status shows no lag and check finds nothing.
. "$(dirname "$0")/../lib/dx.sh"
t_begin
c_init
PKCOLL="dxpk${C_RUNID}"
at_exit 'api b "$DXSYNC_B_ADMIN_TOKEN" DELETE "/collections/$PKCOLL" >/dev/null 2>&1'

# A collection whose primary key is `sku` (a string), writable by the sync user.
api b "$DXSYNC_B_ADMIN_TOKEN" POST /collections "{\"collection\":\"$PKCOLL\",\"meta\":{\"accountability\":\"all\"},\"schema\":{},\"fields\":[{\"field\":\"sku\",\"type\":\"string\",\"meta\":{},\"schema\":{\"is_primary_key\":true,\"length\":64,\"has_auto_increment\":false}},{\"field\":\"label\",\"type\":\"string\",\"meta\":{},\"schema\":{}},{\"field\":\"secret\",\"type\":\"string\",\"meta\":{},\"schema\":{}}]}" >/dev/null
for a in create read update delete; do
  api b "$DXSYNC_B_ADMIN_TOKEN" POST /permissions "{\"policy\":\"$DXSYNC_B_SYNC_POLICY_ID\",\"collection\":\"$PKCOLL\",\"action\":\"$a\",\"fields\":[\"*\"],\"permissions\":{},\"validation\":{}}" >/dev/null
done

c_config "$T_TMP/cfg.json" "$DXSYNC_B_SYNC_TOKEN" '{"retry_notify_after_s": 5}' \
  "{\"collection\": \"$PKCOLL\", \"fields\": [\"label\"]}"

# Items that exist on b before any event: a create of them must update them.
BASE=$(( 20000000 + (C_RUNID % 100000) * 1000 ))
CEV_EXTRA="$PKCOLL:sku:label"
export BASE PKCOLL CEV_EXTRA
api b "$DXSYNC_B_ADMIN_TOKEN" POST /items/counters "[{\"id\":$((BASE + 3)),\"name\":\"old\",\"value\":0},{\"id\":$((BASE + 4)),\"name\":\"old4\",\"value\":0}]" >/dev/null

c_py <<'PY'
import os
from dx import *
g = Gen(os.environ["C_RUNID"])
base = int(os.environ["BASE"])
A = lambda n: g.uuid(n)
# single items, uuid keys
g.create("articles", A("plain"), title="hello", body="not routed", rating=1)
g.create("articles", A("upd"), title="before", body="x", rating=2)
g.update("articles", A("upd"), title="after")
g.create("articles", A("skip"), title="kept", body="x", rating=3)
g.update("articles", A("skip"), body="only the body changed")        # skipped
g.create("articles", A("del"), title="gone", rating=4)
g.delete("articles", A("del"))
g.update("articles", A("upd-missing"), title="from an update", rating=7)  # creates it
g.delete("articles", A("del-missing"))                                   # nothing to do
# integer keys
g.create("counters", base + 1, name="c1", value=1)
g.update("counters", base + 1, value=2)
g.create("counters", base + 2, name="c2", value=1)
g.delete("counters", base + 2)
g.create("counters", base + 3, name="new", value=9)                      # exists on b
g.create("counters", base + 4, action="snapshot", name="snap", value=4)  # exists on b
g.update("counters", base + 5, name="m", value=5)                        # missing on b
# the patterns that broke the hook extension, each item's events back to back
for i in range(100):
    g.create("articles", A("cu%d" % i), title="c", rating=i)
    g.update("articles", A("cu%d" % i), title="u1")
for i in range(100):
    g.create("articles", A("cd%d" % i), title="c", rating=i)
    g.delete("articles", A("cd%d" % i))
for i in range(20):
    g.create("articles", A("q%d" % i), title="v0", rating=0)
    for v in range(1, 11):
        g.update("articles", A("q%d" % i), title="v%d" % v, rating=v)
# 100 items: create, 10 updates (interleaved across items), delete every third
for i in range(100):
    g.create("counters", base + 100 + i, name="n%d" % i, value=0)
for v in range(1, 11):
    for i in range(100):
        g.update("counters", base + 100 + i, value=v)
for i in range(0, 100, 3):
    g.delete("counters", base + 100 + i)
# a producer restart resends events after newer ones: they must not move the item back
k = A("resend")
g.create("articles", k, title="first", rating=1)
g.update("articles", k, title="second")
resent = g.msgs["articles"][-2:]
g.update("articles", k, title="third", rating=3)
g.msgs["articles"] += resent
# a primary key named otherwise
pk = os.environ["PKCOLL"]
g.create(pk, "sku-1", label="one", secret="not routed")
g.create(pk, "sku-2", label="two")
g.update(pk, "sku-2", label="two!")
g.create(pk, "sku-3", label="three")
g.delete(pk, "sku-3")
g.write(os.environ["T_TMP"])
g.save_expect(os.environ["T_TMP"] + "/expect1.json")
PY

c_start c1 "$T_TMP/cfg.json"
check "the consumer joins and gets every partition" wait_for 60 c_log_has c1 "partition_assigned topic=$C_PREFIX.a.counters partition=2"
c_produce_kv articles "$T_TMP/articles.kv"
c_produce_kv counters "$T_TMP/counters.kv"
c_produce_kv "$PKCOLL" "$T_TMP/$PKCOLL.kv"
verify1() { c_verify "$T_TMP/expect1.json" >"$T_TMP/verify1.out" 2>&1; }
if wait_for 180 verify1; then pass "every item ends right (routed fields only, order per key, upserts)"; else fail "remote state differs:"; head -20 "$T_TMP/verify1.out"; fi
check "the primary key sku was learnt" c_log_has c1 "event=primary_key collection=$PKCOLL field=sku"
body=$(api b "$DXSYNC_B_ADMIN_TOKEN" GET "/items/$PKCOLL/sku-1")
check "an unrouted field of a custom-pk collection stays unset" test "$(echo "$body" | json 'j["data"]["secret"]')" = None
check "the group's lag drops to 0" wait_for 30 c_lag0 "$T_TMP/cfg.json"
check "nothing was dead-lettered (log)" bash -c "! grep -q dead_lettered '$T_TMP/c1.log'"
check "nothing was dead-lettered (DLQ topic)" test "$(topic_count "$C_PREFIX.dlq.b")" -eq 0
expect_exit 0 "status exits 0" "$C_BIN" --config "$T_TMP/cfg.json" --remote b status
expect_output "^TOPIC +PARTITION +COMMITTED +END +LAG" "status prints a table header"
expect_output "^$C_PREFIX\.a\.articles +[0-9]+ +[0-9]+ +[0-9]+ +0$" "status lists each partition"
expect_exit 0 "check with the sync token finds nothing" "$C_BIN" --config "$T_TMP/cfg.json" --remote b check

# A clean stop commits; a restart reads nothing again.
expect_exit 0 "SIGTERM stops the consumer cleanly" c_stop c1
check "the stop is logged" c_log_has c1 "event=stopped remote=b"

# The same upserts with an admin token: an admin's batch PATCH answers 200 without the missing
# keys and a single missing item 204; the consumer must still create what is missing. It has
# the same routes and group as the first consumer: $PKCOLL gets no new event, so any request
# for its topic would be an event of the first run applied again.
c_config "$T_TMP/cfg-admin.json" "$DXSYNC_B_ADMIN_TOKEN" '{}' \
  "{\"collection\": \"$PKCOLL\", \"fields\": [\"label\"]}"
api b "$DXSYNC_B_ADMIN_TOKEN" POST /items/counters "[{\"id\":$((BASE + 900)),\"name\":\"old\",\"value\":0}]" >/dev/null
c_py <<'PY'
import os
from dx import *
g = Gen(os.environ["C_RUNID"] + "-admin", 100000)
base = int(os.environ["BASE"])
# one batch PATCH where one key exists and three do not
g.create("counters", base + 900, name="x", value=1)   # exists on b: create → update
for i in range(901, 904):
    g.update("counters", base + i, name="made by an update", value=i)
g.update("counters", base + 900, value=99)
for i in range(5):
    g.update("articles", g.uuid("admin-upd-%d" % i), title="admin %d" % i, rating=i)
g.delete("articles", g.uuid("admin-never-existed"))
g.write(os.environ["T_TMP"])
g.save_expect(os.environ["T_TMP"] + "/expect2.json")
PY
c_start c2 "$T_TMP/cfg-admin.json" --log-level debug
c_produce_kv articles "$T_TMP/articles.kv"
c_produce_kv counters "$T_TMP/counters.kv"
verify2() { c_verify "$T_TMP/expect2.json" >"$T_TMP/verify2.out" 2>&1; }
if wait_for 120 verify2; then pass "upserts work with an admin token too"; else fail "remote state differs (admin):"; head -20 "$T_TMP/verify2.out"; fi
check "the admin consumer is assigned $PKCOLL's partitions too" c_log_has c2 "partition_assigned topic=$C_PREFIX\.a\.$PKCOLL "
check "the group's lag drops to 0 again" wait_for 30 c_lag0 "$T_TMP/cfg-admin.json"
check "events of the first run were not applied again (no request for $PKCOLL)" \
  bash -c "! grep -E 'event=request topic=$C_PREFIX\.a\.$PKCOLL |path=\"?/items/$PKCOLL' '$T_TMP/c2.log'"
check "the admin consumer saw the batch PATCH omit missing keys and created them" c_log_has c2 "method=POST path=\"?/items/counters"
c_verify "$T_TMP/expect1.json" >"$T_TMP/verify1b.out" 2>&1 || true
check "the first run's state still holds" test "$(tail -n 1 "$T_TMP/verify1b.out")" = "differences: 0"
expect_exit 0 "the admin consumer stops cleanly" c_stop c2
finish
