#!/usr/bin/env python3
"""Reload without restart (issue 27): a producer of a and a consumer of b run while a steady
stream of creates goes on on a (articles, and notes), and the configuration file changes under
them, each change followed by SIGHUP to both (what `systemctl reload` sends):

  1. notes added to the route a -> b          notes created from then on reach b, earlier ones not
  2. rating removed from articles' fields     articles created from then on reach b without it
  3. consumer.batch_max 100 -> 7              the consumer says so; everything still arrives
  4. the route paused ("enabled": false)      nothing created meanwhile reaches b; partitions paused
  5. the route resumed                        all of it arrives, in the config then in force
  6. kafka.brokers changed: refused           the old configuration keeps working; metric says 0
  7. a file that is not JSON: refused         the same
  8. no route into b: refused by the consumer  the same

Every write made more than a second away from a change is checked against the configuration in
force when it was made; those within a second of one only for arriving. Nothing is dead-lettered,
every event is applied once (dxsync_consumer_events_applied_total against the creates routed),
the processes keep their pid. Prints a table: change, how long the consumer did not apply, writes.

reload.py; DXSYNC_SEED repeats a run."""
import json, os, signal, threading, time, urllib.request

import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dx import *  # noqa: E402,F401,F403

NAME = "reload"
SEED = seed(NAME)
A, B = inst("a"), inst("b")
PREFIX = f"rld{int(time.time() * 1000) % 10**9}"
CFG = os.path.join(TMP, "cfg.json")
P, CONS = f"{BIN}/producer/dxsync-producer", f"{BIN}/consumer/dxsync-consumer"
CPORT = free_port()

state = {"fields": ["title", "rating"], "notes": False, "enabled": True, "batch_max": 100, "brokers": BROKERS}


def write_cfg(raw=None):
    route = {"from": "a", "to": "b", "enabled": state["enabled"],
             "collections": [{"collection": "articles", "fields": state["fields"]}]}
    if state["notes"]:
        route["collections"].append({"collection": "notes", "fields": ["label", "value"]})
    cfg = {"kafka": {"brokers": state["brokers"], "topic_prefix": PREFIX, "partitions": 3},
           "instances": [{"name": i["name"], "url": i["url"], "token": i["sync"], "database": i["db"]} for i in (A, B)],
           "routes": [route], "consumer": {"batch_max": state["batch_max"]}}
    with open(CFG + ".new", "w") as f:
        f.write(raw if raw is not None else json.dumps(cfg))
    os.replace(CFG + ".new", CFG)  # atomically, as an editor or a ConfigMap does


def metric(name):
    with urllib.request.urlopen(f"http://127.0.0.1:{CPORT}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name + "{") or l.startswith(name + " "))


fresh_slot(A)
write_cfg()
start("producer-a", P, "--config", CFG, "--instance", "a")
check(wait_for(lambda: "event=streaming" in log_of("producer-a"), 30), "the producer streams")
start("consumer-b", CONS, "--config", CFG, "--remote", "b", "--metrics-addr", f"127.0.0.1:{CPORT}")
check(wait_for(lambda: "event=partition_assigned" in log_of("consumer-b"), 60), "the consumer has its partitions")
pids = {n: procs[n].pid for n in procs}

# the stream: one article every 0.1 s, one note every 0.2 s, each remembered with its time
writes, lock, running = [], threading.Lock(), [True]


def stream():
    k = 0
    while running[0]:
        t = time.time()
        a = api(A, "POST", "/items/articles", {"title": f"t{k}", "body": f"b{k}", "rating": k})["data"]["id"]
        n = api(A, "POST", "/items/notes", {"label": f"l{k}", "value": k})["data"]["id"] if k % 2 == 0 else None
        with lock:
            writes.append(("articles", a, t, k))
            if n:
                writes.append(("notes", n, t, k))
        k += 1
        time.sleep(max(0.0, 0.1 - (time.time() - t)))


changes = []  # (label, t_sighup, t_effective)


def reload(label, expect="event=reloaded", both=True):
    """Writes the new file, sends SIGHUP, waits for the consumer (and the producer) to run with it:
    the consumer's read-back after its new start done."""
    names = ["consumer-b", "producer-a"] if both else ["consumer-b"]
    before = {n: log_of(n).count(expect) for n in names}
    restored = log_of("consumer-b").count("event=clocks_restored")
    t = time.time()
    for n in names:
        procs[n].send_signal(signal.SIGHUP)
    ok = wait_for(lambda: all(log_of(n).count(expect) > before[n] for n in names), 60, 0.05)
    if ok and expect == "event=reloaded":
        ok = wait_for(lambda: log_of("consumer-b").count("event=clocks_restored") > restored, 60, 0.05)
    check(ok, f"{label}: {expect}")
    changes.append((label, t, time.time()))
    return ok


def gaps():
    """From the consumer's log: for each reload, from its event=reload line to the end of the read-back
    of the run after it (the time nothing was applied)."""
    from datetime import datetime
    ts = lambda l: datetime.strptime(l[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
    out, t0 = [], None
    for l in log_of("consumer-b").splitlines():
        if " event=reload config=" in l:
            t0 = ts(l)
        elif "event=clocks_restored" in l and t0 is not None:
            out.append(ts(l) - t0)
            t0 = None
    return out


def caught_up(pred_writes):
    """b holds every write of pred_writes (existence only)."""
    got = {c: items(B, c, "id") for c in ("articles", "notes")}
    return all(w[1] in got[w[0]] for w in pred_writes)


th = threading.Thread(target=stream)
th.start()
time.sleep(4)

# 1. notes join the route
state["notes"] = True
write_cfg()
reload("notes added to a->b")
time.sleep(4)
# 2. rating leaves articles' fields
state["fields"] = ["title"]
write_cfg()
reload("rating removed from articles")
time.sleep(4)
# 3. batch_max
state["batch_max"] = 7
write_cfg()
reload("batch_max 100 -> 7", both=False)
started_lines = [l for l in log_of("consumer-b").splitlines() if "event=started" in l]
check(" batch_max=7 " in started_lines[-1], "the consumer runs with batch_max=7")
time.sleep(4)
# 4. pause
state["enabled"] = False
write_cfg()
reload("route a->b paused")
check(wait_for(lambda: metric("dxsync_consumer_paused_partitions") == 6, 30), "the consumer holds its 6 partitions paused")
t_paused = time.time()
time.sleep(8)
with lock:
    during = [w for w in writes if w[2] > t_paused + 1]
got = {c: items(B, c, "id") for c in ("articles", "notes")}
arrived = [w for w in during if w[1] in got[w[0]]]
check(len(during) > 20 and not arrived, f"nothing created during the pause reaches b ({len(arrived)} of {len(during)})")
# 5. resume
state["enabled"] = True
write_cfg()
reload("route a->b resumed")
check(wait_for(lambda: caught_up(during), 60, 1), f"the {len(during)} writes of the pause arrive after it")
check(metric("dxsync_consumer_paused_partitions") == 0, "no partition paused any more")
time.sleep(3)
# 6. a change that cannot be made while running
state["brokers"] = "127.0.0.1:1"
write_cfg()
reload("kafka.brokers changed", expect="event=reload_refused")
check("kafka.brokers cannot change while running" in log_of("consumer-b"), "the refusal names kafka.brokers")
check(metric("dxsync_config_last_reload_successful") == 0, "dxsync_config_last_reload_successful 0")
t_refused = time.time()
time.sleep(4)
with lock:
    after = [w for w in writes if w[2] > t_refused]
check(wait_for(lambda: caught_up(after), 30, 1), "the configuration in force keeps working after the refusal")
# 7. not JSON at all
write_cfg(raw="{\"kafka\": ")
reload("a file that is not JSON", expect="event=reload_refused")
# 8. nothing left for the consumer to read
state["brokers"] = BROKERS
write_cfg()
cfg_now = json.load(open(CFG))
cfg_now["routes"] = []
write_cfg(raw=json.dumps(cfg_now))
reload("no route into b", expect="event=reload_refused", both=False)
check("no route into b any more" in log_of("consumer-b"), "the consumer refuses a file without a route into b")
write_cfg()  # the file as in force: a reload of it changes nothing
reload("the file as in force again", expect="event=reload_unchanged")
check(metric("dxsync_config_last_reload_successful") == 1, "dxsync_config_last_reload_successful back to 1")
time.sleep(3)
running[0] = False
th.join()

# every write against the configuration in force when it was made
def phase_of(t):
    """None within a second of a change, else the index of the last change before t (-1: none)."""
    idx = -1
    for i, (_, t0, t1) in enumerate(changes):
        if t0 - 1 <= t <= t1 + 1:
            return None
        if t > t1:
            idx = i
    return idx


# phases: 0 notes added, 1 rating removed, 2 batch_max, 3 paused, 4 resumed, 5.. refused
def expected(w, ph):
    coll, _, _, k = w
    if coll == "notes":
        if ph < 0:
            return "absent"
        return {"label": f"l{k}", "value": k}
    return {"title": f"t{k}", "rating": k if ph < 1 else None}


must = [w for w in writes if w[0] == "articles" or (phase_of(w[2]) is not None and phase_of(w[2]) >= 0)]
check(wait_for(lambda: caught_up(must), 120, 2), f"b holds the {len(must)} writes routed when they were made")
got = {"articles": items(B, "articles", "id,title,rating,body"), "notes": items(B, "notes", "id,label,value")}
bad, strict, loose = [], 0, 0
for w in writes:
    ph = phase_of(w[2])
    have = got[w[0]].get(w[1])
    if ph is None:
        loose += 1
        if w[0] == "articles" and not have:
            bad.append((w, "missing"))
        continue
    strict += 1
    want = expected(w, ph)
    if want == "absent":
        if have:
            bad.append((w, "present before notes were routed"))
        continue
    if not have:
        bad.append((w, "missing"))
        continue
    for f, v in want.items():
        if have.get(f) != v:
            bad.append((w, f"{f}={have.get(f)!r}, want {v!r}"))
    if w[0] == "articles" and have.get("body") is not None:
        bad.append((w, "body arrived, never routed"))
check(not bad, f"{strict} writes made away from a change match the configuration then in force, "
               f"{loose} near one arrived ({len(bad)} wrong{': ' + repr(bad[:3]) if bad else ''})")

applied = metric("dxsync_consumer_events_applied_total")
notes_on_b = sum(1 for w in writes if w[0] == "notes" and w[1] in got["notes"])
want_applied = len([w for w in writes if w[0] == "articles"]) + notes_on_b
check(applied == want_applied, f"every event applied once: {applied:.0f} applied, {want_applied} routed creates on b")
check(not topic(f"{PREFIX}.dlq.b"), "nothing dead-lettered")
check({n: procs[n].pid for n in procs} == pids, "the same processes throughout (no restart)")
for n in list(procs):
    check(stop(n) == 0, f"{n} stops cleanly on SIGTERM")

accepted = [c[0] for c in changes if c[0] not in ("kafka.brokers changed", "a file that is not JSON",
                                                  "no route into b", "the file as in force again")]
g = gaps()
check(len(g) == len(accepted), f"a read-back after each of the {len(accepted)} reloads ({len(g)})")
table = "\n".join(f"{label:<32} {gap:6.2f} s" for label, gap in zip(accepted, g))
print(f"     change                           applying stopped (event=reload -> read-back done)\n{table}\n"
      f"     writes: {len(writes)} ({strict} checked strictly, {loose} near a change); refused: kafka.brokers, "
      f"a file that is not JSON, no route into b", flush=True)
with open(os.path.join(RUN, "reload-table.txt"), "a") as f:
    f.write(table + "\n")
finish(NAME)
