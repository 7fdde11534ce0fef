#!/usr/bin/env bash
# The remote goes away: Directus b is stopped for CONSUMER_OUTAGE_S seconds (default 60) while
# 1,000 events arrive, then started again with the same arguments. Every event lands, in order,
# and <prefix>.errors holds exactly one remote_unavailable (after retry_notify_after_s) and one
# remote_recovered.
. "$(dirname "$0")/../lib/dx.sh"
t_begin
c_init
DOWN_S=${CONSUMER_OUTAGE_S:-60}
B_PORT=${DXSYNC_B_URL##*:}
restart_b() { "$DXSYNC_SOURCE/tests/harness/directus.sh" start b "$B_PORT" "$DXSYNC_B_DB_URL" >/dev/null 2>&1; }
at_exit 'http_ok "$DXSYNC_B_URL/server/ping" || restart_b'

c_config "$T_TMP/cfg.json" "$DXSYNC_B_SYNC_TOKEN" '{"retry_notify_after_s": 5, "request_timeout_ms": 5000}'
c_start c1 "$T_TMP/cfg.json"
check "the consumer joins" wait_for 60 c_log_has c1 "partition_assigned topic=$C_PREFIX.a.articles partition=2"

# 10 rounds of 100 events: 50 creates, then 50 updates of items created in the round before.
c_py <<'PY'
import os
from dx import *
g = Gen(os.environ["C_RUNID"])
tmp = os.environ["T_TMP"]
for r in range(10):
    for i in range(50):
        g.create("articles", g.uuid("r%d-%d" % (r, i)), title="created %d" % r, rating=i)
    for i in range(50):
        if r > 0:
            g.update("articles", g.uuid("r%d-%d" % (r - 1, i)), title="updated", rating=1000 + i)
        else:
            g.create("articles", g.uuid("w-%d" % i), title="warm", rating=i)
    os.makedirs("%s/round%d" % (tmp, r), exist_ok=True)
    g.write("%s/round%d" % (tmp, r))
g.save_expect(tmp + "/expect.json")
PY

# round 0 while b is up
c_produce_kv articles "$T_TMP/round0/articles.kv"
"$DXSYNC_SOURCE/tests/harness/directus.sh" stop b
down_at=$SECONDS
pass "directus b stopped"
for r in 1 2 3 4 5 6 7 8 9; do
  c_produce_kv articles "$T_TMP/round$r/articles.kv"
  sleep "$(( DOWN_S / 12 ))"
done
while (( SECONDS - down_at < DOWN_S )); do sleep 1; done
check "remote_unavailable is logged while b is down" c_log_has c1 "event=remote_unavailable_published remote=b"
# errors_kind KIND: how many events of KIND <prefix>.errors holds ("unreadable" when it cannot
# be read, which fails every count).
errors_kind() {
  local s
  s=$(topic_read "$C_PREFIX.errors" '%s\n') || { echo unreadable; return 1; }
  grep -c "\"kind\":\"$1\"" <<<"$s" || true
}
check "one remote_unavailable is published during the outage" test "$(errors_kind remote_unavailable)" -eq 1
check "no remote_recovered yet" test "$(errors_kind remote_recovered)" -eq 0
restart_b
pass "directus b started again after $((SECONDS - down_at)) s"

verify() { c_verify "$T_TMP/expect.json" >"$T_TMP/verify.out" 2>&1; }
if wait_for 150 verify; then pass "all 1,000 events land"; else fail "remote differs:"; head "$T_TMP/verify.out"; fi
recovered() { [ "$(errors_kind remote_recovered)" -ge 1 ]; }
check "remote_recovered is published" wait_for 30 recovered
# Nothing more may arrive: markers (a malformed message on every partition, after everything
# else) are dead-lettered with an apply_failed event each; once those are in, count.
marks=$(c_produce_marks mark articles)
marked() { [ "$(errors_kind apply_failed)" -ge "$marks" ] && [ "$(topic_count "$C_PREFIX.dlq.b")" -ge "$marks" ]; }
check "the $marks markers are dead-lettered" wait_for 60 marked
check "exactly one remote_unavailable" test "$(errors_kind remote_unavailable)" -eq 1
check "exactly one remote_recovered" test "$(errors_kind remote_recovered)" -eq 1
check "no event was dead-lettered, only the markers" test "$(errors_kind apply_failed)" -eq "$marks"
topic_read "$C_PREFIX.dlq.b" '%k\n' >"$T_TMP/dlq.keys"
check "the DLQ holds the $marks markers and nothing else" test "$(grep -vc '^mark-articles-[0-9]*$' "$T_TMP/dlq.keys")/$(wc -l <"$T_TMP/dlq.keys")" = "0/$marks"
topic_read "$C_PREFIX.errors" '%s\n' | grep remote_unavailable >"$T_TMP/unavail.json"
check "the remote_unavailable event names source and remote" \
  test "$(json 'j["source"] + "/" + j["remote"]' <"$T_TMP/unavail.json")" = "a/b"
check "the group's lag drops to 0" wait_for 30 c_lag0 "$T_TMP/cfg.json"
expect_exit 0 "the consumer stops cleanly" c_stop c1
finish
