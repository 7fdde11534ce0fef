#!/usr/bin/env bash
# Starts and stops every real service the tests need, on loopback:
#   services.sh install         install what is missing (Debian packages, Kafka jars, Directus)
#   services.sh up [NAMES...]   PostgreSQL, Kafka, and a prepared Directus per name (default: a b)
#   services.sh stack NAME PG_MAJOR DIRECTUS_VERSION [INSTANCES...]
#                               a second set beside up's, on the same Kafka: a PostgreSQL of that
#                               major (pgdist.sh when Debian lacks it) on port
#                               $DXSYNC_STACK_PG_PORT (25440), and Directus of that version for
#                               each instance (default: a b) from port
#                               $DXSYNC_STACK_DIRECTUS_BASE_PORT (28070). Writes
#                               $DXSYNC_RUN/stack-NAME.env, which tests read over services.env
#                               when DXSYNC_STACK=NAME: the same variable names (DXSYNC_A_URL,
#                               DXSYNC_PG_URL, ...), so every test runs unchanged on it.
#   services.sh unstack NAME... stop those stacks' Directus and PostgreSQL (by pid) and remove
#                               their state
#   services.sh down            stop everything this harness started (by pid)
# `up` writes $DXSYNC_RUN/services.env (sourceable): the ports, DXSYNC_PG_URL, DXSYNC_KAFKA_BROKERS, and per
# instance N (upper case) DXSYNC_N_URL, _DB_URL, _ADMIN_TOKEN, _SYNC_TOKEN, _SYNC_USER_ID,
# _EDITOR1_ID, ... as written by directus.sh.
set -euo pipefail
. "$(dirname "$0")/../lib/dx.sh"

: "${DXSYNC_DIRECTUS_BASE_PORT:=28055}"

cmd_install() {
  "$HARNESS_DIR/postgres.sh" install
  "$HARNESS_DIR/kafka.sh" install
  "$HARNESS_DIR/directus.sh" install >/dev/null
}

# start_instances ENV_TMP PREFIX PG_URL BASE_PORT WHAT NAMES...: starts and prepares a Directus
# per name (directus.sh NAME = PREFIX + name, database directus_<PREFIX_name>, ports from
# BASE_PORT), side by side: four take about as long as two one after the other. Then appends
# each instance's variables to ENV_TMP as DXSYNC_<NAME>_... .
start_instances() {
  local env=$1 prefix=$2 pg=$3 base=$4 what=$5; shift 5
  local i=0 name upper pid pids=() failed=0
  for name in "$@"; do
    local port=$((base + i))
    i=$((i + 1))
    (
      "$HARNESS_DIR/directus.sh" start "$prefix$name" "$port" "$pg/directus_${prefix//-/_}$name" >/dev/null
      "$HARNESS_DIR/directus.sh" prepare "$prefix$name" >/dev/null
      log "directus $prefix$name$what ready on port $port"
    ) &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ "$failed" = 0 ] || die "a Directus instance did not come up (its log: $DXSYNC_RUN/directus-$prefix<name>.log)"
  for name in "$@"; do
    upper=$(echo "$name" | tr '[:lower:]' '[:upper:]')
    sed -n "s/^\([A-Z0-9_]*\)=\(.*\)$/DXSYNC_${upper}_\1=\2/p" "$DXSYNC_RUN/directus-$prefix$name.env" >>"$env"
  done
}

cmd_up() {
  local names=("$@") env="$DXSYNC_RUN/services.env" pg kafka
  [ ${#names[@]} -gt 0 ] || names=(a b)
  mkdir -p "$DXSYNC_RUN"
  local pgout; pgout=$("$HARNESS_DIR/postgres.sh" start)
  pg=$(sed -n 's/^PG_URL=//p' <<<"$pgout")
  kafka=$("$HARNESS_DIR/kafka.sh" start | sed -n 's/^KAFKA_BROKERS=//p')
  {
    echo "DXSYNC_RUN=$DXSYNC_RUN"
    # the ports, so that a test restarting a service (kafka.sh start) brings it back on them
    echo "DXSYNC_PG_PORT=$DXSYNC_PG_PORT"
    echo "DXSYNC_KAFKA_PORT=$DXSYNC_KAFKA_PORT"
    echo "DXSYNC_KAFKA_CONTROLLER_PORT=$DXSYNC_KAFKA_CONTROLLER_PORT"
    echo "DXSYNC_DIRECTUS_BASE_PORT=$DXSYNC_DIRECTUS_BASE_PORT"
    echo "DXSYNC_PG_URL=$pg"
    echo "DXSYNC_PG_CA=$(sed -n 's/^PG_CA=//p' <<<"$pgout")"
    # libpq's default (prefer) would encrypt every test's connections now that ssl is on: only
    # those asking for it in their URL (sslmode=verify-full) get TLS, as before
    echo "PGSSLMODE=disable"
    echo "DXSYNC_KAFKA_BROKERS=$kafka"
    echo "DXSYNC_INSTANCES=\"${names[*]}\""
  } >"$env.tmp"
  "$HARNESS_DIR/directus.sh" install >/dev/null # once, before they share it
  start_instances "$env.tmp" "" "$pg" "$DXSYNC_DIRECTUS_BASE_PORT" "" "${names[@]}"
  mv "$env.tmp" "$env"
  log "services up; environment in $env"
}

cmd_stack() {
  [ $# -ge 3 ] || die "usage: services.sh stack NAME PG_MAJOR DIRECTUS_VERSION [INSTANCES...]"
  local stack=$1 major=$2 dver=$3; shift 3
  local names=("$@")
  [ ${#names[@]} -gt 0 ] || names=(a b)
  [[ $stack =~ ^[a-z0-9]+$ ]] || die "stack name \"$stack\": lower-case letters and digits only"
  mkdir -p "$DXSYNC_RUN" # the stack may start beside up (its tests need up's Kafka)
  local pgport=${DXSYNC_STACK_PG_PORT:-25440} base=${DXSYNC_STACK_DIRECTUS_BASE_PORT:-28070}
  local env="$DXSYNC_RUN/stack-$stack.env"
  export DXSYNC_DIRECTUS_VERSION=$dver
  "$HARNESS_DIR/directus.sh" install >/dev/null
  local pgout pg
  pgout=$(DXSYNC_PG_MAJOR=$major DXSYNC_PG_NAME="pg-$stack" DXSYNC_PG_PORT=$pgport "$HARNESS_DIR/postgres.sh" start)
  pg=$(sed -n 's/^PG_URL=//p' <<<"$pgout")
  {
    echo "DXSYNC_STACK_NAME=$stack"
    echo "DXSYNC_PG_PORT=$pgport"
    echo "DXSYNC_PG_URL=$pg"
    echo "DXSYNC_PG_CA=$(sed -n 's/^PG_CA=//p' <<<"$pgout")"
    echo "DXSYNC_PG_VERSION=$(sed -n 's/^PG_VERSION=//p' <<<"$pgout")"
    echo "DXSYNC_PG_NAME=pg-$stack"
    echo "DXSYNC_DIRECTUS_VERSION=$dver"
    echo "DXSYNC_DIRECTUS_BASE_PORT=$base"
    echo "DXSYNC_INSTANCES=\"${names[*]}\""
  } >"$env.tmp"
  start_instances "$env.tmp" "$stack-" "$pg" "$base" " ($dver, PostgreSQL $major)" "${names[@]}"
  mv "$env.tmp" "$env"
  log "stack $stack up; its environment in $env (tests read it with DXSYNC_STACK=$stack)"
}

cmd_unstack() {
  local s f
  for s in "$@"; do
    for f in "$DXSYNC_RUN/directus-$s-"*.pid; do
      [ -e "$f" ] || continue
      f=$(basename "$f" .pid)
      "$HARNESS_DIR/directus.sh" stop "${f#directus-}" >/dev/null 2>&1 || true
    done
    DXSYNC_PG_NAME="pg-$s" "$HARNESS_DIR/postgres.sh" stop >/dev/null 2>&1 || true
    rm -rf "$DXSYNC_RUN/pg-$s" "$DXSYNC_RUN/pg-$s-"* "$DXSYNC_RUN/pg-$s.log" "$DXSYNC_RUN/directus-$s-"* "$DXSYNC_RUN/stack-$s.env"
  done
}

cmd_down() {
  local f name
  for f in "$DXSYNC_RUN"/directus-*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid); name=${name#directus-}
    "$HARNESS_DIR/directus.sh" stop "$name" || true
  done
  "$HARNESS_DIR/kafka.sh" stop || true
  "$HARNESS_DIR/postgres.sh" stop || true
  for f in "$DXSYNC_RUN"/pg-*/postmaster.pid; do # the stacks' clusters
    [ -e "$f" ] || continue
    DXSYNC_PG_NAME=$(basename "$(dirname "$f")") "$HARNESS_DIR/postgres.sh" stop || true
  done
}

case "${1:-}" in
  install) cmd_install ;;
  up) shift; cmd_up "$@" ;;
  stack) shift; cmd_stack "$@" ;;
  unstack) shift; cmd_unstack "$@" ;;
  down) cmd_down ;;
  *) echo "usage: $0 install|up [NAMES...]|stack NAME PG_MAJOR DIRECTUS_VERSION [NAMES...]|unstack NAMES...|down" >&2; exit 2 ;;
esac
