# shellcheck shell=bash
# Common helpers for the test harness. Source it; it sets no traps and starts nothing.
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
export DXSYNC_CACHE DXSYNC_RUN DXSYNC_PG_PORT DXSYNC_KAFKA_PORT DXSYNC_KAFKA_CONTROLLER_PORT \
       DXSYNC_KAFKA_VERSION DXSYNC_DIRECTUS_VERSION DXSYNC_NODE_VERSION

HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf '%s harness %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_port PORT TIMEOUT_S: wait until something accepts TCP connections on 127.0.0.1:PORT.
wait_port() {
  local port=$1 timeout=${2:-60} start=$SECONDS
  while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    (( SECONDS - start >= timeout )) && return 1
    sleep 0.2
  done
}

# wait_http URL TIMEOUT_S: wait until URL answers 2xx.
wait_http() {
  local url=$1 timeout=${2:-60} start=$SECONDS
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    (( SECONDS - start >= timeout )) && return 1
    sleep 0.3
  done
}

# start_bg NAME LOGFILE CMD...: start CMD in the background, record its pid in $DXSYNC_RUN/NAME.pid.
start_bg() {
  local name=$1 logfile=$2; shift 2
  mkdir -p "$DXSYNC_RUN"
  "$@" >"$logfile" 2>&1 &
  echo $! >"$DXSYNC_RUN/$name.pid"
}

# stop_pidfile PIDFILE [TIMEOUT_S]: SIGTERM the recorded pid, SIGKILL after the timeout.
# Never by name: only the process this harness started.
stop_pidfile() {
  local pidfile=$1 timeout=${2:-20} pid start=$SECONDS
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
      if (( SECONDS - start >= timeout )); then kill -KILL "$pid" 2>/dev/null || true; break; fi
      sleep 0.2
    done
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
