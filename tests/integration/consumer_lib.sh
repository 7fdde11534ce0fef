# shellcheck shell=bash
# Helpers of the dxsync-consumer integration tests (source after lib.sh): a configuration with a
# fresh topic prefix per test, consumers started and stopped by pid, events produced straight
# into Kafka with kcat, and a Python module (cev) that generates events, keeps the state the
# remote must end in, and compares it with what Directus b holds.

C_BIN=$DXSYNC_BIN/consumer/dxsync-consumer
C_RUNID="$(date +%s)$$"
C_PREFIX="ct${C_RUNID}"
export T_TMP
command -v kcat >/dev/null || { echo "kcat is needed by the consumer tests" >&2; exit 1; }

# c_config FILE [TOKEN [CONSUMER_JSON [EXTRA_COLLECTIONS_JSON]]]: route a→b, articles (title,
# rating: body is left out to prove filtering) and counters (name, value).
c_config() {
  local file=$1 token=${2:-$DXSYNC_B_SYNC_TOKEN} consumer=${3:-'{}'} extra=${4:-}
  cat >"$file" <<JSON
{ "kafka": {"brokers": "$DXSYNC_KAFKA_BROKERS", "topic_prefix": "$C_PREFIX", "partitions": 3},
  "instances": [
    {"name": "a", "url": "$DXSYNC_A_URL", "token": "$DXSYNC_A_SYNC_TOKEN", "database": "$DXSYNC_A_DB_URL"},
    {"name": "b", "url": "$DXSYNC_B_URL", "token": "$token"}],
  "routes": [{"from": "a", "to": "b", "collections": [
     {"collection": "articles", "fields": ["title", "rating"]},
     {"collection": "counters", "fields": ["name", "value"]}${extra:+, $extra}]}],
  "consumer": $consumer }
JSON
}

# c_start NAME CONFIG [ARGS...]: starts a consumer of remote b in the background (pid recorded
# in $T_TMP/NAME.pid, log in $T_TMP/NAME.log).
c_start() {
  local name=$1 cfg=$2; shift 2
  "$C_BIN" --config "$cfg" --remote b --log-level "${C_LOG_LEVEL:-info}" "$@" >>"$T_TMP/$name.log" 2>&1 &
  echo $! >"$T_TMP/$name.pid"
}

c_pid() { cat "$T_TMP/$1.pid"; }

# c_stop NAME: SIGTERM by pid; returns the exit code of the consumer (it is our child).
c_stop() {
  local pid rc=0
  pid=$(c_pid "$1")
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  return $rc
}

# c_kill NAME: SIGKILL by pid.
c_kill() {
  local pid
  pid=$(c_pid "$1")
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# c_stop_all: stops every consumer this test started that still runs (trap helper).
c_stop_all() {
  local f pid
  for f in "$T_TMP"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  done
  return 0
}

# wait_for TIMEOUT_S CMD...: polls CMD every half second until it succeeds.
wait_for() {
  local timeout=$1 start=$SECONDS; shift
  until "$@"; do
    (( SECONDS - start >= timeout )) && return 1
    sleep 0.5
  done
}

# c_log_has NAME REGEX: the consumer's log has a line matching REGEX.
c_log_has() { grep -Eq -- "$2" "$T_TMP/$1.log"; }

# c_produce_kv COLLECTION FILE: produces "key<TAB>value" lines to <prefix>.a.<collection>,
# partitioned like the dxsync producer (murmur2), in order.
c_produce_kv() {
  kcat -b "$DXSYNC_KAFKA_BROKERS" -P -t "$C_PREFIX.a.$1" -K $'\t' -X partitioner=murmur2_random \
    -X enable.idempotence=true -l "$2"
}

# c_produce_files COLLECTION KEY FILE...: each file one message with key KEY (raw bytes).
c_produce_files() {
  local coll=$1 key=$2; shift 2
  kcat -b "$DXSYNC_KAFKA_BROKERS" -P -t "$C_PREFIX.a.$coll" -k "$key" -X partitioner=murmur2_random "$@"
}

# c_topic_count TOPIC: messages in TOPIC (all partitions).
c_topic_count() {
  kcat -b "$DXSYNC_KAFKA_BROKERS" -C -t "$1" -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l
}

# c_topic_dump TOPIC FORMAT: every message of TOPIC in kcat's -f FORMAT.
c_topic_dump() {
  kcat -b "$DXSYNC_KAFKA_BROKERS" -C -t "$1" -o beginning -e -q -f "$2" 2>/dev/null
}

# c_wait_lag0 CONFIG TIMEOUT_S: status reports a total lag of 0.
c_lag0() { "$C_BIN" --config "$1" --remote b status 2>/dev/null | awk '$1 == "TOTAL" { exit !($2 == 0) }'; }

# The Python side: event generation, expected state, verification against Directus b.
cat >"$T_TMP/cev.py" <<'PY'
import json, os, sys, uuid, urllib.request

ROUTED = {"articles": ["title", "rating"], "counters": ["name", "value"]}
PK = {"articles": "id", "counters": "id"}
URL = os.environ["DXSYNC_B_URL"]
# More collections: CEV_EXTRA="collection:pk:field,field ..."
for spec in os.environ.get("CEV_EXTRA", "").split():
    _c, _pk, _f = spec.split(":")
    ROUTED[_c] = _f.split(",")
    PK[_c] = _pk
ADMIN = os.environ["DXSYNC_B_ADMIN_TOKEN"]


def request(method, path, body=None, token=ADMIN):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method, headers={
        "Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw


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
        data[PK[coll]] = key
        self.data[(coll, str(key))] = dict(data)
        self.emit(coll, action, key, data, dict(fields) if action == "create" else None)
        self.expect[(coll, str(key))] = {f: data.get(f) for f in ROUTED[coll]}

    def update(self, coll, key, **changes):
        data = dict(self.data.get((coll, str(key)), {PK[coll]: key}))
        data.update(changes)
        self.data[(coll, str(key))] = data
        self.emit(coll, "update", key, data, dict(changes))
        routed = {f: data.get(f) for f in changes if f in ROUTED[coll]}
        if not routed:
            return  # skipped by the consumer
        cur = self.expect.get((coll, str(key)))
        if cur is None:
            cur = {f: data.get(f) for f in ROUTED[coll]}  # created from data
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


def fetch(coll, keys, fields):
    out = {}
    pk = PK[coll]
    for i in range(0, len(keys), 200):
        chunk = keys[i:i + 200]
        typed = [int(k) for k in chunk] if coll == "counters" else chunk
        st, body = request("SEARCH", "/items/" + coll, {"query": {
            "filter": {pk: {"_in": typed}}, "fields": [pk] + fields, "limit": -1}})
        if st != 200:
            raise SystemExit("SEARCH %s: %s %s" % (coll, st, body))
        for row in body["data"]:
            out[str(row[pk])] = row
    return out


def verify(expect_path, null_fields=("body",)):
    """Prints each difference between the remote and the expected state; returns their count."""
    with open(expect_path) as f:
        expect = json.load(f)
    bad = 0
    by_coll = {}
    for coll, key, want in expect:
        by_coll.setdefault(coll, []).append((key, want))
    for coll, items in by_coll.items():
        extra = [f for f in null_fields if coll == "articles"]
        have = fetch(coll, [k for k, _ in items], ROUTED[coll] + extra)
        for key, want in items:
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
    n = verify(sys.argv[1])
    print("differences: %d" % n)
    sys.exit(1 if n else 0)
PY

# c_py: runs Python with cev importable (script on stdin).
c_py() { PYTHONPATH="$T_TMP" python3 - "$@"; }

# c_verify EXPECT_JSON: the remote holds the expected state (prints the differences).
c_verify() { PYTHONPATH="$T_TMP" python3 "$T_TMP/cev.py" "$1"; }
