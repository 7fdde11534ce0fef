#!/usr/bin/env python3
"""Standby producers (issue 27): two producers for instance a. One holds the slot and publishes;
the other stands by, healthy, dxsync_producer_active 0, saying so once. During write bursts on a,
three times each: the active one is killed -9 (the standby takes the slot; the killed one comes
back as the standby), and the active one is frozen (SIGSTOP) for longer than PostgreSQL's
wal_sender_timeout (8 s here, producer.wal_sender_timeout_ms: the producers ask for it on their
replication connections): the server lets go of the slot only then, the standby takes it,
and the frozen one, woken (SIGCONT), stands by; what it sends on waking is a duplicate at worst.
Then b holds every item of the bursts as a has it, every change is in Kafka, and every copy of an
event published twice is the same event. Prints the takeover times and their medians.

producers.py; DXSYNC_SEED repeats a run."""
import json, os, signal, statistics, subprocess, sys, threading, time, urllib.error, urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dx import *  # noqa: E402,F401,F403

NAME = "producers"
SEED = seed(NAME)
A, B = inst("a"), inst("b")
PREFIX = f"prd{int(time.time() * 1000) % 10**9}"
WAL_SENDER_TIMEOUT_S = 8
cfg = {"kafka": {"brokers": BROKERS, "topic_prefix": PREFIX, "partitions": 3},
       "instances": [{"name": i["name"], "url": i["url"], "token": i["sync"], "database": i["db"]} for i in (A, B)],
       "routes": [{"from": "a", "to": "b", "collections": [{"collection": "articles", "fields": ["title", "rating"]}]}],
       "producer": {"standby_retry_ms": 500, "wal_sender_timeout_ms": WAL_SENDER_TIMEOUT_S * 1000}}
CFG = os.path.join(TMP, "cfg.json")
json.dump(cfg, open(CFG, "w"))
P, CONS = f"{BIN}/producer/dxsync-producer", f"{BIN}/consumer/dxsync-consumer"
PORTS = {"p1": free_port(), "p2": free_port()}


def start_producer(name):
    start(name, P, "--config", CFG, "--instance", "a", "--metrics-addr", f"127.0.0.1:{PORTS[name]}")


def scrape(name, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORTS[name]}{path}", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def active(name):
    _, text = scrape(name, "/metrics")
    return any(l.startswith("dxsync_producer_active{") and l.endswith(" 1") for l in text.splitlines())


def count(name, what):
    return log_of(name).count(what)


fresh_slot(A)
start_producer("p1")
check(wait_for(lambda: "event=streaming" in log_of("p1"), 30), "the first producer streams")
start_producer("p2")
check(wait_for(lambda: "event=standby" in log_of("p2"), 30), "the second one stands by, saying so")
time.sleep(3)
check(count("p2", "event=standby") == 1, "... once")
check(scrape("p2", "/healthz")[0] == 200, "the standby is healthy (/healthz 200)")
check(active("p1") and not active("p2"), "dxsync_producer_active: 1 on the active one, 0 on the standby")
start("consumer-b", CONS, "--config", CFG, "--remote", "b")

created = []
lock = threading.Lock()


def burst(n, rate=25):
    for k in range(n):
        r = api(A, "POST", "/items/articles", {"title": f"burst {k}", "rating": k})
        with lock:
            created.append(r["data"]["id"])
        time.sleep(1 / rate)


def other(name):
    return "p2" if name == "p1" else "p1"


def burst_round():
    """Starts a burst; once it flows: its thread, the active producer, the standby, and how many
    takeovers the standby has logged so far."""
    t = threading.Thread(target=burst, args=(60,))
    t.start()
    time.sleep(1.5)
    act = "p1" if active("p1") else "p2"
    stb = other(act)
    return t, act, stb, count(stb, "event=takeover")


kills, freezes = [], []
for rnd in range(3):
    # kill -9 of the active one in the middle of a burst
    t, act, stb, before = burst_round()
    t0 = time.time()
    procs[act].send_signal(signal.SIGKILL)
    procs.pop(act).wait()
    ok = wait_for(lambda: count(stb, "event=takeover") > before, 30, 0.02)
    kills.append(time.time() - t0)
    check(ok, f"round {rnd + 1}: kill -9 of {act}: {stb} takes over in {kills[-1]:.2f} s")
    start_producer(act)
    check(wait_for(lambda: count(act, "event=standby") >= 1 and scrape(act, "/healthz")[0] == 200, 30),
          f"round {rnd + 1}: {act} comes back as the standby")
    t.join()

    # the active one frozen for longer than wal_sender_timeout
    t, act, stb, before = burst_round()
    standby_before = count(act, "event=standby")
    t0 = time.time()
    procs[act].send_signal(signal.SIGSTOP)
    ok = wait_for(lambda: count(stb, "event=takeover") > before, WAL_SENDER_TIMEOUT_S + 30, 0.05)
    freezes.append(time.time() - t0)
    check(ok, f"round {rnd + 1}: {act} frozen: {stb} takes over in {freezes[-1]:.2f} s")
    time.sleep(2)
    procs[act].send_signal(signal.SIGCONT)
    check(wait_for(lambda: count(act, "event=standby") > standby_before, 60),
          f"round {rnd + 1}: {act}, woken, stands by")
    t.join()

print(f"     takeover after kill -9: {' '.join(f'{x:.2f}' for x in kills)} s (median {statistics.median(kills):.2f})",
      flush=True)
print(f"     takeover after a freeze (wal_sender_timeout {WAL_SENDER_TIMEOUT_S} s): "
      f"{' '.join(f'{x:.2f}' for x in freezes)} s (median {statistics.median(freezes):.2f})", flush=True)

# nothing lost: b holds every item as a does; every change is in Kafka
want = {k: (v["title"], v["rating"]) for k, v in items(A, "articles", "id,title,rating").items() if k in set(created)}
check(len(want) == len(created) == 360, f"a holds the {len(created)} items of the bursts")


def same():
    got = items(B, "articles", "id,title,rating")
    return all(k in got and (got[k]["title"], got[k]["rating"]) == v for k, v in want.items())


check(wait_for(same, 120, 2), "b holds every item of the bursts as a has it")
msgs = topic(f"{PREFIX}.a.articles")
by_id = {}
for m in msgs:
    e = json.loads(m["payload"])
    by_id.setdefault(e["event_id"], []).append(m["payload"])
keys = {json.loads(m["payload"])["key"] for m in msgs}
check(set(want) <= keys, f"every item of the bursts has its event in Kafka ({len(set(want) - keys)} missing)")
dups = sum(len(v) - 1 for v in by_id.values())
diff = [k for k, v in by_id.items() if len(set(v)) > 1]
check(not diff, f"an event published twice is the same event each time ({dups} duplicates, {len(diff)} differing)")
check(not topic(f"{PREFIX}.dlq.b"), "nothing dead-lettered")
for name in list(procs):
    check(stop(name) == 0, f"{name} stops cleanly on SIGTERM")
row = (f"{'kill -9':<10} {' '.join(f'{x:5.2f}' for x in kills)}  median {statistics.median(kills):.2f} s\n"
       f"{'freeze':<10} {' '.join(f'{x:5.2f}' for x in freezes)}  median {statistics.median(freezes):.2f} s")
with open(os.path.join(RUN, "takeover-table.txt"), "a") as f:
    f.write(row + "\n")
finish(NAME)
