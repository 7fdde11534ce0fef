#!/usr/bin/env bash
# Checks that each started and prepared Directus instance answers the way dxsync relies on
# (DESIGN.md, Capture and Apply): the sync user's writes, their activity/revision rows, the
# statuses of the upsert corner cases, and notifications. ctest integration_directus_selftest.
#
#   directus-selftest.sh [NAME...]      (default: every instance of services.env)
#
# Cleans up the items it creates (activity rows stay).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/dx.sh"
t_begin

# expect INSTANCE WHAT STATUS [CODE]: the last api call answered STATUS (and error code CODE).
expect() {
  local inst=$1 what=$2 status=$3 code=${4:-} got=
  [ -z "$code" ] || got=$(json 'j["errors"][0]["extensions"]["code"]' <<<"$API_BODY" 2>/dev/null || true)
  if [ "$API_STATUS" = "$status" ] && [ "$got" = "$code" ]; then
    pass "$inst: $what: $API_STATUS${code:+ $code}"
  else
    fail "$inst: $what: want $status${code:+ $code}, got $API_STATUS ${API_BODY:0:300}"
  fi
}
# call INSTANCE TOKEN METHOD PATH [JSON]: api without failing on an error status (see expect).
call() { api "$@" >/dev/null || true; }
uuid() { python3 -c 'import uuid; print(uuid.uuid4())'; }

selftest() {
  local n=$1 N url_var
  N=$(echo "$n" | tr '[:lower:]' '[:upper:]')
  url_var=DXSYNC_${N}_URL
  [ -n "${!url_var:-}" ] || { fail "$n: not in services.env"; return; }
  local -n sync=DXSYNC_${N}_SYNC_TOKEN admin=DXSYNC_${N}_ADMIN_TOKEN sync_id=DXSYNC_${N}_SYNC_USER_ID \
    db=DXSYNC_${N}_DB_URL editor1=DXSYNC_${N}_EDITOR1_ID
  local art missing last counter got want i n_seen token
  art=$(uuid) missing=$(uuid)
  last=$(psql_q "$db" "SELECT coalesce(max(id), 0) FROM directus_activity")

  call "$n" "$sync" GET '/users/me?fields=id'
  check "$n: the sync token is the sync user's" test "$(json 'j["data"]["id"]' <<<"$API_BODY")" = "$sync_id"

  call "$n" "$sync" POST /items/articles "{\"id\":\"$art\",\"title\":\"t1\",\"body\":\"b1\",\"rating\":1}"
  expect "$n" "sync create with explicit uuid" 200
  call "$n" "$sync" PATCH "/items/articles/$art" '{"title":"t2"}'
  expect "$n" "sync update" 200
  call "$n" "$sync" POST /items/counters '{"name":"n1","value":1}'
  expect "$n" "sync create counter" 200
  counter=$(json 'j["data"]["id"]' <<<"$API_BODY" 2>/dev/null || echo none)

  call "$n" "$sync" POST /items/articles "{\"id\":\"$art\",\"title\":\"dup\"}"
  expect "$n" "sync create of an existing key" 400 RECORD_NOT_UNIQUE
  call "$n" "$sync" PATCH "/items/articles/$missing" '{"title":"x"}'
  expect "$n" "sync update of a missing item" 403 FORBIDDEN
  call "$n" "$sync" DELETE "/items/articles/$missing"
  expect "$n" "sync delete of a missing item" 403 FORBIDDEN
  call "$n" "$sync" PATCH /items/articles "[{\"id\":\"$art\",\"title\":\"t3\"},{\"id\":\"$missing\",\"title\":\"x\"}]"
  expect "$n" "sync batch update with a missing key" 403 FORBIDDEN
  call "$n" "$sync" PATCH "/items/articles/$art" '{"rating":"abc"}'
  expect "$n" "sync string into an integer field" 500 INTERNAL_SERVER_ERROR
  call "$n" "$sync" PATCH "/items/articles/$art" '{"rating":99999999999}'
  expect "$n" "sync integer out of range" 400 VALUE_OUT_OF_RANGE
  call "$n" "$admin" PATCH "/items/articles/$missing" '{"title":"x"}'
  expect "$n" "admin update of a missing item" 204
  call "$n" "$admin" PATCH /items/articles "[{\"id\":\"$art\",\"title\":\"t4\"},{\"id\":\"$missing\",\"title\":\"x\"}]"
  expect "$n" "admin batch update with a missing key" 200
  check "$n: admin batch update: the missing key is absent from data" \
    test "$(json '[i["id"] for i in j["data"]]' <<<"$API_BODY" 2>/dev/null)" = "[\"$art\"]"

  call "$n" "$sync" DELETE "/items/articles/$art"
  expect "$n" "sync delete" 204
  call "$n" "$sync" DELETE /items/counters "[$counter]"
  expect "$n" "sync batch delete" 204

  # Activity and revisions of the sync user's changes, in order.
  got=$(psql_q "$db" "SELECT string_agg(a.action || ':' || a.collection || ':' || (r.id IS NOT NULL), ' ' ORDER BY a.id)
                      FROM directus_activity a LEFT JOIN directus_revisions r ON r.activity = a.id
                      WHERE a.id > $last AND a.user = '$sync_id'")
  want="create:articles:true update:articles:true create:counters:true delete:articles:false delete:counters:false"
  check "$n: activity of the sync user: $got" test "$got" = "$want"

  # Notifications: written by the sync user, read by their recipient only.
  call "$n" "$sync" POST /notifications \
    "{\"recipient\":\"$editor1\",\"subject\":\"selftest $art\",\"message\":\"**md**\",\"collection\":\"articles\",\"item\":\"$art\"}"
  expect "$n" "sync creates a notification" 200
  for i in 1 2; do
    local -n email=DXSYNC_${N}_EDITOR${i}_EMAIL password=DXSYNC_${N}_EDITOR${i}_PASSWORD
    call "$n" "" POST /auth/login "{\"email\":\"$email\",\"password\":\"$password\"}"
    expect "$n" "editor$i logs in" 200
    token=$(json 'j["data"]["access_token"]' <<<"$API_BODY" 2>/dev/null || echo none)
    call "$n" "$token" GET "/notifications?filter%5Bsubject%5D%5B_eq%5D=selftest%20$art&fields=id,recipient"
    n_seen=$(json 'len(j["data"])' <<<"$API_BODY" 2>/dev/null || echo "?")
    check "$n: editor$i sees $([ "$i" = 1 ] && echo "it" || echo "none of it") ($n_seen)" \
      test "$n_seen" = "$([ "$i" = 1 ] && echo 1 || echo 0)"
    unset -n email password
  done
}

names=("$@")
[ ${#names[@]} -gt 0 ] || read -r -a names <<<"$DXSYNC_INSTANCES"
for name in "${names[@]}"; do selftest "$name"; done
finish
