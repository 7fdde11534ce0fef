"""The Python helpers of every test (tests/lib/dx.sh is their shell twin): Directus REST calls,
Kafka topics through kcat (an unreadable topic fails loudly, it is never an empty one), the
consumer group's lag from `dxsync-consumer status` (a number or None, never a guess), dxsync
processes started and stopped by pid, the random seed of a run, a tiny check/report API ending
in 'N passed, N failed', and for the consumer tests the events and expected state of Gen with
verify_b (what Directus b must hold).

Run as a script: `dx.py verify-b EXPECT_JSON` prints the differences between Directus b and the
state Gen.save_expect wrote, and exits 1 when there are any."""
import atexit, hashlib, json, os, random, signal, socket, struct, subprocess, sys, tempfile, time, urllib.error, urllib.request, uuid, zlib

ENV = os.environ
BIN = ENV.get("DXSYNC_BIN", "")
BROKERS = ENV.get("DXSYNC_KAFKA_BROKERS", "")
RUN = ENV.get("DXSYNC_RUN", "/tmp/dxsync-run")
# A shell test passes its own folder (T_TMP); a Python test gets one of its own.
TMP = ENV.get("T_TMP") or tempfile.mkdtemp(prefix="dxsync-py.")

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {what}", flush=True)
    else:
        failed += 1
        print(f"FAIL {what}", flush=True)
    return cond


def finish(name):
    stop_all()
    if failed:  # what the processes said about it
        for f in sorted(os.listdir(TMP)):
            if f.endswith(".log"):
                bad = [l for l in open(os.path.join(TMP, f), errors="replace") if " error " in l or " warn " in l]
                if bad:
                    print(f"--- {f} (warnings and errors, last 15)\n" + "".join(bad[-15:]), end="", flush=True)
    print(f"{name}: {passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


def seed(name):
    """Seeds random from DXSYNC_SEED, or from the clock, and prints the seed so that a failing
    run can be repeated with DXSYNC_SEED=<seed>."""
    s = int(ENV.get("DXSYNC_SEED") or time.time())
    random.seed(s)
    print(f"{name}: seed {s} (DXSYNC_SEED={s} repeats this run's random choices)", flush=True)
    return s


def inst(name):
    u = name.upper()
    return {"name": name, "url": ENV[f"DXSYNC_{u}_URL"], "db": ENV[f"DXSYNC_{u}_DB_URL"],
            "admin": ENV[f"DXSYNC_{u}_ADMIN_TOKEN"], "sync": ENV[f"DXSYNC_{u}_SYNC_TOKEN"],
            "sync_id": ENV[f"DXSYNC_{u}_SYNC_USER_ID"], "admin_id": ENV[f"DXSYNC_{u}_ADMIN_USER_ID"],
            "editor1": ENV.get(f"DXSYNC_{u}_EDITOR1_ID")}


def api(i, method, path, body=None, token=None, ok=(200, 204)):
    """A Directus REST call (as the admin unless token is given); raises unless the status is in ok."""
    req = urllib.request.Request(i["url"] + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + (token or i["admin"]),
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        text, status = e.read(), e.code
    if status not in ok:
        raise RuntimeError(f"{method} {i['url']}{path}: {status} {text[:300]!r}")
    return json.loads(text) if text else None


def items(i, coll, fields="*"):
    return {str(x["id"]): x for x in api(i, "GET", f"/items/{coll}?limit=-1&fields={fields}")["data"]}


# ---------------------------------------------------------------- files (directus_files)
def png(w, h):
    """A real PNG image (random pixels), so that Directus reads its size as for any upload."""
    raw = b"".join(b"\0" + bytes(random.getrandbits(8) for _ in range(w * 3)) for _ in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def blob(path, mb):
    """mb MiB of random bytes at path; returns their SHA-256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(mb):
            b = random.randbytes(1 << 20)
            h.update(b)
            f.write(b)
    return h.hexdigest()


def upload(i, path, typ, name, fid=None, folder=None, title=None, replace=None):
    """POST /files (or PATCH /files/<replace>) as i's admin, the way the app uploads."""
    args = ["curl", "-sS", "-X", "PATCH" if replace else "POST", i["url"] + ("/files/" + replace if replace else "/files"),
            "-H", "Authorization: Bearer " + i["admin"]]
    for k, v in (("id", fid), ("folder", folder), ("title", title)):
        if v:
            args += ["-F", f"{k}={v}"]
    args += ["-F", f"file=@{path};type={typ};filename={name}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return json.loads(out)["data"]


def asset_sha(i, fid):
    """SHA-256 of what i serves at /assets/<fid>, or None when it serves nothing."""
    req = urllib.request.Request(f"{i['url']}/assets/{fid}", headers={"Authorization": "Bearer " + i["admin"]})
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            while True:
                b = r.read(1 << 20)
                if not b:
                    break
                h.update(b)
    except urllib.error.HTTPError:
        return None
    except OSError:
        return None
    return h.hexdigest()


def psql(db, sql):
    return subprocess.run(["psql", db, "-XAtqc", sql], check=True, capture_output=True, text=True).stdout


def file_on(i, fid, fields="id,title,folder,filesize,type,filename_download"):
    got = api(i, "GET", f"/files/{fid}?fields={fields}", ok=(200, 403))
    return (got or {}).get("data")


# kcat's connection: the harness's plaintext Kafka; a test on another broker (SASL_SSL) sets
# dx.KCAT to its own arguments.
KCAT = ["kcat", "-b", BROKERS]


def topic(name):
    """Every message of topic name so far (kcat's JSON envelopes). Raises when kcat cannot read
    it (no such topic, broker unreachable, no end within 60 s): never [] in its place."""
    try:
        r = subprocess.run(KCAT + ["-C", "-t", name, "-o", "beginning", "-e", "-q", "-J"],
                           capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"cannot read topic {name}: kcat did not reach its end in 60 s") from None
    if r.returncode != 0:
        raise RuntimeError(f"cannot read topic {name} (kcat exit {r.returncode}): {r.stderr.strip()[:400]}")
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


def topic_exists(name):
    """True or False as Kafka says; raises when it cannot say."""
    r = subprocess.run(KCAT + ["-L", "-t", name, "-J", "-m", "10"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"cannot list topic {name}: {r.stderr.strip()[:400]}")
    t = json.loads(r.stdout)["topics"][0]
    if t.get("error") == "Broker: Unknown topic or partition":
        return False
    if t.get("error") or not t["partitions"]:
        raise RuntimeError(f"topic {name}: {t.get('error') or 'no partitions'}")
    return True


def group_lag(cfg, remote):
    """The total lag of remote's consumer group as `dxsync-consumer status` prints it, or None
    unless status exits 0 with exactly one TOTAL line holding a number."""
    r = subprocess.run([f"{BIN}/consumer/dxsync-consumer", "--config", cfg, "--remote", remote, "status"],
                       capture_output=True, text=True, timeout=120)
    totals = [l.split() for l in r.stdout.splitlines() if l.split()[:1] == ["TOTAL"]]
    if r.returncode != 0 or len(totals) != 1 or len(totals[0]) != 2 or not totals[0][1].isdigit():
        return None
    return int(totals[0][1])


procs = {}


def start(name, *args, env=None):
    """Starts a process (its output in TMP/<name>.log); env: variables added to the test's."""
    log = open(os.path.join(TMP, name + ".log"), "ab")
    procs[name] = subprocess.Popen(list(args), stdout=log, stderr=log, env=None if env is None else {**ENV, **env})
    return procs[name]


def stop(name, sig=signal.SIGTERM):
    p = procs.pop(name, None)
    if not p:
        return None
    p.send_signal(sig)
    try:
        return p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


def stop_all():
    for name in list(procs):
        stop(name)


atexit.register(stop_all)  # also when a test dies halfway: never leave processes behind


def log_of(name):
    try:
        return open(os.path.join(TMP, name + ".log"), errors="replace").read()
    except FileNotFoundError:
        return ""


def wait_for(pred, timeout, step=0.5):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def fresh_slot(i):
    psql(i["db"], f"select pg_drop_replication_slot('dxsync_{i['name']}') from pg_replication_slots "
                  f"where slot_name='dxsync_{i['name']}'")


def uid():
    return str(uuid.uuid4())


# ---------------------------------------------------------------- consumer tests (remote b)
# The routes of dx.sh's c_config; more collections with CEV_EXTRA="collection:pk:field,field ...".
CONSUMER_ROUTED = {"articles": ["title", "rating"], "counters": ["name", "value"]}
CONSUMER_PK = {"articles": "id", "counters": "id"}
for _spec in ENV.get("CEV_EXTRA", "").split():
    _c, _pk, _f = _spec.split(":")
    CONSUMER_ROUTED[_c] = _f.split(",")
    CONSUMER_PK[_c] = _pk


class Gen:
    """Events as the producer would publish them, and the state the remote must end in."""

    def __init__(self, run, first_activity=1):
        self.run = run
        self.n = first_activity
        self.msgs = {}     # collection -> [(key text, value)]
        self.expect = {}   # (collection, key text) -> routed fields, or None (absent)
        self.data = {}     # (collection, key text) -> the item at the source

    def uuid(self, name):
        return str(uuid.uuid5(uuid.NAMESPACE_URL, "%s/%s" % (self.run, name)))

    def emit(self, coll, action, key, data, delta):
        self.n += 1
        ev = {"version": 1, "event_id": "a:%d" % self.n, "source": "a", "collection": coll,
              "action": action, "key": key, "data": data, "delta": delta, "user": None,
              "timestamp": "2026-01-01T00:00:00.000Z", "activity_id": self.n,
              "revision_id": self.n, "lsn": None}
        self.msgs.setdefault(coll, []).append((str(key), json.dumps(ev)))

    def create(self, coll, key, action="create", **fields):
        data = dict(fields)
        data[CONSUMER_PK[coll]] = key
        self.data[(coll, str(key))] = dict(data)
        self.emit(coll, action, key, data, dict(fields) if action == "create" else None)
        self.expect[(coll, str(key))] = {f: data.get(f) for f in CONSUMER_ROUTED[coll]}

    def update(self, coll, key, **changes):
        data = dict(self.data.get((coll, str(key)), {CONSUMER_PK[coll]: key}))
        data.update(changes)
        self.data[(coll, str(key))] = data
        self.emit(coll, "update", key, data, dict(changes))
        routed = {f: data.get(f) for f in changes if f in CONSUMER_ROUTED[coll]}
        if not routed:
            return  # skipped by the consumer
        cur = self.expect.get((coll, str(key)))
        if cur is None:
            cur = {f: data.get(f) for f in CONSUMER_ROUTED[coll]}  # created from data
        else:
            cur = dict(cur, **routed)
        self.expect[(coll, str(key))] = cur

    def delete(self, coll, key):
        self.emit(coll, "delete", key, None, None)
        self.expect[(coll, str(key))] = None
        self.data.pop((coll, str(key)), None)

    def write(self, folder):
        """Writes <folder>/<collection>.kv for c_produce_kv; returns the collections."""
        colls = sorted(self.msgs)
        for coll, lines in self.msgs.items():
            with open(os.path.join(folder, coll + ".kv"), "w") as f:
                for k, v in lines:
                    f.write(k + "\t" + v + "\n")
        self.msgs = {}
        return colls

    def save_expect(self, path):
        with open(path, "w") as f:
            json.dump([[c, k, v] for (c, k), v in self.expect.items()], f)


def fetch_items(i, coll, keys, fields, pk="id"):
    """The items of coll with these keys (texts; digits are integer keys) on instance i (as its
    admin), by key text, with pk and fields."""
    out, keys = {}, sorted(keys)
    for n in range(0, len(keys), 200):
        chunk = [int(k) if k.isdigit() else k for k in keys[n:n + 200]]
        body = api(i, "SEARCH", "/items/" + coll, {"query": {
            "filter": {pk: {"_in": chunk}}, "fields": [pk] + fields, "limit": -1}}, ok=(200,))
        for row in body["data"]:
            out[str(row[pk])] = row
    return out


def fetch_b(coll, keys, fields):
    """The items of coll with these keys on Directus b (as its admin), by key text."""
    return fetch_items(inst("b"), coll, keys, fields, CONSUMER_PK[coll])


def free_port():
    """A loopback port free right now (for a --metrics-addr)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def verify_b(expect_path, null_fields=("body",)):
    """Prints each difference between Directus b and the expected state; returns their count."""
    with open(expect_path) as f:
        expect = json.load(f)
    bad = 0
    by_coll = {}
    for coll, key, want in expect:
        by_coll.setdefault(coll, []).append((key, want))
    for coll, entries in by_coll.items():
        extra = [f for f in null_fields if coll == "articles"]
        have = fetch_b(coll, [k for k, _ in entries], CONSUMER_ROUTED[coll] + extra)
        for key, want in entries:
            got = have.get(key)
            if want is None:
                if got is not None:
                    bad += 1
                    print("%s/%s: should be absent, is %s" % (coll, key, got))
                continue
            if got is None:
                bad += 1
                print("%s/%s: missing, want %s" % (coll, key, want))
                continue
            for f, v in want.items():
                if got.get(f) != v:
                    bad += 1
                    print("%s/%s: %s is %r, want %r" % (coll, key, f, got.get(f), v))
                    break
            for f in extra:
                if got.get(f) is not None:
                    bad += 1
                    print("%s/%s: unrouted field %s was written: %r" % (coll, key, f, got.get(f)))
    return bad


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "verify-b":
        sys.exit("usage: dx.py verify-b EXPECT_JSON")
    n = verify_b(sys.argv[2])
    print("differences: %d" % n)
    sys.exit(1 if n else 0)
