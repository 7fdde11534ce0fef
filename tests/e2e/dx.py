"""Helpers for the end-to-end tests: Directus REST calls, Kafka topics through kcat, dxsync
processes started and stopped by pid, and a tiny check/report API ending in 'N passed, N failed'."""
import atexit, json, os, signal, subprocess, sys, tempfile, time, urllib.error, urllib.request, uuid

ENV = os.environ
BIN = ENV["DXSYNC_BIN"]
BROKERS = ENV["DXSYNC_KAFKA_BROKERS"]
RUN = ENV.get("DXSYNC_RUN", "/tmp/dxsync-run")
TMP = tempfile.mkdtemp(prefix="dxsync-e2e.")

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


def inst(name):
    u = name.upper()
    return {"name": name, "url": ENV[f"DXSYNC_{u}_URL"], "db": ENV[f"DXSYNC_{u}_DB_URL"],
            "admin": ENV[f"DXSYNC_{u}_ADMIN_TOKEN"], "sync": ENV[f"DXSYNC_{u}_SYNC_TOKEN"],
            "sync_id": ENV[f"DXSYNC_{u}_SYNC_USER_ID"], "admin_id": ENV[f"DXSYNC_{u}_ADMIN_USER_ID"],
            "editor1": ENV.get(f"DXSYNC_{u}_EDITOR1_ID")}


def api(i, method, path, body=None, token=None, ok=(200, 204)):
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


def psql(db, sql):
    return subprocess.run(["psql", db, "-XAtqc", sql], check=True, capture_output=True, text=True).stdout


def topic(name):
    out = subprocess.run(["kcat", "-b", BROKERS, "-C", "-t", name, "-e", "-q", "-J"],
                         capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


procs = {}


def start(name, *args):
    log = open(os.path.join(TMP, name + ".log"), "ab")
    procs[name] = subprocess.Popen(list(args), stdout=log, stderr=log)
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
