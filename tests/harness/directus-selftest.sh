#!/usr/bin/env bash
# Checks that a started and prepared instance behaves the way dxsync relies on
# (DESIGN.md, Capture and Apply): the sync user's writes, their activity/revision rows,
# the statuses of the upsert corner cases, and notifications.
#
#   directus-selftest.sh NAME      (after: directus.sh start NAME ... && directus.sh prepare NAME)
#
# Cleans up the items it creates (activity rows stay). Ends with "N passed, N failed".
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -eq 1 ] || { echo "usage: $0 NAME" >&2; exit 2; }
envfile="$DXSYNC_RUN/directus-$1.env"
[ -f "$envfile" ] || die "no $envfile"
# shellcheck disable=SC1090
source "$envfile"
[ -n "${SYNC_TOKEN:-}" ] || die "$envfile has no SYNC_TOKEN: run directus.sh prepare $1"

passed=0 failed=0
ok()   { passed=$((passed + 1)); log "ok   $*"; }
fail() { failed=$((failed + 1)); log "FAIL $*"; }

# call TOKEN METHOD PATH [JSON]: sets STATUS and BODY.
call() {
  local token=$1 method=$2 path=$3 body=${4:-} out
  out=$(mktemp)
  STATUS=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" "$URL$path" \
             ${token:+-H "Authorization: Bearer $token"} -H 'Content-Type: application/json' \
             ${body:+--data-binary "$body"})
  BODY=$(cat "$out"); rm -f "$out"
}
# field EXPR: Python expression over the last BODY (as d); '' when it cannot be evaluated.
field() { python3 -c 'import json,sys
try: print(eval(sys.argv[1], {"d": json.loads(sys.argv[2])}))
except Exception: print("")' "$1" "$BODY"; }
# expect WHAT STATUS [CODE]: the last call answered STATUS (and error code CODE).
expect() {
  local what=$1 status=$2 code=${3:-}
  if [ "$STATUS" = "$status" ] && { [ -z "$code" ] || [ "$(field 'd["errors"][0]["extensions"]["code"]')" = "$code" ]; }; then
    ok "$what: $STATUS${code:+ $code}"
  else
    fail "$what: want $status${code:+ $code}, got $STATUS ${BODY:0:300}"
  fi
}
sql() { psql -X "$DB_URL" -tAc "$1"; }
uuid() { python3 -c 'import uuid; print(uuid.uuid4())'; }

art=$(uuid) missing=$(uuid)
last=$(sql "SELECT coalesce(max(id), 0) FROM directus_activity")

call "$SYNC_TOKEN" GET '/users/me?fields=id'
[ "$(field 'd["data"]["id"]')" = "$SYNC_USER_ID" ] && ok "sync token is SYNC_USER_ID" || fail "users/me: $STATUS $BODY"

call "$SYNC_TOKEN" POST /items/articles "{\"id\":\"$art\",\"title\":\"t1\",\"body\":\"b1\",\"rating\":1}"
expect "sync create with explicit uuid" 200
call "$SYNC_TOKEN" PATCH "/items/articles/$art" '{"title":"t2"}'
expect "sync update" 200
call "$SYNC_TOKEN" POST /items/counters '{"name":"n1","value":1}'
expect "sync create counter" 200
counter=$(field 'd["data"]["id"]')

call "$SYNC_TOKEN" POST /items/articles "{\"id\":\"$art\",\"title\":\"dup\"}"
expect "sync create of an existing key" 400 RECORD_NOT_UNIQUE
call "$SYNC_TOKEN" PATCH "/items/articles/$missing" '{"title":"x"}'
expect "sync update of a missing item" 403 FORBIDDEN
call "$SYNC_TOKEN" DELETE "/items/articles/$missing"
expect "sync delete of a missing item" 403 FORBIDDEN
call "$SYNC_TOKEN" PATCH /items/articles "[{\"id\":\"$art\",\"title\":\"t3\"},{\"id\":\"$missing\",\"title\":\"x\"}]"
expect "sync batch update with a missing key" 403 FORBIDDEN
call "$SYNC_TOKEN" PATCH "/items/articles/$art" '{"rating":"abc"}'
expect "sync string into an integer field" 500 INTERNAL_SERVER_ERROR
call "$SYNC_TOKEN" PATCH "/items/articles/$art" '{"rating":99999999999}'
expect "sync integer out of range" 400 VALUE_OUT_OF_RANGE
call "$ADMIN_TOKEN" PATCH "/items/articles/$missing" '{"title":"x"}'
expect "admin update of a missing item" 204
call "$ADMIN_TOKEN" PATCH /items/articles "[{\"id\":\"$art\",\"title\":\"t4\"},{\"id\":\"$missing\",\"title\":\"x\"}]"
expect "admin batch update with a missing key" 200
[ "$(field '[i["id"] for i in d["data"]]')" = "['$art']" ] && ok "admin batch update: missing key absent from data" \
  || fail "admin batch update data: $BODY"

call "$SYNC_TOKEN" DELETE "/items/articles/$art"
expect "sync delete" 204
call "$SYNC_TOKEN" DELETE /items/counters "[$counter]"
expect "sync batch delete" 204

# Activity and revisions of the sync user's changes, in order.
got=$(sql "SELECT string_agg(a.action || ':' || a.collection || ':' || (r.id IS NOT NULL), ' ' ORDER BY a.id)
           FROM directus_activity a LEFT JOIN directus_revisions r ON r.activity = a.id
           WHERE a.id > $last AND a.user = '$SYNC_USER_ID'")
want="create:articles:true update:articles:true create:counters:true delete:articles:false delete:counters:false"
[ "$got" = "$want" ] && ok "activity of the sync user: $got" || fail "activity of the sync user: want '$want', got '$got'"

# Notifications: written by the sync user, read by their recipient only.
call "$SYNC_TOKEN" POST /notifications \
  "{\"recipient\":\"$EDITOR1_ID\",\"subject\":\"selftest $art\",\"message\":\"**md**\",\"collection\":\"articles\",\"item\":\"$art\"}"
expect "sync creates a notification" 200
for i in 1 2; do
  email_var="EDITOR${i}_EMAIL" pw_var="EDITOR${i}_PASSWORD"
  call "" POST /auth/login "{\"email\":\"${!email_var}\",\"password\":\"${!pw_var}\"}"
  expect "editor$i logs in" 200
  call "$(field 'd["data"]["access_token"]')" GET "/notifications?filter%5Bsubject%5D%5B_eq%5D=selftest%20$art&fields=id,recipient"
  n=$(field 'len(d["data"])')
  if { [ "$i" = 1 ] && [ "$n" = 1 ]; } || { [ "$i" = 2 ] && [ "$n" = 0 ]; }; then
    ok "editor$i sees $n of the notification"
  else
    fail "editor$i notifications: $STATUS $BODY"
  fi
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
