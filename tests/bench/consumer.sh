#!/usr/bin/env bash
# Consumer benchmark (not a test), in one run against Directus b of tests/harness/services.sh:
#   ceiling:  4 concurrent writers each POSTing batches of 100 articles straight to Directus as
#             the sync user, reading back only the key like the consumer (?fields=id): the
#             remote's ingest rate, which no sync can beat; then the same writers PATCHing
#             those items in batches of 100 (Directus updates more slowly than it creates)
#   consumer: dxsync-consumer applying N creates, then N updates of the same items, produced
#             into Kafka while it runs (from the first produce to the last applied event)
#   single:   one request per item, in sequence, on a keep-alive connection (what the hook
#             extension did)
# Prints items/s of each, the ratio consumer/ceiling (target >= 0.9) and the consumer's peak
# RSS (target < 32 MB).
#   tests/bench/consumer.sh [N]        (default 10000)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/dx.sh"
load_services
N=${1:-10000}
SINGLE=${BENCH_SINGLE:-500}
BIN=${DXSYNC_BIN:-$ROOT/build}
TMP=$(mktemp -d /tmp/dxsync-bench-consumer.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
PREFIX=benchc$(date +%s)
METRICS_PORT=${BENCH_METRICS_PORT:-19391}
now() { date +%s.%N; }
rate() { python3 -c "import sys; n, a, b = sys.argv[1:]; print('%.0f' % (float(n) / (float(b) - float(a))))" "$@"; }

# ---- the bodies: 4 writers x N/400 batches x 100 items, and the consumer's events
python3 - "$TMP" "$N" "$SINGLE" "$PREFIX" <<'PY'
import json, os, sys, uuid
tmp, n, single, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
body = "lorem ipsum dolor sit amet " * 8
def item(k, i):
    return {"id": k, "title": "benchmark item %d" % i, "rating": i % 1000}
ks = [str(uuid.uuid4()) for _ in range(n)]
for w in range(4):
    os.makedirs("%s/w%d" % (tmp, w))
per = n // 4
for w in range(4):
    for b in range(per // 100):
        chunk = ks[w * per + b * 100: w * per + (b + 1) * 100]
        with open("%s/w%d/%04d.json" % (tmp, w, b), "w") as f:
            json.dump([item(k, i) for i, k in enumerate(chunk)], f)
        with open("%s/w%d/%04d.patch" % (tmp, w, b), "w") as f:
            json.dump([item(k, i + 1) for i, k in enumerate(chunk)], f)
with open(tmp + "/single.json", "w") as f:
    json.dump([item(str(uuid.uuid4()), i) for i in range(single)], f)
def ev(a, action, k, data, delta):
    return {"version": 1, "event_id": "a:%d" % a, "source": "a", "collection": "articles",
            "action": action, "key": k, "data": data, "delta": delta, "user": None,
            "timestamp": "2026-01-01T00:00:00.000Z", "activity_id": a, "revision_id": a, "lsn": None}
keys = [str(uuid.uuid4()) for _ in range(n)]
with open(tmp + "/creates.kv", "w") as f:
    for i, k in enumerate(keys):
        d = {"id": k, "title": "created %d" % i, "body": body, "rating": i % 1000}
        f.write(k + "\t" + json.dumps(ev(i + 1, "create", k, d, {x: d[x] for x in d if x != "id"})) + "\n")
with open(tmp + "/updates.kv", "w") as f:
    for i, k in enumerate(keys):
        d = {"id": k, "title": "updated %d" % i, "body": body, "rating": (i + 1) % 1000}
        f.write(k + "\t" + json.dumps(ev(n + i + 1, "update", k, d, {"title": d["title"], "rating": d["rating"]})) + "\n")
PY

# ---- ceiling: POST batches, then PATCH batches of the same items
writers() {
  local method=$1 ext=$2 pids=()
  for w in 0 1 2 3; do
    (
      for f in "$TMP/w$w"/*."$ext"; do
        code=$(curl -sS -o /dev/null -w '%{http_code}' -X "$method" "$DXSYNC_B_URL/items/articles?fields=id" \
          -H "Authorization: Bearer $DXSYNC_B_SYNC_TOKEN" -H 'Content-Type: application/json' \
          --data-binary "@$f" --max-time 120)
        [ "$code" = 200 ] || echo "writer $w: $method HTTP $code" >&2
      done
    ) &
    pids+=($!)
  done
  wait "${pids[@]}" # not the consumer, which runs in the background too
}
# (each ceiling is measured right before the consumer's matching phase: Directus's speed drifts
# as its tables grow and PostgreSQL vacuums)

# ---- consumer
cat >"$TMP/cfg.json" <<JSON
{ "kafka": {"brokers": "$DXSYNC_KAFKA_BROKERS", "topic_prefix": "$PREFIX", "partitions": 6},
  "instances": [
    {"name": "a", "url": "$DXSYNC_A_URL", "token": "$DXSYNC_A_SYNC_TOKEN", "database": "$DXSYNC_A_DB_URL"},
    {"name": "b", "url": "$DXSYNC_B_URL", "token": "$DXSYNC_B_SYNC_TOKEN"}],
  "routes": [{"from": "a", "to": "b", "collections": [{"collection": "articles", "fields": ["title", "rating"]}]}] }
JSON
"$BIN/consumer/dxsync-consumer" --config "$TMP/cfg.json" --remote b --metrics-addr "$METRICS_PORT" >"$TMP/consumer.log" 2>&1 &
PID=$!
wait_for 30 grep -q 'partition_assigned.*partition=5' "$TMP/consumer.log" || die "the consumer was not assigned its partitions"
applied() {
  curl -s "http://127.0.0.1:$METRICS_PORT/metrics" |
    awk -v a="$1" '$1 == "dxsync_consumer_events_applied_total{remote=\"b\",action=\"" a "\"}" { print $2 }'
}
wait_applied() {
  local action=$1 want=$2 start=$SECONDS
  while :; do
    local got
    got=$(applied "$action")
    [ "${got%.*}" -ge "$want" ] 2>/dev/null && return 0
    (( SECONDS - start > 600 )) && { echo "timed out: $action $got/$want" >&2; tail "$TMP/consumer.log" >&2; exit 1; }
    sleep 0.1
  done
}
produce() {
  kcat -b "$DXSYNC_KAFKA_BROKERS" -P -t "$PREFIX.a.articles" -K $'\t' -X partitioner=murmur2_random \
    -X enable.idempotence=true -l "$1"
}
echo "ceiling: 4 writers x $((N / 400)) POSTs of 100..." >&2
t0=$(now); writers POST json; t1=$(now)
CEIL=$(rate "$N" "$t0" "$t1")
echo "consumer: $N creates..." >&2
t2=$(now); produce "$TMP/creates.kv"; wait_applied create "$N"; t3=$(now)
echo "ceiling: 4 writers x $((N / 400)) PATCHes of 100..." >&2
t0=$(now); writers PATCH patch; t1=$(now)
CEIL_PATCH=$(rate "$N" "$t0" "$t1")
echo "consumer: $N updates..." >&2
t4=$(now); produce "$TMP/updates.kv"; wait_applied update "$N"; t5=$(now)
RSS_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$PID/status")
CPU_S=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$PID/stat")
BATCHES=$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk '/^dxsync_consumer_batch_size_count/ { print $2 }')
REQS=$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk '/^dxsync_consumer_requests_total/ { s += $2 } END { print s }')
kill -TERM "$PID"; wait "$PID" || true; PID=
CREATES=$(rate "$N" "$t2" "$t3")
UPDATES=$(rate "$N" "$t4" "$t5")
BOTH=$(rate "$((2 * N))" 0 "$(python3 -c "print($t3 - $t2 + $t5 - $t4)")")

# ---- one request per item
echo "single: $SINGLE POSTs of one item..." >&2
SINGLE_RATE=$(python3 - "$TMP/single.json" <<'PY'
import http.client, json, os, sys, time, urllib.parse
items = json.load(open(sys.argv[1]))
u = urllib.parse.urlsplit(os.environ["DXSYNC_B_URL"])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
h = {"Authorization": "Bearer " + os.environ["DXSYNC_B_SYNC_TOKEN"], "Content-Type": "application/json"}
t = time.time()
for it in items:
    c.request("POST", "/items/articles", json.dumps(it), h)
    r = c.getresponse(); r.read()
    if r.status != 200:
        sys.exit("single POST: HTTP %d" % r.status)
print("%.0f" % (len(items) / (time.time() - t)))
PY
)

ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$@"; }
printf '\n%-44s %10s\n' "measure" "items/s"
printf '%-44s %10s\n' "ceiling (4 writers, POST batches of 100)" "$CEIL"
printf '%-44s %10s\n' "update ceiling (4 writers, PATCH batches)" "$CEIL_PATCH"
printf '%-44s %10s\n' "consumer, $N creates" "$CREATES"
printf '%-44s %10s\n' "consumer, $N updates" "$UPDATES"
printf '%-44s %10s\n' "consumer, creates and updates together" "$BOTH"
printf '%-44s %10s\n' "one request per item (hook extension)" "$SINGLE_RATE"
echo
echo "ratio consumer/ceiling: creates $(ratio "$CREATES" "$CEIL"), updates $(ratio "$UPDATES" "$CEIL"), together $(ratio "$BOTH" "$CEIL") (target >= 0.9)"
echo "ratio consumer updates/update ceiling: $(ratio "$UPDATES" "$CEIL_PATCH")"
echo "consumer vs one request per item: $(ratio "$BOTH" "$SINGLE_RATE")x"
echo "consumer batches: $BATCHES, requests: $REQS for $((2 * N)) events"
echo "consumer peak RSS: $((RSS_KB / 1024)) MB ($RSS_KB kB; target < 32 MB); CPU: $CPU_S s for $((2 * N)) events"
