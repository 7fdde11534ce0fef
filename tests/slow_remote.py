#!/usr/bin/env python3
"""A remote that answers slowly for a long stretch (issue 14; not in CI's default run): a -> b
through a proxy that holds every request 1.5 s (well within the consumer's request timeout),
for MINUTES minutes, while people change articles and counters on a (RATE changes a second,
creates, updates, batch updates, deletes). Every 10 s: the consumer's RSS and each partition's
committed offset and lag. It checks that every partition keeps moving (each one with a lag at
the start of a minute has a higher committed offset at its end), that once the workload stops
the consumer catches up and b holds what a holds, nothing dead-lettered, and that memory is flat:
the least-squares slope of RSS over the run after the first two minutes, in MB per hour,
printed, and the median of the last third against the middle third (as the soak test).
    tests/slow_remote.py MINUTES      (tests/slow_remote.sh starts the services and runs it)"""
import atexit, json, os, random, statistics, subprocess, sys, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "faults"))
from dx import *  # noqa: E402,F401,F403
from proxy import Proxy  # noqa: E402

MINUTES = float(sys.argv[1]) if len(sys.argv) > 1 else 20
DELAY = float(os.environ.get("DXSYNC_SLOW_DELAY", "1.5"))
RATE = 4  # changes per second on a
SEED = seed("slow_remote")
A, B = inst("a"), inst("b")
PREFIX = f"slow{int(time.time()) % 10**8}"
FIELDS = {"articles": ["title", "body", "rating"], "counters": ["name", "value"]}
TABLE = os.path.join(RUN, "slow-remote-table.txt")

proxy = Proxy(B["url"])
proxy.delay = DELAY
SRC = f"slow{PREFIX[4:]}"  # a source of its own name on a's database: its own slot and publication
cfg = {"kafka": {"brokers": BROKERS, "topic_prefix": PREFIX, "partitions": 3},
       "instances": [{"name": SRC, "url": A["url"], "token": A["sync"], "database": A["db"]},
                     {"name": "b", "url": proxy.url, "token": B["sync"]}],
       "routes": [{"from": SRC, "to": "b",
                   "collections": [{"collection": c, "fields": f} for c, f in FIELDS.items()]}]}
CFG = os.path.join(TMP, "cfg.json")
json.dump(cfg, open(CFG, "w"))


def drop_source():
    stop_all()
    psql(A["db"], f"select pg_drop_replication_slot('dxsync_{SRC}') from pg_replication_slots where slot_name = 'dxsync_{SRC}'")
    psql(A["db"], f"drop publication if exists dxsync_{SRC}")


atexit.register(drop_source)
start("producer-a", f"{BIN}/producer/dxsync-producer", "--config", CFG, "--instance", SRC)
cons = start("consumer-b", f"{BIN}/consumer/dxsync-consumer", "--config", CFG, "--remote", "b")
check(wait_for(lambda: "event=streaming" in log_of("producer-a"), 60), "the producer streams")
check(wait_for(lambda: "partition_assigned" in log_of("consumer-b"), 90), "the consumer is assigned its partitions")


# ---------------------------------------------------------------- the workload
class Workload:
    def __init__(self):
        self.keys = {"articles": set(), "counters": set()}
        self.live = {"articles": [], "counters": []}
        self.made = self.failed = 0
        self.halt = threading.Event()
        self.rng = random.Random(SEED)
        self.next = 700_000_000 + (int(time.time()) % 100_000) * 1000
        self.thread = threading.Thread(target=self.run, daemon=True)

    def article(self):
        r = self.rng
        return {"title": f"t{r.randint(0, 10**6)}", "body": r.choice([None, "ü ✓ body", "x" * 200]),
                "rating": r.randint(-1000, 1000)}

    def step(self):
        r, arts, ctrs = self.rng, self.live["articles"], self.live["counters"]
        x = r.random()
        if x < 0.2 or len(arts) < 6:
            k = uid()
            self.keys["articles"].add(k)
            arts.append(k)
            op = ("POST", "/items/articles", dict(id=k, **self.article()))
        elif x < 0.35 or not ctrs:
            k = self.next
            self.next += 1
            self.keys["counters"].add(str(k))
            ctrs.append(str(k))
            op = ("POST", "/items/counters", {"id": k, "name": f"c{k}", "value": 0})
        elif x < 0.65:
            op = ("PATCH", f"/items/articles/{r.choice(arts)}", {"rating": r.randint(0, 999), "title": f"u{r.randint(0, 999)}"})
        elif x < 0.72:
            op = ("PATCH", "/items/articles", {"keys": r.sample(arts, 3), "data": {"rating": r.randint(0, 9)}})
        elif x < 0.9:
            op = ("PATCH", f"/items/counters/{r.choice(ctrs)}", {"value": r.randint(0, 999)})
        elif x < 0.95:
            op = ("DELETE", f"/items/articles/{arts.pop(r.randrange(len(arts)))}")
        else:
            op = ("DELETE", f"/items/counters/{ctrs.pop(r.randrange(len(ctrs)))}")
        try:
            api(A, *op)
            self.made += 1
        except Exception:  # noqa: BLE001 -- counted; a's database says what happened
            self.failed += 1

    def run(self):
        while not self.halt.is_set():
            t0 = time.time()
            self.step()
            self.halt.wait(max(0.0, 1.0 / RATE - (time.time() - t0)))


# ---------------------------------------------------------------- sampling
def rss_mb(pid):
    try:
        st = open(f"/proc/{pid}/status").read()
        return int(next(l.split()[1] for l in st.splitlines() if l.startswith("VmRSS:"))) / 1024
    except (OSError, StopIteration):
        return None


def offsets():
    """{(topic, partition): (committed, lag)} as `dxsync-consumer status` prints them, or None."""
    r = subprocess.run([f"{BIN}/consumer/dxsync-consumer", "--config", CFG, "--remote", "b", "status"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return None
    out = {}
    for l in r.stdout.splitlines():
        f = l.split()
        if len(f) == 5 and f[1].isdigit() and f[2].lstrip("-").isdigit():
            out[(f[0], int(f[1]))] = (int(f[2]), int(f[4]))
    return out


samples = []   # (seconds, rss)
stalls = []
header = f"{'min':>5} {'rss-MB':>7} {'lag':>6} {'moved':>6} {'stalled':>8} {'requests':>9}"
print(f"# consumer of b behind a proxy holding every request {DELAY} s; every 10 s RSS, every minute a row", flush=True)
print(header, flush=True)
with open(TABLE, "a") as f:
    f.write(f"# slow remote {PREFIX}, {MINUTES:g} min, delay {DELAY} s, seed {SEED}\n{header}\n")

w = Workload()
w.thread.start()
t0 = time.time()
minute = 0
at_minute = offsets() or {}
while time.time() - t0 < MINUTES * 60:
    time.sleep(10 - (time.time() - t0) % 10)
    rss = rss_mb(cons.pid)
    if rss is not None:
        samples.append((time.time() - t0, rss))
    if time.time() - t0 >= (minute + 1) * 60 - 1:
        minute += 1
        now = offsets() or {}
        moved = stalled = 0
        for tp, (c0, lag0) in at_minute.items():
            if lag0 == 0:
                continue  # nothing was waiting there
            c1 = now.get(tp, (c0, lag0))[0]
            if c1 > c0:
                moved += 1
            else:
                stalled += 1
                stalls.append(f"minute {minute}: {tp[0]}[{tp[1]}] stayed at {c0} with lag {lag0}")
        lag = sum(v[1] for v in now.values())
        line = f"{minute:5d} {rss if rss is not None else 0:7.1f} {lag:6d} {moved:6d} {stalled:8d} {proxy.requests:9d}"
        print(line, flush=True)
        with open(TABLE, "a") as f:
            f.write(line + "\n")
        at_minute = now
w.halt.set()
w.thread.join()
print(f"     workload: {w.made} changes on a ({w.failed} failed); {proxy.requests} requests through the proxy", flush=True)
check(cons.poll() is None, "the consumer still runs")
check(not stalls, f"every partition with a lag moved in every minute ({len(stalls)} stalls: {stalls[:3]})")
check(wait_for(lambda: group_lag(CFG, "b") == 0, 900, 5), "the consumer catches up once the workload stops (lag 0)")


def fetch(i, coll, keys):
    return {k: {f: row[f] for f in FIELDS[coll]} for k, row in fetch_items(i, coll, keys, FIELDS[coll]).items()}


differ = []
for coll in FIELDS:
    ha, hb = fetch(A, coll, w.keys[coll]), fetch(B, coll, w.keys[coll])
    differ += [f"{coll} {k}: a={ha.get(k)} b={hb.get(k)}" for k in w.keys[coll] if ha.get(k) != hb.get(k)]
total = sum(len(v) for v in w.keys.values())
check(not differ, f"b holds what a holds, {total} items ({len(differ)} differ: {differ[:3]})")
dlq = f"{PREFIX}.dlq.b"
letters = len(topic(dlq)) if topic_exists(dlq) else 0
check(letters == 0, f"nothing was dead-lettered ({letters})")

# flat: least squares over the samples after the first two minutes
body = [(t, r) for t, r in samples if t >= 120]
if len(body) >= 6:
    mt, mr = statistics.fmean(t for t, _ in body), statistics.fmean(r for _, r in body)
    slope = sum((t - mt) * (r - mr) for t, r in body) / sum((t - mt) ** 2 for t, _ in body) * 3600
    third = len(samples) // 3
    r0 = statistics.median(r for _, r in samples[third:2 * third])
    r1 = statistics.median(r for _, r in samples[2 * third:])
    summary = (f"RSS {len(samples)} samples every 10 s: min {min(r for _, r in samples):.1f}, "
               f"max {max(r for _, r in samples):.1f} MB; slope after minute 2 {slope:+.2f} MB/hour; "
               f"median middle third {r0:.1f}, last third {r1:.1f} MB")
    print("     " + summary, flush=True)
    with open(TABLE, "a") as f:
        f.write(f"# {summary}\n")
    check(r1 <= r0 * 1.25 + 2, f"RSS flat ({r0:.1f} -> {r1:.1f} MB, {slope:+.2f} MB/hour)")
else:
    check(False, f"too few RSS samples ({len(samples)}) to say whether memory is flat")
check(stop("consumer-b") == 0, "the consumer stops cleanly on SIGTERM")
check(stop("producer-a") == 0, "the producer stops cleanly on SIGTERM")
finish("slow_remote")
