#!/usr/bin/env python3
"""Convergence (issue 17): three Directus instances in a full mesh, the same items written from
two or three instances at the same moment. A seeded workload of rounds: the same field from
several instances at once (threads released together), different fields of one item, an update
against a delete (the update brings the item back with a create when it is gone where it is
made), and quiet gaps; rounds follow each other without waiting for the sync, so writes cross
in flight. With --kill, a thread kills -9 a random producer or consumer every few seconds and
starts it again. With --wipe, every consumer is killed -9 halfway and starts again without its
clock store (a lost disk); with --late, a third of the way in a's producer stops for longer than
the consumers' horizon (consumer.horizon_s 20) while everyone keeps writing, the consumers then
start again without their stores (fresh members: they read back only the last 20 s), and a's
producer comes back with its old events: they must wait for their partitions' history
(event=history_read_done), never overwrite newer writes.

Then, when the consumers are idle: every instance holds the same items with the same fields;
each field's value is that of its newest write by the rule (commit time, then instance name),
read from the databases (track_commit_timestamp: the commit time of every write's activity
row); an item is gone exactly when its newest delete is newer than every write. No event is
dead-lettered, no sync user's write is sent back. Then `replay --since 1h` of the whole
history into b changes nothing. One row goes to $DXSYNC_RUN/converge-table.txt.

converge.py [--kill] [--wipe] [--late] [--rounds N]; N (or DXSYNC_CONVERGE_ROUNDS) conflicting
rounds (default 300; the quiet gaps come on top), DXSYNC_SEED repeats a run."""
import json, os, random, shutil, signal, subprocess, sys, threading, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dx import *  # noqa: E402,F401,F403

KILL = "--kill" in sys.argv
WIPE = "--wipe" in sys.argv
LATE = "--late" in sys.argv
NAME = "converge" + "".join(f"_{m}" for m, on in (("kill", KILL), ("wipe", WIPE), ("late", LATE)) if on)
SEED = seed(NAME)
ROUNDS = int(sys.argv[sys.argv.index("--rounds") + 1] if "--rounds" in sys.argv
             else ENV.get("DXSYNC_CONVERGE_ROUNDS", "300"))
A, B, C = inst("a"), inst("b"), inst("c")
ALL = [A, B, C]
BY = {i["name"]: i for i in ALL}
FIELDS = ["title", "body", "rating"]
NITEMS = 30
PREFIX = f"cvg{int(time.time() * 1000) % 10**9}"
cfg = {"kafka": {"brokers": BROKERS, "topic_prefix": PREFIX, "partitions": 3},
       "instances": [{"name": i["name"], "url": i["url"], "token": i["sync"], "database": i["db"]} for i in ALL],
       "routes": [{"from": f["name"], "to": t["name"],
                   "collections": [{"collection": "articles", "fields": FIELDS}]}
                  for f in ALL for t in ALL if f is not t],
       # a short session: replay waits for a stopped (static) consumer to leave the group
       "consumer": dict({"retry_notify_after_s": 5, "state_dir": os.path.join(TMP, "state"),
                         "session_timeout_ms": 6000},
                        **({"horizon_s": 20} if LATE else {}))}
CFG = os.path.join(TMP, "cfg.json")
json.dump(cfg, open(CFG, "w"))
P, CONS = f"{BIN}/producer/dxsync-producer", f"{BIN}/consumer/dxsync-consumer"
CMDS = {}
for i in ALL:
    CMDS[f"producer-{i['name']}"] = [P, "--config", CFG, "--instance", i["name"]]
    CMDS[f"consumer-{i['name']}"] = [CONS, "--config", CFG, "--remote", i["name"], "--log-level", "debug"]

check(psql(A["db"], "show track_commit_timestamp").strip() == "on",
      "the test cluster records commit timestamps (track_commit_timestamp)")
for i in ALL:
    fresh_slot(i)
for name, cmd in CMDS.items():
    start(name, *cmd)
check(wait_for(lambda: all("event=streaming" in log_of(f"producer-{i['name']}") for i in ALL), 30),
      "three producers stream")
check(wait_for(lambda: all("clocks_restored" in log_of(f"consumer-{i['name']}") for i in ALL), 60),
      "three consumers are assigned their partitions and restored their clocks")

# ---- the shared items, created on a and synced everywhere
ids = [uid() for _ in range(NITEMS)]
api(A, "POST", "/items/articles", [{"id": k, "title": "t0", "body": "b0", "rating": 0} for k in ids])
check(wait_for(lambda: all(set(ids) <= set(items(i, "articles", "id")) for i in (B, C)), 60, 1),
      f"{NITEMS} shared items reach b and c")
FIRST = {i["name"]: int(psql(i["db"], "select coalesce(max(id), 0) from directus_activity").strip()) for i in ALL}


# ---- the workload
class Counts:
    writes = failed = conflicting = 0
    lock = threading.Lock()


def write(i, k, field_values, r):
    """One person's write of item k on i: PATCH; a PATCH Directus answers without the item (it
    is gone here) becomes a create of the whole item with that id."""
    try:
        got = api(i, "PATCH", f"/items/articles/{k}", field_values, ok=(200, 204, 403))
        if not got or not got.get("data"):
            body = {"id": k, "title": f"re-{i['name']}-{r}", "body": "recreated", "rating": r}
            body.update(field_values)
            api(i, "POST", "/items/articles", body, ok=(200, 204, 400))
        with Counts.lock:
            Counts.writes += 1
    except Exception as e:  # noqa: BLE001 -- counted; the databases say what happened
        with Counts.lock:
            Counts.failed += 1
        print(f"     write failed on {i['name']}: {e}", flush=True)


def delete(i, k):
    try:
        api(i, "DELETE", f"/items/articles/{k}", ok=(200, 204, 403))
        with Counts.lock:
            Counts.writes += 1
    except Exception as e:  # noqa: BLE001
        with Counts.lock:
            Counts.failed += 1
        print(f"     delete failed on {i['name']}: {e}", flush=True)


def value(field, who, r):
    return {"title": f"{who}-{r}", "body": f"body of {who} in round {r}", "rating": r * 10 + "abc".index(who)}[field]


def together(jobs):
    """Runs the jobs at the same moment (a barrier releases them together)."""
    bar = threading.Barrier(len(jobs))
    def run(job):
        bar.wait()
        job()
    ts = [threading.Thread(target=run, args=(j,)) for j in jobs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


kills = []
halt = threading.Event()


def killer():
    rng = random.Random(f"{SEED}-kill")
    while not halt.wait(rng.uniform(3, 8)):
        name = rng.choice(sorted(CMDS))
        p = procs.get(name)
        if not p:
            continue
        p.send_signal(signal.SIGKILL)
        p.wait()
        procs.pop(name, None)
        kills.append(name)
        time.sleep(rng.uniform(0.2, 2))
        start(name, *CMDS[name])


def restart_consumers_without_state(sig):
    """Every consumer stopped (sig), its clock store deleted, started again."""
    for i in ALL:
        stop(f"consumer-{i['name']}", sig)
    shutil.rmtree(os.path.join(TMP, "state"), ignore_errors=True)
    for i in ALL:
        start(f"consumer-{i['name']}", *CMDS[f"consumer-{i['name']}"])


class Phase:
    """--wipe and --late, at their moment of the workload."""
    late_stopped = None  # when a's producer stopped
    wiped = late_wiped = late_back = False

    @classmethod
    def step(cls, done):
        now = time.time()
        if WIPE and not cls.wiped and done >= ROUNDS // 2:
            cls.wiped = True
            restart_consumers_without_state(signal.SIGKILL)
            print(f"     round {done}: every consumer killed -9, its store deleted, started again", flush=True)
        if LATE and cls.late_stopped is None and done >= ROUNDS // 3:
            cls.late_stopped = now
            stop("producer-a")
            print(f"     round {done}: a's producer stopped", flush=True)
        if LATE and cls.late_stopped and not cls.late_wiped and now - cls.late_stopped > 25:
            cls.late_wiped = True
            restart_consumers_without_state(signal.SIGTERM)
            print(f"     round {done}: consumers started again without their stores", flush=True)
        if LATE and cls.late_wiped and not cls.late_back and now - cls.late_stopped > 30:
            cls.late_back = True
            start("producer-a", *CMDS["producer-a"])
            print(f"     round {done}: a's producer back after {now - cls.late_stopped:.0f} s", flush=True)


rng = random.Random(SEED)
kt = threading.Thread(target=killer, daemon=True) if KILL else None
if kt:
    kt.start()
t0 = time.time()
r = -1
while Counts.conflicting < ROUNDS or (LATE and not Phase.late_back):
    Phase.step(Counts.conflicting)
    r += 1
    kind = rng.choices(["same", "fields", "delete", "quiet"], weights=[45, 30, 15, 10])[0]
    k = rng.choice(ids)
    who = rng.sample(ALL, rng.choice([2, 3]))
    if kind == "same":
        f = rng.choice(FIELDS)
        together([lambda i=i: write(i, k, {f: value(f, i["name"], r)}, r) for i in who])
    elif kind == "fields":
        fs = rng.sample(FIELDS, len(who))
        together([lambda i=i, f=f: write(i, k, {f: value(f, i["name"], r)}, r) for i, f in zip(who, fs)])
    elif kind == "delete":
        f = rng.choice(FIELDS)
        together([lambda: delete(who[0], k)] +
                 [lambda i=i: write(i, k, {f: value(f, i["name"], r)}, r) for i in who[1:]])
    else:
        time.sleep(rng.uniform(0.3, 1.0))
        continue
    Counts.conflicting += 1
    time.sleep(rng.uniform(0, 0.25))
work_s = time.time() - t0
halt.set()
if kt:
    kt.join()
    for name in CMDS:      # whatever the killer left stopped runs again
        if name not in procs:
            start(name, *CMDS[name])
print(f"     {r + 1} rounds ({Counts.conflicting} conflicting, {Counts.writes} writes, {Counts.failed} failed) "
      f"in {work_s:.0f} s; kills: {len(kills)} {kills}", flush=True)
check(Counts.failed == 0, f"every write of the workload was answered ({Counts.failed} failed)")
if KILL:
    check(len(kills) >= 3, f"processes were killed -9 during the workload ({len(kills)} kills)")
check(Phase.wiped == WIPE and Phase.late_back == LATE, "the phases asked for took place")


# ---- what every instance should hold, from the databases
def history(i):
    """The writes people made on i to the shared items: (commit µs, instance, action, key, delta)."""
    keys = ",".join(f"'{k}'" for k in ids)
    rows = psql(i["db"], f"""
        select (extract(epoch from pg_xact_commit_timestamp(a.xmin)) * 1000000)::bigint, a.action, a.item,
               coalesce(r.delta::text, 'null'), r.data is not null
        from directus_activity a left join directus_revisions r on r.activity = a.id
        where a.collection = 'articles' and a."user" = '{i['admin_id']}' and a.id > {FIRST[i['name']]}
          and a.action in ('create', 'update', 'delete') and a.item in ({keys})
        order by a.id""")
    out = []
    for line in rows.splitlines():
        us, action, key, delta, has_data = line.split("|", 4)
        if action == "update" and has_data != "t":
            continue  # an admin's update of a missing item: nothing changed
        out.append((int(us), i["name"], action, key, json.loads(delta)))
    return out


def expected():
    writes = [w for i in ALL for w in history(i)]
    want = {}
    for k in ids:
        mine = [w for w in writes if w[3] == k]
        dels = [(w[0], w[1]) for w in mine if w[2] == "delete"]
        ups = [w for w in mine if w[2] != "delete"]
        newest_write = max(((w[0], w[1]) for w in ups), default=(0, ""))
        if dels and max(dels) > newest_write:
            want[k] = None
            continue
        row = {"title": "t0", "body": "b0", "rating": 0}
        stamp = {f: (0, "") for f in FIELDS}
        for us, who, action, key, delta in ups:
            for f in FIELDS:
                if isinstance(delta, dict) and f in delta and (us, who) > stamp[f]:
                    stamp[f], row[f] = (us, who), delta[f]
        want[k] = row
    return want, len(writes)


def state():
    out = {}
    for i in ALL:
        got = items(i, "articles", "id,title,body,rating")
        out[i["name"]] = {k: (None if k not in got else {f: got[k][f] for f in FIELDS}) for k in ids}
    return out


diverged = []
def agree():
    global diverged
    s = state()
    diverged = [k for k in ids if not (s["a"][k] == s["b"][k] == s["c"][k])]
    return not diverged


t1 = time.time()
ok = wait_for(agree, 240, 2)
converge_s = time.time() - t1
check(ok, f"every instance holds the same items ({len(diverged)} diverged after {converge_s:.0f} s, e.g. {diverged[:3]})")


def explain(k):
    """What the topics and the consumers' logs say about key k (printed when it diverged)."""
    print(f"     history of {k}: every event in the topics, by commit time", flush=True)
    evs = []
    for i in ALL:
        for m in topic(f"{PREFIX}.{i['name']}.articles"):
            e = json.loads(m["payload"])
            if e.get("key") == k:
                evs.append((e.get("commit_us", 0), i["name"], m["partition"], m["offset"], e.get("action"),
                            e.get("activity_id"), e.get("delta") if e.get("action") == "update" else e.get("data")))
    for ev in sorted(evs, key=lambda x: (x[0], x[1])):
        print("       " + " ".join(str(x) for x in ev), flush=True)
    for name in sorted(CMDS):
        lines = [l for l in log_of(name).splitlines() if k in l or "event=clocks_restored" in l
                 or "event=streaming" in l or "event=started" in l]
        print(f"     {name}: {len(lines)} lines about {k} (and starts)", flush=True)
        for l in lines[-60:]:
            print("       " + l[:400], flush=True)


for k in diverged[:2]:
    explain(k)
# idle: the same state twice, 5 s apart (a late write would change it)
before = state()
time.sleep(5)
check(state() == before and agree(), "the state stays the same once the consumers are idle")
want, nwrites = expected()
s = state()
wrong = []
for k in ids:
    for n in "abc":
        if s[n][k] != want[k]:
            wrong.append(f"{k} on {n}: {s[n][k]} want {want[k]}")
check(not wrong, f"each field holds its newest write and deleted items are gone where the delete is newest "
                 f"({len(wrong)} wrong, e.g. {wrong[:3]})")
if not diverged:
    for k in sorted({w.split()[0] for w in wrong})[:2]:
        explain(k)
gone = sum(1 for k in ids if want[k] is None)
print(f"     {nwrites} writes in the databases; {gone} of {NITEMS} items deleted for good", flush=True)

# ---- nothing dead-lettered, nothing sent back
for i in ALL:
    dl = topic(f"{PREFIX}.dlq.{i['name']}")
    check(not dl, f"nothing dead-lettered on the way to {i['name']} ({len(dl)})")
    evs = [json.loads(m["payload"]) for m in topic(f"{PREFIX}.{i['name']}.articles")]
    check(i["sync_id"] not in {e["user"] for e in evs}, f"{i['name']}: no event by its sync user")
    check(all("commit_us" in e for e in evs), f"{i['name']}: every event carries its commit time")

if LATE:
    reads = sum(log_of(f"consumer-{i['name']}").count("event=history_read_done") for i in ALL)
    waits = sum(log_of(f"consumer-{i['name']}").count("event=history_wait") for i in ALL)
    check(reads > 0 and waits > 0, f"a's late events waited for their partitions' history "
                                   f"({waits} waits, {reads} history reads)")

# ---- replay the whole history into b: nothing changes
stop("consumer-b")
rp = subprocess.run([CONS, "--config", CFG, "--remote", "b", "replay", "--since", "1h"], capture_output=True, text=True)
check(rp.returncode == 0, f"replay --since 1h moves b's group back ({rp.stderr.strip()[:200]})")
mark = len(log_of("consumer-b"))
start("consumer-b", *CMDS["consumer-b"])
check(wait_for(lambda: group_lag(CFG, "b") == 0, 120, 2), "b's consumer applies the replayed history")
time.sleep(3)
after = state()
changed = [k for k in ids if after["b"][k] != s["b"][k]]
check(not changed, f"the replay moved nothing on b ({len(changed)} items changed, e.g. {changed[:3]})")
print("     " + " ".join(l for l in log_of("consumer-b")[mark:].splitlines() if "clocks_restored" in l)[:300])

for name in list(procs):
    check(stop(name) == 0, f"{name} stops cleanly on SIGTERM")
row = (f"{NAME:<24} {r + 1:>6} {Counts.conflicting:>11} {nwrites:>7} {len(kills):>5} "
       f"{len(diverged):>8} {len(wrong):>12} {converge_s:>10.1f}")
print("table row: " + row, flush=True)
with open(os.path.join(RUN, "converge-table.txt"), "a") as f:
    f.write(row + "\n")
finish(NAME)
