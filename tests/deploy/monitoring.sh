#!/usr/bin/env bash
# The monitoring files: deploy/prometheus/dxsync-rules.yml passes `promtool check rules`, and
# `promtool test rules` fires each alert on series made to trip it (tests/deploy/
# dxsync-rules.test.yml); deploy/grafana/dxsync.json parses, uses the data source variable, has a
# row per program, queries (and the rules query) only metrics the programs register in their
# source, and shows every one of them. (tests/integration/status_page.sh checks the dashboard
# against a live /metrics of each program too.)
set -euo pipefail
SRC=${DXSYNC_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
failed=0 count=0
pass() { count=$((count + 1)); echo "ok   $*"; }
fail() { count=$((count + 1)); failed=$((failed + 1)); echo "FAIL $*"; }
command -v promtool >/dev/null || { echo "promtool is needed (apt-get install prometheus)" >&2; exit 1; }
T=$(mktemp -d /tmp/dxsync-monitoring.XXXXXX)
trap 'rm -rf "$T"' EXIT

if promtool check rules "$SRC/deploy/prometheus/dxsync-rules.yml" >"$T/out" 2>&1; then
  pass "promtool check rules: $(grep -o '[0-9]* rules found' "$T/out")"
else fail "promtool check rules:"; cat "$T/out"; fi
if (cd "$SRC/tests/deploy" && promtool test rules dxsync-rules.test.yml) >"$T/out" 2>&1; then
  pass "promtool test rules: every alert fires on its series and not on healthy ones"
else fail "promtool test rules:"; cat "$T/out"; fi
# every alert of the rules file has a test case
for a in $(grep -o 'alert: [A-Za-z]*' "$SRC/deploy/prometheus/dxsync-rules.yml" | cut -d' ' -f2); do
  if grep -q "alertname: $a\$" "$SRC/tests/deploy/dxsync-rules.test.yml"; then pass "alert $a is tested"
  else fail "alert $a has no test in dxsync-rules.test.yml"; fi
done
if python3 "$SRC/tests/deploy/dashboard.py" "$SRC/deploy/grafana/dxsync.json" --source "$SRC" \
  --rules "$SRC/deploy/prometheus/dxsync-rules.yml" >"$T/out" 2>&1; then
  pass "dashboard and rules against the metrics registered in the source ($(tail -1 "$T/out"))"
else fail "dashboard and rules against the source:"; cat "$T/out"; fi

echo "monitoring: $((count - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
