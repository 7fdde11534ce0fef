#!/usr/bin/env python3
"""verify and verify --repair (issue 18): counters (integer keys), codes (string keys) and notes
(uuid keys) routed a -> b, 1,500 items each: more than a page, which Directus lets verify page by
key for integers only (issue 27). In sync: exit 0, timed per key type. Then changes made on b
behind dxsync's back with its admin token (a value changed, an item deleted, an item created only
there): exit 3 naming each key, for every key type; --repair publishes the source's rows (and a
delete for the extra item, b being a replica of counters) through the normal path; a second
verify exits 0."""
import json, os, subprocess, sys, time, uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dx import *  # noqa: E402,F401,F403

NAME = "verify"
SEED = seed(NAME)
A, B = inst("a"), inst("b")
PREFIX = f"vfy{int(time.time() * 1000) % 10**9}"
N = 1500  # more than one page (1000)
cfg = {"kafka": {"brokers": BROKERS, "topic_prefix": PREFIX, "partitions": 3},
       "instances": [{"name": i["name"], "url": i["url"], "token": i["sync"], "database": i["db"]} for i in (A, B)],
       "routes": [{"from": "a", "to": "b", "collections": [
           {"collection": "counters", "fields": ["name", "value"]},
           {"collection": "codes", "fields": ["label", "value"]},
           {"collection": "notes", "fields": ["label", "value"]}]}]}
CFG = os.path.join(TMP, "cfg.json")
json.dump(cfg, open(CFG, "w"))
P, CONS = f"{BIN}/producer/dxsync-producer", f"{BIN}/consumer/dxsync-consumer"

for i in (A, B):
    psql(i["db"], "TRUNCATE counters RESTART IDENTITY; TRUNCATE codes; TRUNCATE notes")
fresh_slot(A)
start("producer-a", P, "--config", CFG, "--instance", "a")
start("consumer-b", CONS, "--config", CFG, "--remote", "b")
check(wait_for(lambda: "event=streaming" in log_of("producer-a"), 30), "a's producer streams")
for s in range(0, N, 500):
    api(A, "POST", "/items/counters", [{"name": f"c{k}", "value": k} for k in range(s, min(N, s + 500))])
    api(A, "POST", "/items/codes", [{"code": f"code-{k:05d}-{SEED}", "label": f"l{k}", "value": k}
                                    for k in range(s, min(N, s + 500))])
    api(A, "POST", "/items/notes", [{"id": str(uuid.uuid4()), "label": f"l{k}", "value": k}
                                    for k in range(s, min(N, s + 500))])
def count(coll, pk):
    return len(api(B, "GET", f"/items/{coll}?limit=-1&fields={pk}")["data"])
check(wait_for(lambda: count("counters", "id") == N and count("codes", "code") == N and count("notes", "id") == N,
               180, 2), f"{N} counters, codes and notes reach b")
check(wait_for(lambda: group_lag(CFG, "b") == 0, 60, 1), "b's consumer is idle")


def verify(*extra):
    r = subprocess.run([CONS, "--config", CFG, "--remote", "b", "verify", *extra], capture_output=True, text=True)
    print("     " + "\n     ".join((r.stdout + r.stderr).strip().splitlines()[-8:]), flush=True)
    return r


v = verify()
check(v.returncode == 0 and all(f"# {c} from a to b: {N} compared, 0 missing on b, 0 extra on b, 0 different" in v.stdout
                                for c in ("counters", "codes", "notes")),
      "verify of a synced pair exits 0, for integer, string and uuid keys")
timings = []
for coll, kind in (("counters", "integer"), ("codes", "string"), ("notes", "uuid")):
    t = time.time()
    r = verify("--collection", coll)
    timings.append((kind, coll, time.time() - t, r.returncode))
for kind, coll, secs, rc in timings:
    print(f"     verify --collection {coll:<9} ({kind:>7} keys, {N} items): {secs:.2f} s, exit {rc}", flush=True)
check(all(rc == 0 for *_, rc in timings), "verify of each collection alone exits 0")

# the string- and uuid-keyed ones: a value changed on b behind dxsync's back is found
code = f"code-00700-{SEED}"
note = sorted(api(B, "GET", "/items/notes?limit=-1&fields=id")["data"], key=lambda x: x["id"])[1100]["id"]
api(B, "PATCH", f"/items/codes/{code}", {"value": 424242})
api(B, "PATCH", f"/items/notes/{note}", {"value": 434343})
for coll, key in (("codes", code), ("notes", note)):
    v = verify("--collection", coll)
    check(v.returncode == 3 and any(l.startswith("different") and f" {key} " in l for l in v.stdout.splitlines())
          and f"{N} compared, 0 missing on b, 0 extra on b, 1 different" in v.stdout,
          f"verify names the changed {coll} key {key} (exit {v.returncode})")
api(B, "PATCH", f"/items/codes/{code}", {"value": 700})
api(B, "PATCH", f"/items/notes/{note}", {"value": int(api(A, "GET", f"/items/notes/{note}")["data"]["value"])})

# behind dxsync's back on b (its admin: b does not publish counters, nothing travels)
ids = sorted(int(k) for k in items(A, "counters", "id"))
changed, gone = ids[10], ids[1200]
api(B, "PATCH", f"/items/counters/{changed}", {"value": 999999})
api(B, "DELETE", f"/items/counters/{gone}")
extra = api(B, "POST", "/items/counters", {"id": 900000, "name": "only on b", "value": 1})["data"]["id"]
v = verify()
check(v.returncode == 3, f"verify exits 3 when they differ (exit {v.returncode})")
lines = v.stdout.splitlines()
check(any(l.startswith("different") and f" {changed} " in l and "value" in l for l in lines), f"it names the changed key {changed}")
check(any(l.startswith("missing") and f" {gone} " in l for l in lines), f"it names the deleted key {gone}")
check(any(l.startswith("extra") and f" {extra} " in l for l in lines), f"it names the extra key {extra}")
check(f"{N} compared, 1 missing on b, 1 extra on b, 1 different" in v.stdout, "the summary counts them")
vj = verify("--json")
js = [json.loads(l) for l in vj.stdout.splitlines() if l.startswith("{")]
check(vj.returncode == 3 and {(j["state"], j["key"]) for j in js} == {("different", str(changed)), ("missing", str(gone)), ("extra", str(extra))},
      "verify --json prints one object per differing key")

r = verify("--repair")
check(r.returncode == 3 and "3 repairs published" in r.stdout, "verify --repair publishes three repairs")
evs = [json.loads(m["payload"]) for m in topic(f"{PREFIX}.a.counters")]
check(sum(1 for e in evs if e["action"] == "snapshot") == 2 and sum(1 for e in evs if e["action"] == "delete") == 1,
      "... into a's topic: two snapshots and a delete (the audit log has them)")
check(wait_for(lambda: verify().returncode == 0, 60, 3), "after the repairs travel, verify exits 0")
got = items(B, "counters", "id,value")
check(got.get(str(changed), {}).get("value") == 10 and str(gone) in got and str(extra) not in got,
      "b holds a's rows again, without the extra one")

for name in list(procs):
    check(stop(name) == 0, f"{name} stops cleanly on SIGTERM")
finish(NAME)
