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

# upload INSTANCE TOKEN METHOD PATH FILE TYPE NAME [FIELD=VALUE]...: a multipart upload as the app
# sends it (form fields before the file), status and body as api's.
upload() {
  local inst=$1 token=$2 method=$3 path=$4 file=$5 type=$6 fname=$7; shift 7
  local url_var args=() f
  url_var="DXSYNC_$(echo "$inst" | tr '[:lower:]' '[:upper:]')_URL"
  for f in "$@"; do args+=(-F "$f"); done
  API_STATUS=000 API_BODY=
  curl -sS -X "$method" -H "Authorization: Bearer $token" --max-time 60 "${args[@]}" \
    -F "file=@$file;type=$type;filename=$fname" -w '\n%{http_code}' "${!url_var}$path" >"$T_TMP/api" || return 0
  API_STATUS=$(tail -n 1 "$T_TMP/api")
  API_BODY=$(sed '$d' "$T_TMP/api")
}
# asset_sha INSTANCE TOKEN ID: SHA-256 of GET /assets/ID, or the status when it is not 200.
asset_sha() {
  local url_var code
  url_var="DXSYNC_$(echo "$1" | tr '[:lower:]' '[:upper:]')_URL"
  code=$(curl -sS -o "$T_TMP/asset" -w '%{http_code}' -H "Authorization: Bearer $2" "${!url_var}/assets/$3")
  [ "$code" = 200 ] && sha256sum <"$T_TMP/asset" | cut -d' ' -f1 || echo "$code"
}

# What a file's transfer relies on (issue 13), as the sync user.
selftest_files() {
  local n=$1 N
  N=$(echo "$n" | tr '[:lower:]' '[:upper:]')
  local -n sync=DXSYNC_${N}_SYNC_TOKEN sync_id=DXSYNC_${N}_SYNC_USER_ID db=DXSYNC_${N}_DB_URL
  local id missing last got orphan
  id=$(uuid) missing=$(uuid)
  last=$(psql_q "$db" "SELECT coalesce(max(id), 0) FROM directus_activity")
  head -c 70000 /dev/urandom >"$T_TMP/one.bin"
  head -c 50000 /dev/urandom >"$T_TMP/two.bin"

  upload "$n" "$sync" POST '/files?fields=id,filesize' "$T_TMP/one.bin" application/octet-stream one.bin "id=$id"
  expect "$n" "sync uploads a file with a given id (POST /files, id before the file)" 200
  check "$n: the upload keeps the id it was given" test "$(json 'j["data"]["id"]' <<<"$API_BODY" 2>/dev/null)" = "$id"
  check "$n: /assets serves the bytes uploaded" test "$(asset_sha "$n" "$sync" "$id")" = "$(sha256sum <"$T_TMP/one.bin" | cut -d' ' -f1)"
  upload "$n" "$sync" POST /files "$T_TMP/one.bin" application/octet-stream one.bin "id=$id"
  expect "$n" "sync uploads again with an existing id" 400 RECORD_NOT_UNIQUE
  upload "$n" "$sync" PATCH "/files/$id?fields=id,filesize,type" "$T_TMP/two.bin" text/plain two.txt
  expect "$n" "sync replaces a file's bytes (PATCH /files/<id>, multipart)" 200
  check "$n: the replacement keeps the id, takes the new size and type" \
    test "$(json '[j["data"]["id"], str(j["data"]["filesize"]), j["data"]["type"]]' <<<"$API_BODY" 2>/dev/null)" = "[\"$id\", \"50000\", \"text/plain\"]"
  check "$n: /assets serves the new bytes" test "$(asset_sha "$n" "$sync" "$id")" = "$(sha256sum <"$T_TMP/two.bin" | cut -d' ' -f1)"
  call "$n" "$sync" GET "/files/$missing?fields=id"
  expect "$n" "sync reads a missing file" 403 FORBIDDEN
  call "$n" "$sync" GET '/files?fields=id&limit=1'
  expect "$n" "sync lists files" 200
  # a multipart PATCH of a missing id does not fail first: it stores the bytes as a new file
  # with a new id, then answers 403 (dxsync asks whether the file exists before it uploads)
  upload "$n" "$sync" PATCH "/files/$missing" "$T_TMP/one.bin" application/octet-stream orphan.bin
  expect "$n" "sync replaces a missing file" 403 FORBIDDEN
  orphan=$(psql_q "$db" "SELECT id FROM directus_files WHERE filename_download = 'orphan.bin' AND uploaded_by = '$sync_id' ORDER BY created_on DESC LIMIT 1")
  check "$n: ... after storing the bytes under another id ($orphan)" test -n "$orphan" -a "$orphan" != "$missing"
  [ -z "$orphan" ] || call "$n" "$sync" DELETE "/files/$orphan"
  call "$n" "$sync" PATCH "/files/$id" '{"title":"renamed"}'
  expect "$n" "sync edits a file's metadata (PATCH /files/<id>, JSON)" 200
  call "$n" "$sync" DELETE "/files/$id"
  expect "$n" "sync deletes a file" 204
  check "$n: a deleted file's bytes are gone from /assets" test "$(asset_sha "$n" "$sync" "$id")" = 403

  # The activity rows the capture reads: an upload is a create whose revision has no size yet
  # (the row is committed before the bytes are stored); a replacement is an update naming
  # filename_disk, then an update without it once the bytes are in place.
  got=$(psql_q "$db" "SELECT string_agg(a.action || ':' || coalesce(r.delta::jsonb ? 'filename_disk', false)::text
                                        || ':' || coalesce(r.data::jsonb ? 'filesize', false)::text, ' ' ORDER BY a.id)
                      FROM directus_activity a LEFT JOIN directus_revisions r ON r.activity = a.id
                      WHERE a.id > $last AND a.user = '$sync_id' AND a.item = '$id'")
  check "$n: activity of an upload, a replacement, an edit and a delete: $got" \
    test "$got" = "create:false:false update:true:true update:false:true update:false:true delete:false:false"
}

names=("$@")
[ ${#names[@]} -gt 0 ] || read -r -a names <<<"$DXSYNC_INSTANCES"
for name in "${names[@]}"; do selftest "$name"; selftest_files "$name"; done
finish
