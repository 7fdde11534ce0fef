"""The consumer's restart cost against the history it keeps (tests/bench/history.sh): see there."""
import json, os, re, shutil, signal, subprocess, sys, threading, time, urllib.error, urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dx import BIN, BROKERS, TMP, inst  # noqa: E402

EVENTS, KEYS, RUNS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
PARTS = 6
B = inst("b")
CONS = f"{BIN}/consumer/dxsync-consumer"
FILL = f"{BIN}/tests/histfill"
DAY_MS = 86400000


def config(path, prefix, state, **consumer):
    cfg = {"kafka": {"brokers": BROKERS, "topic_prefix": prefix, "partitions": PARTS},
           "instances": [{"name": "a", "url": inst("a")["url"], "token": inst("a")["sync"],
                          "database": inst("a")["db"]},
                         {"name": "b", "url": B["url"], "token": B["sync"]}],
           "routes": [{"from": "a", "to": "b",
                       "collections": [{"collection": "articles", "fields": ["title", "body"]}]}],
           "consumer": dict({"state_dir": state}, **consumer)}
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def now_ms():
    return int(time.time() * 1000)


def fill(cfg, events, keys, frm, to, group=None):
    r = subprocess.run([FILL, cfg, "a", "articles", str(events), str(keys), str(frm), str(to)]
                       + ([group] if group else []), capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"histfill: {r.stderr}")
    return r.stdout.strip(), r.stderr.strip()


def on_b(key):
    req = urllib.request.Request(f"{B['url']}/items/articles/{key}?fields=id",
                                 headers={"Authorization": "Bearer " + B["admin"]})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status == 200
    except (urllib.error.HTTPError, urllib.error.URLError):
        return False


class Proc:
    def __init__(self, name, cfg, member, level="info"):
        self.log = os.path.join(TMP, "%s-%d.log" % (name, time.time() * 1000))
        self.t0 = time.time()
        self.p = subprocess.Popen([CONS, "--config", cfg, "--remote", "b", "--member", member,
                                   "--log-level", level], stdout=open(self.log, "ab"),
                                  stderr=subprocess.STDOUT)
        self.anon = self.file = 0.0
        threading.Thread(target=self.sample, daemon=True).start()

    def sample(self):
        """The largest anonymous and file-backed resident sizes (MB), every 50 ms."""
        while self.p.poll() is None:
            try:
                for line in open(f"/proc/{self.p.pid}/status"):
                    if line.startswith("RssAnon:"):
                        self.anon = max(self.anon, int(line.split()[1]) / 1024)
                    elif line.startswith("RssFile:"):
                        self.file = max(self.file, int(line.split()[1]) / 1024)
            except (OSError, ValueError):
                pass
            time.sleep(0.05)

    def hwm_mb(self):
        try:
            for line in open(f"/proc/{self.p.pid}/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def text(self):
        return open(self.log, errors="replace").read()

    def wait_log(self, pattern, timeout, since=0):
        end = time.time() + timeout
        while time.time() < end:
            if re.search(pattern, self.text()[since:]):
                return True
            if self.p.poll() is not None:
                sys.exit(f"consumer exited {self.p.returncode}:\n{self.text()[-3000:]}")
            time.sleep(0.05)
        sys.exit(f"no {pattern} in {self.log} within {timeout} s:\n{self.text()[-3000:]}")

    def stop(self, sig=signal.SIGTERM):
        self.p.send_signal(sig)
        return self.p.wait(120)


def first_apply(cfg, member, key, timeout=600):
    """Starts the consumer; seconds until key is readable on b, its peak RSS, and the process."""
    p = Proc(member, cfg, member)
    end = time.time() + timeout
    while not on_b(key):
        if time.time() > end or p.p.poll() is not None:
            sys.exit(f"{key} never reached b:\n{p.text()[-3000:]}")
        time.sleep(0.01)
    secs = time.time() - p.t0
    time.sleep(0.5)
    return secs, p.hwm_mb(), p


def store_size(state):
    keys = 0
    size = 0
    for root, _, files in os.walk(state):
        for f in files:
            if f == "data.mdb":
                size += os.stat(os.path.join(root, f)).st_blocks * 512
    r = subprocess.run(["bash", "-c", f"for d in {state}/*/; do mdb_stat -s clocks \"$d\" 2>/dev/null | "
                        "sed -n 's/.*Entries: //p'; done"], capture_output=True, text=True)
    keys = sum(int(x) for x in r.stdout.split() if x.isdigit())
    return keys, size / 1048576


def restored(p):
    m = re.findall(r"event=clocks_restored partitions=\d+ events=(\d+)", p.text())
    return int(m[-1]) if m else 0


def stream(prefix, stop_ev, key_prefix):
    """One create every 50 ms into a's topic (commit time now) until stop_ev."""
    kc = subprocess.Popen(["kcat", "-b", BROKERS, "-P", "-t", f"{prefix}.a.articles", "-K", "\t",
                           "-X", "partitioner=murmur2_random", "-X", "linger.ms=0"],
                          stdin=subprocess.PIPE, text=True)
    i = 0
    while not stop_ev.is_set():
        k = "%s-%012d" % (key_prefix, i)
        t = now_ms()
        ev = {"version": 1, "event_id": f"a:{9000000000 + t}", "source": "a", "collection": "articles",
              "action": "create", "key": k, "data": {"id": k, "title": f"stream {i}", "body": "s"},
              "delta": {"title": f"stream {i}", "body": "s"}, "user": None,
              "timestamp": "2026-01-01T00:00:00.000Z", "activity_id": 9000000000 + t,
              "revision_id": 1, "lsn": "0/1", "commit_us": t * 1000}
        kc.stdin.write(k + "\t" + json.dumps(ev) + "\n")
        kc.stdin.flush()
        i += 1
        time.sleep(0.05)
    kc.stdin.close()
    kc.wait(30)


def settled_times(text):
    """Wall times (s) of the applied answers in a debug log."""
    out = []
    for line in text.splitlines():
        if "event=settled" in line and "applied=1" in line:
            out.append(line.split()[0])
    return [time.mktime(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + float(t[19:23])
            for t in out]


def run(events, keys):
    tag = "%d" % (time.time() * 1000 % 100000000)
    prefix = f"bh{tag}"
    state = os.path.join(TMP, f"state-{tag}")
    group = f"{prefix}.apply.b"
    cfg = config(os.path.join(TMP, f"cfg-{tag}.json"), prefix, state)
    whole = config(os.path.join(TMP, f"cfg-whole-{tag}.json"), prefix, state, horizon_s=0)
    rows = []
    t = now_ms()
    if events:
        _, info = fill(cfg, events, keys, t - 365 * DAY_MS, t - 2 * 3600000, group)
        print(f"  history: {events} events over {keys} keys, over the year before, {info}",
              flush=True)
    else:
        fill(cfg, 0, 1, t, t, group)

    # the member's store built once from the whole history (a member running for a year)
    p = Proc("prime", whole, "m1")
    p.wait_log(r"event=clocks_restored", 3600)
    secs = time.time() - p.t0
    time.sleep(6)  # its first checkpoint
    hwm = p.hwm_mb()
    p.stop()
    skeys, smb = store_size(state)
    rows.append(("store built from the whole history", secs, hwm, restored(p),
                 f"{skeys} keys, {smb:.1f} MB (peak anon {p.anon:.1f} MB, file {p.file:.1f} MB)"))

    def median(case, one):
        """case's row: the median time of RUNS rounds, the largest peak RSS."""
        got = [one() for _ in range(RUNS)]
        times = sorted(g[0] for g in got)
        rows.append((case, times[len(times) // 2], max(g[1] for g in got), got[-1][2],
                     "rounds: " + " ".join("%.2f" % g[0] for g in got)))

    def clean():
        key, _ = fill(cfg, 1, 0, now_ms(), now_ms())
        secs, hwm, p = first_apply(cfg, "m1", key)
        time.sleep(6)  # a checkpoint of what it applied
        p.stop()
        return secs, hwm, restored(p)

    def killed():
        p = Proc("m1", cfg, "m1")
        p.wait_log(r"event=clocks_restored", 120)
        time.sleep(6)
        p.stop(signal.SIGKILL)
        key, _ = fill(cfg, 1, 0, now_ms(), now_ms())
        secs, hwm, p = first_apply(cfg, "m1", key)
        p.stop()
        return secs, hwm, restored(p)

    def fresh():
        shutil.rmtree(state, ignore_errors=True)
        key, _ = fill(cfg, 1, 0, now_ms(), now_ms())
        secs, hwm, p = first_apply(cfg, "m1", key)
        p.stop()
        return secs, hwm, restored(p)

    median("restart after a clean stop", clean)
    median("restart after kill -9", killed)
    # a second member joins a running one: how long the first stops applying
    m1 = Proc("join-m1", cfg, "m1", "debug")
    m1.wait_log(r"event=clocks_restored", 120)
    stop_ev = threading.Event()
    th = threading.Thread(target=stream, args=(prefix, stop_ev, f"00000000-0000-4000-a{tag[-3:]}"))
    th.start()
    time.sleep(4)
    joined = time.time()
    m2 = Proc("join-m2", cfg, "m2", "debug")
    m2.wait_log(r"event=clocks_restored", 120)
    time.sleep(8)
    stop_ev.set()
    th.join()
    times = [x for x in settled_times(m1.text()) if x > joined - 2]
    gap = max((b - a for a, b in zip(times, times[1:])), default=float("nan"))
    m2_first = [x for x in settled_times(m2.text())]
    rows.append(("a second member joins: the first stops for", gap, m1.hwm_mb(), restored(m1), ""))
    rows.append(("  ... and the joining member (its own empty store) applies after",
                 (m2_first[0] - joined) if m2_first else float("nan"), m2.hwm_mb(), restored(m2), ""))
    m2.stop()
    m1.stop()
    time.sleep(20)  # m2's session times out: it holds its partitions until then (static member)
    median("a fresh member with no local state", fresh)

    return rows


print(f"# tests/bench/history.sh: {PARTS} partitions, history spread over the last year; "
      "start -> first apply is from the consumer's start until a create published just before is "
      f"readable on b (the median of {RUNS} rounds)", flush=True)
base = run(0, 0)
big = run(EVENTS, KEYS)
print(f"\n{'case':<64} {'history':>9} {'start->apply':>12} {'ratio':>6} {'peak RSS':>9} {'read back':>10}  store")
for (name, s0, r0, n0, st0), (_, s1, r1, n1, st1) in zip(base, big):
    ratio = s1 / s0 if s0 == s0 and s0 > 0 else float("nan")
    print(f"{name:<64} {0:>9} {s0:>10.2f} s {'':>6} {r0:>6.1f} MB {n0:>10}  {st0}")
    print(f"{'':<64} {EVENTS:>9} {s1:>10.2f} s {ratio:>5.2f}x {r1:>6.1f} MB {n1:>10}  {st1}")
