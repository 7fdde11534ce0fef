#!/usr/bin/env python3
"""Consumer and notifier failover (issue 27), with the defaults a user gets.

Consumers: two members of b's group (--member c1, c2; consumer.session_timeout_ms at its default,
15 s) while a steady stream of creates goes on on a. Three rounds: the member holding partitions
is killed -9; the other takes its partitions over once the group's session timeout has passed,
reads them back from their checkpoint and applies what waited; the killed one is started again
(it rejoins, a rebalance). Each round prints how long the killed member's partitions applied
nothing: the longest time an item created during the round took to reach b, and from the kill
to the survivor's read-back done (its log).

Notifiers, at the same time: two of them (notify.digest_window_s 0: one notification per error)
while error events arrive; three rounds in which the one holding partitions is killed -9, the
other takes over after the session timeout (10 s), and the killed one is started again. Every
error gets its notification exactly once: what a killed one had created without committing is
found in Directus (its [dxsync-ref ...] mark) and not created again.

Then: b holds every item as a has it, nothing dead-lettered. Adds the rows to
$DXSYNC_RUN/failover-table.txt. failover.py; DXSYNC_SEED repeats a run."""
import json, os, signal, statistics, subprocess, sys, threading, time
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dx import *  # noqa: E402,F401,F403

NAME = "failover"
SEED = seed(NAME)
A, B = inst("a"), inst("b")
PREFIX = f"fov{int(time.time() * 1000) % 10**9}"
ED1 = A["editor1"]
cfg = {"kafka": {"brokers": BROKERS, "topic_prefix": PREFIX, "partitions": 6},
       "instances": [{"name": i["name"], "url": i["url"], "token": i["sync"], "database": i["db"]} for i in (A, B)],
       "routes": [{"from": "a", "to": "b", "collections": [{"collection": "articles", "fields": ["title", "rating"]}],
                   "notify": [ED1]}],
       "notify": {"digest_window_s": 0}}
CFG = os.path.join(TMP, "cfg.json")
json.dump(cfg, open(CFG, "w"))
P, CONS, NOTI = f"{BIN}/producer/dxsync-producer", f"{BIN}/consumer/dxsync-consumer", f"{BIN}/consumer/dxsync-notifier"


def ts(line):
    return datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()


def holds(name):
    """Whether the last assignment in name's log gave it partitions (count of the last batch)."""
    log = log_of(name)
    return "event=partition_assigned" in log.rsplit("event=partition_revoked", 1)[-1]


def start_consumer(name):
    start(name, CONS, "--config", CFG, "--remote", "b", "--member", name)


fresh_slot(A)
start("producer-a", P, "--config", CFG, "--instance", "a")
check(wait_for(lambda: "event=streaming" in log_of("producer-a"), 30), "the producer streams")
start_consumer("c1")
start_consumer("c2")
check(wait_for(lambda: holds("c1") and holds("c2"), 90), "both consumers of b hold partitions")

created, seen, lock = {}, {}, threading.Lock()


def writer(stop_at):
    k = 0
    while time.time() < stop_at:
        t = time.time()
        i = api(A, "POST", "/items/articles", {"title": f"fo{k}", "rating": k})["data"]["id"]
        with lock:
            created[i] = (t, f"fo{k}", k)
        k += 1
        time.sleep(max(0.0, 0.05 - (time.time() - t)))


def poller(stop_at):
    while time.time() < stop_at:
        now = time.time()
        for i in items(B, "articles", "id"):
            if i in created and i not in seen:
                seen[i] = now
        time.sleep(0.2)


# ---------------------------------------------------------------------------- notifiers
ERRORS = f"{PREFIX}.errors"
TAG = f"fov{SEED % 100000}"


def error_event(i):
    key = f"{TAG}-{i:04d}"
    return json.dumps({"version": 1, "kind": "apply_failed", "source": "a", "remote": "b",
                       "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                       "status": 400, "code": "FAILED_VALIDATION", "message": f"{key}: value too long",
                       "attempts": 3, "collection": "articles", "key": key, "action": "update",
                       "event_id": f"a:{i}", "topic": f"{PREFIX}.a.articles", "partition": 0, "offset": i})


def notified():
    r = api(A, "GET", f"/notifications?limit=-1&fields=id,message,timestamp&filter[recipient][_eq]={ED1}"
                      f"&filter[subject][_contains]={TAG}")["data"]
    r += [n for n in api(A, "GET", f"/notifications?limit=-1&fields=id,message,timestamp&filter[recipient][_eq]={ED1}"
                                   f"&filter[message][_contains]={TAG}")["data"] if n["id"] not in {x["id"] for x in r}]
    per = {}
    for n in r:
        for w in n["message"].replace("*", " ").replace("`", " ").split():
            if w.startswith(TAG + "-"):
                per.setdefault(w.rstrip(":.,"), set()).add(n["id"])
    return per


def holds_n(name):
    """Whether name's last assignment event gave it partitions."""
    ev = [l for l in log_of(name).splitlines() if "event=partitions_assigned" in l or "event=partitions_revoked" in l]
    return bool(ev) and "event=partitions_assigned" in ev[-1] and " count=0" not in ev[-1]


def notifier_part(res):
    """Three rounds of 50 error events at 10/s; after 15 of them the notifier holding partitions is
    killed -9, and started again once the other has taken them over."""
    for n in ("n1", "n2"):
        start(n, NOTI, "--config", CFG)
    check(wait_for(lambda: holds_n("n1") and holds_n("n2"), 90), "both notifiers hold partitions")
    N_ERR, gaps_n = 150, []
    kcat = subprocess.Popen(["kcat", "-b", BROKERS, "-P", "-t", ERRORS, "-p", "-1"], stdin=subprocess.PIPE, text=True)
    victim = "n1"
    for i in range(N_ERR):
        kcat.stdin.write(error_event(i) + "\n")
        kcat.stdin.flush()
        if i % 50 == 15:
            survivor = "n2" if victim == "n1" else "n1"
            if not holds_n(victim):
                victim, survivor = survivor, victim
            assigned = log_of(survivor).count("event=partitions_assigned")
            t_kill = time.time()
            procs[victim].send_signal(signal.SIGKILL)
            procs.pop(victim).wait()
        if i % 50 == 49:  # the end of a round: the takeover, then the killed one back
            ok = wait_for(lambda: log_of(survivor).count("event=partitions_assigned") > assigned and holds_n(survivor), 60, 0.1)
            line = [l for l in log_of(survivor).splitlines() if "event=partitions_assigned" in l][-1]
            gaps_n.append(ts(line) - t_kill if ok else float("nan"))
            check(ok, f"notifier round {i // 50 + 1}: {victim} killed -9: {survivor} took the partitions after {gaps_n[-1]:.1f} s")
            start(victim, NOTI, "--config", CFG)
            check(wait_for(lambda: holds_n(victim) and holds_n(survivor), 90),
                  f"notifier round {i // 50 + 1}: {victim} is back and both hold partitions")
            victim = survivor
        time.sleep(0.1)
    kcat.stdin.close()
    kcat.wait()
    keys = [f"{TAG}-{i:04d}" for i in range(N_ERR)]
    check(wait_for(lambda: len(notified()) == N_ERR, 90, 2), f"every one of the {N_ERR} errors is notified")
    per = notified()
    twice = [k for k in keys if len(per.get(k, ())) > 1]
    check(not twice, f"each exactly once ({len(twice)} twice)")
    already = sum(log_of(n).count("event=notification_already_sent") for n in ("n1", "n2"))
    res.update(gaps=gaps_n, already=already, twice=len(twice))
    print(f"     notifier failover after kill -9 (session timeout 10 s): the survivor took the partitions after "
          f"{' '.join(f'{x:.1f}' for x in gaps_n)} s (median {statistics.median(gaps_n):.1f}); "
          f"{already} notifications found already sent and not sent again", flush=True)


nres = {}
nthread = threading.Thread(target=notifier_part, args=(nres,))
nthread.start()
gaps, takeovers = [], []
victim = "c1"
for rnd in range(3):
    survivor = "c2" if victim == "c1" else "c1"
    if not holds(victim):
        victim, survivor = survivor, victim
    t_end = time.time() + 24  # writes for 4 s after the takeover (2 + 18)
    before = set(created)
    threads = [threading.Thread(target=writer, args=(t_end,)), threading.Thread(target=poller, args=(t_end + 15,))]
    for th in threads:
        th.start()
    time.sleep(2)
    restored = log_of(survivor).count("event=clocks_restored")
    t_kill = time.time()
    procs[victim].send_signal(signal.SIGKILL)
    procs.pop(victim).wait()
    ok = wait_for(lambda: log_of(survivor).count("event=clocks_restored") > restored, 60, 0.1)
    line = [l for l in log_of(survivor).splitlines() if "event=clocks_restored" in l][-1] if ok else None
    takeovers.append(ts(line) - t_kill if line else float("nan"))
    check(ok, f"round {rnd + 1}: {victim} killed -9: {survivor} took its partitions over after {takeovers[-1]:.1f} s")
    for th in threads:
        th.join()
    mine = {i: v for i, v in created.items() if i not in before}
    lat = [seen[i] - v[0] for i, v in mine.items() if i in seen]
    gaps.append(max(lat) if lat else float("nan"))
    check(len(lat) == len(mine), f"round {rnd + 1}: the {len(mine)} items of the round reached b "
                                 f"(longest wait {gaps[-1]:.1f} s)")
    start_consumer(victim)
    check(wait_for(lambda: holds(victim), 90), f"round {rnd + 1}: {victim} is back and holds partitions again")
    victim = survivor

print(f"     consumer failover after kill -9 (session timeout 15 s): survivor's read-back done after "
      f"{' '.join(f'{x:.1f}' for x in takeovers)} s (median {statistics.median(takeovers):.1f}); "
      f"longest an item waited {' '.join(f'{x:.1f}' for x in gaps)} s (median {statistics.median(gaps):.1f})",
      flush=True)

nthread.join()
want = {i: (v[1], v[2]) for i, v in created.items()}
got = items(B, "articles", "id,title,rating")
check(all(i in got and (got[i]["title"], got[i]["rating"]) == v for i, v in want.items()),
      f"b holds every one of the {len(want)} items as a has it")
check(not topic(f"{PREFIX}.dlq.b"), "nothing dead-lettered")

for n in list(procs):
    check(stop(n) == 0, f"{n} stops cleanly on SIGTERM")
with open(os.path.join(RUN, "failover-table.txt"), "a") as f:
    f.write(f"consumer kill -9: takeover {' '.join(f'{x:.1f}' for x in takeovers)} s "
            f"(median {statistics.median(takeovers):.1f}), longest wait {' '.join(f'{x:.1f}' for x in gaps)} s "
            f"(median {statistics.median(gaps):.1f})\nnotifier kill -9: takeover {' '.join(f'{x:.1f}' for x in nres.get('gaps', []))} s, "
            f"{nres.get('already')} found already sent, {nres.get('twice')} twice\n")
finish(NAME)
