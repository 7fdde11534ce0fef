#!/usr/bin/env bash
# PostgreSQL for the tests: a throwaway cluster with wal_level=logical on its own port, and
# track_commit_timestamp=on (the convergence test reads each write's commit time).
#   postgres.sh install          install Debian's postgresql when missing
#   postgres.sh start            initdb (once) and start; prints PG_URL and PG_CA (ssl is on with
#                                a certificate for 127.0.0.1 signed by a CA of its own, made once:
#                                sslmode=verify-full&sslrootcert=$PG_CA checks it; clients that
#                                do not ask for TLS get none unless libpq prefers it)
#   postgres.sh stop             fast shutdown, by the pid in postmaster.pid
#   postgres.sh restart          stop + start (the data stays)
# The cluster lives in $DXSYNC_RUN/pg; its socket in $DXSYNC_RUN/pg-sock. Environment:
#   DXSYNC_PG_MAJOR=13           another major than Debian's (13 to 18), from pgdist.sh
#   DXSYNC_PG_NAME=pg-compat     a second cluster beside the first: its own folder, socket, log
#                                and TLS files under that name (with its own DXSYNC_PG_PORT)
set -euo pipefail
. "$(dirname "$0")/../lib/dx.sh"

PGNAME=${DXSYNC_PG_NAME:-pg}
PGDATA_DIR="$DXSYNC_RUN/$PGNAME"
PGSOCK_DIR="$DXSYNC_RUN/$PGNAME-sock"
PGTLS_DIR="$DXSYNC_RUN/$PGNAME-tls"
PGLOG="$DXSYNC_RUN/$PGNAME.log"

# pg_bin: Debian's server (the newest installed), or DXSYNC_PG_MAJOR's: Debian's when it has
# that major, else a build from pgdist.sh.
pg_bin() {
  local d
  if [ -n "${DXSYNC_PG_MAJOR:-}" ]; then
    if [ -x "/usr/lib/postgresql/$DXSYNC_PG_MAJOR/bin/postgres" ]; then
      echo "/usr/lib/postgresql/$DXSYNC_PG_MAJOR/bin"
    else
      "$HARNESS_DIR/pgdist.sh" fetch "$DXSYNC_PG_MAJOR"
    fi
    return
  fi
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] || die "PostgreSQL server binaries not found (postgres.sh install)"
  echo "$d"
}

# Runs a command as the postgres user when we are root (PostgreSQL refuses to run as root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd_install() {
  apt_need postgresql postgresql-contrib
}

# The server's TLS files, once: a CA of its own, a certificate for 127.0.0.1 (an IP SAN, which
# verify-full checks), the key readable by the server alone.
make_tls() {
  [ -f "$PGTLS_DIR/.complete" ] && return 0
  command -v openssl >/dev/null || apt_need openssl
  mkdir -p "$PGTLS_DIR"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=dxsync test postgres CA" \
    -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign' \
    -keyout "$PGTLS_DIR/ca.key" -out "$PGTLS_DIR/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$PGTLS_DIR/server.key" \
    -out "$PGTLS_DIR/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' >"$PGTLS_DIR/ext"
  openssl x509 -req -in "$PGTLS_DIR/server.csr" -CA "$PGTLS_DIR/ca.pem" -CAkey "$PGTLS_DIR/ca.key" \
    -CAcreateserial -days 3650 -extfile "$PGTLS_DIR/ext" -out "$PGTLS_DIR/server.pem" 2>/dev/null
  chmod 600 "$PGTLS_DIR/server.key"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$PGTLS_DIR/server.key" "$PGTLS_DIR/server.pem"
  touch "$PGTLS_DIR/.complete"
}

cmd_start() {
  local bin; bin=$(pg_bin)
  make_tls
  mkdir -p "$DXSYNC_RUN" "$PGSOCK_DIR"
  if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
    mkdir -p "$PGDATA_DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$PGDATA_DIR" "$PGSOCK_DIR"
    as_pg "$bin/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  [ "$(id -u)" -eq 0 ] && chown postgres: "$PGSOCK_DIR"
  if [ -f "$PGDATA_DIR/postmaster.pid" ] && kill -0 "$(head -n 1 "$PGDATA_DIR/postmaster.pid")" 2>/dev/null; then
    log "postgres already running on port $DXSYNC_PG_PORT"
  elif (exec 3<>"/dev/tcp/127.0.0.1/$DXSYNC_PG_PORT") 2>/dev/null; then
    die "port $DXSYNC_PG_PORT is taken by a process this harness did not start"
  else
    touch "$PGLOG"; [ "$(id -u)" -eq 0 ] && chown postgres: "$PGLOG"
    as_pg "$bin/pg_ctl" -D "$PGDATA_DIR" -l "$PGLOG" -w -t 60 start -o \
      "-p $DXSYNC_PG_PORT -c listen_addresses=127.0.0.1 -k $PGSOCK_DIR -c wal_level=${DXSYNC_PG_WAL_LEVEL:-logical} \
       -c max_replication_slots=32 -c max_wal_senders=32 -c max_connections=200 \
       -c fsync=off -c synchronous_commit=on -c full_page_writes=off \
       -c wal_sender_timeout=60s -c max_slot_wal_keep_size=4GB -c track_commit_timestamp=on \
       -c ssl=on -c ssl_cert_file=$PGTLS_DIR/server.pem -c ssl_key_file=$PGTLS_DIR/server.key" >/dev/null \
      || { tail -n 30 "$PGLOG" >&2; die "postgres did not start"; }
  fi
  wait_port "$DXSYNC_PG_PORT" 30 || die "postgres is not listening on $DXSYNC_PG_PORT"
  echo "PG_URL=postgresql://postgres@127.0.0.1:$DXSYNC_PG_PORT"
  echo "PG_CA=$PGTLS_DIR/ca.pem"
  echo "PG_PID=$(head -n 1 "$PGDATA_DIR/postmaster.pid")"
  # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)": 15.18
  echo "PG_VERSION=$(as_pg "$bin/postgres" --version | sed -E 's/^[^0-9]*([0-9][0-9.a-z]*).*/\1/')"
}

cmd_stop() {
  local pidfile="$PGDATA_DIR/postmaster.pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(head -n 1 "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid"   # fast shutdown
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  return 0
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  *) echo "usage: $0 install|start|stop|restart" >&2; exit 2 ;;
esac
