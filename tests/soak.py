#!/usr/bin/env python3
"""Soak (issue 14; not in CI's default run): the three-instance mesh a <-> b <-> c under the fault
suite's kind of workload (people's creates, updates, batch updates and deletes of articles and
counters on every instance, now and then the same item on two instances at once) for MINUTES
minutes, with a fault every 2 to 4 minutes chosen at random from the suite's list: kill -9 of a
producer, a consumer or the notifier; Kafka stopped 30 s or killed; a Directus stopped 45 s;
PostgreSQL restarted. Every minute: each dxsync process's RSS and open file descriptors and each
remote's group lag, and each consumer's convergence clocks and heap in use
(dxsync_consumer_clock_bytes, dxsync_heap_in_use_bytes from its /metrics), one table row (also appended to $DXSYNC_RUN/soak-table.txt). At the end, once every
lag is 0: the three instances hold the same items with the same routed fields, nothing was
dead-lettered, and RSS and descriptors are flat (the last third of the run against the middle
third, per process; a restarted process starts a new series). A consumer's clocks hold an entry
per key ever written or deleted (lww.h), which this workload adds all the time: its flatness is
judged on the RSS beside them (RSS minus clock bytes), and the clocks' own growth is printed.
    tests/soak.py MINUTES      (tests/soak.sh starts the services and runs it)
DXSYNC_SOAK_FAULTS=kind,kind limits the faults to these kinds (names in FAULTS below)."""
import json, os, random, signal, socket, statistics, subprocess, sys, threading, time, urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from dx import *  # noqa: E402,F401,F403

MINUTES = float(sys.argv[1]) if len(sys.argv) > 1 else 60
SEED = seed("soak")
HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "harness")
I = {n: inst(n) for n in ("a", "b", "c")}
PREFIX = f"soak{int(time.time()) % 10**8}"
FIELDS = {"articles": ["title", "body", "rating"], "counters": ["name", "value"]}
RATE = 6  # changes per second per instance
TABLE = os.path.join(RUN, "soak-table.txt")

cfg = {"kafka": {"brokers": BROKERS, "topic_prefix": PREFIX, "partitions": 3},
       "instances": [{"name": n, "url": i["url"], "token": i["sync"], "database": i["db"]} for n, i in I.items()],
       "routes": [{"from": f, "to": t, "notify": [I[f]["editor1"]],
                   "collections": [{"collection": c, "fields": fl} for c, fl in FIELDS.items()]}
                  for f in I for t in I if f != t],
       "consumer": {"retry_notify_after_s": 10, "request_timeout_ms": 10000},
       "notify": {"digest_window_s": 10}}
CFG = os.path.join(TMP, "cfg.json")
json.dump(cfg, open(CFG, "w"))
CMDS = {"notifier": [f"{BIN}/consumer/dxsync-notifier", "--config", CFG]}
for n in I:
    CMDS[f"producer-{n}"] = [f"{BIN}/producer/dxsync-producer", "--config", CFG, "--instance", n]
    CMDS[f"consumer-{n}"] = [f"{BIN}/consumer/dxsync-consumer", "--config", CFG, "--remote", n,
                             "--metrics-addr", f"127.0.0.1:{free_port()}"]


def harness(script, *args):
    subprocess.run([os.path.join(HARNESS, script), *args], check=True, stdout=subprocess.DEVNULL)


def port_open(url):
    try:
        socket.create_connection(("127.0.0.1", int(str(url).rsplit(":", 1)[-1])), 1).close()
        return True
    except OSError:
        return False


for i in I.values():
    fresh_slot(i)
for name, cmd in CMDS.items():
    start(name, *cmd)
check(wait_for(lambda: all("event=streaming" in log_of(f"producer-{n}") for n in I), 60), "every producer streams")
check(wait_for(lambda: all("partition_assigned" in log_of(f"consumer-{n}") for n in I), 90),
      "every consumer is assigned its partitions")


# ---------------------------------------------------------------- the workload
class Workload:
    """People's changes on every instance, RATE per second each; explicit keys (counters from a
    range per instance) so that creates never collide; the same article is sometimes edited on
    two instances at once (the convergence rule decides). A change may fail during a fault:
    what each instance holds afterwards is the truth, nothing here assumes a change was made."""

    def __init__(self):
        self.keys = {"articles": set(), "counters": set()}
        self.live = {"articles": [], "counters": []}
        self.lock = threading.Lock()
        self.made = self.failed = 0
        self.halt = threading.Event()
        self.rng = random.Random(SEED)
        self.base = {n: 500_000_000 + k * 10_000_000 + (int(time.time()) % 100_000) * 50 for k, n in enumerate(I)}
        self.next = dict(self.base)
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in I]

    def call(self, n, method, path, body=None):
        try:
            api(I[n], method, path, body)
            self.made += 1
        except Exception:  # noqa: BLE001 -- a fault may make a change fail; counted
            self.failed += 1

    def article(self, rng):
        return {"title": f"t{rng.randint(0, 10**6)}", "body": rng.choice([None, "", "ü ✓ body", "x" * 40]),
                "rating": rng.randint(-1000, 1000)}

    def step(self, n, rng):
        with self.lock:
            arts, ctrs = self.live["articles"], self.live["counters"]
            r = rng.random()
            if r < 0.22 or len(arts) < 6:
                k = uid()
                self.keys["articles"].add(k)
                arts.append(k)
                op = ("POST", "/items/articles", dict(id=k, **self.article(rng)))
            elif r < 0.32 or not ctrs:
                k = self.next[n]
                self.next[n] += 1
                self.keys["counters"].add(str(k))
                ctrs.append(str(k))
                op = ("POST", "/items/counters", {"id": k, "name": f"c{k}", "value": 0})
            elif r < 0.62:
                k = rng.choice(arts)
                op = ("PATCH", f"/items/articles/{k}", {f: v for f, v in self.article(rng).items() if rng.random() < 0.6} or {"rating": 1})
            elif r < 0.7:
                op = ("PATCH", "/items/articles", {"keys": rng.sample(arts, 3), "data": {"rating": rng.randint(0, 9)}})
            elif r < 0.84:
                op = ("PATCH", f"/items/counters/{rng.choice(ctrs)}", {"value": rng.randint(0, 999), "name": f"n{rng.randint(0, 99)}"})
            elif r < 0.92:
                op = ("DELETE", f"/items/articles/{arts.pop(rng.randrange(len(arts)))}")
            else:
                op = ("DELETE", f"/items/counters/{ctrs.pop(rng.randrange(len(ctrs)))}")
        self.call(n, *op)

    def run(self, n):
        rng = random.Random(f"{SEED}-{n}")
        while not self.halt.is_set():
            t0 = time.time()
            self.step(n, rng)
            self.halt.wait(max(0.0, 1.0 / RATE - (time.time() - t0)))

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.halt.set()
        for t in self.threads:
            t.join()


# ---------------------------------------------------------------- faults
def kill9(name):
    p = procs.pop(name)
    p.send_signal(signal.SIGKILL)
    p.wait()
    start(name, *CMDS[name])
    return f"kill -9 {name}"


def kafka(how):
    harness("kafka.sh", how)
    down = time.time()
    time.sleep(30 if how == "stop" else 15)
    harness("kafka.sh", "start")
    return f"kafka {how} {time.time() - down:.0f}s"


def directus_stop():
    n = random.choice(list(I))
    harness("directus.sh", "stop", n)
    down = time.time()
    time.sleep(45)
    harness("directus.sh", "start", n, I[n]["url"].rsplit(":", 1)[1], I[n]["db"])
    return f"directus {n} stopped {time.time() - down:.0f}s"


def postgres_restart():
    harness("postgres.sh", "restart")

    def answers():
        try:
            for _ in range(6):
                for i in I.values():
                    api(i, "GET", "/items/counters?limit=1")
            return True
        except Exception:  # noqa: BLE001
            return False
    wait_for(answers, 90, 1)
    return "postgres restart"


FAULTS = [("kill_producer", lambda: kill9(f"producer-{random.choice(list(I))}")),
          ("kill_consumer", lambda: kill9(f"consumer-{random.choice(list(I))}")),
          ("kill_notifier", lambda: kill9("notifier")),
          ("kafka_stop", lambda: kafka("stop")),
          ("kafka_kill", lambda: kafka("kill")),
          ("directus_stop", directus_stop),
          ("postgres_restart", postgres_restart)]
if os.environ.get("DXSYNC_SOAK_FAULTS"):  # e.g. kafka_stop,kafka_kill: only these kinds
    kinds = os.environ["DXSYNC_SOAK_FAULTS"].split(",")
    unknown = [k for k in kinds if k not in dict(FAULTS)]
    if unknown:
        sys.exit(f"DXSYNC_SOAK_FAULTS: unknown fault {unknown[0]!r}; known: {', '.join(k for k, _ in FAULTS)}")
    FAULTS = [f for f in FAULTS if f[0] in kinds]


# ---------------------------------------------------------------- sampling
def proc_sample(p):
    try:
        st = open(f"/proc/{p.pid}/status").read()
        rss = int(next(l.split()[1] for l in st.splitlines() if l.startswith("VmRSS:"))) / 1024
        return rss, len(os.listdir(f"/proc/{p.pid}/fd"))
    except (OSError, StopIteration):
        return None, None


def consumer_mb(name):
    """A consumer's clock bytes and heap bytes in use, in MB, from its /metrics: (clocks, heap),
    (None, None) for another process or no answer."""
    if not name.startswith("consumer-"):
        return None, None
    addr = CMDS[name][CMDS[name].index("--metrics-addr") + 1]
    try:
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None, None

    def total(metric):
        vals = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.split("{")[0].split(" ")[0] == metric]
        return sum(vals) / 1e6 if vals else None
    return total("dxsync_consumer_clock_bytes"), total("dxsync_heap_in_use_bytes")


series = {}   # (name, pid) -> [(minute, rss, fds, clock MB or None)]
faults_done = []
ORDER = [f"producer-{n}" for n in I] + [f"consumer-{n}" for n in I] + ["notifier"]
header = (f"{'min':>5} " + " ".join(f"{n.replace('producer-', 'p-').replace('consumer-', 'c-'):>8}" for n in ORDER)
          + f" {'fds':>5} " + " ".join(f"{'lag-' + n:>6}" for n in I) + " " + " ".join(f"{'clk-' + n:>6}" for n in I)
          + " " + " ".join(f"{'use-' + n:>6}" for n in I) + "  fault")
print("# RSS in MB per process, open descriptors of all of them, group lag per remote; per consumer, MB of its\n"
      "# clocks (clk) and of its heap in use (use, all allocations; RSS beyond it is freed memory not handed back)", flush=True)
print(header, flush=True)
with open(TABLE, "a") as f:
    f.write(f"# soak {PREFIX}, {MINUTES:g} min, seed {SEED}\n{header}\n")


def sample(minute, fault):
    row, fds, mem = [], 0, {}
    for name in ORDER:
        p = procs.get(name)
        rss, fd = proc_sample(p) if p else (None, None)
        mem[name] = consumer_mb(name) if p else (None, None)
        if rss is not None:
            series.setdefault((name, p.pid), []).append((minute, rss, fd, mem[name][0]))
            fds += fd
        row.append(f"{rss:8.1f}" if rss is not None else f"{'-':>8}")
    lags = [group_lag(CFG, n) for n in I]
    mb = lambda v: f"{v:6.1f}" if v is not None else f"{'?':>6}"  # noqa: E731
    line = (f"{minute:5.0f} " + " ".join(row) + f" {fds:5d} "
            + " ".join(f"{(l if l is not None else '?'):>6}" for l in lags) + " "
            + " ".join(mb(mem.get(f"consumer-{n}", (None, None))[0]) for n in I) + " "
            + " ".join(mb(mem.get(f"consumer-{n}", (None, None))[1]) for n in I) + (f"  {fault}" if fault else ""))
    print(line, flush=True)
    with open(TABLE, "a") as f:
        f.write(line + "\n")


# ---------------------------------------------------------------- the run
w = Workload()
w.start()
t0 = time.time()
next_fault = t0 + random.uniform(120, 240)
minute, pending = 0, ""
while time.time() - t0 < MINUTES * 60:
    now = time.time()
    if now >= next_fault:
        kind, fn = random.choice(FAULTS)
        try:
            pending = (pending + "; " if pending else "") + fn()
        except Exception as e:  # noqa: BLE001 -- a fault that could not be made is reported
            pending = (pending + "; " if pending else "") + f"{kind} failed: {str(e)[:80]}"
        faults_done.append(kind)
        next_fault = time.time() + random.uniform(120, 240)
    if time.time() - t0 >= (minute + 1) * 60:
        minute += 1
        sample(minute, pending)
        pending = ""
    time.sleep(1)
w.stop()
print(f"     workload: {w.made} changes made, {w.failed} failed during faults; faults: {', '.join(faults_done) or 'none'}", flush=True)
check(all(p.poll() is None for p in procs.values()), "every dxsync process still runs")
check(wait_for(lambda: all(group_lag(CFG, n) == 0 for n in I), 900, 5), "every consumer caught up (lag 0)")
time.sleep(5)
sample(minute + 1, "(end: idle)")


def fetch(i, coll, keys):
    return {k: {f: row[f] for f in FIELDS[coll]} for k, row in fetch_items(i, coll, keys, FIELDS[coll]).items()}


differ = []
for coll in FIELDS:
    held = {n: fetch(i, coll, w.keys[coll]) for n, i in I.items()}
    for k in w.keys[coll]:
        vals = {n: held[n].get(k) for n in I}
        if len({json.dumps(v, sort_keys=True) for v in vals.values()}) > 1:
            differ.append(f"{coll} {k}: " + ", ".join(f"{n}={v}" for n, v in vals.items()))
total = sum(len(v) for v in w.keys.values())
check(not differ, f"a, b and c hold the same {total} items ({len(differ)} differ: {differ[:3]})")
letters = sum(len(topic(f"{PREFIX}.dlq.{n}")) for n in I if topic_exists(f"{PREFIX}.dlq.{n}"))
check(letters == 0, f"nothing was dead-lettered ({letters})")

# flat: per process series long enough, the last third against the middle one (the first third
# is warm-up: queues filled by the first backlog, connections opened by the first notifications).
# A consumer is judged on its RSS beside its clocks (a sample whose /metrics did not answer is
# left out of its series' medians).
flat_rows = []
for (name, pid), pts in series.items():
    if len(pts) < 9:
        continue
    consumer = name.startswith("consumer-")
    if consumer:
        pts = [p for p in pts if p[3] is not None]
        if len(pts) < 9:
            check(False, f"{name} (pid {pid}): its /metrics answered in {len(pts)} samples")
            continue
    third = len(pts) // 3
    mid, last, body = pts[third:2 * third], pts[2 * third:], pts[third:]
    heap = (lambda p: p[1] - p[3]) if consumer else (lambda p: p[1])
    r0, r1 = statistics.median(heap(p) for p in mid), statistics.median(heap(p) for p in last)
    f0, f1 = max(p[2] for p in mid), max(p[2] for p in last)
    slope = (heap(body[-1]) - heap(body[0])) / max(1, body[-1][0] - body[0][0])
    rss_slope = (body[-1][1] - body[0][1]) / max(1, body[-1][0] - body[0][0])
    what = "RSS beside the clocks" if consumer else "RSS"
    extra = ""
    if consumer:
        c0, c1 = body[0][3], body[-1][3]
        extra = (f"; RSS {body[0][1]:.1f} -> {body[-1][1]:.1f} MB ({rss_slope:+.3f} MB/min), "
                 f"clocks {c0:.1f} -> {c1:.1f} MB ({(c1 - c0) / max(1, body[-1][0] - body[0][0]):+.3f} MB/min)")
    flat_rows.append(f"# {name} pid {pid}: {len(pts)} samples, {what} {r0:.1f} -> {r1:.1f} MB "
                     f"({slope:+.3f} MB/min){extra}, fds {f0} -> {f1}")
    check(r1 <= r0 * 1.25 + 2, f"{name} (pid {pid}, {len(pts)} min): {what} flat ({r0:.1f} -> {r1:.1f} MB, {slope:+.3f} MB/min{extra})")
    check(f1 <= f0 + 4, f"{name} (pid {pid}): descriptors flat ({f0} -> {f1})")
with open(TABLE, "a") as f:
    for r in flat_rows:
        f.write(r + "\n")
finish("soak")
