#!/usr/bin/env bash
# The three binaries: common flags, --help, --version, exit codes, and configuration errors
# that name the key path.
. "$(dirname "$0")/../lib/dx.sh"
t_begin
B=$DXSYNC_BIN
P=$B/producer/dxsync-producer C=$B/consumer/dxsync-consumer N=$B/consumer/dxsync-notifier

cat >"$T_TMP/good.json" <<JSON
{ "kafka": {"brokers": "$DXSYNC_KAFKA_BROKERS"},
  "instances": [
    {"name": "a", "url": "$DXSYNC_A_URL", "token": "\${CLI_TOKEN_A}", "database": "$DXSYNC_A_DB_URL"},
    {"name": "b", "url": "$DXSYNC_B_URL", "token": "\${CLI_TOKEN_B}", "database": "$DXSYNC_B_DB_URL"}],
  "routes": [{"from": "a", "to": "b", "collections": [{"collection": "articles", "fields": ["title"]}]}] }
JSON
export CLI_TOKEN_A=token-a-secret-value CLI_TOKEN_B=token-b-secret-value
# the same with a route that notifies a user of a (the notifier writes into a)
sed 's/"fields": \["title"\]}\]}/"fields": ["title"]}], "notify": ["6c8a3c3e-1d2b-4c1a-9d55-8f1f7c2b0a11"]}/' \
  "$T_TMP/good.json" >"$T_TMP/notify.json"

for bin in "$P" "$C" "$N"; do
  name=$(basename "$bin")
  expect_exit 0 "$name --help" "$bin" --help
  expect_output "Usage:" "$name --help shows usage"
  expect_output "--metrics-addr" "$name --help lists the common flags"
  expect_exit 0 "$name --version" "$bin" --version
  expect_output "^$name [0-9]+\.[0-9]+\.[0-9]+" "$name --version prints the version"
  expect_exit 2 "$name with an unknown flag" "$bin" --bogus
  expect_output "unknown option \"--bogus\"" "$name names the unknown flag"
  expect_exit 2 "$name with a missing config" "$bin" --config "$T_TMP/none.json"
  expect_output "none.json: cannot open" "$name names the missing file"
  # each needs its own secrets: the producer of b and the consumer of b b's token, the notifier
  # the token of a, where the route's notification goes
  case $name in
    dxsync-producer) args=(--config "$T_TMP/good.json" --instance b) var=CLI_TOKEN_B key="instances\[1\]" ;;
    dxsync-consumer) args=(--config "$T_TMP/good.json" --remote b) var=CLI_TOKEN_B key="instances\[1\]" ;;
    *) args=(--config "$T_TMP/notify.json") var=CLI_TOKEN_A key="instances\[0\]" ;;
  esac
  saved=${!var}
  unset "$var"
  expect_exit 2 "$name with its own token's variable unset" "$bin" "${args[@]}"
  expect_output "$key\.token: environment variable $var is not set" "$name names the key path"
  export "$var=$saved"
  expect_exit 2 "$name with a bad --log-level" "$bin" --config "$T_TMP/good.json" --log-level loud
  expect_exit 2 "$name with a bad --metrics-addr" "$bin" --config "$T_TMP/good.json" --metrics-addr nope
done

# A max.poll.interval.ms shorter than a rebalance can take (request_timeout_ms 30 s + 2 s + DLQ
# 5 s + commit 60 s) is said at start-up, before Kafka is reached.
sed 's/"brokers": "[^"]*"}/"brokers": "127.0.0.1:1", "properties": {"max.poll.interval.ms": "20000"}}/' \
  "$T_TMP/good.json" >"$T_TMP/short_poll.json"
timeout -s TERM 5 "$C" --config "$T_TMP/short_poll.json" --remote b >"$T_TMP/short_poll.log" 2>&1 || true
check "the consumer says when max.poll.interval.ms is shorter than a rebalance can block" \
  grep -q "event=max_poll_interval_short max_poll_interval_ms=20000 longest_block_ms=97000" "$T_TMP/short_poll.log"
timeout -s TERM 5 "$C" --config "$T_TMP/good.json" --remote b >"$T_TMP/default_poll.log" 2>&1 || true
check "and says nothing with the default" bash -c "! grep -q max_poll_interval_short \"\$1\"" _ "$T_TMP/default_poll.log"

# status, replay, audit and dlq list talk to Kafka alone: unset token and database variables
# do not stop them; every other command names the first unset one.
sed -e 's/"token": "[^"]*"/"token": "${CLI_UNSET_TOKEN}"/g' \
  -e "s|\"database\": \"$DXSYNC_A_DB_URL\"|\"database\": \"\${CLI_UNSET_DB}\"|" \
  "$T_TMP/good.json" >"$T_TMP/unset.json"
unset CLI_UNSET_TOKEN CLI_UNSET_DB
expect_exit 0 "consumer status with the token variables unset" "$C" --config "$T_TMP/unset.json" --remote b status
expect_output "^TOTAL" "status prints its table"
expect_exit 0 "consumer dlq list with the token variables unset" "$C" --config "$T_TMP/unset.json" --remote b dlq list
expect_output "dead letters" "dlq list answers"
"$C" --config "$T_TMP/unset.json" audit --source a --collection articles --key 1 >"$T_TMP/audit.out" 2>&1 || true
check "consumer audit with the token variables unset does not ask for them" \
  bash -c '! grep -q "not set" "$1"' _ "$T_TMP/audit.out"
expect_exit 2 "consumer run with the token variables unset" "$C" --config "$T_TMP/unset.json" --remote b
expect_output "instances\[1\]\.token: environment variable CLI_UNSET_TOKEN is not set" "run names its remote's"
expect_exit 2 "producer with its database variable unset" "$P" --config "$T_TMP/unset.json" --instance a
expect_output "environment variable CLI_UNSET_TOKEN is not set" "the producer names it"

# A process needs only its own secrets (issue 28): with every variable of the other instance
# unset, the producer of a checks a, the consumer of b runs, the notifier writes into a.
sed -e 's/"token": "\${CLI_TOKEN_B}"/"token": "${CLI_UNSET_TOKEN}"/' \
  -e "s|\"database\": \"$DXSYNC_B_DB_URL\"|\"database\": \"\${CLI_UNSET_DB}\"|" \
  "$T_TMP/notify.json" >"$T_TMP/only_a.json"
sed -e 's/"token": "\${CLI_TOKEN_A}"/"token": "${CLI_UNSET_TOKEN}"/' \
  -e "s|\"database\": \"$DXSYNC_A_DB_URL\"|\"database\": \"\${CLI_UNSET_DB}\"|" \
  "$T_TMP/good.json" >"$T_TMP/only_b.json"
"$P" --config "$T_TMP/only_a.json" --instance a check >"$T_TMP/only.p" 2>&1 || true
check "the producer of a needs none of b's secrets" bash -c '! grep -q "not set" "$1" && grep -q "database of a is reachable" "$1"' _ "$T_TMP/only.p"
timeout -s TERM 5 "$C" --config "$T_TMP/only_b.json" --remote b >"$T_TMP/only.c" 2>&1 || true
check "the consumer of b needs none of a's secrets" bash -c '! grep -q "not set" "$1" && grep -q "event=started" "$1"' _ "$T_TMP/only.c"
timeout -s TERM 5 "$N" --config "$T_TMP/only_a.json" >"$T_TMP/only.n" 2>&1 || true
check "the notifier needs only the token of the instance it notifies in" bash -c '! grep -q "not set" "$1" && grep -q "event=started" "$1"' _ "$T_TMP/only.n"
sed 's/"collections": \[{"collection": "articles", "fields": \["title"\]}\]/"collections": [{"collection": "articles", "fields": ["title"]}, {"collection": "directus_files", "fields": ["title"]}]/' \
  "$T_TMP/only_b.json" >"$T_TMP/files_b.json"
expect_exit 2 "the consumer of b fetching a's files needs a's token" "$C" --config "$T_TMP/files_b.json" --remote b
expect_output "instances\[0\]\.token: environment variable CLI_UNSET_TOKEN is not set \(route a -> b carries directus_files" "it says why"

expect_exit 2 "dlq without an action" "$C" --config "$T_TMP/good.json" --remote b dlq
expect_output "dlq needs an action: list, redrive" "dlq names its actions"

DXSYNC_CONFIG=$T_TMP/none.json expect_exit 2 "DXSYNC_CONFIG is the default config path" "$P" --instance a
expect_output "none.json" "DXSYNC_CONFIG path named"
expect_exit 2 "producer without --instance" "$P" --config "$T_TMP/good.json"
expect_output "--instance NAME is required" "producer asks for --instance"
expect_exit 2 "producer with an unknown instance" "$P" --config "$T_TMP/good.json" --instance zz
expect_output "\"zz\" is not in" "producer names the unknown instance"
expect_exit 2 "producer with an unknown subcommand" "$P" --config "$T_TMP/good.json" --instance a explode
expect_output "unknown subcommand \"explode\"" "producer names the unknown subcommand"
expect_exit 2 "consumer without --remote" "$C" --config "$T_TMP/good.json" status
expect_exit 2 "consumer with an unknown remote" "$C" --config "$T_TMP/good.json" --remote zz

sed 's/"fields": \["title"\]/"fields": []/' "$T_TMP/good.json" >"$T_TMP/bad.json"
expect_exit 2 "an empty field list" "$C" --config "$T_TMP/bad.json" --remote b
expect_output "routes\[0\]\.collections\[0\]\.fields: must not be empty" "the empty field list is named"
if grep -q "secret-value" "$T_TMP/out"; then fail "a token leaked into the output"; else pass "no token in the output"; fi
finish
