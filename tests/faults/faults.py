#!/usr/bin/env python3
"""Fault suite: one scenario per run (faults.py SCENARIO). A steady workload of people's changes
on instance a (creates, updates, batch updates and deletes of uuid-key articles and integer-key
counters) flows a -> producer -> Kafka -> consumer -> b while the scenario injects its fault and
heals it. When the consumers are idle, every item the workload touched must be on b exactly as
on a (item by item: present with the same routed fields, or absent), and no change on a may be
missing from Kafka (activity ids compared). One table row is printed and appended to
$DXSYNC_RUN/faults-table.txt: events sent, in Kafka, applied on the remote, missing,
duplicates applied (harmless by design) and the time to converge after the fault healed.

Scenarios: kill_producer, kill_consumer, kill_notifier (each kill -9 three times at random
moments), kafka_stop (30 s), kafka_kill, postgres_restart (fast shutdown), remote_stop (60 s),
remote_500 (a proxy answers 500 to everything for 25 s), slow_remote (a proxy adds 2 s to every
request of remote c; the consumer of b must not stall)."""
import atexit, os, random, re, signal, socket, sys, threading, time, urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dx import *  # noqa: E402,F401,F403
from proxy import Proxy  # noqa: E402

SCENARIOS = ("kill_producer", "kill_consumer", "kill_notifier", "kafka_stop", "kafka_kill",
             "postgres_restart", "remote_stop", "remote_500", "slow_remote")
SC = sys.argv[1] if len(sys.argv) > 1 else ""
if SC not in SCENARIOS:
    sys.exit(f"usage: faults.py {'|'.join(SCENARIOS)}")
SEED = seed(f"scenario {SC}")

HARNESS = os.path.join(ENV["DXSYNC_SOURCE"], "tests", "harness")
A, B, C = inst("a"), inst("b"), inst("c")
PREFIX = f"flt{int(time.time() * 1000) % 10**9}"
FIELDS = {"articles": ["title", "body", "rating"], "counters": ["name", "value"]}
RATE = 8           # changes per second the workload aims at
POISON = f"poison_{PREFIX}"   # kill_notifier: a field of a's articles that b lacks


# ---------------------------------------------------------------- set-up
proxy = Proxy(C["url"] if SC == "slow_remote" else B["url"]) if SC in ("remote_500", "slow_remote") else None
REMOTES = [B, C] if SC == "slow_remote" else [B]
remote_url = {"b": proxy.url if SC == "remote_500" else B["url"],
              "c": proxy.url if SC == "slow_remote" else C["url"]}
route_fields = dict(FIELDS)
if SC == "kill_notifier":
    route_fields = {"articles": FIELDS["articles"] + [POISON], "counters": FIELDS["counters"]}
cfg = {"kafka": {"brokers": BROKERS, "topic_prefix": PREFIX, "partitions": 3},
       "instances": [{"name": "a", "url": A["url"], "token": A["sync"], "database": A["db"]}]
                    + [{"name": r["name"], "url": remote_url[r["name"]], "token": r["sync"]} for r in REMOTES],
       "routes": [{"from": "a", "to": r["name"], "notify": [A["editor1"]],
                   "collections": [{"collection": c, "fields": f} for c, f in route_fields.items()]} for r in REMOTES],
       "consumer": {"retry_notify_after_s": 5, "request_timeout_ms": 10000},
       "notify": {"digest_window_s": 3}}
CFG = os.path.join(TMP, "cfg.json")
json.dump(cfg, open(CFG, "w"))
CMDS = {"producer": [f"{BIN}/producer/dxsync-producer", "--config", CFG, "--instance", "a"],
        "notifier": [f"{BIN}/consumer/dxsync-notifier", "--config", CFG]}
for r in REMOTES:
    CMDS[f"consumer-{r['name']}"] = [f"{BIN}/consumer/dxsync-consumer", "--config", CFG, "--remote", r["name"]]


def launch(name):
    start(name, *CMDS[name])


def harness(script, *args):
    subprocess.run([os.path.join(HARNESS, script), *args], check=True, stdout=subprocess.DEVNULL)


def port_open(url_or_port):
    port = int(str(url_or_port).rsplit(":", 1)[-1])
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def restart_remote_b():
    harness("directus.sh", "start", "b", B["url"].rsplit(":", 1)[1], B["db"])


def last_id(i):
    return int(psql(i["db"], "select coalesce(max(id), 0) from directus_activity").strip())


fresh_slot(A)
if SC == "kill_notifier":
    api(A, "DELETE", f"/fields/articles/{POISON}", ok=(200, 204, 403, 404))
    api(A, "POST", "/fields/articles", {"field": POISON, "type": "string", "meta": {}, "schema": {}})
    atexit.register(lambda: api(A, "DELETE", f"/fields/articles/{POISON}", ok=(200, 204, 403, 404)))
start_a, start_r = last_id(A), {r["name"]: last_id(r) for r in REMOTES}
for name in CMDS:
    if name != "notifier" or SC == "kill_notifier":
        launch(name)
check(wait_for(lambda: "event=streaming" in log_of("producer"), 30), "the producer streams")
check(wait_for(lambda: all("partition_assigned" in log_of(f"consumer-{r['name']}") for r in REMOTES), 60),
      "the consumers are assigned their partitions")


# ---------------------------------------------------------------- the workload
class Workload:
    """People's changes on a at about RATE per second until stop(); keys of every item touched.
    A change may fail while the fault lasts (PostgreSQL restarting): the item's truth is what a
    holds afterwards, so nothing here assumes a change was made."""

    def __init__(self):
        self.keys = {"articles": [], "counters": []}
        self.live = {"articles": [], "counters": []}
        self.poison = []
        self.base = 100_000_000 + (int(time.time()) % 1_000_000) * 1000
        self.made = self.failed = 0
        self.errors = []
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.rng = random.Random(SEED)   # its own: the main thread's random moments stay repeatable

    def call(self, method, path, body=None):
        try:
            api(A, method, path, body)
            self.made += 1
        except Exception as e:  # noqa: BLE001 -- a fault may make a change fail; counted
            self.failed += 1
            if len(self.errors) < 5:
                self.errors.append(str(e)[:200])

    def article(self):
        return {"title": f"t{self.rng.randint(0, 10**6)}", "body": self.rng.choice([None, "", "ü ✓ body", "x" * 40]),
                "rating": self.rng.randint(-1000, 1000)}

    def step(self):
        r, arts, ctrs = self.rng.random(), self.live["articles"], self.live["counters"]
        if r < 0.25 or len(arts) < 4:
            k = uid()
            self.keys["articles"].append(k)
            arts.append(k)
            self.call("POST", "/items/articles", dict(id=k, **self.article()))
        elif r < 0.35 or not ctrs:
            k = self.base + len(self.keys["counters"])
            self.keys["counters"].append(str(k))
            ctrs.append(str(k))
            self.call("POST", "/items/counters", {"id": k, "name": f"c{k}", "value": 0})
        elif r < 0.6:
            k = self.rng.choice(arts)
            self.call("PATCH", f"/items/articles/{k}", {f: v for f, v in self.article().items() if self.rng.random() < 0.6} or {"rating": 1})
        elif r < 0.7:
            self.call("PATCH", "/items/articles", {"keys": self.rng.sample(arts, 3), "data": {"rating": self.rng.randint(0, 9)}})
        elif r < 0.82:
            self.call("PATCH", f"/items/counters/{self.rng.choice(ctrs)}", {"value": self.rng.randint(0, 999), "name": f"n{self.rng.randint(0, 99)}"})
        elif r < 0.9:
            k = arts.pop(self.rng.randrange(len(arts)))
            self.call("DELETE", f"/items/articles/{k}")
        else:
            k = ctrs.pop(self.rng.randrange(len(ctrs)))
            self.call("DELETE", f"/items/counters/{k}")
        if SC == "kill_notifier" and self.rng.random() < 0.12:   # about one a second: b lacks the field
            k = uid()
            self.poison.append(k)
            self.call("POST", "/items/articles", {"id": k, "title": "poisoned", POISON: "b has no such field"})

    def run(self):
        while not self.halt.is_set():
            t0 = time.time()
            self.step()
            self.halt.wait(max(0.0, 1.0 / RATE - (time.time() - t0)))

    def stop(self):
        self.halt.set()
        self.thread.join()


def fetch(i, coll, keys):
    """The items of coll with these keys on instance i, by key."""
    out = {}
    for n in range(0, len(keys), 100):
        flt = urllib.parse.quote(json.dumps({"id": {"_in": keys[n:n + 100]}}))
        for x in api(i, "GET", f"/items/{coll}?limit=-1&filter={flt}")["data"]:
            out[str(x["id"])] = x
    return out


def diff(w, remote):
    """What remote holds differently from a, item by item, over every item the workload touched."""
    out = []
    for coll, fields in FIELDS.items():
        keys = w.keys[coll] + (w.poison if coll == "articles" else [])
        src, dst = fetch(A, coll, keys), fetch(remote, coll, keys)
        for k in keys:
            s, d = src.get(k), dst.get(k)
            if k in w.poison:
                if d is not None:
                    out.append(f"{coll} {k}: a poisoned item reached {remote['name']}")
            elif s is None and d is not None:
                out.append(f"{coll} {k}: deleted on a, still on {remote['name']}")
            elif s is not None and d is None:
                out.append(f"{coll} {k}: missing on {remote['name']}")
            elif s is not None:
                out += [f"{coll} {k}.{f}: {d[f]!r} on {remote['name']}, {s[f]!r} on a" for f in fields if s[f] != d[f]]
    return out


def kafka_activity_ids():
    ids, n = set(), 0
    for coll in FIELDS:
        for m in topic(f"{PREFIX}.a.{coll}"):
            ids.add(json.loads(m["payload"])["activity_id"])
            n += 1
    return ids, n


def activity_ids(i, since, user):
    """The changes user made on i: activity rows, except an update of an item that does not
    exist (a create failed during the fault): Directus records it with no revision data, and
    there is nothing to publish."""
    return [int(x) for x in psql(i["db"], f"select a.id from directus_activity a left join directus_revisions r "
                                          f"on r.activity = a.id where a.id > {since} and "
                                          f"a.collection in ('articles','counters') and "
                                          f"a.action in ('create','update','delete') and a.\"user\" = '{user}' "
                                          f"and not (a.action = 'update' and r.data is null)").split()]


def remote_writes(r, w):
    """Writes the sync user made on remote r to the workload's items, per item."""
    keys = set(w.keys["articles"] + w.keys["counters"] + w.poison)
    rows = psql(r["db"], f"select item from directus_activity where id > {start_r[r['name']]} and "
                         f"collection in ('articles','counters') and action in ('create','update','delete') "
                         f"and \"user\" = '{r['sync_id']}'").split()
    per = {}
    for k in rows:
        if k in keys:
            per[k] = per.get(k, 0) + 1
    return per


def lag(r):
    """The remote's consumer group lag in events (committed offsets), or None when unknown."""
    return group_lag(CFG, r["name"])


def lag0(r):
    return lag(r) == 0


def kill9(name):
    p = procs[name]
    p.send_signal(signal.SIGKILL)
    rc = p.wait()
    del procs[name]
    return rc


def random_kills(name, w, duration):
    """kill -9 of one process at three random moments of the workload, each restarted at once."""
    moments = sorted(random.uniform(3, duration - 3) for _ in range(3))
    t0 = time.time()
    for n, at in enumerate(moments, 1):
        time.sleep(max(0.0, t0 + at - time.time()))
        rc = kill9(name)
        check(rc == -signal.SIGKILL, f"kill -9 #{n} of the {name} at {at:.1f} s ({w.made} changes so far)")
        launch(name)
    time.sleep(max(0.0, t0 + duration - time.time()))


# ---------------------------------------------------------------- the scenarios
w = Workload()
w.thread.start()
t_begin = time.time()
if SC in ("kill_producer", "kill_consumer", "kill_notifier"):
    random_kills({"kill_producer": "producer", "kill_consumer": "consumer-b",
                  "kill_notifier": "notifier"}[SC], w, 30)
elif SC in ("kafka_stop", "kafka_kill"):
    time.sleep(random.uniform(3, 8))
    harness("kafka.sh", "stop" if SC == "kafka_stop" else "kill")
    down = time.time()
    check(not port_open(BROKERS), f"Kafka is down ({'SIGTERM' if SC == 'kafka_stop' else 'kill -9'})")
    time.sleep(max(0.0, down + (30 if SC == "kafka_stop" else 15) - time.time()))
    check(all(p.poll() is None for p in procs.values()), "every dxsync process runs on while Kafka is down")
    harness("kafka.sh", "start")
    print(f"     Kafka started again after {time.time() - down:.0f} s", flush=True)
    time.sleep(5)
elif SC == "postgres_restart":
    time.sleep(random.uniform(5, 10))
    t0 = time.time()
    harness("postgres.sh", "restart")
    print(f"     PostgreSQL restarted (fast shutdown) in {time.time() - t0:.1f} s while changes streamed", flush=True)
    check(wait_for(lambda: log_of("producer").count("event=streaming") >= 2, 60), "the producer streams again")
    time.sleep(10)
    # Every Directus of the harness uses this server: later tests need them answering again
    # (each drops the pooled connections the restart broke, one failed request at a time).
    every = [inst(n) for n in ENV.get("DXSYNC_INSTANCES", "a b").split()]

    def answers():
        try:
            for _ in range(12):
                for i in every:
                    api(i, "GET", "/items/counters?limit=1")
            return True
        except Exception:  # noqa: BLE001
            return False
    check(wait_for(answers, 60, 1), f"every Directus ({' '.join(i['name'] for i in every)}) answers again")
elif SC == "remote_stop":
    time.sleep(random.uniform(3, 6))
    harness("directus.sh", "stop", "b")
    down = time.time()
    check(not port_open(B["url"]), "Directus b is stopped")
    time.sleep(max(0.0, down + 60 - time.time()))
    restart_remote_b()
    print(f"     Directus b started again after {time.time() - down:.0f} s", flush=True)
    time.sleep(3)
elif SC == "remote_500":
    time.sleep(random.uniform(3, 6))
    proxy.fail = True
    time.sleep(25)
    proxy.fail = False
    check(proxy.failed > 0, f"the proxy answered 500 to {proxy.failed} requests for 25 s")
    time.sleep(3)
elif SC == "slow_remote":
    proxy.delay = 2.0
    lags = {"b": [], "c": []}
    while time.time() - t_begin < 30:
        time.sleep(5)
        for r in REMOTES:
            lags[r["name"]].append(lag(r))
    check(all(x is not None and x <= 40 for x in lags["b"]),
          f"while c is slow, b's lag stays small (events, every 5 s: b {lags['b']}, c {lags['c']})")
w.stop()
healed = time.time()
# only a PostgreSQL restart takes a down with it; any other fault must leave a's changes alone
check(w.made >= 100 and (w.failed == 0 or SC == "postgres_restart"), f"the workload made {w.made} changes on a in {healed - t_begin:.0f} s "
                     f"({w.failed} failed during the fault{': ' + '; '.join(w.errors[:2]) if w.errors else ''})")

# ---------------------------------------------------------------- convergence and accounting
converge, left = {}, {}
for r in REMOTES:
    def same(r=r):
        left[r["name"]] = diff(w, r)
        return not left[r["name"]]
    ok = wait_for(same, 240, 1)
    converge[r["name"]] = time.time() - healed
    d = left[r["name"]]
    check(ok, f"{r['name']} holds exactly a's state of all {len(w.keys['articles']) + len(w.keys['counters'])} items "
              f"({converge[r['name']]:.1f} s after the fault healed)" + ("" if ok else f": {len(d)} differences, e.g. {d[:4]}"))



for r in REMOTES:   # converged could be a passing moment: once everything is consumed, again
    ok = wait_for(lambda: lag0(r), 60, 1)
    d = diff(w, r)
    left[r["name"]] += d
    check(ok and not d, f"{r['name']}'s group has lag 0 and {r['name']} still holds a's state"
                        + ("" if not d else f": {d[:4]}"))

want = activity_ids(A, start_a, A["admin_id"])
got, in_kafka = kafka_activity_ids()
missing_kafka = sorted(set(want) - got)
check(not missing_kafka, f"every change on a is in Kafka ({len(want)} changes, {len(got)} distinct in Kafka, "
                         f"{in_kafka - len(got)} resent){'' if not missing_kafka else ': missing ' + str(missing_kafka[:10])}")
dlq = {r["name"]: topic(f"{PREFIX}.dlq.{r['name']}") for r in REMOTES}
if SC == "kill_notifier":
    check(len(dlq["b"]) >= len(w.poison) and all(m["key"] in w.poison for m in dlq["b"]),
          f"only the {len(w.poison)} poisoned changes are dead-lettered ({len(dlq['b'])} DLQ messages)")
else:
    check(all(not v for v in dlq.values()), "nothing was dead-lettered")

if SC == "kill_notifier":
    errs = [(m["partition"], m["offset"]) for m in topic(f"{PREFIX}.errors")
            if json.loads(m["payload"])["kind"] == "apply_failed"]

    def covered():
        notes = api(A, "GET", "/notifications?limit=-1&fields=message,recipient&filter="
                    + urllib.parse.quote(json.dumps({"message": {"_contains": f"{PREFIX}"}})))["data"]
        spans = []
        for n in notes:
            m = re.search(r"(?:is|are) in [^,:]+[,:] (partition .*?)\.(?:\s|$)", n["message"] or "")
            for p, lo, hi in re.findall(r"partition (\d+), offsets? (\d+)(?: to (\d+))?", m.group(1) if m else ""):
                spans.append((int(p), int(lo), int(hi or lo)))
        global uncovered, nnotes
        nnotes = len(notes)
        uncovered = [e for e in errs if not any(p == e[0] and lo <= e[1] <= hi for p, lo, hi in spans)]
        return not uncovered and all(n["recipient"] == A["editor1"] for n in notes)
    uncovered, nnotes = errs, 0
    ok = wait_for(covered, 60, 1)
    converge["b"] = max(converge["b"], time.time() - healed)   # the notifications are part of it
    check(ok and errs, f"every one of the {len(errs)} error events is in a notification to the editor "
                       f"({nnotes} notifications){'' if ok else ': not covered ' + str(uncovered[:5])}")

if SC == "remote_stop" or SC == "remote_500":
    kinds = [json.loads(m["payload"])["kind"] for m in topic(f"{PREFIX}.errors")]
    check(kinds.count("remote_unavailable") == 1 and kinds.count("remote_recovered") == 1,
          f"one remote_unavailable and one remote_recovered event ({kinds})")
if SC == "slow_remote":
    check(converge["b"] < 20, f"b, not behind the slow proxy, converges {converge['b']:.1f} s after the workload "
                              f"(c behind the proxy: {converge['c']:.1f} s, {proxy.requests} slow requests)")

for name, p in list(procs.items()):
    check(p.poll() is None, f"{name} is still running")
for name in list(procs):
    check(stop(name) == 0, f"{name} stops cleanly on SIGTERM")

# ---------------------------------------------------------------- the table row
writes = {r["name"]: remote_writes(r, w) for r in REMOTES}
per_key = {}
for m in (msg for coll in FIELDS for msg in topic(f"{PREFIX}.a.{coll}")):
    per_key.setdefault(m["key"], set()).add(json.loads(m["payload"])["activity_id"])
for r in REMOTES:
    missing = len(missing_kafka) + len(left[r["name"]])
    applied = sum(writes[r["name"]].values())
    dups = sum(max(0, n - len(per_key.get(k, ()))) for k, n in writes[r["name"]].items())
    row = (f"{SC + ('' if len(REMOTES) == 1 else ' (' + r['name'] + ')'):<24} {len(want):>6} {len(got):>9} "
           f"{applied:>8} {missing:>8} {dups:>11} {converge[r['name']]:>10.1f}")
    print("table row: " + row, flush=True)
    with open(os.path.join(RUN, "faults-table.txt"), "a") as f:
        f.write(row + "\n")
finish(f"faults_{SC}")
