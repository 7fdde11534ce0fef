#!/usr/bin/env python3
"""Schema drift while the consumer runs (issue 18): a routed field deleted on the remote. A create
of an item with a value for it is stored by Directus without the field and without a word; the
consumer sees the stored item lacks it, reads the field list again and dead-letters the event
as FIELD_NOT_ON_REMOTE (dead letter, error event, notification in the source instance). The field
comes back: `dlq redrive` applies the letter, a second redrive applies nothing. A field added on
the remote later is picked up without a restart."""
import json, os, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dx import *  # noqa: E402,F401,F403

NAME = "drift"
seed(NAME)
A, B = inst("a"), inst("b")
PREFIX = f"drf{int(time.time() * 1000) % 10**9}"
FIELD = "drift_note"
cfg = {"kafka": {"brokers": BROKERS, "topic_prefix": PREFIX, "partitions": 3},
       "instances": [{"name": i["name"], "url": i["url"], "token": i["sync"], "database": i["db"]} for i in (A, B)],
       "routes": [{"from": "a", "to": "b", "notify": [A["admin_id"]],
                   "collections": [{"collection": "articles", "fields": ["title", FIELD]}]}],
       "consumer": {"retry_notify_after_s": 5}, "notify": {"digest_window_s": 0}}
CFG = os.path.join(TMP, "cfg.json")
json.dump(cfg, open(CFG, "w"))
P, CONS, NOTI = f"{BIN}/producer/dxsync-producer", f"{BIN}/consumer/dxsync-consumer", f"{BIN}/consumer/dxsync-notifier"


def add_field(i):
    fields = [f["field"] for f in api(i, "GET", "/fields/articles")["data"]]
    if FIELD not in fields:
        api(i, "POST", "/fields/articles", {"field": FIELD, "type": "string", "meta": {}, "schema": {}})


def drop_field(i):
    fields = [f["field"] for f in api(i, "GET", "/fields/articles")["data"]]
    if FIELD in fields:
        api(i, "DELETE", f"/fields/articles/{FIELD}")


for i in (A, B):
    add_field(i)
fresh_slot(A)
start("producer-a", P, "--config", CFG, "--instance", "a")
start("consumer-b", CONS, "--config", CFG, "--remote", "b")
start("notifier", NOTI, "--config", CFG)
check(wait_for(lambda: "event=streaming" in log_of("producer-a"), 30), "a's producer streams")

k1 = uid()
api(A, "POST", "/items/articles", {"id": k1, "title": "before", FIELD: "one"})
check(wait_for(lambda: items(B, "articles", f"id,{FIELD}").get(k1, {}).get(FIELD) == "one", 60, 1),
      "with the field on both sides, its value reaches b")

# ---- the field is deleted on b while the consumer runs
drop_field(B)
k2 = uid()
api(A, "POST", "/items/articles", {"id": k2, "title": "after", FIELD: "two"})


def letters():
    return [e for e in (json.loads(m["payload"]) for m in topic(f"{PREFIX}.errors"))
            if e.get("code") == "FIELD_NOT_ON_REMOTE" and e.get("key") == k2]


check(wait_for(letters, 60, 1), "the create that lost its value on b is an error event FIELD_NOT_ON_REMOTE")
msg = letters()[0]["message"] if letters() else ""
check(FIELD in msg, f"... naming the field ({msg})")
dl = [m for m in topic(f"{PREFIX}.dlq.b") if m["key"] == k2]
check(len(dl) == 1, "... and a dead letter")
check("event=field_not_stored" in log_of("consumer-b"), "the consumer saw the stored item lacks the field")


def notified():
    got = api(A, "GET", f"/notifications?filter[item][_eq]={k2}&fields=id,subject")["data"]
    return got
check(wait_for(notified, 60, 2), f"the route's user is notified on a ({notified()[:1]})")

# ---- the field comes back: redrive applies the letter, once
add_field(B)
r1 = subprocess.run([CONS, "--config", CFG, "--remote", "b", "dlq", "redrive", "--code", "FIELD_NOT_ON_REMOTE"],
                    capture_output=True, text=True)
print("     " + "\n     ".join((r1.stdout + r1.stderr).strip().splitlines()), flush=True)
check(r1.returncode == 0 and "b: 1 applied" in r1.stdout, "dlq redrive applies the letter once the field is back")
check(items(B, "articles", f"id,{FIELD}").get(k2, {}).get(FIELD) == "two", "b holds the value now")
r2 = subprocess.run([CONS, "--config", CFG, "--remote", "b", "dlq", "redrive"], capture_output=True, text=True)
check(r2.returncode == 0 and "b: 0 applied" in r2.stdout, "a second redrive applies nothing")

# ---- a field present again is written by the running consumer without a restart
k3 = uid()
api(A, "POST", "/items/articles", {"id": k3, "title": "later", FIELD: "three"})
check(wait_for(lambda: items(B, "articles", f"id,{FIELD}").get(k3, {}).get(FIELD) == "three", 60, 1),
      "the running consumer writes the field again (no restart)")
check(len([m for m in topic(f"{PREFIX}.dlq.b")]) == 1, "nothing else was dead-lettered")

for name in list(procs):
    check(stop(name) == 0, f"{name} stops cleanly on SIGTERM")
for i in (A, B):
    drop_field(i)
finish(NAME)
