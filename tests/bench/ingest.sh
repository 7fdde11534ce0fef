#!/usr/bin/env bash
# Apply benchmark against Directus's own ingest (not a test), in one run on Directus b of
# tests/harness/services.sh:
#   sweep     WRITERS concurrent writers (1 2 4 8) x batches of SIZE items (25 100 250 500)
#             POSTing N new articles straight to b as the sync user (?fields=id, keep-alive):
#             b's ingest rate for each, and the best one (its real limit on this machine)
#   consumer  N creates queued in Kafka first; dxsync-consumer timed from its start until all
#             are applied (its own metric, polled every 20 ms), for each consumer setting of
#             SETTINGS ("batch_max/max_in_flight", default "100/4 250/4 100/8 250/8 500/2"),
#             RUNS times each (default 3), the median
#   ref       the sweep's best cell again at the start of each of those RUNS rounds: the best
#             cell of 16 single runs is biased high, and Directus changes over the run (its
#             table grows, the JIT warms), so the consumer is compared with the median of
#             that cell in the same rounds
# Prints the sweep table, the consumer table and the ratio of each median to the reference
# (target >= 1.0), the consumer's peak RSS and requests per run, and the split of its time:
# its start until the first applied answer, and the rate after it; its CPU seconds (user+sys).
#   tests/bench/ingest.sh [N] [RUNS]          (default 2000 3)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/dx.sh"
load_services
export BENCH_N=${1:-2000} BENCH_RUNS=${2:-3} BENCH_BIN=${DXSYNC_BIN:-$ROOT/build}
export BENCH_SETTINGS=${BENCH_SETTINGS:-"100/4 250/4 100/8 250/8 500/2"}
export BENCH_TMP=$(mktemp -d /tmp/dxsync-ingest.XXXXXX)
trap 'rm -rf "$BENCH_TMP"' EXIT
PYTHONPATH="$ROOT/tests/lib" python3 - <<'PY'
import http.client, json, os, re, signal, statistics, subprocess, sys, threading, time, urllib.parse, urllib.request, uuid
from dx import free_port

E = os.environ
N, RUNS, BIN, TMP = int(E["BENCH_N"]), int(E["BENCH_RUNS"]), E["BENCH_BIN"], E["BENCH_TMP"]
B = urllib.parse.urlsplit(E["DXSYNC_B_URL"])
H = {"Authorization": "Bearer " + E["DXSYNC_B_SYNC_TOKEN"], "Content-Type": "application/json"}
BODY = "lorem ipsum dolor sit amet " * 8


def item(k, i):
    return {"id": k, "title": f"ingest {i}", "body": BODY, "rating": i % 1000}


def sweep(writers, size):
    keys = [str(uuid.uuid4()) for _ in range(N)]
    batches = [keys[i:i + size] for i in range(0, N, size)]
    lock, failures = threading.Lock(), []

    def run():
        c = http.client.HTTPConnection(B.hostname, B.port, timeout=120)
        while True:
            with lock:
                if not batches:
                    return
                b = batches.pop()
            c.request("POST", "/items/articles?fields=id", json.dumps([item(k, i) for i, k in enumerate(b)]), H)
            r = c.getresponse()
            r.read()
            if r.status != 200:
                failures.append(r.status)

    t = time.time()
    ts = [threading.Thread(target=run) for _ in range(writers)]
    for x in ts:
        x.start()
    for x in ts:
        x.join()
    if failures:
        sys.exit(f"sweep {writers}x{size}: HTTP {failures[:5]}")
    return N / (time.time() - t)


print(f"sweep: Directus b's ingest of {N} new articles per cell, items/s", flush=True)
sizes, counts = [25, 100, 250, 500], [1, 2, 4, 8]
print(f"{'writers':>8} " + " ".join(f"{'x' + str(s):>8}" for s in sizes), flush=True)
best = (0, None, None)
for w in counts:
    row = []
    for s in sizes:
        v = sweep(w, s)
        row.append(v)
        if v > best[0]:
            best = (v, f"{w} writers x {s}", (w, s))
    print(f"{w:>8} " + " ".join(f"{v:>8.0f}" for v in row), flush=True)
print(f"best: {best[0]:.0f} items/s ({best[1]})\n", flush=True)


def applied(port):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0, 0
    a = sum(float(m) for m in re.findall(r'^dxsync_consumer_events_applied_total\{[^}]*\} (\S+)$', text, re.M))
    r = sum(float(m) for m in re.findall(r'^dxsync_consumer_requests_total\{[^}]*\} (\S+)$', text, re.M))
    return int(a), int(r)



def consumer(batch_max, in_flight, run):
    prefix = f"ing{int(time.time() * 1000) % 10**9}"
    cfg = {"kafka": {"brokers": E["DXSYNC_KAFKA_BROKERS"], "topic_prefix": prefix, "partitions": 6},
           "instances": [{"name": "a", "url": E["DXSYNC_A_URL"], "token": E["DXSYNC_A_SYNC_TOKEN"], "database": E["DXSYNC_A_DB_URL"]},
                         {"name": "b", "url": E["DXSYNC_B_URL"], "token": E["DXSYNC_B_SYNC_TOKEN"]}],
           "routes": [{"from": "a", "to": "b", "collections": [{"collection": "articles", "fields": ["title", "body", "rating"]}]}],
           "consumer": {"batch_max": batch_max, "max_in_flight": in_flight}}
    path = f"{TMP}/cfg-{prefix}.json"
    json.dump(cfg, open(path, "w"))
    kv = f"{TMP}/{prefix}.kv"
    with open(kv, "w") as f:
        for i in range(N):
            k = str(uuid.uuid4())
            d = item(k, i)
            ev = {"version": 1, "event_id": f"a:{i + 1}", "source": "a", "collection": "articles", "action": "create",
                  "key": k, "data": d, "delta": {x: d[x] for x in d if x != "id"}, "user": None,
                  "timestamp": "2026-01-01T00:00:00.000Z", "activity_id": i + 1, "revision_id": i + 1, "lsn": None}
            f.write(k + "\t" + json.dumps(ev) + "\n")
    # a first start creates the topics (6 partitions) and stops; then the events are queued
    log0 = f"{TMP}/{prefix}-0.log"
    p = subprocess.Popen([f"{BIN}/consumer/dxsync-consumer", "--config", path, "--remote", "b"],
                         stdout=open(log0, "w"), stderr=subprocess.STDOUT)
    t = time.time()
    while "partition_assigned" not in open(log0).read():
        if p.poll() is not None or time.time() - t > 60:
            sys.exit("the consumer did not start:\n" + open(log0).read()[-2000:])
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    p.wait(60)
    subprocess.run(["kcat", "-b", E["DXSYNC_KAFKA_BROKERS"], "-P", "-t", f"{prefix}.a.articles", "-K", "\t",
                    "-X", "partitioner=murmur2_random", "-l", kv], check=True, timeout=300)
    port = free_port()
    log = open(f"{TMP}/{prefix}.log", "w")
    t0 = time.time()
    p = subprocess.Popen([f"{BIN}/consumer/dxsync-consumer", "--config", path, "--remote", "b", "--metrics-addr", str(port)],
                         stdout=log, stderr=log)
    first = None  # (seconds after the start, items) at the first answer that applied some
    while (done := applied(port)[0]) < N:
        if p.poll() is not None or time.time() - t0 > 600:
            sys.exit(f"consumer {batch_max}/{in_flight}: did not apply {N}:\n" + open(f"{TMP}/{prefix}.log").read()[-2000:])
        if done and first is None:
            first = (time.time() - t0, done)
        time.sleep(0.02)
    secs = time.time() - t0
    first = first or (secs, 0)
    reqs = applied(port)[1]
    rss = int(next(l.split()[1] for l in open(f"/proc/{p.pid}/status") if l.startswith("VmHWM:"))) / 1024
    stat = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    p.send_signal(signal.SIGTERM)
    p.wait(60)
    steady = (N - first[1]) / max(1e-3, secs - first[0])
    return N / secs, reqs, rss, first[0], steady, cpu


print(f"consumer: {N} creates queued in Kafka (6 partitions), from the consumer's start until all are on b;\n"
      f"each round runs the sweep's best cell again first (ref), so that both see the same Directus", flush=True)
bw, bs = best[2]
settings = [tuple(map(int, s.split("/"))) for s in E["BENCH_SETTINGS"].split()]
refs, runs = [], {s: [] for s in settings}
for i in range(RUNS):
    refs.append(sweep(bw, bs))
    for bm, fl in settings:
        runs[(bm, fl)].append(consumer(bm, fl, i))
ref = statistics.median(refs)
print(f"{'ref ' + best[1]:>16} " + " ".join(f"{r:>8.0f}" for r in refs) + f" {ref:>8.0f}", flush=True)
print(f"{'batch/in-flight':>16} " + " ".join(f"{'run ' + str(i + 1):>8}" for i in range(RUNS))
      + f" {'median':>8} {'ratio':>6} {'requests':>9} {'rss-MB':>7} {'cpu-s':>6} {'start-s':>7} {'steady/s':>8} {'ratio':>6}",
      flush=True)
for bm, fl in settings:
    rs = runs[(bm, fl)]
    med = statistics.median(r[0] for r in rs)
    steady = statistics.median(r[4] for r in rs)
    print(f"{str(bm) + '/' + str(fl):>16} " + " ".join(f"{r[0]:>8.0f}" for r in rs)
          + f" {med:>8.0f} {med / ref:>6.2f} {statistics.median(r[1] for r in rs):>9.0f}"
          f" {max(r[2] for r in rs):>7.1f} {statistics.median(r[5] for r in rs):>6.2f}"
          f" {statistics.median(r[3] for r in rs):>7.2f} {steady:>8.0f}"
          f" {steady / ref:>6.2f}", flush=True)
print(f"target: median >= 1.0x the best ingest of the sweep: ratio against its median in the same rounds ({ref:.0f} items/s;\n"
      f"the sweep's single best cell, {best[0]:.0f} items/s, is the highest of {len(sizes) * len(counts)} noisy figures)")
print("start-s: from the start to the first applied answer (process, group join, restore of the queued\n"
      "events, the key's GET /fields, the first batch); steady/s: the rest of the items over the rest of the time")
PY
