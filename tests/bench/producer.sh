#!/usr/bin/env bash
# Capture benchmark (not a test): EVENTS Directus-shaped activity+revision pairs inserted in SQL
# (transactions of 100, as Directus batches), then RUNS rounds (default 3), each reading the
# same WAL through slots of its own (created before the inserts):
#   pg_recvlogical   pgoutput of the same publication to /dev/null, timed from its start
#                    (connection included) until it exits at the end LSN
#   dxsync-producer  timed from its start (connection, publication and topic checks included)
#                    until Kafka has acknowledged every event (its own metric, polled every
#                    10 ms); Kafka must then hold exactly EVENTS events of that round
# Prints every round and the medians: events/s, CPU seconds (user+sys) and CPU µs per event of
# both, the ratio (target >= 0.95) and the CPU ratio (target <= 2), the producer's peak RSS
# (target < 16 MB).
#   DXSYNC_BENCH_NICE=1  then the same rounds again with the Kafka broker at nice 19: how much
#                        of the gap is the broker taking the same two cores
#   DXSYNC_BENCH_PERF=1  records the first producer round with perf (linux-perf) and prints the
#                        share of each library and the top symbols
# Needs the services of tests/harness/services.sh (PostgreSQL and Kafka; Directus is not used).
#   tests/bench/producer.sh [EVENTS] [RUNS]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/dx.sh"
load_services
N=${1:-200000}
RUNS=${2:-3}
BIN=${DXSYNC_BIN:-$ROOT/build}
DB=$DXSYNC_PG_URL/dxsync_bench
TMP=$(mktemp -d /tmp/dxsync-bench.XXXXXX)
T_TMP=$TMP
[ "${DXSYNC_BENCH_PERF:-0}" = 1 ] && apt_need linux-perf
cleanup() {
  [ -f "$TMP/kafka.niced" ] && renice -n 0 -p "$(cat "$DXSYNC_RUN/kafka.pid")" >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT
q() { psql "$DB" -XAtqc "$1"; }

psql "$DXSYNC_PG_URL/postgres" -XAtqc "select pg_drop_replication_slot(slot_name) from pg_replication_slots
  where database = 'dxsync_bench'" >/dev/null
psql "$DXSYNC_PG_URL/postgres" -XAtqc "DROP DATABASE IF EXISTS dxsync_bench WITH (FORCE)" 2>/dev/null || true
psql "$DXSYNC_PG_URL/postgres" -XAtqc "CREATE DATABASE dxsync_bench"
q "
CREATE TABLE directus_activity (id serial PRIMARY KEY, action varchar(45) NOT NULL, \"user\" uuid,
  timestamp timestamptz NOT NULL DEFAULT now(), ip varchar(50), user_agent text,
  collection varchar(64) NOT NULL, item varchar(255) NOT NULL, origin varchar(255));
CREATE TABLE directus_revisions (id serial PRIMARY KEY, activity integer NOT NULL REFERENCES directus_activity(id),
  collection varchar(64) NOT NULL, item varchar(255) NOT NULL, data json, delta json, parent integer, version uuid);
CREATE TABLE articles (id uuid PRIMARY KEY, title varchar(255), body text, rating integer);"

ROUNDS=$RUNS
[ "${DXSYNC_BENCH_NICE:-0}" = 1 ] && ROUNDS=$((RUNS * 2))
PREFIX=bench$(date +%s)
python3 - "$TMP/cfg.json" "$ROUNDS" "$DXSYNC_KAFKA_BROKERS" "$PREFIX" "$DB" <<'PY'
import json, sys
path, rounds, brokers, prefix, db = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
inst = [{"name": f"bench{r}", "url": "http://127.0.0.1:1", "token": "unused", "database": db,
         "sync_user": "00000000-0000-0000-0000-000000000000"} for r in range(rounds)]
json.dump({"kafka": {"brokers": brokers, "topic_prefix": prefix, "partitions": 6},
           "instances": inst + [{"name": "sink", "url": "http://127.0.0.1:1", "token": "unused"}],
           "routes": [{"from": i["name"], "to": "sink",
                       "collections": [{"collection": "articles", "fields": ["title", "body", "rating"]}]}
                      for i in inst]}, open(path, "w"))
PY
# A first start of each round's producer creates its slot, publication and topic; then it stops.
for r in $(seq 0 $((ROUNDS - 1))); do
  "$BIN/producer/dxsync-producer" --config "$TMP/cfg.json" --instance "bench$r" >"$TMP/p0-$r.log" 2>&1 &
  pid=$!
  wait_for 20 grep -qs event=streaming "$TMP/p0-$r.log" || { cat "$TMP/p0-$r.log" >&2; die "producer bench$r did not stream"; }
  kill -TERM $pid; wait $pid || true
  q "select pg_create_logical_replication_slot('ceiling_$r', 'pgoutput')" >/dev/null
done

echo "inserting $N activity+revision pairs (transactions of 100, as Directus batches)..." >&2
q "
DO \$\$
DECLARE b int; a int;
BEGIN
  FOR b IN 0..($N/100 - 1) LOOP
    FOR i IN 1..100 LOOP
      INSERT INTO directus_activity (action, \"user\", collection, item, ip, user_agent, origin)
        VALUES ('create', 'e1e260ff-05b0-4648-aef0-a8adaf64428d', 'articles', md5((b*100+i)::text)::uuid::text,
                '127.0.0.1', 'bench', 'http://localhost') RETURNING id INTO a;
      INSERT INTO directus_revisions (activity, collection, item, data, delta)
        VALUES (a, 'articles', md5((b*100+i)::text)::uuid::text,
                json_build_object('title', 'title ' || (b*100+i), 'body', repeat('lorem ipsum ', 8), 'rating', i),
                json_build_object('title', 'title ' || (b*100+i), 'body', repeat('lorem ipsum ', 8), 'rating', i));
    END LOOP;
    COMMIT;
  END LOOP;
END \$\$;"
END_LSN=$(q "select pg_current_wal_lsn()")
q "CHECKPOINT" >/dev/null

export BENCH_N=$N BENCH_RUNS=$RUNS BENCH_ROUNDS=$ROUNDS BENCH_END_LSN=$END_LSN BENCH_DB=$DB BENCH_TMP=$TMP \
  BENCH_BIN=$BIN BENCH_PREFIX=$PREFIX BENCH_PERF=${DXSYNC_BENCH_PERF:-0} BENCH_KAFKA_PID=$(cat "$DXSYNC_RUN/kafka.pid")
PYTHONPATH="$ROOT/tests/lib" python3 - <<'PY'
import os, re, signal, statistics, subprocess, sys, time, urllib.request
from dx import free_port

E = os.environ
N, RUNS, ROUNDS = int(E["BENCH_N"]), int(E["BENCH_RUNS"]), int(E["BENCH_ROUNDS"])
TMP, BIN, DB, END = E["BENCH_TMP"], E["BENCH_BIN"], E["BENCH_DB"], E["BENCH_END_LSN"]
HZ = os.sysconf("SC_CLK_TCK")


def cpu_of(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / HZ


def ceiling(r):
    t0 = time.time()
    p = subprocess.Popen(["pg_recvlogical", "-d", DB, "--slot", f"ceiling_{r}", "--start", "-o", "proto_version=1",
                          "-o", "publication_names=dxsync_bench0", "--endpos", END, "-f", "/dev/null", "--no-loop"])
    _, status, ru = os.wait4(p.pid, 0)
    t1 = time.time()
    p.returncode = status
    if status:
        sys.exit(f"pg_recvlogical failed (status {status})")
    return t1 - t0, ru.ru_utime + ru.ru_stime


def published(port, source):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0
    m = re.search(r'^dxsync_producer_events_published_total\{source="%s"\} (\S+)$' % source, text, re.M)
    return int(float(m.group(1))) if m else 0


def producer(r, perf):
    port, source = free_port(), f"bench{r}"
    log = open(f"{TMP}/p-{r}.log", "w")
    t0 = time.time()
    p = subprocess.Popen([f"{BIN}/producer/dxsync-producer", "--config", f"{TMP}/cfg.json", "--instance", source,
                          "--metrics-addr", str(port)], stdout=log, stderr=log)
    rec = None
    if perf:
        plog = open(f"{TMP}/perf.log", "w")
        rec = subprocess.Popen(["perf", "record", "-F", "1999", "-o", f"{TMP}/perf.data", "-p", str(p.pid)],
                               stdout=plog, stderr=plog)
    while published(port, source) < N:
        if p.poll() is not None:
            sys.exit(f"producer {source} died:\n" + open(f"{TMP}/p-{r}.log").read()[-2000:])
        time.sleep(0.01)
    t1 = time.time()
    cpu = cpu_of(p.pid)
    rss = int(next(l.split()[1] for l in open(f"/proc/{p.pid}/status") if l.startswith("VmHWM:"))) / 1024
    if rec:
        rec.send_signal(signal.SIGINT)
        rec.wait()
    p.send_signal(signal.SIGTERM)
    p.wait(30)
    out = subprocess.run(["kcat", "-b", E["DXSYNC_KAFKA_BROKERS"], "-C", "-t", f"{E['BENCH_PREFIX']}.{source}.articles",
                          "-o", "beginning", "-e", "-q", "-f", "x\n"], capture_output=True, text=True, timeout=300)
    return t1 - t0, cpu, rss, out.stdout.count("x")


def renice(n):
    subprocess.run(["renice", "-n", str(n), "-p", E["BENCH_KAFKA_PID"]], check=True, stdout=subprocess.DEVNULL)
    open(f"{TMP}/kafka.niced", "w").close() if n else os.unlink(f"{TMP}/kafka.niced")


def table(title, rows):
    print(f"\n{title}")
    print(f"{'round':>5} {'recvlogical/s':>14} {'cpu-s':>6} {'µs/ev':>6} {'dxsync/s':>10} {'cpu-s':>6} {'µs/ev':>6}"
          f" {'ratio':>6} {'cpu-ratio':>9} {'rss-MB':>7} {'in-kafka':>9}")
    for i, (ct, cc, pt, pc, rss, got) in enumerate(rows):
        print(f"{i + 1:>5} {N / ct:>14.0f} {cc:>6.2f} {cc / N * 1e6:>6.1f} {N / pt:>10.0f} {pc:>6.2f} {pc / N * 1e6:>6.1f}"
              f" {ct / pt:>6.2f} {pc / cc:>9.2f} {rss:>7.1f} {got:>9}")
    med = lambda k: statistics.median(k(x) for x in rows)
    c, p = med(lambda x: N / x[0]), med(lambda x: N / x[2])
    cc, pc = med(lambda x: x[1]), med(lambda x: x[3])
    print(f"{'median':>5} {c:>14.0f} {cc:>6.2f} {cc / N * 1e6:>6.1f} {p:>10.0f} {pc:>6.2f} {pc / N * 1e6:>6.1f}"
          f" {p / c:>6.2f} {pc / cc:>9.2f} {med(lambda x: x[4]):>7.1f}")
    print(f"targets: ratio >= 0.95 (median), producer CPU <= 2x pg_recvlogical's per event, peak RSS < 16 MB; "
          f"Kafka must hold {N} events per round")
    return all(x[5] == N for x in rows)


ok = True
rows, r = [], 0
for i in range(RUNS):
    ct, cc = ceiling(r)
    pt, pc, rss, got = producer(r, E["BENCH_PERF"] == "1" and i == 0)
    rows.append((ct, cc, pt, pc, rss, got))
    r += 1
ok &= table(f"capture of {N} events, {RUNS} rounds (pg_recvlogical and dxsync-producer, each from its start)", rows)
if ROUNDS > RUNS:
    renice(19)
    try:
        rows = []
        for i in range(RUNS):
            ct, cc = ceiling(r)
            pt, pc, rss, got = producer(r, False)
            rows.append((ct, cc, pt, pc, rss, got))
            r += 1
    finally:
        renice(0)
    ok &= table("the same with the Kafka broker at nice 19", rows)
if E["BENCH_PERF"] == "1":
    def rep(*a):
        r = subprocess.run(["perf", "report", "-i", f"{TMP}/perf.data", "--stdio", "--no-children", *a],
                           capture_output=True, text=True)
        return r.stdout or (r.stderr + open(f"{TMP}/perf.log").read())
    print("\nprofile of the first producer round (perf, share of samples), by library:")
    print("\n".join(l for l in rep("--sort", "dso").splitlines() if l.strip() and not l.startswith("#"))[:2000])
    print("\ntop symbols:")
    print("\n".join([l for l in rep("--sort", "dso,symbol").splitlines() if l.strip() and not l.startswith("#")][:30]))
if not ok:
    sys.exit("Kafka does not hold exactly the events of every round")
PY
psql "$DXSYNC_PG_URL/postgres" -XAtqc "select pg_drop_replication_slot(slot_name) from pg_replication_slots
  where database = 'dxsync_bench'" >/dev/null
