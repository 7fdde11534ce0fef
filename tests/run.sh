#!/usr/bin/env bash
# The test command (README): on a fresh machine it installs what is missing, builds dxsync
# twice (normal, and ASan+UBSan), starts the real services (PostgreSQL, Kafka, Directus; and
# the stack "compat", PostgreSQL 13 with Directus 11, for the label compat), runs every ctest
# label, stops the services, and exits non-zero on any failure. The version matrix is
# tests/matrix.sh, outside this run.
#
#   tests/run.sh                 everything
#   tests/run.sh -L unit         only what these ctest arguments select (-L/-LE label regexes,
#                                -R/-E name regexes ...: passed to ctest). The unit tests always
#                                run (seconds); services are started, and the ASan pass of the
#                                integration tests runs, only when the selection has such tests;
#                                the fuzzers run only when the labels admit "fuzz". A selection
#                                of no test at all is an error, never a silent pass.
# Environment: DXSYNC_CACHE (downloads, default ~/.cache/dxsync), DXSYNC_RUN (state of this run,
# default /tmp/dxsync-run, wiped at start), DXSYNC_SKIP_ASAN=1 to skip the sanitizer build,
# DXSYNC_SKIP_FUZZ=1 to skip the fuzzers, DXSYNC_FUZZ_SECONDS (default 60 per target),
# DXSYNC_SKIP_CONTAINERS=1 not to build the container image in the background (deploy_containers
# then builds it itself).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. tests/lib/dx.sh
start_time=$SECONDS

step() { printf '\n==== %s (%ds)\n' "$*" $((SECONDS - start_time)) >&2; }

step "installing what is missing"
apt_need build-essential cmake ninja-build pkg-config git curl ca-certificates python3 \
  librdkafka-dev libpq-dev libcurl4-openssl-dev libcjson-dev libmicrohttpd-dev libcmocka-dev liblmdb-dev lmdb-utils \
  kcat clang clang-format libclang-rt-14-dev postgresql-client python3-yaml valgrind \
  chromium prometheus podman runc debootstrap
tests/harness/services.sh install
# The compat stack's Directus (PostgreSQL 13 with Directus 11, label compat) installs meanwhile:
# nothing when it is cached.
COMPAT_PG=13 COMPAT_DIRECTUS=11.17.4
mkdir -p "${DXSYNC_CACHE:-$HOME/.cache/dxsync}"
compat_log="${DXSYNC_CACHE:-$HOME/.cache/dxsync}/compat-install.log"
compat_rc=$(mktemp /tmp/dxsync-compat-install.XXXXXX) # its exit status, once it has one
trap 'rm -f "$compat_rc"' EXIT
: >"$compat_rc"
(DXSYNC_DIRECTUS_VERSION=$COMPAT_DIRECTUS tests/harness/directus.sh install >"$compat_log" 2>&1; echo $? >"$compat_rc") &

step "building"
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDXSYNC_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
if [ "${DXSYNC_SKIP_ASAN:-0}" != 1 ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDXSYNC_WERROR=ON \
    -DDXSYNC_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$jobs"
fi

step "checking formatting"
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find producer consumer shared tests -name '*.[ch]')
clang-format --dry-run -Werror $files

status=0
ctest_args=("$@")

# admits LABEL: the -L/-LE options among the arguments (ctest's: every -L regex must match,
# no -LE regex may) let a test labelled LABEL run.
admits() {
  local i a re
  for ((i = 0; i < ${#ctest_args[@]}; i++)); do
    a=${ctest_args[i]}
    case $a in
      -L | --label-regex) re=${ctest_args[i + 1]:-}; [[ $1 =~ $re ]] || return 1 ;;
      -LE | --label-exclude) re=${ctest_args[i + 1]:-}; [[ $1 =~ $re ]] && return 1 ;;
    esac
  done
  return 0
}
# count_tests DIR [--beyond-unit] ARGS...: how many tests ctest in DIR would run with ARGS (only
# those with a label other than unit: --beyond-unit).
count_tests() {
  local dir=$1 only=all; shift
  [ "${1:-}" = --beyond-unit ] && { only=beyond; shift; }
  (cd "$dir" && ctest --show-only=json-v1 "$@") | python3 -c 'import json, sys
tests = json.load(sys.stdin)["tests"]
labels = [sum((p["value"] for p in t.get("properties", []) if p["name"] == "LABELS"), []) for t in tests]
print(len([l for l in labels if sys.argv[1] == "all" or set(l) - {"unit"}]))' "$only"
}
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp:print_suppressions=0

step "unit tests"
(cd build && ctest -L unit --no-tests=error --output-on-failure -j"$jobs") || status=1
if [ -d build-asan ] && [ "${DXSYNC_SKIP_ASAN:-0}" != 1 ]; then
  (cd build-asan && ctest -L unit --no-tests=error --output-on-failure -j"$jobs") || status=1
fi

selected=$(count_tests build "${ctest_args[@]}")
beyond_unit=$(count_tests build --beyond-unit "${ctest_args[@]}")
fuzz_selected=0
if [ "${DXSYNC_SKIP_FUZZ:-0}" != 1 ] && admits fuzz; then
  CC=clang cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDXSYNC_FUZZ=ON \
    -DDXSYNC_FUZZ_SECONDS="${DXSYNC_FUZZ_SECONDS:-60}" >/dev/null
  fuzz_selected=$(count_tests build-fuzz -L fuzz "${ctest_args[@]}")
fi
if [ "$selected" = 0 ] && [ "$fuzz_selected" = 0 ]; then
  echo "tests/run.sh: the arguments \"${ctest_args[*]}\" select no test" >&2
  status=1
fi

# The container image (deploy_containers) builds in the background meanwhile: its bases once
# (debootstrap, cached), the image from the Dockerfile (podman's layer cache). The test builds it
# again, which is then a matter of seconds, and fails when that fails.
images_pid=
if [ "$beyond_unit" -gt 0 ] && [ "${DXSYNC_SKIP_CONTAINERS:-0}" != 1 ]; then
  mkdir -p "${DXSYNC_CACHE:-$HOME/.cache/dxsync}"
  deploy/images.sh localhost/dxsync:test >"${DXSYNC_CACHE:-$HOME/.cache/dxsync}/images.log" 2>&1 &
  images_pid=$!
fi

# The services start in the background meanwhile too: the fuzzers run for a fixed time whatever
# else runs, and Directus's start is mostly waiting.
services_pid=
if [ "$beyond_unit" -gt 0 ]; then
  tests/harness/services.sh down >/dev/null 2>&1 || true
  rm -rf "$DXSYNC_RUN"
  trap 'tests/harness/services.sh down >/dev/null 2>&1 || true; rm -f "$compat_rc"' EXIT
  mkdir -p "$DXSYNC_RUN"
  tests/harness/services.sh up a b c d >"$DXSYNC_RUN/services-up.log" 2>&1 &
  services_pid=$!
fi
stack_pid=
if [ "$(count_tests build -L compat "${ctest_args[@]}")" -gt 0 ]; then
  (while [ ! -s "$compat_rc" ]; do sleep 1; done
   [ "$(cat "$compat_rc")" = 0 ] || { cat "$compat_log"; exit 1; }
   tests/harness/services.sh stack compat "$COMPAT_PG" "$COMPAT_DIRECTUS" a b) >"$DXSYNC_RUN/stack-up.log" 2>&1 &
  stack_pid=$!
fi

if [ "$fuzz_selected" -gt 0 ]; then
  step "fuzzing (libFuzzer, ASan+UBSan, ${DXSYNC_FUZZ_SECONDS:-60} s per target, $jobs at a time)"
  cmake --build build-fuzz -j"$jobs" >/dev/null
  # the targets are independent: one per core
  (cd build-fuzz && ctest -L fuzz -j"$jobs" --no-tests=error --output-on-failure "${ctest_args[@]}") || status=1
fi

if [ "$beyond_unit" -gt 0 ]; then
  step "waiting for the services"
  wait "$services_pid" || { cat "$DXSYNC_RUN/services-up.log" >&2; echo "tests/run.sh: the services did not start" >&2; exit 1; }
  cat "$DXSYNC_RUN/services-up.log" >&2
  if [ -n "$stack_pid" ]; then
    wait "$stack_pid" || { cat "$DXSYNC_RUN/stack-up.log" >&2; echo "tests/run.sh: the compat stack did not start" >&2; exit 1; }
    cat "$DXSYNC_RUN/stack-up.log" >&2
  fi
  set -a; . "$DXSYNC_RUN/services.env"; set +a

  if [ -n "$images_pid" ]; then
    wait "$images_pid" || true
    tail -3 "${DXSYNC_CACHE:-$HOME/.cache/dxsync}/images.log" >&2
  fi
  # The compat tests run on a stack of their own (PostgreSQL 13, Directus 11): beside the ASan
  # pass, which uses the default instances and mostly waits, rather than after it. Only when the
  # selection leaves ctest's -E free and has other tests and the ASan pass will run.
  compat_beside=0
  asan_pass=0
  [ "${DXSYNC_SKIP_ASAN:-0}" != 1 ] && [ "$(count_tests build-asan -L '^integration$' "${ctest_args[@]}")" -gt 0 ] && asan_pass=1
  if [ -n "$stack_pid" ] && [ "$asan_pass" = 1 ] && [[ " ${ctest_args[*]} " != *" -E "* ]] \
     && [ "$(count_tests build "${ctest_args[@]}" -E '^compat_')" -gt 0 ]; then
    compat_beside=1
  fi
  step "all tests (build)"
  main_args=("${ctest_args[@]}")
  [ "$compat_beside" = 1 ] && main_args+=(-E '^compat_')
  (cd build && ctest --no-tests=error --output-on-failure "${main_args[@]}") || status=1
  if [ "${DXSYNC_SKIP_ASAN:-0}" != 1 ]; then
    # The integration tests of the selection, again under ASan+UBSan (the unit tests ran above).
    # A selection without integration tests (-L e2e) has nothing for this pass: it is skipped,
    # and says so; otherwise it must run tests.
    if [ "$asan_pass" = 1 ]; then
      compat_pid=
      if [ "$compat_beside" = 1 ]; then
        step "integration tests under ASan+UBSan (build-asan), and beside them the compat tests (build)"
        (cd build && ctest --no-tests=error --output-on-failure -L compat "${ctest_args[@]}") >"$DXSYNC_RUN/compat-tests.log" 2>&1 &
        compat_pid=$!
      else
        step "integration tests under ASan+UBSan (build-asan)"
      fi
      (cd build-asan && ctest --no-tests=error --output-on-failure -L '^integration$' "${ctest_args[@]}") || status=1
      if [ -n "$compat_pid" ]; then
        step "the compat tests (PostgreSQL 13, Directus 11)"
        wait "$compat_pid" || status=1
        cat "$DXSYNC_RUN/compat-tests.log"
      fi
    else
      step "no integration test selected: no ASan+UBSan pass"
    fi
  fi
fi

if [ -s "$DXSYNC_RUN/faults-table.txt" ]; then
  step "fault suite"
  printf '%-24s %6s %9s %8s %8s %11s %10s\n' scenario sent in-kafka applied missing duplicates converge-s
  cat "$DXSYNC_RUN/faults-table.txt"
fi
if [ -s "$DXSYNC_RUN/converge-table.txt" ]; then
  step "convergence (concurrent writes on three instances; diverged and wrong must be 0)"
  printf '%-24s %6s %11s %7s %5s %8s %12s %10s\n' scenario rounds conflicting writes kills diverged wrong-winner converge-s
  cat "$DXSYNC_RUN/converge-table.txt"
fi
if [ -s "$DXSYNC_RUN/takeover-table.txt" ]; then
  step "standby producers (seconds until the standby holds the slot, 3 rounds each)"
  cat "$DXSYNC_RUN/takeover-table.txt"
fi
if [ -s "$DXSYNC_RUN/failover-table.txt" ]; then
  step "failover (kill -9 of a consumer of b, 3 rounds, and of a notifier; default session timeouts)"
  cat "$DXSYNC_RUN/failover-table.txt"
fi
if [ -s "$DXSYNC_RUN/reload-table.txt" ]; then
  step "reload (SIGHUP under a steady stream; how long the consumer applied nothing)"
  cat "$DXSYNC_RUN/reload-table.txt"
fi
if [ -s "$DXSYNC_RUN/relations-table.txt" ]; then
  step "related collections (nested writes a -> b, children before parents; differ and dlq must be 0)"
  printf '%-12s %7s %8s %6s %5s %10s %12s %9s %5s %8s\n' scenario nested authors posts tags posts_tags parent-waits differ dlq equal-s
  cat "$DXSYNC_RUN/relations-table.txt"
fi
if [ -s "$DXSYNC_RUN/files-table.txt" ]; then
  step "files (a -> b; b, then a, die in the middle of a transfer; dlq must be 0)"
  printf '%-12s %9s %8s %8s %9s %9s %7s %4s\n' build transfers 50MB-s 50MB/s 200MB-s 200MB/s failed dlq
  cat "$DXSYNC_RUN/files-table.txt"
fi
step "done: $([ $status = 0 ] && echo PASSED || echo FAILED) in $((SECONDS - start_time)) s"
exit $status
