#!/usr/bin/env bash
# Bad input of every shape into the consumer (issue 14): every JSON type (null, true, false,
# numbers small, fractional, negative and beyond 2^53, strings empty, long and unicode, arrays,
# objects) in every routed field of articles and counters; a field nested as deep as an event may
# be; a 10 MB string (an event of 20 MB, which b's Directus refuses); integer keys beyond 2^53 (as a number: malformed; as text: refused by Directus). Each event
# applies or is dead-lettered with an error code, one dead letter each, the consumer runs on, a
# good event after each bad one applies, and the group's lag drops to 0 (no partition stalls).
. "$(dirname "$0")/../lib/dx.sh"
t_begin
c_init
BASE=$(( 40000000 + (C_RUNID % 100000) * 1000 ))
export BASE

c_config "$T_TMP/cfg.json" "$DXSYNC_B_SYNC_TOKEN" '{"item_attempts": 2}'
c_start c1 "$T_TMP/cfg.json"
check "the consumer joins" wait_for 60 c_log_has c1 "partition_assigned topic=$C_PREFIX.a.counters partition=2"

c_py <<'PY'
import json, os, sys
from dx import *
sys.setrecursionlimit(10000)
g = Gen(os.environ["C_RUNID"])
base = int(os.environ["BASE"])
values = [None, True, False, 0, 7, -3, 1.5, 2 ** 60, "", "ü ✓ 日本", "x" * 5000, [], [1, "a"], {}, {"k": {"n": 1}}]
keys = []
n = 0
for coll, fields in (("articles", ["title", "rating"]), ("counters", ["name", "value"])):
    for f in fields:
        for v in values:
            n += 1
            key = g.uuid(f"t{n}") if coll == "articles" else base + n
            data = {"id": key, f: v}
            g.emit(coll, "create", key, data, {f: v})
            keys.append([coll, str(key)])
            # a good event of another key right behind each bad one
            n += 1
            good = g.uuid(f"t{n}") if coll == "articles" else base + n
            g.create(coll, good, **({"title": f"good {n}", "rating": n} if coll == "articles" else {"name": f"good {n}", "value": n}))
# as deep as an event may nest (cJSON's limit is 1000 levels; the event and data take 2)
deep = {}
cur = deep
for _ in range(990):
    cur["d"] = {}
    cur = cur["d"]
n += 1
key = g.uuid(f"t{n}")
g.emit("articles", "create", key, {"id": key, "title": deep}, {"title": deep})
keys.append(["articles", key])
# a 10 MB string: the event is about 20 MB (data and delta), past Kafka's 1 MB default; b keeps
# Directus's 1 MB MAX_PAYLOAD_SIZE and refuses it
n += 1
key = g.uuid(f"t{n}")
g.emit("articles", "create", key, {"id": key, "title": "x" * 10_000_000}, {"title": "x" * 10_000_000})
keys.append(["articles", key])
json.dump(key, open(os.environ["T_TMP"] + "/large.json", "w"))
n += 1
g.create("articles", g.uuid(f"t{n}"), title="after the large one", rating=n)
# integer keys beyond 2^53: as text (exact) and as a JSON number (not exact: malformed)
g.emit("counters", "create", "9007199254740993", {"id": "9007199254740993", "name": "big"}, {"name": "big"})
keys.append(["counters", "9007199254740993"])
n += 1
g.create("counters", base + n, name="after the big keys", value=1)
g.write(os.environ["T_TMP"])
g.save_expect(os.environ["T_TMP"] + "/expect.json")
json.dump(keys, open(os.environ["T_TMP"] + "/bad.json", "w"))
PY
c_produce_kv counters "$T_TMP/counters.kv"
c_produce_kv articles "$T_TMP/articles.kv"
# a key that is a JSON number beyond 2^53, written by hand (Python's json would keep it exact)
printf '9007199254740995\t{"version":1,"event_id":"a:99999","source":"a","collection":"counters","action":"create","key":9007199254740995,"data":{"id":9007199254740995,"name":"big number"},"delta":{"name":"big number"},"user":null,"timestamp":"2026-01-01T00:00:00.000Z","activity_id":99999}\n' \
  | kcat -b "$DXSYNC_KAFKA_BROKERS" -P -t "$C_PREFIX.a.counters" -K $'\t'

verify() { c_verify "$T_TMP/expect.json" >"$T_TMP/verify.out" 2>&1; }
if wait_for 180 verify; then pass "every good event behind a bad one applies"; else fail "remote differs:"; head "$T_TMP/verify.out"; fi
check "the group's lag drops to 0 (no partition stalls)" wait_for 180 c_lag0 "$T_TMP/cfg.json"
check "the consumer still runs" running "$(proc_pid c1)"

topic_read "$C_PREFIX.dlq.b" '%k\t%h\n' >"$T_TMP/dlq.txt"
cat >"$T_TMP/check.py" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[2])
from dx import fetch_b
tmp = sys.argv[1]
bad = json.load(open(tmp + "/bad.json"))
dlq = {}
for l in open(tmp + "/dlq.txt", encoding="utf-8", errors="replace"):
    k, _, h = l.rstrip("\n").partition("\t")
    hdr = dict(x.split("=", 1) for x in h.split(",") if "=" in x)
    dlq.setdefault(k, []).append(hdr.get("dxsync-error-code", ""))
on_b = {}
for coll in ("articles", "counters"):
    keys = [k for c, k in bad if c == coll and not (coll == "counters" and int(k) > 2 ** 31)]
    on_b.update({(coll, k): v for k, v in fetch_b(coll, keys, ["id"]).items()})
problems = applied = lettered = 0
codes = {}
for coll, k in bad:
    here, letters = (coll, k) in on_b, dlq.get(k, [])
    if here and not letters:
        applied += 1
    elif letters and not here and len(letters) == 1 and letters[0]:
        lettered += 1
        codes[letters[0]] = codes.get(letters[0], 0) + 1
    else:
        problems += 1
        print(f"FAIL {coll} {k}: on b {here}, dead letters {letters}")
large = dlq.get(json.load(open(tmp + "/large.json")), [])
print(f"the 10 MB string: dead letters {large}")
if large != ["INVALID_PAYLOAD"]:
    problems += 1
    print("FAIL the 10 MB string: want one dead letter, INVALID_PAYLOAD (b's Directus refuses the body)")
big = dlq.get("9007199254740995", [])
if big != ["MALFORMED_EVENT"]:
    problems += 1
    print(f"FAIL the key beyond 2^53 as a JSON number: dead letters {big}, want one MALFORMED_EVENT")
print(f"{len(bad)} bad events: {applied} applied, {lettered} dead-lettered {codes}; problems: {problems}")
sys.exit(1 if problems else 0)
PY
if python3 "$T_TMP/check.py" "$T_TMP" "$DXSYNC_SOURCE/tests/lib" >"$T_TMP/check.out" 2>&1; then
  pass "each bad event applied or has one dead letter with a code: $(tail -1 "$T_TMP/check.out")"
  echo "     $(grep '10 MB' "$T_TMP/check.out")"
else fail "bad events:"; cat "$T_TMP/check.out"; fi
expect_exit 0 "the consumer stops cleanly" c_stop c1
finish
