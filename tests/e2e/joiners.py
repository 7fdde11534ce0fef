#!/usr/bin/env python3
"""End-to-end: a fourth instance (d) that joins late receives `snapshot` events and then every
change since, and ends identical; then a route naming a field d lacks: the failure reaches a
as a notification for the route's recipients, and later changes still sync."""
import json, os, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dx import *  # noqa: E402,F401,F403

A, D = inst("a"), inst("d")
PREFIX = f"e2j{int(time.time() * 1000) % 10**9}"
FIELDS = ["title", "body", "rating"]
CFG = os.path.join(TMP, "cfg.json")
P, CONS, NOTI = f"{BIN}/producer/dxsync-producer", f"{BIN}/consumer/dxsync-consumer", f"{BIN}/consumer/dxsync-notifier"


def write_cfg(article_fields):
    json.dump({"kafka": {"brokers": BROKERS, "topic_prefix": PREFIX, "partitions": 3},
               "instances": [{"name": "a", "url": A["url"], "token": A["sync"], "database": A["db"]},
                             {"name": "d", "url": D["url"], "token": D["sync"], "database": D["db"]}],
               "routes": [{"from": "a", "to": "d", "notify": [A["editor1"]],
                           "collections": [{"collection": "articles", "fields": article_fields},
                                           {"collection": "counters", "fields": ["name", "value"]}]}],
               "notify": {"digest_window_s": 2}}, open(CFG, "w"))


write_cfg(FIELDS)
fresh_slot(A)
start("producer-a", P, "--config", CFG, "--instance", "a")
check(wait_for(lambda: "event=streaming" in log_of("producer-a"), 30), "producer a streams")
# changes after the slot exists: on the topic as they happen
live = [uid() for _ in range(5)]
api(A, "POST", "/items/articles", [{"id": k, "title": f"live {k[:4]}", "rating": 1} for k in live])
api(A, "PATCH", f"/items/articles/{live[0]}", {"title": "live, edited"})
api(A, "DELETE", f"/items/articles/{live[1]}")
# everything older than the slot comes with a snapshot
snap = subprocess.run([P, "--config", CFG, "--instance", "a", "snapshot"], capture_output=True, text=True)
check(snap.returncode == 0 and "acknowledged by Kafka" in snap.stdout, f"snapshot of a: {snap.stdout.strip().splitlines()[-1:]}")
# d joins now: a new group starts at the earliest offset
start("consumer-d", CONS, "--config", CFG, "--remote", "d")


def same():
    if group_lag(CFG, "d") != 0:
        return False, 0, ["d's consumer is not idle yet"]
    src, dst = items(A, "articles"), items(D, "articles")
    bad = [k for k, v in src.items() if k not in dst or any(dst[k][f] != v[f] for f in FIELDS)]
    bad += [k for k in dst if k not in src]
    csrc, cdst = items(A, "counters"), items(D, "counters")
    bad += [k for k, v in csrc.items() if k not in cdst or any(cdst[k][f] != v[f] for f in ("name", "value"))]
    return not bad, len(src), bad[:5]


ok = wait_for(lambda: same()[0], 300, 2)
_, n, bad = same()
check(ok, f"d, joining late, holds every article ({n}) and counter of a, routed fields equal {bad}")
check(live[1] not in items(D, "articles"), "the item deleted before d joined is not on d")
api(A, "PATCH", f"/items/articles/{live[2]}", {"rating": 42})
check(wait_for(lambda: items(D, "articles").get(live[2], {}).get("rating") == 42, 60),
      "and a change after the join arrives too")
stop("consumer-d")
stop("producer-a")

# A route naming a field that a has and d lacks.
try:
    api(A, "GET", "/fields/articles/subtitle")
except RuntimeError:
    api(A, "POST", "/fields/articles", {"field": "subtitle", "type": "string", "meta": {}, "schema": {}})
write_cfg(FIELDS + ["subtitle"])
start("producer-a", P, "--config", CFG, "--instance", "a")
start("consumer-d", CONS, "--config", CFG, "--remote", "d")
start("notifier", NOTI, "--config", CFG)
check(wait_for(lambda: "event=streaming" in log_of("producer-a"), 30), "producer a streams again")
time.sleep(3)
bad_item = uid()
api(A, "POST", "/items/articles", {"id": bad_item, "title": "with a subtitle", "subtitle": "d has no such field"})
login = api(A, "POST", "/auth/login", {"email": ENV["DXSYNC_A_EDITOR1_EMAIL"], "password": ENV["DXSYNC_A_EDITOR1_PASSWORD"]})
editor = login["data"]["access_token"]


def notified():
    got = api(A, "GET", f"/notifications?filter[item][_contains]={bad_item}&fields=subject,message,recipient", token=editor)["data"]
    return got


check(wait_for(lambda: notified(), 60, 1), f"the editor named in the route gets a notification in a: {[n['subject'] for n in notified()][:1]}")
dlq = topic(f"{PREFIX}.dlq.d")
check(any(m["key"] == bad_item for m in dlq), "the failing event is in the DLQ")
later = uid()
api(A, "POST", "/items/articles", {"id": later, "title": "after the failure"})
check(wait_for(lambda: later in items(D, "articles"), 30), "a later change still syncs")
check(bad_item not in items(D, "articles"), "the failing item is not half-written on d")
# an update that sets the missing field fails; a later one of another field applies (it writes
# only what its delta names)
api(A, "PATCH", f"/items/articles/{later}", {"subtitle": "still no such field on d"})
check(wait_for(lambda: any(m["key"] == later for m in topic(f"{PREFIX}.dlq.d")), 30),
      "an update setting the missing field goes to the DLQ")
api(A, "PATCH", f"/items/articles/{later}", {"title": "edited after that"})
check(wait_for(lambda: items(D, "articles").get(later, {}).get("title") == "edited after that", 30),
      "a later update of another field of that item applies")
for n in list(procs):
    check(stop(n) == 0, f"{n} stops cleanly")
api(A, "DELETE", "/fields/articles/subtitle")
finish("joiners")
