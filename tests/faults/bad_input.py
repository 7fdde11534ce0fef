#!/usr/bin/env python3
"""Bad input through the real path a -> producer -> Kafka -> consumer -> b, one part each:
- oversized: items of about 700 KB (an event holds them twice: 1.4 MB, more than Kafka's default
  1 MB) arrive intact; an event larger than b accepts goes to the DLQ and the rest goes on;
- keys with odd characters (/ ? % # & space quotes unicode) in a string-key collection: create,
  update and delete reach b;
- what is not routed: a collection without a route publishes nothing, a change to an unrouted
  field only is not an event, and an event on the wrong topic or with fields b is not routed
  writes nothing it should not;
- HTTP answers that are not JSON, or are cut short, from b (through a proxy): retried, nothing
  lost, nothing dead-lettered.
Malformed messages and unknown versions (every invalid vector) are in consumer_deadletter."""
import hashlib, os, subprocess, sys, time, urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dx import *  # noqa: E402,F401,F403
from proxy import Proxy  # noqa: E402

A, B = inst("a"), inst("b")
RUNID = int(time.time() * 1000) % 10**9
PREFIX = f"bad{RUNID}"
ODD = f"odd_keys_{RUNID}"   # a string-key collection made for this test on a and b
proxy = Proxy(B["url"])


def digest(v):
    return hashlib.sha256(str(v).encode()).hexdigest()[:12]


def make_collection(i):
    api(i, "POST", "/collections", {"collection": ODD, "meta": {"accountability": "all"}, "schema": {},
                                    "fields": [{"field": "code", "type": "string", "meta": {},
                                                "schema": {"is_primary_key": True, "length": 255}},
                                               {"field": "label", "type": "string", "meta": {}, "schema": {}}]})


def drop_collections():
    for i in (A, B):
        api(i, "DELETE", f"/collections/{ODD}", ok=(200, 204, 403, 404))


make_collection(A)
make_collection(B)
atexit.register(drop_collections)
pid = ENV["DXSYNC_B_SYNC_POLICY_ID"]
for action in ("create", "read", "update", "delete"):
    api(B, "POST", "/permissions", {"policy": pid, "collection": ODD, "action": action, "fields": ["*"],
                                    "permissions": {}, "validation": {}})

cfg = {"kafka": {"brokers": BROKERS, "topic_prefix": PREFIX, "partitions": 2},
       "instances": [{"name": "a", "url": A["url"], "token": A["sync"], "database": A["db"]},
                     {"name": "b", "url": proxy.url, "token": B["sync"]}],
       "routes": [{"from": "a", "to": "b", "collections": [
           {"collection": "articles", "fields": ["title", "body"]},
           {"collection": ODD, "fields": ["label"]}]}],
       "consumer": {"retry_notify_after_s": 300}}
CFG = os.path.join(TMP, "cfg.json")
json.dump(cfg, open(CFG, "w"))
fresh_slot(A)
start("producer", f"{BIN}/producer/dxsync-producer", "--config", CFG, "--instance", "a", "--log-level", "debug")
start("consumer", f"{BIN}/consumer/dxsync-consumer", "--config", CFG, "--remote", "b", "--log-level", "debug")
check(wait_for(lambda: "event=streaming" in log_of("producer"), 30), "the producer streams")
check(wait_for(lambda: "partition_assigned" in log_of("consumer"), 60), "the consumer is assigned its partitions")


def get(i, coll, key, fields="*"):
    r = api(i, "GET", f"/items/{coll}/{urllib.parse.quote(str(key), safe='')}?fields={fields}", ok=(200, 403, 404))
    return r["data"] if r and r.get("data") else None


def same_on_b(coll, keys, fields):
    for k in keys:
        s, d = get(A, coll, k), get(B, coll, k)
        if (s is None) != (d is None) or (s and any(s[f] != d[f] for f in fields)):
            return False
    return True


# ---- oversized values
big = [uid() for _ in range(2)]
bodies = [("ünï ✓ " + "lorem ipsum dolor " * 55 + str(n)) * 700 for n in range(2)]   # 700 KB
for k, body in zip(big, bodies):
    api(A, "POST", "/items/articles", {"id": k, "title": "big", "body": body})
small = uid()
api(A, "POST", "/items/articles", {"id": small, "title": "small after the big ones"})
ok = wait_for(lambda: all((get(B, "articles", k, "body") or {}).get("body") == b for k, b in zip(big, bodies))
              and get(B, "articles", small), 90, 1)
sizes = [len(m["payload"].encode()) for m in topic(f"{PREFIX}.a.articles")]
check(ok and max(sizes) > 1_000_000,
      f"two 700 KB items (events of {max(sizes) if sizes else 0} bytes, more than Kafka's default 1 MB) and the "
      f"next change reach b intact ({[digest(b) for b in bodies]})")
# an event larger than b accepts (Directus's MAX_PAYLOAD_SIZE, 1 MB): DLQ, and the rest goes on
huge = uid()
ev = {"version": 1, "event_id": f"a:{RUNID}", "source": "a", "collection": "articles", "action": "create",
      "key": huge, "data": {"id": huge, "title": "huge", "body": "x" * 1_500_000}, "delta": {"title": "huge"},
      "user": None, "timestamp": "2026-11-26T00:00:00.000Z", "activity_id": RUNID, "revision_id": RUNID,
      "lsn": "0/0"}
subprocess.run(["kcat", "-b", BROKERS, "-P", "-t", f"{PREFIX}.a.articles", "-k", huge, "-X", "message.max.bytes=8388608"],
               input=json.dumps(ev).encode(), check=True)
after = uid()
api(A, "POST", "/items/articles", {"id": after, "title": "after the huge one"})
ok = wait_for(lambda: any(m["key"] == huge for m in topic(f"{PREFIX}.dlq.b")), 60, 1)
errs = [json.loads(m["payload"]) for m in topic(f"{PREFIX}.errors")]
check(ok and get(B, "articles", huge) is None and any(e.get("key") == huge and e.get("status") in (400, 413) for e in errs),
      f"an event larger than b accepts goes to the DLQ with b's answer ({[(e.get('status'), e.get('code')) for e in errs if e.get('key') == huge]})")
check(wait_for(lambda: get(B, "articles", after) is not None, 60), "the change after it reaches b")

# ---- keys with odd characters
odd = ["a/b", "x y", "q?x=1&y=2", "100%", "hash#tag", 'quote"s', "back\\slash", "ünï ✓ 日本", "dots..", "+plus+"]
for k in odd:
    api(A, "POST", f"/items/{ODD}", {"code": k, "label": f"label of {k}"})
for k in odd[:5]:
    api(A, "PATCH", f"/items/{ODD}/{urllib.parse.quote(k, safe='')}", {"label": f"edited {k}"})
for k in odd[5:7]:
    api(A, "DELETE", f"/items/{ODD}/{urllib.parse.quote(k, safe='')}")
ok = wait_for(lambda: same_on_b(ODD, odd, ["label"]), 60, 1)
check(ok, f"{len(odd)} items with odd keys created, 5 edited and 2 deleted on a: b matches "
          f"({[k for k in odd if (get(A, ODD, k) or {}).get('label') != (get(B, ODD, k) or {}).get('label')]})")
keys = {m["key"] for m in topic(f"{PREFIX}.a.{ODD}")}
check(keys == set(odd), "the Kafka keys are the item keys, byte for byte")

# ---- what is not routed
ctr = 900_000_000 + RUNID % 100_000_000
api(A, "POST", "/items/counters", {"id": ctr, "name": "not routed", "value": 1})
k = uid()
api(A, "POST", "/items/articles", {"id": k, "title": "routed", "rating": 1})
api(A, "PATCH", f"/items/articles/{k}", {"rating": 2})            # rating is not routed: no event
api(A, "PATCH", f"/items/articles/{k}", {"title": "routed, edited"})
check(wait_for(lambda: (get(B, "articles", k) or {}).get("title") == "routed, edited", 60), "routed changes arrive")
evs = [json.loads(m["payload"]) for m in topic(f"{PREFIX}.a.articles") if m["key"] == k]
check([e["action"] for e in evs] == ["create", "update"] and all("rating" not in e["data"] for e in evs),
      f"an update of an unrouted field only is no event, and unrouted fields are not in events ({[e['action'] for e in evs]})")
check(not topic_exists(f"{PREFIX}.a.counters") and get(B, "counters", ctr) is None,
      "a collection without a route publishes nothing (Kafka says there is no such topic)")
# hand-made events: one of another collection on the articles topic, one carrying a field b is not routed
wrong, extra = uid(), uid()
for n, (key, e) in enumerate(((wrong, {"collection": "counters"}), (extra, {})), 1):
    ev = {"version": 1, "event_id": f"a:{RUNID + n}", "source": "a", "collection": "articles",
          "action": "create", "key": key, "data": {"id": key, "title": "hand-made", "rating": 77, "no_such_field": 1},
          "delta": {"title": "hand-made", "rating": 77, "no_such_field": 1}, "user": None,
          "timestamp": "2026-11-26T00:00:00.000Z", "activity_id": RUNID + n, "revision_id": RUNID + n,
          "lsn": "0/0", **e}
    subprocess.run(["kcat", "-b", BROKERS, "-P", "-t", f"{PREFIX}.a.articles", "-k", key], input=json.dumps(ev).encode(), check=True)
check(wait_for(lambda: get(B, "articles", extra) is not None, 60), "a hand-made event with unrouted fields applies")
got = get(B, "articles", extra) or {}
check(got.get("title") == "hand-made" and got.get("rating") is None, f"only its routed fields are written ({got})")
check(wait_for(lambda: any(m["key"] == wrong for m in topic(f"{PREFIX}.dlq.b")), 60) and get(B, "articles", wrong) is None
      and "event of a/counters on topic" in log_of("consumer"),
      "an event of another collection on the articles topic goes to the DLQ, unapplied, with the reason logged")

# ---- HTTP answers that are not JSON, or cut short
for mode in ("garbage", "truncate"):
    keys = [uid() for _ in range(6)]
    proxy.spoil(mode, 4)
    for n, k in enumerate(keys):
        api(A, "POST", "/items/articles", {"id": k, "title": f"{mode} {n}", "body": "b" * 200})
    api(A, "PATCH", "/items/articles", {"keys": keys[:3], "data": {"title": f"{mode} edited"}})
    api(A, "DELETE", f"/items/articles/{keys[5]}")
    ok = wait_for(lambda: same_on_b("articles", keys, ["title", "body"]), 90, 1)
    check(ok and proxy.spoil_left == 0, f"b's answers {'not JSON' if mode == 'garbage' else 'cut short'} "
                                        f"({proxy.spoiled} so far): retried, b matches a")
# every event applied or dead-lettered (an offset is stored once its DLQ copy is acknowledged):
# only then is the DLQ read
check(wait_for(lambda: group_lag(CFG, "b") == 0, 60, 1), "b's group has lag 0")
dead = {m["key"] for m in topic(f"{PREFIX}.dlq.b")}
check(dead == {huge, wrong}, f"nothing else was dead-lettered ({len(dead)} keys in the DLQ)")
for name in list(procs):
    check(procs[name].poll() is None, f"{name} is still running")
    check(stop(name) == 0, f"{name} stops cleanly on SIGTERM")

# ---- an event larger than the producer may send: it stops with a clear error, confirms
# nothing after it, and a producer allowed more delivers it on restart
small_cfg = dict(cfg, kafka=dict(cfg["kafka"], topic_prefix=PREFIX + "s", properties={"message.max.bytes": "1000000"}))
CFG2 = os.path.join(TMP, "cfg-small.json")
json.dump(small_cfg, open(CFG2, "w"))
fresh_slot(A)
p = start("producer-small", f"{BIN}/producer/dxsync-producer", "--config", CFG2, "--instance", "a")
check(wait_for(lambda: "event=streaming" in log_of("producer-small"), 30), "a producer limited to 1 MB messages streams")
k = uid()
api(A, "POST", "/items/articles", {"id": k, "title": "too big for it", "body": bodies[0]})
try:
    rc = p.wait(60)
except subprocess.TimeoutExpired:
    rc = None
check(rc == 1 and "more than Kafka takes" in log_of("producer-small") and "message.max.bytes" in log_of("producer-small"),
      f"it stops (exit {rc}) naming the event and the settings to raise")
procs.pop("producer-small", None)
json.dump(dict(small_cfg, kafka=dict(small_cfg["kafka"], properties={})), open(CFG2, "w"))
start("producer-again", f"{BIN}/producer/dxsync-producer", "--config", CFG2, "--instance", "a")
check(wait_for(lambda: any(m["key"] == k for m in topic(f"{PREFIX}s.a.articles")), 60),
      "started again with the default limit, it delivers that change: nothing was skipped")
stop("producer-again")
finish("bad_input")
