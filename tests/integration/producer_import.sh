#!/usr/bin/env bash
# `dxsync-producer import-extension-config`: the hook extension's data_sync_remote_sources
# (published rows; url, schema, users_notification) become routes; an unknown url is named;
# tokens are not printed.
. "$(dirname "$0")/../lib/dx.sh"
t_begin
P=$DXSYNC_BIN/producer/dxsync-producer
DB=$DXSYNC_A_DB_URL
psql_q "$DB" "
DROP TABLE IF EXISTS data_sync_remote_sources_directus_users, data_sync_remote_sources;
CREATE TABLE data_sync_remote_sources (id uuid PRIMARY KEY, status varchar(255) DEFAULT 'draft',
  url varchar(255) UNIQUE, api_key varchar(255), schema json);
CREATE TABLE data_sync_remote_sources_directus_users (id serial PRIMARY KEY,
  data_sync_remote_sources_id uuid REFERENCES data_sync_remote_sources(id),
  directus_users_id uuid REFERENCES directus_users(id));
INSERT INTO data_sync_remote_sources VALUES
  ('11111111-1111-1111-1111-111111111111', 'published', '$DXSYNC_B_URL/', 'secret-api-key-b',
   '[{\"collection\":\"articles\",\"fields\":[\"title\",\"body\"]}]'),
  ('22222222-2222-2222-2222-222222222222', 'published', 'https://unknown.example.com', 'secret-api-key-x',
   '[{\"collection\":\"articles\",\"fields\":[\"title\"]}]'),
  ('33333333-3333-3333-3333-333333333333', 'draft', 'https://draft.example.com', 'secret-api-key-d', '[]');
INSERT INTO data_sync_remote_sources_directus_users (data_sync_remote_sources_id, directus_users_id) VALUES
  ('11111111-1111-1111-1111-111111111111', '$DXSYNC_A_EDITOR1_ID'),
  ('11111111-1111-1111-1111-111111111111', '$DXSYNC_A_EDITOR2_ID');" >/dev/null
cat >"$T_TMP/cfg.json" <<JSON
{ "kafka": {"brokers": "$DXSYNC_KAFKA_BROKERS"},
  "instances": [
    {"name": "a", "url": "$DXSYNC_A_URL", "token": "t", "database": "$DB"},
    {"name": "b", "url": "$DXSYNC_B_URL", "token": "t"}],
  "routes": [] }
JSON
"$P" --config "$T_TMP/cfg.json" --instance a import-extension-config >"$T_TMP/routes.json" 2>"$T_TMP/err" && rc=0 || rc=$?
check "exit 1 while a url has no instance" test "$rc" = 1
check "the unknown url is named" grep -q "problem: no configured instance has url https://unknown.example.com" "$T_TMP/err"
check "the draft source is not imported" bash -c "! grep -q draft '$T_TMP/routes.json' '$T_TMP/err'"
check "no api key printed" bash -c "! grep -q secret-api-key '$T_TMP/routes.json' '$T_TMP/err'"
got=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["routes"], sort_keys=True))' "$T_TMP/routes.json")
want=$(python3 -c 'import json,sys; print(json.dumps([{"from":"a","to":"b","collections":[{"collection":"articles","fields":["title","body"]}],"notify":sorted(sys.argv[1:])}], sort_keys=True))' "$DXSYNC_A_EDITOR1_ID" "$DXSYNC_A_EDITOR2_ID")
got_sorted=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); [x.__setitem__("notify", sorted(x["notify"])) for x in r]; print(json.dumps(r, sort_keys=True))' "$got")
check "the published source for b becomes the route a -> b" test "$got_sorted" = "$want"
# The printed routes are a valid configuration with the instances.
python3 - "$T_TMP/cfg.json" "$T_TMP/routes.json" >"$T_TMP/merged.json" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1])); cfg["routes"] = json.load(open(sys.argv[2]))["routes"]
print(json.dumps(cfg))
PY
expect_exit 2 "the merged configuration loads (and only misses the database of b for a check)" \
  "$DXSYNC_BIN/consumer/dxsync-consumer" --config "$T_TMP/merged.json" --remote zz status
expect_output "--remote: \"zz\" is not in" "the merged routes validate"
psql_q "$DB" "DROP TABLE data_sync_remote_sources_directus_users, data_sync_remote_sources" >/dev/null
finish
