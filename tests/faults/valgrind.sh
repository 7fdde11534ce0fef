#!/usr/bin/env bash
# One full producer -> Kafka -> consumer run under valgrind memcheck: changes made on a reach
# b, both processes stop on SIGTERM, and memcheck reports no invalid access and no leak.
. "$(dirname "$0")/../lib/dx.sh"
t_begin
command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 1; }
PREFIX=vg$(date +%s%N | tail -c 9)
DB=$DXSYNC_A_DB_URL
psql_q "$DB" "select pg_drop_replication_slot('dxsync_a') from pg_replication_slots where slot_name='dxsync_a'" >/dev/null
cat >"$T_TMP/cfg.json" <<JSON
{ "kafka": {"brokers": "$DXSYNC_KAFKA_BROKERS", "topic_prefix": "$PREFIX", "partitions": 2},
  "instances": [
    {"name": "a", "url": "$DXSYNC_A_URL", "token": "$DXSYNC_A_SYNC_TOKEN", "database": "$DB"},
    {"name": "b", "url": "$DXSYNC_B_URL", "token": "$DXSYNC_B_SYNC_TOKEN"}],
  "routes": [{"from": "a", "to": "b", "collections": [{"collection": "articles", "fields": ["title", "rating"]}]}] }
JSON
VG=(valgrind --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite
    --error-exitcode=99 --num-callers=30)
start_proc producer "${VG[@]}" --log-file="$T_TMP/vg-producer.txt" "$DXSYNC_BIN/producer/dxsync-producer" --config "$T_TMP/cfg.json" --instance a
start_proc consumer "${VG[@]}" --log-file="$T_TMP/vg-consumer.txt" "$DXSYNC_BIN/consumer/dxsync-consumer" --config "$T_TMP/cfg.json" --remote b
check "the producer streams under valgrind" wait_for 120 grep -q event=streaming "$T_TMP/producer.log"
check "the consumer runs under valgrind" wait_for 120 grep -q event=partition_assigned "$T_TMP/consumer.log"
ids=()
for n in $(seq 1 10); do
  id=$(python3 -c 'import uuid; print(uuid.uuid4())'); ids+=("$id")
  api a "$DXSYNC_A_ADMIN_TOKEN" POST /items/articles "{\"id\":\"$id\",\"title\":\"vg $n\",\"rating\":$n}" >/dev/null
done
api a "$DXSYNC_A_ADMIN_TOKEN" PATCH "/items/articles/${ids[0]}" '{"title":"vg edited"}' >/dev/null
api a "$DXSYNC_A_ADMIN_TOKEN" DELETE "/items/articles/${ids[1]}" >/dev/null
arrived() {
  api b "$DXSYNC_B_ADMIN_TOKEN" GET "/items/articles/${ids[0]}?fields=title" 2>/dev/null | grep -q 'vg edited' &&
  ! api b "$DXSYNC_B_ADMIN_TOKEN" GET "/items/articles/${ids[1]}" >/dev/null 2>&1 &&
  api b "$DXSYNC_B_ADMIN_TOKEN" GET "/items/articles/${ids[9]}?fields=rating" 2>/dev/null | grep -q '"rating":10'
}
check "changes reach b through both processes under valgrind" wait_for 180 arrived
for p in consumer producer; do
  stop_proc "$p" TERM 60
  check "$p exits 0 under valgrind (got $STOP_RC)" test "$STOP_RC" = 0
  errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$T_TMP/vg-$p.txt" | tail -n 1)
  check "$p: memcheck reports no invalid access and no definite leak (${errs:-?} errors)" test "${errs:-1}" = 0
  [ "${errs:-1}" = 0 ] || grep -A12 -E 'Invalid|definitely lost' "$T_TMP/vg-$p.txt" | head -40
  grep -E 'definitely lost|indirectly lost|ERROR SUMMARY' "$T_TMP/vg-$p.txt" | sed 's/^==[0-9]*== /     /'
done
finish
