#!/usr/bin/env bash
# The consumer's state (issue 26) against the real Kafka and Directus b: a restart reads back
# only what came after the checkpoint (after a clean stop and after kill -9), a consumer without
# its store reads back from the horizon, a commit time in the consumer's future is warned about
# per source, an unusable state folder stops it at start naming the folder and the setting, and
# a second consumer with the same member name is fenced with a message naming
# group.instance.id. The remote ends right throughout.
. "$(dirname "$0")/../lib/dx.sh"
t_begin
c_init
BASE=$(( 60000000 + (C_RUNID % 100000) * 1000 ))
export BASE
STATE=$T_TMP/state
c_config "$T_TMP/cfg.json" "$DXSYNC_B_SYNC_TOKEN" "{\"state_dir\": \"$STATE\", \"session_timeout_ms\": 6000}"
gen() {
  ROUND=$1 N=$2 c_py <<'PY'
import os
from dx import *
r, n = int(os.environ["ROUND"]), int(os.environ["N"])
g = Gen(os.environ["C_RUNID"] + "-" + str(r), r * 100000)
for i in range(n):
    g.create("articles", g.uuid("a%d" % i), title="t%d" % r, rating=i)
    g.update("counters", int(os.environ["BASE"]) + r * 1000 + i, name="n%d" % i, value=i)
g.write(os.environ["T_TMP"])
g.save_expect(os.environ["T_TMP"] + "/expect%d.json" % r)
PY
}
produce() { c_produce_kv articles "$T_TMP/articles.kv" && c_produce_kv counters "$T_TMP/counters.kv"; }
applied() { c_verify "$T_TMP/expect$1.json" >"$T_TMP/verify.out" 2>&1; }
# the last "restore_plan" and "clocks_restored" lines of a consumer's log
last() { grep "event=$2" "$T_TMP/$1.log" | tail -1; }
events_read() { last "$1" clocks_restored | sed -n 's/.* events=\([0-9]*\).*/\1/p'; }

# a first run: its partitions have no checkpoint and its group no offsets, so all is read
gen 0 150
c_start m1 "$T_TMP/cfg.json"
check "the consumer opens its store in state_dir" wait_for 30 c_log_has m1 "event=state_opened dir=\"?$STATE/$C_PREFIX.apply.b.m1"
produce
check "round 0 is applied" wait_for 120 applied 0
sleep 6 # a checkpoint
expect_exit 0 "it stops cleanly" c_stop m1
check "its store holds the clocks of the 300 keys" test "$(mdb_stat -s clocks "$STATE/$C_PREFIX.apply.b.m1" | sed -n 's/.*Entries: //p')" -ge 300

# a restart after a clean stop reads back nothing but what came since
gen 1 40
produce
c_start m1 "$T_TMP/cfg.json"
check "after a clean stop every partition reads back from its checkpoint" \
  wait_for 30 eval "last m1 restore_plan | grep -q 'from_checkpoint=6 from_horizon=0 whole=0'"
check "round 1 is applied" wait_for 120 applied 1
check "only the 80 events published since were read back" test "$(events_read m1)" -le 80
sleep 6
c_kill m1
pass "kill -9"

# a restart after kill -9: from the checkpoint too
gen 2 40
produce
C_MEMBER=m1 c_start m1b "$T_TMP/cfg.json"
check "after kill -9 every partition reads back from its checkpoint" \
  wait_for 30 eval "last m1b restore_plan | grep -q 'from_checkpoint=6'"
check "round 2 is applied" wait_for 120 applied 2
check "only what came after the checkpoint was read back" test "$(events_read m1b)" -le 80

# a commit time a minute in the consumer's future: warned about, per source
future=$(( ($(date +%s) + 60) * 1000000 ))
k=$(python3 -c 'import uuid; print(uuid.uuid4())')
printf '%s\t{"version":1,"event_id":"a:%s","source":"a","collection":"articles","action":"create","key":"%s","data":{"id":"%s","title":"from the future","rating":1},"delta":{"title":"from the future","rating":1},"user":null,"timestamp":"2026-01-01T00:00:00.000Z","activity_id":%s,"revision_id":1,"lsn":"0/1","commit_us":%s}\n' \
  "$k" "$((BASE + 999))" "$k" "$k" "$((BASE + 999))" "$future" >"$T_TMP/future.kv"
c_produce_kv articles "$T_TMP/future.kv"
check "a commit time in the future is warned about, naming its source" \
  wait_for 30 c_log_has m1b "event=clock_skew source=a ahead_ms=[0-9]+ max_clock_skew_ms=5000"
expect_exit 0 "it stops cleanly" c_stop m1b

# its store lost: it reads back from the horizon, not the history
rm -rf "${STATE:?}/$C_PREFIX.apply.b.m1"
gen 3 40
produce
C_MEMBER=m1 c_start m1c "$T_TMP/cfg.json"
check "without its store every partition reads back from the horizon" \
  wait_for 30 eval "last m1c restore_plan | grep -q 'from_checkpoint=0 from_horizon=6'"
check "round 3 is applied" wait_for 120 applied 3

# a second consumer under the same member name: one of the two is fenced, saying why
C_MEMBER=m1 c_start twin "$T_TMP/cfg.json"
fenced() { grep -hE "event=kafka_fatal .*group.instance.id" "$T_TMP/m1c.log" "$T_TMP/twin.log" >/dev/null; }
check "a second consumer with the same --member is fenced, naming group.instance.id" wait_for 60 fenced
stop_proc twin TERM 30
stop_proc m1c TERM 30

# a state folder it cannot use: it stops at start, naming the folder and the setting
c_config "$T_TMP/bad.json" "$DXSYNC_B_SYNC_TOKEN" '{"state_dir": "/proc/dxsync-state"}'
expect_exit 1 "an unusable state_dir stops the consumer" "$C_BIN" --config "$T_TMP/bad.json" --remote b --member x
check "the error names the folder and consumer.state_dir" \
  grep -q "clock store directory /proc/dxsync-state.*(consumer.state_dir)" "$T_TMP/out"
check "nothing was dead-lettered" test "$(topic_count "$C_PREFIX.dlq.b")" -eq 0
finish
