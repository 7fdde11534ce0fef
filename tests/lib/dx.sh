# shellcheck shell=bash
# The shell helpers of every test and harness script (tests/lib/dx.py is their Python twin).
# Sourcing only sets defaults and defines functions; a test script then calls t_begin.
#
#   harness   log, die, wait_for, wait_port, wait_http, start_bg, stop_pidfile, apt_need
#   tests     t_begin, at_exit, pass, fail, check, expect_exit, expect_output, finish, api,
#             json, psql_q, start_proc, stop_proc, proc_log_has
#   Kafka     topic_read, topic_count, topic_exists, group_lag, lag0 (each fails loudly when
#             Kafka cannot tell: an unreadable topic is never an empty one)
#   consumer  c_config, c_start, c_stop, c_kill, c_produce_kv, c_produce_files, c_produce_marks,
#             c_lag0, c_py, c_verify (events produced straight into Kafka, checked on b)
#
# Layout (every path can be overridden from the environment):
#   DXSYNC_CACHE  downloads shared by every run: Kafka jars, the Directus install
#   DXSYNC_RUN    state of one run: data folders, logs, pid files, services.env
# Ports are fixed per run and bind to 127.0.0.1 only. They stay below 32768: Linux hands out
# 32768-60999 to outgoing connections, and a server there can find its port taken.

: "${DXSYNC_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/dxsync}"
: "${DXSYNC_RUN:=/tmp/dxsync-run}"
: "${DXSYNC_PG_PORT:=25432}"
: "${DXSYNC_KAFKA_PORT:=29092}"
: "${DXSYNC_KAFKA_CONTROLLER_PORT:=29093}"
: "${DXSYNC_KAFKA_VERSION:=3.9.1}"
: "${DXSYNC_DIRECTUS_VERSION:=12.4.0}"
: "${DXSYNC_NODE_VERSION:=22.23.3}"
# The consumers' clock stores (consumer.state_dir's default is $XDG_STATE_HOME/dxsync): in the
# run's folder, wiped with it.
export XDG_STATE_HOME="$DXSYNC_RUN/state"
export DXSYNC_CACHE DXSYNC_RUN DXSYNC_PG_PORT DXSYNC_KAFKA_PORT DXSYNC_KAFKA_CONTROLLER_PORT \
       DXSYNC_KAFKA_VERSION DXSYNC_DIRECTUS_VERSION DXSYNC_NODE_VERSION

DX_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HARNESS_DIR=$(cd "$DX_LIB_DIR/../harness" && pwd)
: "${DXSYNC_SOURCE:=$(cd "$DX_LIB_DIR/../.." && pwd)}"
: "${DXSYNC_VECTORS:=$DXSYNC_SOURCE/tests/vectors}"
export DXSYNC_SOURCE DXSYNC_VECTORS

# ------------------------------------------------------------------------------ harness

log() { printf '%s harness %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_for SECONDS CMD...: runs CMD every 0.3 s until it succeeds (0) or the time is up (1).
wait_for() {
  local t=$1 start=$SECONDS; shift
  until "$@"; do
    (( SECONDS - start >= t )) && return 1
    sleep 0.3
  done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
http_ok() { curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; }
# wait_port PORT TIMEOUT_S: until something accepts TCP connections on 127.0.0.1:PORT.
wait_port() { wait_for "${2:-60}" port_open "$1"; }
# wait_http URL TIMEOUT_S: until URL answers 2xx.
wait_http() { wait_for "${2:-60}" http_ok "$1"; }

# start_bg NAME LOGFILE CMD...: start CMD in the background, record its pid in $DXSYNC_RUN/NAME.pid.
start_bg() {
  local name=$1 logfile=$2; shift 2
  mkdir -p "$DXSYNC_RUN"
  "$@" >"$logfile" 2>&1 &
  echo $! >"$DXSYNC_RUN/$name.pid"
}

# running PID: the process exists and has not exited (a zombie child has exited).
running() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  [ "${s%% *}" != Z ]
}

# stop_pidfile PIDFILE [TIMEOUT_S]: SIGTERM the recorded pid, SIGKILL after the timeout.
# Never by name: only the process this harness started.
stop_pidfile() {
  local pidfile=$1 timeout=${2:-20} pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && running "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    wait_for "$timeout" eval "! running $pid" || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# apt_need PKG...: install the Debian packages that are missing (runs apt-get update once per run).
apt_need() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  if [ ! -f "$DXSYNC_RUN/.apt-updated" ]; then
    mkdir -p "$DXSYNC_RUN"
    $sudo apt-get update -q >/dev/null && touch "$DXSYNC_RUN/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# ------------------------------------------------------------------------------ test scripts

# load_services: the addresses and tokens of the running services ($DXSYNC_RUN/services.env,
# written by tests/harness/services.sh up) unless they are in the environment already; exits
# when the services are not up.
load_services() {
  if [ -z "${DXSYNC_KAFKA_BROKERS:-}" ] && [ -f "$DXSYNC_RUN/services.env" ]; then
    set -a; . "$DXSYNC_RUN/services.env"; set +a
  fi
  [ -n "${DXSYNC_KAFKA_BROKERS:-}" ] || { echo "services are not up: run tests/run.sh" >&2; exit 1; }
  # DXSYNC_STACK=NAME: the instances and PostgreSQL of stack NAME (services.sh stack) in place
  # of up's, under the same variable names; up's instances are forgotten
  if [ -n "${DXSYNC_STACK:-}" ] && [ "${DXSYNC_STACK_NAME:-}" != "$DXSYNC_STACK" ]; then
    local f="$DXSYNC_RUN/stack-$DXSYNC_STACK.env" n v
    [ -f "$f" ] || { echo "stack $DXSYNC_STACK is not up (no $f): tests/harness/services.sh stack" >&2; exit 1; }
    for n in ${DXSYNC_INSTANCES:-}; do
      for v in $(compgen -v "DXSYNC_$(echo "$n" | tr '[:lower:]' '[:upper:]')_"); do unset "$v"; done
    done
    set -a; . "$f"; set +a
  fi
}

# t_begin [--no-services]: makes the sourcing script a test: strict mode, the services'
# environment ($DXSYNC_RUN/services.env, unless already in the environment), a temporary folder
# T_TMP, and an EXIT trap that stops every process started with start_proc, runs the at_exit
# commands and removes T_TMP. --no-services: a test that needs none of them.
t_begin() {
  set -euo pipefail
  [ "${1:-}" = --no-services ] || load_services
  T_FAILED=0
  T_COUNT=0
  T_NAME=$(basename "$0" .sh)
  T_TMP=$(mktemp -d "/tmp/dxsync-$T_NAME.XXXXXX")
  T_AT_EXIT=()
  export T_TMP
  trap t_end EXIT
}

# at_exit CMD...: run CMD (as one shell line) when the test exits, after its processes stopped.
at_exit() { T_AT_EXIT+=("$*"); }

t_end() {
  local c
  stop_all_procs
  for c in "${T_AT_EXIT[@]}"; do eval "$c" || true; done
  rm -rf "$T_TMP"
}

pass() { T_COUNT=$((T_COUNT + 1)); printf 'ok   %s\n' "$*"; }
fail() { T_COUNT=$((T_COUNT + 1)); T_FAILED=$((T_FAILED + 1)); printf 'FAIL %s\n' "$*"; }

# check DESCRIPTION CMD...: passes when CMD succeeds.
check() { local d=$1; shift; if "$@"; then pass "$d"; else fail "$d"; fi; }

# expect_exit CODE DESCRIPTION CMD...: runs CMD, output in $T_TMP/out, and checks its exit code.
expect_exit() {
  local want=$1 d=$2 rc=0; shift 2
  "$@" >"$T_TMP/out" 2>&1 || rc=$?
  if [ "$rc" = "$want" ]; then pass "$d (exit $rc)"; else fail "$d: exit $rc, want $want"; sed 's/^/     /' "$T_TMP/out" | head -20; fi
}

# expect_output PATTERN DESCRIPTION: the last expect_exit output matches the extended regex.
expect_output() {
  if grep -Eq -- "$1" "$T_TMP/out"; then pass "$2"; else fail "$2: no /$1/ in:"; sed 's/^/     /' "$T_TMP/out" | head -20; fi
}

# finish: the summary line; the script's exit status (0 when nothing failed).
finish() {
  printf '%s: %d passed, %d failed\n' "$T_NAME" $((T_COUNT - T_FAILED)) "$T_FAILED"
  [ "$T_FAILED" -eq 0 ]
}

# api INSTANCE TOKEN METHOD PATH [JSON]: Directus REST call as TOKEN (empty: none); prints the
# body, sets API_STATUS and API_BODY, and fails on no answer or a status >= 400.
api() {
  local inst=$1 token=$2 method=$3 path=$4 body=${5:-}
  local url_var
  url_var="DXSYNC_$(echo "$inst" | tr '[:lower:]' '[:upper:]')_URL"
  local args=(-sS -X "$method" -H 'Content-Type: application/json' --max-time 30)
  [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
  [ -n "$body" ] && args+=(--data-binary "$body")
  API_STATUS=000 API_BODY=
  curl "${args[@]}" -w '\n%{http_code}' "${!url_var}$path" >"$T_TMP/api" || return 1
  API_STATUS=$(tail -n 1 "$T_TMP/api")
  API_BODY=$(sed '$d' "$T_TMP/api")
  printf '%s' "$API_BODY"
  [ "$API_STATUS" -lt 400 ]
}

# json EXPR: evaluates a Python expression on the JSON read from stdin (bound to j).
json() { python3 -c "import json,sys; j=json.load(sys.stdin); v=($1); print(v if not isinstance(v,(dict,list)) else json.dumps(v))"; }

psql_q() { psql "$1" -XAtqc "$2"; }

# start_proc NAME CMD...: starts CMD in the background, log in $T_TMP/NAME.log (appended), pid
# in $T_TMP/NAME.pid. stop_proc NAME [SIGNAL] [TIMEOUT_S]: sends SIGNAL (TERM), SIGKILL after
# TIMEOUT_S (30), and sets STOP_RC to the process's exit status (128+n for signal n).
start_proc() {
  local name=$1; shift
  "$@" >>"$T_TMP/$name.log" 2>&1 &
  echo $! >"$T_TMP/$name.pid"
}
proc_pid() { cat "$T_TMP/$1.pid"; }
stop_proc() {
  local pid
  STOP_RC=0
  pid=$(cat "$T_TMP/$1.pid" 2>/dev/null) || return 0
  rm -f "$T_TMP/$1.pid"
  kill "-${2:-TERM}" "$pid" 2>/dev/null || true
  wait_for "${3:-30}" eval "! running $pid" || kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || STOP_RC=$?
}
# stop_all_procs: stop_proc of every process still recorded, SIGKILL after $T_STOP_GRACE s (30).
stop_all_procs() {
  local f
  for f in "$T_TMP"/*.pid; do
    if [ -e "$f" ]; then stop_proc "$(basename "$f" .pid)" TERM "${T_STOP_GRACE:-30}"; fi
  done
  return 0
}
# proc_log_has NAME REGEX: the log of process NAME has a line matching the extended REGEX.
proc_log_has() { grep -Eq -- "$2" "$T_TMP/$1.log"; }

# ------------------------------------------------------------------------------ Kafka

# topic_read TOPIC [FORMAT]: every message of TOPIC so far, in kcat's -f FORMAT (default: one
# JSON envelope a line, kcat -J). Fails, with the reason on stderr, when kcat cannot read the
# topic (no such topic, broker unreachable, 60 s without reaching the end): never an empty
# answer in place of an unreadable topic.
topic_read() {
  local topic=$1 rc=0 out err
  local fmt=(-J); [ -n "${2:-}" ] && fmt=(-f "$2")
  out=$(mktemp "$T_TMP/kcat.XXXXXX"); err=$out.err
  timeout 60 kcat -b "$DXSYNC_KAFKA_BROKERS" -C -t "$topic" -o beginning -e -q "${fmt[@]}" >"$out" 2>"$err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf 'cannot read topic %s (kcat exit %s): %s\n' "$topic" "$rc" "$(head -c 400 "$err")" >&2
    rm -f "$out" "$err"
    return 1
  fi
  cat "$out"
  rm -f "$out" "$err"
}

# topic_count TOPIC: the number of messages in TOPIC; prints "unreadable" and fails when it
# cannot be read (so `test "$(topic_count T)" -eq 0` fails too).
topic_count() {
  local s
  s=$(topic_read "$1" 'x\n') || { echo unreadable; return 1; }
  printf '%s' "$s" | grep -c x || true
}

# topic_exists TOPIC: 0 when TOPIC exists, 1 when Kafka says it does not, 2 (and a message) when
# Kafka cannot say.
topic_exists() {
  local md
  md=$(timeout 30 kcat -b "$DXSYNC_KAFKA_BROKERS" -L -t "$1" -J -m 10 2>"$T_TMP/kcat-L.err") \
    || { echo "cannot list topic $1: $(head -c 400 "$T_TMP/kcat-L.err")" >&2; return 2; }
  python3 -c 'import json, sys
t = json.loads(sys.argv[1])["topics"][0]
if t.get("error") == "Broker: Unknown topic or partition": sys.exit(1)
if t.get("error") or not t["partitions"]:
    print("topic %s: %s" % (t["topic"], t.get("error") or "no partitions"), file=sys.stderr); sys.exit(2)' "$md"
}

# group_lag CONFIG REMOTE: the total lag of REMOTE's consumer group, as `dxsync-consumer status`
# prints it. Fails unless status exits 0 with exactly one TOTAL line holding a number.
group_lag() {
  local out
  out=$("$DXSYNC_BIN/consumer/dxsync-consumer" --config "$1" --remote "$2" status 2>/dev/null) || return 1
  awk '$1 == "TOTAL" { n++; v = $2; f = NF } END { if (n != 1 || f != 2 || v !~ /^[0-9]+$/) exit 1; print v }' <<<"$out"
}
# lag0 CONFIG REMOTE: the group's total lag is a number, and 0.
lag0() { local v; v=$(group_lag "$1" "$2") && [ "$v" = 0 ]; }

# ------------------------------------------------------------------------------ consumer tests
# A configuration with a fresh topic prefix per test, consumers of remote b started and stopped
# by pid, events produced straight into Kafka with kcat, and dx.py's Gen (events and the state
# the remote must end in) and verify_b (compares it with what Directus b holds).

c_init() {
  command -v kcat >/dev/null || { echo "kcat is needed by the consumer tests" >&2; exit 1; }
  C_BIN=$DXSYNC_BIN/consumer/dxsync-consumer
  C_RUNID="$(date +%s)$$"
  C_PREFIX="ct${C_RUNID}"
  export C_RUNID
}

# c_config FILE [TOKEN [CONSUMER_JSON [EXTRA_COLLECTIONS_JSON]]]: route a→b, articles (title,
# rating: body is left out to prove filtering) and counters (name, value): dx.CONSUMER_ROUTED.
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

# c_start NAME CONFIG [ARGS...]: a consumer of remote b (start_proc NAME), log level
# $C_LOG_LEVEL (info), member name $C_MEMBER (default NAME). c_stop NAME: SIGTERM (SIGKILL after 60 s), returns its exit status.
# c_kill NAME: kill -9.
c_start() {
  local name=$1 cfg=$2; shift 2
  # its own member name: two consumers of b here are two members of b's group
  start_proc "$name" "$C_BIN" --config "$cfg" --remote b --member "${C_MEMBER:-$name}" \
    --log-level "${C_LOG_LEVEL:-info}" "$@"
}
c_stop() { stop_proc "$1" TERM 60; return "$STOP_RC"; }
c_kill() { stop_proc "$1" KILL; }
c_log_has() { proc_log_has "$@"; }
c_lag0() { lag0 "$1" b; }

# c_produce_kv COLLECTION FILE: produces "key<TAB>value" lines to <prefix>.a.<collection>,
# partitioned like the dxsync producer (murmur2), in order.
c_produce_kv() {
  kcat -b "$DXSYNC_KAFKA_BROKERS" -P -t "$C_PREFIX.a.$1" -K $'\t' -X partitioner=murmur2_random \
    -X enable.idempotence=true -X message.max.bytes=67108864 -l "$2"
}

# c_produce_files COLLECTION KEY FILE...: each file one message with key KEY (raw bytes).
c_produce_files() {
  local coll=$1 key=$2; shift 2
  kcat -b "$DXSYNC_KAFKA_BROKERS" -P -t "$C_PREFIX.a.$coll" -k "$key" -X partitioner=murmur2_random "$@"
}

# c_produce_marks TAG COLLECTION...: one malformed message ("not an event") on every partition
# of each collection's topic, key TAG-<collection>-<partition>: markers that the consumer
# dead-letters after everything produced before them on that partition. Prints their count.
c_produce_marks() {
  local tag=$1 coll p n=0 parts; shift
  for coll in "$@"; do
    parts=$(kcat -b "$DXSYNC_KAFKA_BROKERS" -L -t "$C_PREFIX.a.$coll" -J | json 'len(j["topics"][0]["partitions"])')
    [ "$parts" -gt 0 ] || return 1
    for ((p = 0; p < parts; p++)); do
      printf 'not an event' | kcat -b "$DXSYNC_KAFKA_BROKERS" -P -t "$C_PREFIX.a.$coll" -p "$p" -k "$tag-$coll-$p"
      n=$((n + 1))
    done
  done
  echo "$n"
}

# c_py [ARGS...]: runs the Python script on stdin with tests/lib on its path (from dx import *).
c_py() { PYTHONPATH="$DX_LIB_DIR" python3 - "$@"; }

# c_verify EXPECT_JSON: Directus b holds the state Gen.save_expect wrote (prints the differences).
c_verify() { PYTHONPATH="$DX_LIB_DIR" python3 "$DX_LIB_DIR/dx.py" verify-b "$1"; }
