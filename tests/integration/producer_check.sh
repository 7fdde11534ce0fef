#!/usr/bin/env bash
# `dxsync-producer check`: one case per finding, against the real services (and a second,
# throwaway PostgreSQL cluster with wal_level=replica for that finding).
. "$(dirname "$0")/../lib/dx.sh"
t_begin
P=$DXSYNC_BIN/producer/dxsync-producer
ADMIN=$DXSYNC_A_ADMIN_TOKEN
DB=$DXSYNC_A_DB_URL
PGBASE=${DXSYNC_PG_URL}

# A collection whose accountability is not "all".
api a "$ADMIN" GET /collections/acct_activity >/dev/null 2>&1 || api a "$ADMIN" POST /collections \
  '{"collection":"acct_activity","schema":{},"meta":{"accountability":"activity"},"fields":[{"field":"id","type":"integer","schema":{"is_primary_key":true,"has_auto_increment":true}},{"field":"name","type":"string"}]}' >/dev/null
# A database user without REPLICATION, SUPERUSER or table ownership.
psql_q "$DB" "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname='dxcheck') THEN CREATE ROLE dxcheck LOGIN; END IF; END \$\$" >/dev/null

# cfg NAME URL TOKEN DATABASE COLLECTIONS_JSON: writes $T_TMP/NAME.json with instance "chk"
# (its slot dxsync_chk does not exist) routed to b.
cfg() {
  cat >"$T_TMP/$1.json" <<JSON
{ "kafka": {"brokers": "$DXSYNC_KAFKA_BROKERS"},
  "instances": [
    {"name": "chk", "url": "$2", "token": "$3", "database": "$4"},
    {"name": "b", "url": "$DXSYNC_B_URL", "token": "t"}],
  "routes": [{"from": "chk", "to": "b", "collections": $5}] }
JSON
}
GOOD='[{"collection": "articles", "fields": ["title", "rating"]}]'

cfg good "$DXSYNC_A_URL" "$DXSYNC_A_SYNC_TOKEN" "$DB" "$GOOD"
expect_exit 0 "a correct set-up has no problem" "$P" --config "$T_TMP/good.json" --instance chk check
expect_output "^0 problems found" "says so"

cfg nodb "$DXSYNC_A_URL" "$DXSYNC_A_SYNC_TOKEN" "postgresql://postgres:hunter2pw@127.0.0.1:1/x" "$GOOD"
expect_exit 1 "unreachable database" "$P" --config "$T_TMP/nodb.json" --instance chk check
expect_output "^problem: database of chk .* is not reachable" "names the unreachable database"
if grep -q hunter2pw "$T_TMP/out"; then fail "the database password leaked"; else pass "no password in the output"; fi

cfg nodx "http://127.0.0.1:1" "$DXSYNC_A_SYNC_TOKEN" "$DB" "$GOOD"
expect_exit 1 "unreachable Directus" "$P" --config "$T_TMP/nodx.json" --instance chk check
expect_output "^problem: directus http://127.0.0.1:1 is not reachable" "names the unreachable Directus"

cfg badtoken "$DXSYNC_A_URL" "not-a-token" "$DB" "$GOOD"
expect_exit 1 "invalid token" "$P" --config "$T_TMP/badtoken.json" --instance chk check
expect_output "^problem: instances\[chk\]\.token is not valid" "names the invalid token"

cfg admin "$DXSYNC_A_URL" "$ADMIN" "$DB" "$GOOD"
expect_exit 1 "an admin's token" "$P" --config "$T_TMP/admin.json" --instance chk check
expect_output "^problem: the token of chk belongs to an admin" "refuses the admin token"

cfg priv "$DXSYNC_A_URL" "$DXSYNC_A_SYNC_TOKEN" "postgresql://dxcheck@127.0.0.1:${DXSYNC_PG_PORT:-25432}/${DXSYNC_A_DB_URL##*/}" "$GOOD"
expect_exit 1 "a database user without privileges" "$P" --config "$T_TMP/priv.json" --instance chk check
expect_output "^problem: the database user has neither SUPERUSER nor REPLICATION" "names the missing REPLICATION"
expect_output "^problem: the database user cannot create publication dxsync_chk" "names the missing publication rights"

cfg nocoll "$DXSYNC_A_URL" "$DXSYNC_A_SYNC_TOKEN" "$DB" '[{"collection": "no_such_things", "fields": ["x"]}]'
expect_exit 1 "a routed collection that does not exist" "$P" --config "$T_TMP/nocoll.json" --instance chk check
expect_output "^problem: route chk -> b: collection \"no_such_things\" does not exist" "names the collection"

cfg acct "$DXSYNC_A_URL" "$DXSYNC_A_SYNC_TOKEN" "$DB" '[{"collection": "acct_activity", "fields": ["name"]}]'
expect_exit 1 "accountability not all" "$P" --config "$T_TMP/acct.json" --instance chk check
expect_output "^problem: collection \"acct_activity\": accountability is \"activity\"" "names the accountability"

cfg nofield "$DXSYNC_A_URL" "$DXSYNC_A_SYNC_TOKEN" "$DB" '[{"collection": "articles", "fields": ["title", "subtitle"]}]'
expect_exit 1 "a routed field that does not exist" "$P" --config "$T_TMP/nofield.json" --instance chk check
expect_output "^problem: route chk -> b: field \"articles.subtitle\" does not exist" "names the field"
expect_output "^1 problem found" "only that problem"

# wal_level=replica: a second throwaway cluster, started and stopped by the harness script.
export DXSYNC_RUN=$T_TMP/pgreplica DXSYNC_PG_PORT=$(( ${DXSYNC_PG_PORT:-25432} + 7 )) DXSYNC_PG_WAL_LEVEL=replica
mkdir -p "$DXSYNC_RUN"; chmod 755 "$T_TMP" "$DXSYNC_RUN"
if "$DXSYNC_SOURCE/tests/harness/postgres.sh" start >/dev/null 2>"$T_TMP/pg.err"; then
  cfg wal "$DXSYNC_A_URL" "$DXSYNC_A_SYNC_TOKEN" "postgresql://postgres@127.0.0.1:$DXSYNC_PG_PORT/postgres" "$GOOD"
  expect_exit 1 "wal_level is not logical" "$P" --config "$T_TMP/wal.json" --instance chk check
  expect_output "^problem: wal_level is \"replica\": set wal_level = logical" "names wal_level"
  "$DXSYNC_SOURCE/tests/harness/postgres.sh" stop
else
  fail "could not start the wal_level=replica cluster: $(cat "$T_TMP/pg.err")"
fi
finish
