#!/usr/bin/env bash
# run_fuzzer.sh BINARY CORPUS_DIR SECONDS SEED_DIRS(colon-separated)
# Copies the seeds into a working corpus, runs libFuzzer for SECONDS, and fails on any finding
# (the crashing input is kept as crash-* in the corpus folder and printed as hex).
set -euo pipefail
bin=$1 corpus=$2 seconds=$3 seeds=$4
mkdir -p "$corpus"
IFS=: read -ra dirs <<<"$seeds"
for d in "${dirs[@]}"; do [ -d "$d" ] && cp -f "$d"/* "$corpus"/ 2>/dev/null || true; done
cd "$corpus"
rc=0
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -print_final_stats=1 "$corpus" 2>fuzz.log || rc=$?
grep -E 'stat::number_of_executed_units|Done [0-9]+ runs|cov:' fuzz.log | tail -n 2
if [ $rc -ne 0 ]; then
  tail -n 40 fuzz.log
  for f in crash-* leak-* timeout-* oom-*; do [ -e "$f" ] && { echo "finding: $PWD/$f"; xxd "$f" | head -20; }; done
fi
exit $rc
