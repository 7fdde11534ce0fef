#!/usr/bin/env bash
# files benchmark (not a test): a file of MB MiB (default 1024) uploaded on a, then moved to b
# three times by hand and three times by dxsync, interleaved, in the same run:
#   by hand  curl GET a/assets/<id> | curl POST b/files (multipart from stdin), the sync tokens
#   dxsync   the consumer of b started with the file's event waiting in Kafka; the time of its
#            transfer (event=file_transferred) and the consumer's peak RSS (VmHWM)
# Prints each run, the medians, the ratio dxsync / by hand (target >= 0.8) and the peak RSS
# (target < 64 MB). Needs the services of tests/harness/services.sh (a and b).
#   tests/bench/files.sh [MB]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/dx.sh"
load_services
MB=${1:-1024}
BIN=${DXSYNC_BIN:-$ROOT/build}
TMP=$(mktemp -d /tmp/dxsync-fbench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
exec python3 - "$BIN" "$TMP" "$MB" <<'PY'
import json, os, re, statistics, subprocess, sys, time, uuid

BIN, TMP, MB = sys.argv[1], sys.argv[2], int(sys.argv[3])
E = os.environ
A = {"url": E["DXSYNC_A_URL"], "sync": E["DXSYNC_A_SYNC_TOKEN"], "db": E["DXSYNC_A_DB_URL"],
     "admin": E["DXSYNC_A_ADMIN_TOKEN"]}
B = {"url": E["DXSYNC_B_URL"], "sync": E["DXSYNC_B_SYNC_TOKEN"], "db": E["DXSYNC_B_DB_URL"]}
PREFIX = f"fbench{int(time.time()) % 10**6}"
cfg = {"kafka": {"brokers": E["DXSYNC_KAFKA_BROKERS"], "topic_prefix": PREFIX, "partitions": 1},
       "instances": [{"name": "a", "url": A["url"], "token": A["sync"], "database": A["db"]},
                     {"name": "b", "url": B["url"], "token": B["sync"], "database": B["db"]}],
       "routes": [{"from": "a", "to": "b", "collections": [{"collection": "directus_files", "fields": ["title"]}]}]}
CFG = os.path.join(TMP, "cfg.json")
json.dump(cfg, open(CFG, "w"))


def sh(*args, **kw):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, **kw).stdout


def delete(i, fid):
    subprocess.run(["curl", "-sS", "-o", "/dev/null", "-X", "DELETE", f"{i['url']}/files/{fid}",
                    "-H", "Authorization: Bearer " + i["sync"]], check=False)


path = os.path.join(TMP, "big.bin")
print(f"# writing {MB} MiB of random bytes", flush=True)
with open(path, "wb") as f:
    for _ in range(MB):
        f.write(os.urandom(1 << 20))
size = MB << 20

sh("psql", A["db"], "-XAtqc", "select pg_drop_replication_slot('dxsync_a') from pg_replication_slots where slot_name='dxsync_a'")
plog = open(os.path.join(TMP, "producer.log"), "w")
producer = subprocess.Popen([f"{BIN}/producer/dxsync-producer", "--config", CFG, "--instance", "a"], stdout=plog, stderr=plog)
try:
    t_end = time.time() + 30
    while "event=streaming" not in open(plog.name).read():
        if time.time() > t_end:
            sys.exit("the producer did not stream in 30 s")
        time.sleep(0.2)

    def upload_a():
        fid = str(uuid.uuid4())
        # as a's admin: the sync user's own changes are never published
        sh("curl", "-sS", "-f", "-o", "/dev/null", "-X", "POST", f"{A['url']}/files", "-H", "Authorization: Bearer " + A["admin"],
           "-F", f"id={fid}", "-F", f"file=@{path};type=application/octet-stream;filename=big.bin")
        return fid

    def by_hand(fid):
        """The faster of two ways by hand: curl piped into curl, streaming (curl's -F reads all of
        stdin into memory first, so the form is framed by hand around the download and sent
        with -T -, chunked), and curl into a file, then curl -F from it."""
        get = f"curl -sS -f '{A['url']}/assets/{fid}' -H 'Authorization: Bearer {A['sync']}'"
        auth = f"-H 'Authorization: Bearer {B['sync']}' -H 'Expect:'"
        url = f"'{B['url']}/files?fields=id,filesize'"
        piped = ("{ printf -- '--dxsyncbench\\r\\nContent-Disposition: form-data; name=\"file\"; "
                 "filename=\"hand.bin\"\\r\\nContent-Type: application/octet-stream\\r\\n\\r\\n'; "
                 f"{get}; printf -- '\\r\\n--dxsyncbench--\\r\\n'; }} | "
                 f"curl -sS -f -T - -X POST {auth} -H 'Content-Type: multipart/form-data; boundary=dxsyncbench' {url}")
        via_file = (f"{get} -o {TMP}/hand.bin && curl -sS -f -X POST {auth} "
                    f"-F 'file=@{TMP}/hand.bin;type=application/octet-stream;filename=hand.bin' {url}")
        best = None
        for cmd in (piped, via_file):
            t0 = time.monotonic()
            r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True)
            t = time.monotonic() - t0
            if r.returncode != 0:
                print(f"  (by hand, {'piped' if '|' in cmd else 'through a file'}: failed, exit {r.returncode} "
                      f"{r.stderr.strip()[:200]})", flush=True)
                continue
            out = r.stdout
            d = json.loads(out)["data"]
            assert str(d["filesize"]) == str(size), d
            delete(B, d["id"])
            best = t if best is None else min(best, t)
        if os.path.exists(f"{TMP}/hand.bin"):
            os.unlink(f"{TMP}/hand.bin")
        return best

    def dxsync(fid, run):
        log = os.path.join(TMP, f"consumer{run}.log")
        lf = open(log, "w")
        # the group goes on from the last run: the earlier file's delete (already done), then
        # this file's create
        t0 = time.monotonic()
        p = subprocess.Popen([f"{BIN}/consumer/dxsync-consumer", "--config", CFG, "--remote", "b"], stdout=lf, stderr=lf)
        hwm = 0
        try:
            t_end = time.time() + 120 + MB / 10
            while True:
                text = open(log).read()
                m = [l for l in text.splitlines() if "event=file_transferred" in l and fid in l]
                try:
                    st = open(f"/proc/{p.pid}/status").read()
                    hwm = max(hwm, int(re.search(r"VmHWM:\s+(\d+)", st).group(1)))
                except (OSError, AttributeError):
                    pass
                if m:
                    kv = dict(x.split("=", 1) for x in m[-1].split() if "=" in x)
                    wall = time.monotonic() - t0
                    break
                if time.time() > t_end or p.poll() is not None:
                    sys.exit(f"no transfer of {fid} in the consumer's log:\n{text[-2000:]}")
                time.sleep(0.2)
        finally:
            p.terminate()
            p.wait(30)
        return float(kv["seconds"]), wall, hwm / 1024

    rows = []
    for run in range(3):
        fid = upload_a()
        time.sleep(1)  # the producer publishes the upload's event
        hand = by_hand(fid)
        xfer, wall, rss = dxsync(fid, run)
        delete(A, fid)
        delete(B, fid)
        rows.append((hand, xfer, wall, rss))
        print(f"run {run + 1}: by hand {hand:6.2f} s {MB / hand:7.1f} MB/s | dxsync transfer {xfer:6.2f} s "
              f"{MB / xfer:7.1f} MB/s, consumer start to done {wall:6.2f} s {MB / wall:7.1f} MB/s | "
              f"ratio {hand / xfer:.2f} ({hand / wall:.2f} with the start) | consumer peak RSS {rss:.1f} MB", flush=True)
    hand = statistics.median(r[0] for r in rows)
    xfer = statistics.median(r[1] for r in rows)
    wall = statistics.median(r[2] for r in rows)
    rss = max(r[3] for r in rows)
    print(f"median: by hand {MB / hand:.1f} MB/s, dxsync {MB / xfer:.1f} MB/s ({MB / wall:.1f} with the consumer's start), "
          f"ratio {hand / xfer:.2f} ({hand / wall:.2f}) (target >= 0.8); consumer peak RSS {rss:.1f} MB (target < 64)")
finally:
    producer.terminate()
    producer.wait(30)
PY
