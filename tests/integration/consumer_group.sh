#!/usr/bin/env bash
# Two consumers with the same --remote split the partitions between them (group
# <prefix>.apply.b), both apply, and the result is the same as with one; when one stops in the
# middle of the stream, the other takes its partitions over and the remote still ends right.
. "$(dirname "$0")/../lib/dx.sh"
t_begin
c_init
BASE=$(( 50000000 + (C_RUNID % 100000) * 1000 ))
export BASE

c_config "$T_TMP/cfg.json" "$DXSYNC_B_SYNC_TOKEN" '{"batch_max": 20}'
gen() {
  ROUND=$1 c_py <<'PY'
import os
from dx import *
r = int(os.environ["ROUND"])
g = Gen(os.environ["C_RUNID"] + "-" + str(r), r * 100000)
base = int(os.environ["BASE"]) + r * 400
for i in range(300):
    g.create("articles", g.uuid("a%d" % i), title="t", rating=i)
for i in range(300):
    g.update("counters", base + i, name="n%d" % i, value=i)   # missing: created
for i in range(300):
    g.update("articles", g.uuid("a%d" % i), title="final %d" % r)
    g.update("counters", base + i, value=i * 10)
g.write(os.environ["T_TMP"])
g.save_expect(os.environ["T_TMP"] + "/expect%d.json" % r)
PY
}

# Which partitions a consumer holds now, replaying its assigned/revoked log lines.
held() {
  awk '/event=partition_assigned/ { for (i = 1; i <= NF; i++) { if ($i ~ /^topic=/) t = $i; if ($i ~ /^partition=/) p = $i } held[t " " p] = 1 }
       /event=partition_revoked/  { for (i = 1; i <= NF; i++) { if ($i ~ /^topic=/) t = $i; if ($i ~ /^partition=/) p = $i } delete held[t " " p] }
       END { for (k in held) print k }' "$T_TMP/$1.log" | sort
}
split_ok() {
  local a b
  a=$(held c1 | wc -l); b=$(held c2 | wc -l)
  [ "$a" -ge 1 ] && [ "$b" -ge 1 ] && [ $((a + b)) -eq 6 ] && [ -z "$(comm -12 <(held c1) <(held c2))" ]
}

C_LOG_LEVEL=debug c_start c1 "$T_TMP/cfg.json"
check "the first consumer joins" wait_for 60 c_log_has c1 "partition_assigned"
C_LOG_LEVEL=debug c_start c2 "$T_TMP/cfg.json"
check "the two consumers split the 6 partitions without overlap" wait_for 60 split_ok
echo "     c1: $(held c1 | tr '\n' ' ')"
echo "     c2: $(held c2 | tr '\n' ' ')"

gen 0
c_produce_kv articles "$T_TMP/articles.kv"
c_produce_kv counters "$T_TMP/counters.kv"
verify0() { c_verify "$T_TMP/expect0.json" >"$T_TMP/verify.out" 2>&1; }
if wait_for 120 verify0; then pass "the remote ends right with two consumers"; else fail "remote differs:"; head "$T_TMP/verify.out"; fi
check "the first consumer applied some" test "$(grep -c 'event=request .*method=\(POST\|PATCH\)' "$T_TMP/c1.log" || true)" -gt 0
check "the second consumer applied some" test "$(grep -c 'event=request .*method=\(POST\|PATCH\)' "$T_TMP/c2.log" || true)" -gt 0

# One consumer leaves in the middle of a stream: the other takes everything over.
gen 1
c_produce_kv articles "$T_TMP/articles.kv"
c_produce_kv counters "$T_TMP/counters.kv"
sleep 0.5
expect_exit 0 "the first consumer stops cleanly in the middle of the stream" c_stop c1
all_c2() { [ "$(held c2 | wc -l)" -eq 6 ]; }
check "the second consumer takes all 6 partitions over" wait_for 60 all_c2
verify1() { c_verify "$T_TMP/expect1.json" >"$T_TMP/verify.out" 2>&1; }
if wait_for 120 verify1; then pass "the remote still ends right"; else fail "remote differs:"; head "$T_TMP/verify.out"; fi
check "the group's lag drops to 0" wait_for 30 c_lag0 "$T_TMP/cfg.json"
expect_exit 0 "the second consumer stops cleanly" c_stop c2
finish
