#!/usr/bin/env bash
# Poison and malformed input: every invalid vector of tests/vectors/events/invalid, an event
# Directus answers with 500 (a string for an integer field), one it answers VALUE_TOO_LONG and
# one VALUE_OUT_OF_RANGE each end in <prefix>.dlq.b (original key and value, error headers)
# with exactly one apply_failed event in <prefix>.errors, while the good events around them,
# in the same batches, and later events still apply; the offsets move past them.
. "$(dirname "$0")/../lib/dx.sh"
t_begin
c_init
BASE=$(( 30000000 + (C_RUNID % 100000) * 1000 ))
export BASE

c_config "$T_TMP/cfg.json" "$DXSYNC_B_SYNC_TOKEN" '{"item_attempts": 2}'
c_start c1 "$T_TMP/cfg.json"
check "the consumer joins" wait_for 60 c_log_has c1 "partition_assigned topic=$C_PREFIX.a.counters partition=2"

c_py <<'PY'
import os
from dx import *
g = Gen(os.environ["C_RUNID"])
base = int(os.environ["BASE"])
g.create("counters", base + 1, name="good before", value=1)
g.emit("counters", "create", base + 2, {"id": base + 2, "name": "poison", "value": "abc"}, None)
g.create("counters", base + 3, name="good after", value=3)
g.emit("counters", "create", base + 4, {"id": base + 4, "name": "x" * 300, "value": 4}, None)
g.emit("counters", "create", base + 5, {"id": base + 5, "name": "huge", "value": 99999999999}, None)
g.create("articles", g.uuid("good"), title="fine", rating=5)
g.write(os.environ["T_TMP"])
g.save_expect(os.environ["T_TMP"] + "/expect1.json")
PY
c_produce_kv counters "$T_TMP/counters.kv"
c_produce_kv articles "$T_TMP/articles.kv"
n=0
for f in "$DXSYNC_VECTORS"/events/invalid/*; do
  n=$((n + 1))
  c_produce_files articles "bad-$n" "$f"
done
# a tombstone (no value at all)
printf 'tomb\t\n' | kcat -b "$DXSYNC_KAFKA_BROKERS" -P -t "$C_PREFIX.a.articles" -K $'\t' -Z
malformed=$(topic_count "$C_PREFIX.a.articles")
malformed=$((malformed - 1)) # the good article
dead_want=$((malformed + 3))

# later events still apply
c_py <<'PY'
import os
from dx import *
g = Gen(os.environ["C_RUNID"], 1000)
base = int(os.environ["BASE"])
g.create("counters", base + 1, name="good before", value=1)
g.update("counters", base + 1, value=11)
g.create("counters", base + 3, name="good after", value=3)
g.update("counters", base + 3, value=33)
g.create("articles", g.uuid("good"), title="fine", rating=5)
g.update("articles", g.uuid("good"), title="still fine")
for k in (2, 4, 5):
    g.expect[("counters", str(base + k))] = None
g.msgs = {"counters": g.msgs["counters"][1::2], "articles": g.msgs["articles"][1:]}
g.write(os.environ["T_TMP"])
g.save_expect(os.environ["T_TMP"] + "/expect2.json")
PY
c_produce_kv counters "$T_TMP/counters.kv"
c_produce_kv articles "$T_TMP/articles.kv"

dlq_full() { [ "$(topic_count "$C_PREFIX.dlq.b")" -ge "$dead_want" ]; }
check "$dead_want messages reach the DLQ ($malformed malformed, 3 refused)" wait_for 120 dlq_full
verify2() { c_verify "$T_TMP/expect2.json" >"$T_TMP/verify2.out" 2>&1; }
if wait_for 60 verify2; then pass "good events around and after the poison apply"; else fail "remote differs:"; head "$T_TMP/verify2.out"; fi
# Nothing more may arrive: markers (one malformed message on every partition, after everything
# else) reach the DLQ, and the group's lag is 0 (an offset is stored only once its DLQ copy is
# acknowledged); only then is the DLQ counted.
marks=$(c_produce_marks mark counters articles)
dead_want=$((dead_want + marks))
check "the markers reach the DLQ too" wait_for 60 dlq_full
check "the group's lag drops to 0 (offsets move past dead letters)" wait_for 30 c_lag0 "$T_TMP/cfg.json"
check "the consumer still runs" running "$(proc_pid c1)"
check "exactly $dead_want messages in the DLQ ($marks of them markers)" test "$(topic_count "$C_PREFIX.dlq.b")" -eq "$dead_want"

topic_read "$C_PREFIX.dlq.b" '%k\t%h\t%s\n' >"$T_TMP/dlq.txt"
topic_read "$C_PREFIX.errors" '%s\n' >"$T_TMP/errors.txt"
topic_read "$C_PREFIX.a.counters" '%k\t%p\t%o\t%s\n' >"$T_TMP/src.txt"
cat >"$T_TMP/check.py" <<'PY'
import json, sys
tmp, want, base, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
errs = [json.loads(l) for l in open(tmp + "/errors.txt") if l.strip()]
dlq = []
for l in open(tmp + "/dlq.txt", encoding="utf-8", errors="replace"):
    parts = l.rstrip("\n").split("\t", 2)
    if len(parts) < 3:
        continue
    k, h, v = parts
    hdr = dict(x.split("=", 1) for x in h.split(",") if "=" in x)
    dlq.append((k, hdr, v))
src = {}
for l in open(tmp + "/src.txt"):
    k, p, o, v = l.rstrip("\n").split("\t", 3)
    src[(k, int(o), int(p))] = v
bad = 0
def expect(cond, what):
    global bad
    if not cond:
        bad += 1
        print("FAIL", what)
failed = [e for e in errs if e["kind"] == "apply_failed"]
expect(len(failed) == want, "%d apply_failed events, want %d" % (len(failed), want))
expect(len(errs) == want, "no other error events (%d)" % len(errs))
by_key = {e["key"]: e for e in failed if e.get("key")}
poison = by_key.get(str(base + 2))
expect(poison is not None, "an error event for the string-for-integer item")
if poison:
    expect(poison["status"] == 500 and poison["code"] == "INTERNAL_SERVER_ERROR", "poison: 500 INTERNAL_SERVER_ERROR (%s %s)" % (poison["status"], poison["code"]))
    expect(poison["attempts"] >= 2, "poison tried item_attempts times (%s)" % poison["attempts"])
    expect(poison["source"] == "a" and poison["remote"] == "b" and poison["collection"] == "counters", "poison: source, remote, collection")
    expect(poison["action"] == "create" and poison["event_id"].startswith("a:"), "poison: action and event_id")
    expect(poison["topic"] == prefix + ".a.counters", "poison: topic")
    v = src.get((str(base + 2), poison["offset"], poison["partition"]))
    expect(v is not None and '"abc"' in v, "poison: partition and offset point at the original")
for k, code in ((base + 4, "VALUE_TOO_LONG"), (base + 5, "VALUE_OUT_OF_RANGE")):
    e = by_key.get(str(k))
    expect(e is not None and e["status"] == 400 and e["code"] == code, "%s: 400 %s (%s)" % (k, code, e and e["code"]))
mal = [e for e in failed if e["code"] == "MALFORMED_EVENT"]
expect(len(mal) == want - 3, "%d malformed events, want %d" % (len(mal), want - 3))
expect(all(e["status"] == 0 and e["message"] for e in mal), "malformed: status 0 and a reason")
expect(len(dlq) == want, "%d DLQ messages readable, want %d" % (len(dlq), want))
for k, hdr, v in dlq:
    for h in ("dxsync-error-status", "dxsync-error-code", "dxsync-error-message", "dxsync-original-topic", "dxsync-original-partition", "dxsync-original-offset"):
        if h not in hdr:
            expect(False, "DLQ message %s lacks header %s" % (k, h))
            break
pk = [d for d in dlq if d[0] == str(base + 2)]
expect(len(pk) == 1 and pk[0][1].get("dxsync-error-code") == "INTERNAL_SERVER_ERROR", "the poison's DLQ copy carries its error code")
if pk:
    orig = src.get((str(base + 2), int(pk[0][1]["dxsync-original-offset"]), int(pk[0][1]["dxsync-original-partition"])))
    expect(orig == pk[0][2], "the DLQ copy holds the original value")
print("problems: %d" % bad)
sys.exit(1 if bad else 0)
PY
if python3 "$T_TMP/check.py" "$T_TMP" "$dead_want" "$BASE" "$C_PREFIX" >"$T_TMP/check.out" 2>&1; then pass "DLQ copies and error events are complete and one per failure"; else fail "DLQ or error events wrong:"; cat "$T_TMP/check.out"; fi
expect_exit 0 "the consumer stops cleanly" c_stop c1
finish
