#!/usr/bin/env bash
# Kafka over SASL_SSL with least-privilege ACLs (issue 28), on a broker of its own
# (harness/kafka-secure.sh: SCRAM-SHA-512, a private CA, StandardAuthorizer, no ACL = no access):
#   - one principal per program and instance, granted exactly what `acls` prints for it;
#   - a producer whose topic is missing and who may not create it says which topic and which
#     permission (log, /healthz), and goes on once an admin creates the topics `acls` names;
#   - a -> b sync (producer a, consumer b, notifier) with those ACLs and nothing else;
#   - denied: consumer b's principal writing a's topic, producer a's reading the errors topic, a
#     wrong CA, a wrong SCRAM password: each a clear error, and nothing lost once corrected;
#   - producer a's PostgreSQL connections (replication included) with sslmode=verify-full and the
#     harness's PostgreSQL CA; a wrong CA refused by name;
#   - Directus b behind HTTPS (harness/tls-front.mjs) with a CA of its own, trusted through
#     instances[].ca_file; a wrong CA refused by name;
#   - the producer's status server over HTTPS with basic auth (web: tls_server_config,
#     basic_auth_users, as web.config); /healthz open to probes;
#   - no password, token or key in any log, /status.json or /healthz of the run.
. "$(dirname "$0")/../lib/dx.sh"
t_begin
KS=$HARNESS_DIR/kafka-secure.sh
P=$DXSYNC_BIN/producer/dxsync-producer C=$DXSYNC_BIN/consumer/dxsync-consumer N=$DXSYNC_BIN/consumer/dxsync-notifier

eval "$("$KS" start | sed 's/^/export /')"
at_exit "$KS" stop
prefix="ks$(date +%s)$$"
pw() { head -c 18 /dev/urandom | base64 | tr -d '/+='; }
export PW_PROD_A=$(pw) PW_CONS_B=$(pw) PW_NOTIF=$(pw)
printf 'user prod-a %s\nuser cons-b %s\nuser notif %s\n' "$PW_PROD_A" "$PW_CONS_B" "$PW_NOTIF" \
  | "$KS" batch >"$T_TMP/users.log" 2>&1

# Directus b over HTTPS: a CA of its own and a certificate for 127.0.0.1 (the host is verified).
tls=$T_TMP/tls
mkdir -p "$tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=dxsync test directus CA" \
  -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign' \
  -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$tls/b.key" -out "$tls/b.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$tls/ext"
openssl x509 -req -in "$tls/b.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial -days 2 \
  -extfile "$tls/ext" -out "$tls/b.pem" 2>/dev/null
hport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_proc front node "$HARNESS_DIR/tls-front.mjs" "$hport" "$DXSYNC_B_URL" "$tls/b.pem" "$tls/b.key"
check "Directus b answers over HTTPS with its CA" \
  wait_for 20 curl -fsS -o /dev/null --cacert "$tls/ca.pem" "https://127.0.0.1:$hport/server/ping"
B_HTTPS=https://127.0.0.1:$hport

# The status server's user: a bcrypt hash, as web.config keeps them.
export PW_SCRAPE=$(pw)
scrape_hash=$(python3 -W ignore -c 'import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))' "$PW_SCRAPE")

# One file for every process; each gets its own principal through the environment.
cat >"$T_TMP/dx.json" <<JSON
{ "kafka": {"brokers": "$KSEC_BROKERS", "topic_prefix": "$prefix", "partitions": 3,
    "properties": {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
      "sasl.username": "\${KS_USER}", "sasl.password": "\${KS_PASSWORD}",
      "ssl.ca.location": "\${KS_CA}"}},
  "instances": [
    {"name": "a", "url": "$DXSYNC_A_URL", "token": "\${TOKEN_A}", "database": "\${DB_A}"},
    {"name": "b", "url": "$B_HTTPS", "token": "\${TOKEN_B}", "ca_file": "\${B_CA}"}],
  "routes": [{"from": "a", "to": "b", "collections": [{"collection": "articles", "fields": ["title"]}],
              "notify": ["$DXSYNC_A_ADMIN_USER_ID"]}],
  "consumer": {"state_dir": "$T_TMP/state"},
  "web": {"tls_server_config": {"cert_file": "$tls/b.pem", "key_file": "$tls/b.key"},
          "basic_auth_users": {"prom": "$scrape_hash"}} }
JSON
export KS_CA=$KSEC_CA B_CA=$tls/ca.pem
# as_prod/as_cons/as_notif: a command run with that principal's Kafka credentials and its own
# secrets only
# (env execs the program: start_proc records its pid)
DB_A_TLS="$DXSYNC_A_DB_URL?sslmode=verify-full&sslrootcert=$DXSYNC_PG_CA"
as_prod=(env KS_USER=prod-a KS_PASSWORD="$PW_PROD_A" DB_A="$DB_A_TLS" TOKEN_A="$DXSYNC_A_SYNC_TOKEN")
as_cons=(env KS_USER=cons-b KS_PASSWORD="$PW_CONS_B" TOKEN_B="$DXSYNC_B_SYNC_TOKEN")
as_notif=(env KS_USER=notif KS_PASSWORD="$PW_NOTIF" TOKEN_A="$DXSYNC_A_SYNC_TOKEN")

# What `acls` prints, run as the admin in one JVM (kafka-secure.sh batch): the kafka-acls.sh
# lines (grant), or the kafka-topics.sh lines it prints as comments (create_topics).
grant() { "$KS" batch <"$1" >>"$T_TMP/grants.log" 2>&1; }
create_topics() { sed -n 's/^#   \(kafka-topics.sh \)/\1/p' "$1" | "$KS" batch >>"$T_TMP/topics.log" 2>&1; }
# check, before any ACL: the principal is let in, but may not even see its topic.
expect_exit 1 "producer check before its ACLs" "${as_prod[@]}" "$P" --config "$T_TMP/dx.json" --instance a check
expect_output "problem: kafka: User:prod-a may not describe topic $prefix.a.articles" "check names the topic and the principal"
expect_exit 0 "producer acls" "${as_prod[@]}" "$P" --config "$T_TMP/dx.json" --instance a acls
cp "$T_TMP/out" "$T_TMP/acls-p"
expect_exit 0 "consumer acls" "${as_cons[@]}" "$C" --config "$T_TMP/dx.json" --remote b acls
cp "$T_TMP/out" "$T_TMP/acls-c"
expect_exit 0 "notifier acls" "${as_notif[@]}" "$N" --config "$T_TMP/dx.json" acls
cp "$T_TMP/out" "$T_TMP/acls-n"
check "acls names the principal from sasl.username" grep -q "principal User:cons-b" "$T_TMP/acls-c"
check "the consumer reads a's topic and writes its dead letters" \
  bash -c "grep -q 'User:cons-b --operation Read --operation Describe --topic $prefix.a.articles' '$T_TMP/acls-c' && grep -q 'Write --operation Describe --topic $prefix.dlq.b' '$T_TMP/acls-c'"
check "the three principals exist" grep -q "users 3," "$T_TMP/users.log"
grant_all() { grant "$T_TMP/acls-p" && grant "$T_TMP/acls-c" && grant "$T_TMP/acls-n"; }
check "every ACL line acls printed was granted" grant_all

# No Create, topic missing: said, with the topic and the permission, and retried.
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
psql_q "$DXSYNC_A_DB_URL" "select pg_drop_replication_slot('dxsync_a') from pg_replication_slots where slot_name='dxsync_a'" >/dev/null
expect_exit 1 "producer check with its ACLs but no Create, topic missing" "${as_prod[@]}" "$P" --config "$T_TMP/dx.json" --instance a check
expect_output "topic $prefix.a.articles does not exist and User:prod-a may not create it" "check says which topic and which permission"
start_proc prod "${as_prod[@]}" "$P" --config "$T_TMP/dx.json" --instance a --metrics-addr "127.0.0.1:$mport"
check "the producer names the missing topic and the permission" \
  wait_for 60 proc_log_has prod "topic $prefix\\.a\\.articles does not exist and User:prod-a may not create it.*grant CREATE"
check "its /healthz says so (HTTPS, no password: probes)" bash -c "curl -s --cacert '$tls/ca.pem' 'https://127.0.0.1:$mport/healthz' | grep -q 'may not create it'"
check "its /metrics asks for a user" test "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$tls/ca.pem" "https://127.0.0.1:$mport/metrics")" = 401
check "a wrong password is refused" test "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$tls/ca.pem" -u prom:nope "https://127.0.0.1:$mport/metrics")" = 401
check "web.config's user and password open it" bash -c "curl -sf --cacert '$tls/ca.pem' -u 'prom:$PW_SCRAPE' 'https://127.0.0.1:$mport/metrics' | grep -q dxsync_healthy"
check "plain HTTP gets nothing" bash -c "! curl -sf 'http://127.0.0.1:$mport/healthz'"
check "the admin created the topics acls names" create_topics "$T_TMP/acls-c"
# and a topic of b's, which producer a must not read
echo "kafka-topics.sh --create --topic $prefix.b.articles --partitions 3" | "$KS" batch >>"$T_TMP/topics.log" 2>&1
check "the producer goes on once they exist" wait_for 60 proc_log_has prod "event=streaming"

# Wrong CA and wrong password for the consumer: a clear error, nothing applied.
start_proc cons_ca "${as_cons[@]}" KS_CA="$KSEC_WRONG_CA" "$C" --config "$T_TMP/dx.json" --remote b --member cons-ca
k1=$(python3 -c 'import uuid; print(uuid.uuid4())')
api a "$DXSYNC_A_ADMIN_TOKEN" POST /items/articles "{\"id\":\"$k1\",\"title\":\"over tls\"}" >/dev/null
check "a wrong CA: certificate verify failed, named" wait_for 30 proc_log_has cons_ca "certificate verify failed"
t=$SECONDS; stop_proc cons_ca
check "it stops on SIGTERM meanwhile ($((SECONDS - t)) s, status $STOP_RC)" test "$STOP_RC" -eq 0
start_proc cons_pw "${as_cons[@]}" KS_PASSWORD=wrong-password "$C" --config "$T_TMP/dx.json" --remote b --member cons-pw
check "a wrong SCRAM password: authentication failed, named" wait_for 30 proc_log_has cons_pw "Authentication failed"
expect_exit 1 "consumer check with the wrong password" "${as_cons[@]}" KS_PASSWORD=wrong-password TOKEN_A="$DXSYNC_A_SYNC_TOKEN" "$C" --config "$T_TMP/dx.json" --remote b check
expect_output "problem: kafka: no answer from $KSEC_BROKERS .*Authentication failed" "check names the refused password"
t=$SECONDS; stop_proc cons_pw
check "it stops on SIGTERM meanwhile ($((SECONDS - t)) s, status $STOP_RC)" test "$STOP_RC" -eq 0
item_b() { curl -s -H "Authorization: Bearer $DXSYNC_B_ADMIN_TOKEN" "$DXSYNC_B_URL/items/articles/$1" | grep -q "\"title\":\"$2\""; }
not_on_b() { ! item_b "$@"; }
check "nothing was applied through them" not_on_b "$k1" "over tls"

# PostgreSQL with the wrong CA: the producer's check names it.
expect_exit 1 "producer check with a wrong sslrootcert" "${as_prod[@]}" DB_A="$DXSYNC_A_DB_URL?sslmode=verify-full&sslrootcert=$KSEC_WRONG_CA" "$P" --config "$T_TMP/dx.json" --instance a check
expect_output "certificate verify failed" "the certificate problem is named"
ssl_used() { psql_q "$DXSYNC_A_DB_URL" "select count(*) from pg_stat_ssl s join pg_stat_replication r using (pid) where s.ssl" | grep -qx 1; }
check "the producer's replication connection is encrypted (pg_stat_ssl)" wait_for 20 ssl_used

# Directus with the wrong CA: check names the certificate problem.
expect_exit 1 "consumer check with a wrong ca_file for Directus b" "${as_cons[@]}" TOKEN_A="$DXSYNC_A_SYNC_TOKEN" B_CA="$KSEC_CA" "$C" --config "$T_TMP/dx.json" --remote b check
expect_output "SSL certificate problem" "the certificate problem is named"
expect_exit 0 "consumer check with b's CA (Directus over HTTPS)" "${as_cons[@]}" TOKEN_A="$DXSYNC_A_SYNC_TOKEN" "$C" --config "$T_TMP/dx.json" --remote b check

# The right credentials: the item written meanwhile arrives.
start_proc cons "${as_cons[@]}" "$C" --config "$T_TMP/dx.json" --remote b --member cons
start_proc notif "${as_notif[@]}" "$N" --config "$T_TMP/dx.json"
check "a -> b over SASL_SSL with only the printed ACLs (the item written meanwhile)" wait_for 90 item_b "$k1" "over tls"
k2=$(python3 -c 'import uuid; print(uuid.uuid4())')
api a "$DXSYNC_A_ADMIN_TOKEN" POST /items/articles "{\"id\":\"$k2\",\"title\":\"second\"}" >/dev/null
check "and the next one" wait_for 60 item_b "$k2" "second"
check "the notifier reads the errors topic in its group" wait_for 60 proc_log_has notif "event=partitions_assigned"

# Denied paths with the same principals (kcat: librdkafka, as the programs).
kc() { # USER PW ARGS...
  local u=$1 p=$2; shift 2
  kcat -b "$KSEC_BROKERS" -X security.protocol=SASL_SSL -X sasl.mechanisms=SCRAM-SHA-512 \
    -X sasl.username="$u" -X sasl.password="$p" -X ssl.ca.location="$KSEC_CA" "$@"
}
echo 'k:{"forged":true}' | kc cons-b "$PW_CONS_B" -P -t "$prefix.a.articles" -K: >"$T_TMP/deny1" 2>&1 || true
check "consumer b may not write a's topic" grep -q "Topic authorization failed" "$T_TMP/deny1"
timeout 20 kcat -b "$KSEC_BROKERS" -X security.protocol=SASL_SSL -X sasl.mechanisms=SCRAM-SHA-512 \
  -X sasl.username=prod-a -X sasl.password="$PW_PROD_A" -X ssl.ca.location="$KSEC_CA" \
  -C -t "$prefix.errors" -o beginning -e >"$T_TMP/deny2" 2>&1 || true
check "producer a may not read the errors topic" grep -q "authorization failed" "$T_TMP/deny2"
timeout 20 kcat -b "$KSEC_BROKERS" -X security.protocol=SASL_SSL -X sasl.mechanisms=SCRAM-SHA-512 \
  -X sasl.username=prod-a -X sasl.password="$PW_PROD_A" -X ssl.ca.location="$KSEC_CA" \
  -C -t "$prefix.b.articles" -o beginning -e >"$T_TMP/deny3" 2>&1 || true
check "producer a may not read b's topic" grep -q "authorization failed" "$T_TMP/deny3"

# No secret anywhere the run wrote.
for name in prod cons notif cons_ca cons_pw; do cat "$T_TMP/$name.log"; done >"$T_TMP/all.log"
cat "$T_TMP/out" >>"$T_TMP/all.log"
curl -s --cacert "$tls/ca.pem" -u "prom:$PW_SCRAPE" "https://127.0.0.1:$mport/status.json" >>"$T_TMP/all.log"
curl -s --cacert "$tls/ca.pem" "https://127.0.0.1:$mport/healthz" >>"$T_TMP/all.log"
leaked=0
for s in "$PW_PROD_A" "$PW_CONS_B" "$PW_NOTIF" "$PW_SCRAPE" "$KSEC_ADMIN_PASSWORD" "$DXSYNC_A_SYNC_TOKEN" "$DXSYNC_B_SYNC_TOKEN"; do
  grep -qF -- "$s" "$T_TMP/all.log" && leaked=$((leaked + 1))
done
check "no password or token in any log line, /status.json or /healthz ($leaked found)" test "$leaked" -eq 0
stop_all_procs
finish
