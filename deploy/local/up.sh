#!/usr/bin/env bash
# The dxsync demo, one command: installs what is missing, builds, and starts PostgreSQL, a
# single-node Kafka, two Directus instances (a, b) with an `articles` collection and their sync
# users, a producer for each, a consumer for each direction and the notifier. Stays in the
# foreground; Ctrl-C stops everything it started.
#   deploy/local/up.sh
# Environment: DXSYNC_DEMO_RUN (state, default /tmp/dxsync-demo), DXSYNC_DEMO_PORT_A/_B
# (Directus ports, default 8055 and 8056).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export DXSYNC_RUN=${DXSYNC_DEMO_RUN:-/tmp/dxsync-demo}
export DXSYNC_PG_PORT=${DXSYNC_DEMO_PG_PORT:-25440}
export DXSYNC_KAFKA_PORT=${DXSYNC_DEMO_KAFKA_PORT:-29192}
export DXSYNC_KAFKA_CONTROLLER_PORT=${DXSYNC_DEMO_KAFKA_CONTROLLER_PORT:-29193}
PORT_A=${DXSYNC_DEMO_PORT_A:-8055}
PORT_B=${DXSYNC_DEMO_PORT_B:-8056}
. "$ROOT/tests/lib/dx.sh"
H=$ROOT/tests/harness
cd "$ROOT"

say() { printf '\033[1m%s\033[0m\n' "$*" >&2; }
pids=()
stopping=0
stop_all() {
  [ "$stopping" = 1 ] && return
  stopping=1
  say "stopping dxsync..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  say "stopping Directus, Kafka and PostgreSQL..."
  "$H/directus.sh" stop a || true
  "$H/directus.sh" stop b || true
  "$H/kafka.sh" stop || true
  "$H/postgres.sh" stop || true
  say "stopped; state kept in $DXSYNC_RUN (delete it for a fresh start)"
}
trap 'stop_all; exit 0' INT TERM
trap 'stop_all' EXIT

say "installing what is missing (first run: a few minutes)..."
apt_need build-essential cmake ninja-build pkg-config curl ca-certificates python3 \
  librdkafka-dev libpq-dev libcurl4-openssl-dev libcjson-dev libmicrohttpd-dev libcmocka-dev \
  liblmdb-dev
"$H/services.sh" install

say "building dxsync..."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

say "starting PostgreSQL, Kafka and Directus a (:$PORT_A) and b (:$PORT_B)..."
mkdir -p "$DXSYNC_RUN"
"$H/postgres.sh" start >/dev/null
"$H/kafka.sh" start >/dev/null
PG=postgresql://postgres@127.0.0.1:$DXSYNC_PG_PORT
"$H/directus.sh" start a "$PORT_A" "$PG/directus_a" >/dev/null
"$H/directus.sh" start b "$PORT_B" "$PG/directus_b" >/dev/null
"$H/directus.sh" prepare a >/dev/null
"$H/directus.sh" prepare b >/dev/null
val() { sed -n "s/^$2=//p" "$DXSYNC_RUN/directus-$1.env"; }

export DXSYNC_TOKEN_A DXSYNC_TOKEN_B
DXSYNC_TOKEN_A=$(val a SYNC_TOKEN)
DXSYNC_TOKEN_B=$(val b SYNC_TOKEN)
CONFIG=$DXSYNC_RUN/dxsync.json
cat >"$CONFIG" <<JSON
{
  "kafka": { "brokers": "127.0.0.1:$DXSYNC_KAFKA_PORT", "topic_prefix": "dxsync", "partitions": 3 },
  "instances": [
    { "name": "a", "url": "$(val a URL)", "token": "\${DXSYNC_TOKEN_A}", "database": "$PG/directus_a" },
    { "name": "b", "url": "$(val b URL)", "token": "\${DXSYNC_TOKEN_B}", "database": "$PG/directus_b" }
  ],
  "routes": [
    { "from": "a", "to": "b", "collections": [ { "collection": "articles", "fields": ["title", "body", "rating"] } ],
      "notify": ["$(val a ADMIN_USER_ID)"] },
    { "from": "b", "to": "a", "collections": [ { "collection": "articles", "fields": ["title", "body", "rating"] } ],
      "notify": ["$(val b ADMIN_USER_ID)"] }
  ]
}
JSON

B=$ROOT/build
# Each dxsync process in a session of its own: Ctrl-C reaches this script only, which then
# sends each exactly one SIGTERM (a second signal would stop it at once, not cleanly).
run() { local name=$1; shift; setsid "$@" --config "$CONFIG" >>"$DXSYNC_RUN/$name.log" 2>&1 & pids+=($!); }
say "starting dxsync (logs in $DXSYNC_RUN/*.log)..."
run producer-a "$B/producer/dxsync-producer" --instance a --metrics-addr 127.0.0.1:9464
run producer-b "$B/producer/dxsync-producer" --instance b --metrics-addr 127.0.0.1:9465
run consumer-a "$B/consumer/dxsync-consumer" --remote a --metrics-addr 127.0.0.1:9466
run consumer-b "$B/consumer/dxsync-consumer" --remote b --metrics-addr 127.0.0.1:9467
run notifier "$B/consumer/dxsync-notifier" --metrics-addr 127.0.0.1:9468
sleep 2
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { tail -n 20 "$DXSYNC_RUN"/*.log >&2; die "a dxsync process did not start"; }; done

cat <<MSG

  dxsync demo is running.

  Directus a   $(val a URL)    login $(val a ADMIN_EMAIL) / $(val a ADMIN_PASSWORD)
  Directus b   $(val b URL)    login $(val b ADMIN_EMAIL) / $(val b ADMIN_PASSWORD)

  Create or edit an item in Content > articles on a: it appears on b within a second,
  and the other way round. Sync errors arrive as notifications for the admin of the source.

  config       $CONFIG
  logs         $DXSYNC_RUN/{producer,consumer}-{a,b}.log, notifier.log
  status pages http://127.0.0.1:9464/  producer a     http://127.0.0.1:9465/  producer b
               http://127.0.0.1:9466/  consumer a     http://127.0.0.1:9467/  consumer b
               http://127.0.0.1:9468/  notifier       (JSON: /status.json)
  metrics      http://127.0.0.1:9464/metrics (producer a) ... :9468 (notifier)
  status       $B/consumer/dxsync-consumer --config $CONFIG --remote b status

  Stop with Ctrl-C.
MSG
while true; do
  for p in "${pids[@]}"; do
    if [ "$stopping" = 0 ] && ! kill -0 "$p" 2>/dev/null; then
      say "a dxsync process exited; see $DXSYNC_RUN/*.log"; exit 1
    fi
  done
  sleep 2
done
