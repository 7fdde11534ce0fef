#!/usr/bin/env bash
# dxsync-consumer check against the live Directus b: one situation per finding (unreachable,
# invalid token, an admin's token, a routed collection missing, a routed field missing, an
# alias field routed, a missing delete permission), each reported on a "problem: ..." line of
# its own (the producer's check shape: "ok: ..." lines, then "N problems found") with exit 1;
# a correct setup exits 0. The misconfigured collection is a separate one, created here and
# dropped at the end.
. "$(dirname "$0")/../lib/dx.sh"
t_begin
c_init
CK="dxck${C_RUNID}"
cleanup() {
  api b "$DXSYNC_B_ADMIN_TOKEN" DELETE "/collections/$CK" >/dev/null 2>&1 || true
  local ids
  ids=$(api b "$DXSYNC_B_ADMIN_TOKEN" GET "/permissions?filter%5Bcollection%5D%5B_eq%5D=$CK&fields=id&limit=-1" 2>/dev/null | json '",".join(str(p["id"]) for p in j["data"])' 2>/dev/null || true)
  [ -n "$ids" ] && api b "$DXSYNC_B_ADMIN_TOKEN" DELETE /permissions "[$ids]" >/dev/null 2>&1
}
at_exit cleanup

# variant FILE EDIT: the good configuration with a sed edit applied.
c_config "$T_TMP/good.json"
variant() { sed -e "$2" "$T_TMP/good.json" >"$T_TMP/$1"; }
run_check() { "$C_BIN" --config "$T_TMP/$1" --remote b check; }
problems() { grep -c '^problem: ' "$T_TMP/out"; }

expect_exit 0 "a correct setup has no findings" run_check good.json
expect_output "^0 problems found$" "it says so"
expect_output "^ok: directus $DXSYNC_B_URL answers$" "it says what passed"
check "no problem line" test "$(problems)" -eq 0
expect_output "^ok: the clock of a's database is [0-9]+ ms (ahead of|behind) this host's \(\+/- [0-9]+ ms; at most 5000 allowed\)$" \
  "the source database's clock is compared with this host's"

variant down.json "s|\"url\": \"$DXSYNC_B_URL\"|\"url\": \"http://127.0.0.1:9\"|"
expect_exit 1 "an unreachable remote is a finding" run_check down.json
expect_output "^problem: directus http://127.0.0.1:9 is not reachable: " "unreachable is reported"
check "unreachable is the only problem" test "$(problems)" -eq 1
expect_output "^1 problem found$" "and counted"

variant badtoken.json "s|$DXSYNC_B_SYNC_TOKEN|not-a-token-$C_RUNID|"
expect_exit 1 "an invalid token is a finding" run_check badtoken.json
expect_output "^problem: instances\[b\]\.token is not valid on .* \(GET /users/me: HTTP 401" "the invalid token is reported"
if grep -q "not-a-token" "$T_TMP/out"; then fail "the token leaked into the output"; else pass "the token is not printed"; fi

variant admin.json "s|$DXSYNC_B_SYNC_TOKEN|$DXSYNC_B_ADMIN_TOKEN|"
expect_exit 1 "an admin's token is a finding" run_check admin.json
expect_output "^problem: the token of b belongs to an admin" "the admin token is reported"
check "the admin token is the only finding" test "$(problems)" -eq 1

variant nocoll.json "s|\"collection\": \"counters\"|\"collection\": \"nosuch$C_RUNID\"|"
expect_exit 1 "a routed collection missing on the remote is a finding" run_check nocoll.json
expect_output "^problem: route a -> b: collection \"nosuch$C_RUNID\" does not exist in b" "the missing collection is named"

variant nofield.json 's|"fields": \["title", "rating"\]|"fields": ["title", "subtitle", "rating"]|'
expect_exit 1 "a routed field missing on the remote is a finding" run_check nofield.json
expect_output "^problem: route a -> b: field \"articles.subtitle\" does not exist in b$" "the missing field is named"
check "the missing field is the only finding" test "$(problems)" -eq 1

# A collection of our own: an o2m alias field, no delete permission. (Field-level permissions
# are a licensed feature of Directus 12 — RESOURCE_RESTRICTED — so test_check covers them.)
api b "$DXSYNC_B_ADMIN_TOKEN" POST /collections "{\"collection\":\"$CK\",\"meta\":{},\"schema\":{},\"fields\":[{\"field\":\"id\",\"type\":\"integer\",\"meta\":{},\"schema\":{\"is_primary_key\":true,\"has_auto_increment\":true}},{\"field\":\"label\",\"type\":\"string\",\"meta\":{},\"schema\":{}},{\"field\":\"other\",\"type\":\"string\",\"meta\":{},\"schema\":{}}]}" >/dev/null
api b "$DXSYNC_B_ADMIN_TOKEN" POST "/fields/$CK" '{"field":"kids","type":"alias","meta":{"special":["o2m"],"interface":"list-o2m"}}' >/dev/null
for a in create read update; do
  api b "$DXSYNC_B_ADMIN_TOKEN" POST /permissions "{\"policy\":\"$DXSYNC_B_SYNC_POLICY_ID\",\"collection\":\"$CK\",\"action\":\"$a\",\"fields\":[\"*\"],\"permissions\":{},\"validation\":{}}" >/dev/null
done

c_config "$T_TMP/alias.json" "$DXSYNC_B_SYNC_TOKEN" '{}' "{\"collection\": \"$CK\", \"fields\": [\"label\", \"kids\"]}"
expect_exit 1 "a routed alias field is a finding" run_check alias.json
expect_output "^problem: route a -> b: field \"$CK.kids\" is a one-to-many alias, not a column: route the junction or child collection instead$" "the alias is explained"

c_config "$T_TMP/perm.json" "$DXSYNC_B_SYNC_TOKEN" '{}' "{\"collection\": \"$CK\", \"fields\": [\"label\", \"other\"]}"
expect_exit 1 "a missing permission is a finding" run_check perm.json
expect_output "^problem: route a -> b: the sync user has no delete permission on \"$CK\" " "the missing delete permission is reported"
check "the missing delete permission is the only finding" test "$(problems)" -eq 1
finish
