# shellcheck shell=bash
# Helpers for the integration and end-to-end test scripts. Source it. Needs the environment of
# tests/run.sh (services.env) and DXSYNC_BIN (the build folder).
set -euo pipefail
: "${DXSYNC_RUN:=/tmp/dxsync-run}"
if [ -z "${DXSYNC_KAFKA_BROKERS:-}" ] && [ -f "$DXSYNC_RUN/services.env" ]; then
  set -a; . "$DXSYNC_RUN/services.env"; set +a
fi
[ -n "${DXSYNC_KAFKA_BROKERS:-}" ] || { echo "services are not up: run tests/run.sh" >&2; exit 1; }

T_FAILED=0
T_COUNT=0
T_NAME=$(basename "$0" .sh)
T_TMP=$(mktemp -d "/tmp/dxsync-$T_NAME.XXXXXX")
trap 'rm -rf "$T_TMP"' EXIT

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

# api INSTANCE TOKEN METHOD PATH [JSON]: Directus REST call, prints the body, fails on >= 400.
api() {
  local inst=$1 token=$2 method=$3 path=$4 body=${5:-}
  local url_var="DXSYNC_$(echo "$inst" | tr '[:lower:]' '[:upper:]')_URL"
  local args=(-sS -X "$method" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' --max-time 30)
  [ -n "$body" ] && args+=(--data-binary "$body")
  curl "${args[@]}" -w '\n%{http_code}' "${!url_var}$path" >"$T_TMP/api" || return 1
  API_STATUS=$(tail -n 1 "$T_TMP/api")
  API_BODY=$(sed '$d' "$T_TMP/api")
  printf '%s' "$API_BODY"
  [ "$API_STATUS" -lt 400 ]
}

# json EXPR: evaluates a Python expression on the JSON read from stdin (bound to j).
json() { python3 -c "import json,sys; j=json.load(sys.stdin); v=($1); print(v if not isinstance(v,(dict,list)) else json.dumps(v))"; }

psql_q() { psql "$1" -XAtqc "$2"; }

finish() {
  printf '%s: %d passed, %d failed\n' "$T_NAME" $((T_COUNT - T_FAILED)) "$T_FAILED"
  [ "$T_FAILED" -eq 0 ]
}

# topic_json TOPIC: every message of TOPIC so far, one kcat JSON envelope a line.
topic_json() { kcat -b "$DXSYNC_KAFKA_BROKERS" -C -t "$1" -e -q -J 2>/dev/null || true; }

# wait_for SECONDS CMD...: retries CMD until it succeeds or the time is up.
wait_for() {
  local t=$1 start=$SECONDS; shift
  until "$@"; do (( SECONDS - start >= t )) && return 1; sleep 0.3; done
}

# start_proc NAME CMD...: starts a dxsync process in the background, log in $T_TMP/NAME.log,
# pid in $T_TMP/NAME.pid; stop_proc NAME [SIGNAL] stops it by that pid.
start_proc() {
  local name=$1; shift
  "$@" >>"$T_TMP/$name.log" 2>&1 &
  echo $! >"$T_TMP/$name.pid"
}
stop_proc() {
  local pid; pid=$(cat "$T_TMP/$1.pid" 2>/dev/null) || return 0
  kill "-${2:-TERM}" "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
stop_all_procs() {
  local f
  for f in "$T_TMP"/*.pid; do
    if [ -e "$f" ]; then stop_proc "$(basename "$f" .pid)"; fi
  done
  return 0
}
trap 'stop_all_procs; rm -rf "$T_TMP"' EXIT
