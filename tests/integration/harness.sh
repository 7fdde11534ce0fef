#!/usr/bin/env bash
# Proves the harness: PostgreSQL runs with wal_level=logical, and each Directus instance
# accepts an item from its sync user's token, writing activity and revision rows by that user
# in PostgreSQL (what the producer reads). Kafka is proven by test_kafka.
. "$(dirname "$0")/../lib/dx.sh"
t_begin

check "postgres wal_level is logical" test "$(psql_q "$DXSYNC_PG_URL/postgres" 'show wal_level')" = logical
check "postgres allows replication slots" test "$(psql_q "$DXSYNC_PG_URL/postgres" 'show max_replication_slots')" -ge 8

for inst in $DXSYNC_INSTANCES; do
  U=$(echo "$inst" | tr '[:lower:]' '[:upper:]')
  url_var=DXSYNC_${U}_URL; tok_var=DXSYNC_${U}_SYNC_TOKEN; uid_var=DXSYNC_${U}_SYNC_USER_ID; db_var=DXSYNC_${U}_DB_URL
  check "$inst: /server/ping answers" curl -fsS --max-time 5 -o /dev/null "${!url_var}/server/ping"
  me=$(api "$inst" "${!tok_var}" GET /users/me | json 'j["data"]["id"]') || true
  check "$inst: the sync token belongs to the sync user" test "$me" = "${!uid_var}"
  id=$(python3 -c 'import uuid; print(uuid.uuid4())')
  check "$inst: the sync user creates an article" api "$inst" "${!tok_var}" POST /items/articles \
    "{\"id\":\"$id\",\"title\":\"harness\",\"body\":\"b\",\"rating\":3}" >/dev/null
  n=$(psql_q "${!db_var}" "select count(*) from directus_activity a join directus_revisions r on r.activity = a.id where a.collection='articles' and a.item='$id' and a.action='create' and a.\"user\"='${!uid_var}'")
  check "$inst: activity+revision rows by the sync user ($n)" test "$n" = 1
  check "$inst: the sync user creates a counter (integer key)" api "$inst" "${!tok_var}" POST /items/counters '{"name":"c","value":1}' >/dev/null
  check "$inst: the sync user deletes the article" api "$inst" "${!tok_var}" DELETE "/items/articles/$id" >/dev/null
done
finish
