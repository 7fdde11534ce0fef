#!/usr/bin/env bash
# Batching latency: with linger_ms 0 (the default) a lone change goes out at once; with
# linger_ms 2000 it waits about that long for company, and a partition that fills a batch does
# not wait at all.
. "$(dirname "$0")/../lib/dx.sh"
t_begin
c_init

# exists KEY: the article KEY exists on b.
exists() { api b "$DXSYNC_B_ADMIN_TOKEN" GET "/items/articles/$1?fields=id" >/dev/null 2>&1; }
one_event() {
  KEY=$1 c_py <<'PY'
import os
from dx import *
g = Gen(os.environ["C_RUNID"])
g.create("articles", os.environ["KEY"], title="lone", rating=1)
g.write(os.environ["T_TMP"])
PY
  c_produce_kv articles "$T_TMP/articles.kv"
}
new_uuid() { python3 -c 'import uuid; print(uuid.uuid4())'; }

c_config "$T_TMP/cfg0.json"
c_start c0 "$T_TMP/cfg0.json"
check "the consumer joins" wait_for 60 c_log_has c0 "partition_assigned topic=$C_PREFIX.a.counters partition=2"
k=$(new_uuid)
t0=$(date +%s%N)
one_event "$k"
check "linger_ms 0: a lone change lands" wait_for 10 exists "$k"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "linger_ms 0: within 1.5 s of its produce (${ms} ms)" test "$ms" -lt 1500
expect_exit 0 "stops cleanly" c_stop c0

C_PREFIX="${C_PREFIX}l"
c_config "$T_TMP/cfg1.json" "$DXSYNC_B_SYNC_TOKEN" '{"linger_ms": 2000, "batch_max": 10}'
sed -i 's/"partitions": 3/"partitions": 1/' "$T_TMP/cfg1.json" # one partition: batches are predictable
c_start c1 "$T_TMP/cfg1.json"
check "the lingering consumer joins" wait_for 60 c_log_has c1 "partition_assigned topic=$C_PREFIX.a.counters partition=0"
# Exactly batch_max changes fill a batch: it goes out without waiting for the linger. This comes
# first: it shows that this consumer answers at once, so the wait below is the linger, not a
# slow consumer.
c_py <<'PY' >"$T_TMP/keys"
import os
from dx import *
g = Gen(os.environ["C_RUNID"] + "-burst")
ks = [g.uuid("b%d" % i) for i in range(10)]
for k in ks:
    g.create("articles", k, title="burst", rating=2)
g.write(os.environ["T_TMP"])
print(ks[-1])
PY
last=$(cat "$T_TMP/keys")
t0=$(date +%s%N)
c_produce_kv articles "$T_TMP/articles.kv"
check "a full batch lands" wait_for 10 exists "$last"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "a full batch does not wait for the linger (${ms} ms)" test "$ms" -lt 1500
# A lone change waits for the linger.
k=$(new_uuid)
t0=$(date +%s%N)
one_event "$k"
sleep 1
if exists "$k"; then fail "linger_ms 2000: the lone change went out before 1 s"; else pass "linger_ms 2000: the lone change waits"; fi
check "linger_ms 2000: it lands after the linger" wait_for 10 exists "$k"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "linger_ms 2000: after about 2 s (${ms} ms)" test "$ms" -ge 1800 -a "$ms" -lt 6000

expect_exit 0 "stops cleanly" c_stop c1
finish
