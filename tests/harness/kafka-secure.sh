#!/usr/bin/env bash
# A second Apache Kafka for the TLS/SASL/ACL tests: one KRaft node on loopback, apart from
# kafka.sh's, data in $DXSYNC_RUN/kafka-secure (certificates in its tls/).
#   kafka-secure.sh start          make (once) a CA, a broker certificate (127.0.0.1, localhost),
#                                  a second unrelated CA, the admin's password; format (once) with
#                                  admin's SCRAM-SHA-512 credentials; start. Prints KSEC_BROKERS,
#                                  KSEC_CA, KSEC_WRONG_CA, KSEC_ADMIN_USER, KSEC_ADMIN_PASSWORD,
#                                  KSEC_ADMIN_PROPERTIES (Java client, as admin), KSEC_PID
#   kafka-secure.sh user NAME PW   add or change NAME's SCRAM-SHA-512 credentials (ConfigCommand)
#   kafka-secure.sh acl ARGS...    kafka.admin.AclCommand as admin, e.g.
#                                  acl --add --allow-principal User:x --operation Read --topic t
#   kafka-secure.sh topics ARGS... org.apache.kafka.tools.TopicCommand as admin (fetches the
#                                  kafka-tools jar once: kafka.sh's jars lack it), e.g. --create --topic t
#   kafka-secure.sh batch          the admin's changes in one JVM (KafkaAdminBatch.java): reads the
#                                  lines `dxsync-* acls` prints (kafka-acls.sh ..., kafka-topics.sh
#                                  ... --create ...) and "user NAME PASSWORD" lines from stdin
#   kafka-secure.sh stop           SIGTERM by pid (controlled shutdown), SIGKILL after 30 s
# Clients: SASL_SSL, SCRAM-SHA-512, broker certificate signed by KSEC_CA. The controller listener
# is SASL_PLAINTEXT/PLAIN for admin alone (no ANONYMOUS super user). StandardAuthorizer: no ACL,
# no access; super user admin; no auto-created topics.
set -euo pipefail
. "$(dirname "$0")/../lib/dx.sh"
# below the ephemeral range (32768 and up): a client socket can hold any port there, and the
# broker then cannot bind it (seen in a local CI run: "Address already in use")
: "${DXSYNC_KSEC_PORT:=29392}"
: "${DXSYNC_KSEC_CONTROLLER_PORT:=29393}"

KAFKA_HOME="$DXSYNC_CACHE/kafka-$DXSYNC_KAFKA_VERSION"
TOOLS_DIR="$DXSYNC_CACHE/kafka-tools-$DXSYNC_KAFKA_VERSION"
KSEC="$DXSYNC_RUN/kafka-secure"
TLS="$KSEC/tls"
PIDFILE="$DXSYNC_RUN/kafka-secure.pid"
BOOTSTRAP="127.0.0.1:$DXSYNC_KSEC_PORT"

make_tls() {
  [ -f "$TLS/.complete" ] && return 0
  command -v openssl >/dev/null || apt_need openssl
  mkdir -p "$TLS"; local ca
  for ca in ca wrong-ca; do
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=dxsync test $ca" \
      -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' \
      -keyout "$TLS/$ca.key" -out "$TLS/$ca.pem" 2>/dev/null
  done
  # unencrypted PKCS#8 key ("BEGIN PRIVATE KEY"): what Kafka's PEM keystore reads without
  # ssl.key.password; an IP SAN, since clients verify the host (librdkafka >= 2.0 too)
  openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$TLS/broker.key" -out "$TLS/broker.csr" 2>/dev/null
  openssl x509 -req -in "$TLS/broker.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
    -days 3650 -out "$TLS/broker.crt" -extfile <(printf '%s\n' 'basicConstraints=CA:FALSE' \
      'subjectAltName=IP:127.0.0.1,DNS:localhost' 'extendedKeyUsage=serverAuth,clientAuth') 2>/dev/null
  cat "$TLS/broker.key" "$TLS/broker.crt" "$TLS/ca.pem" >"$TLS/broker-keystore.pem"
  chmod 600 "$TLS"/*.key "$TLS/broker-keystore.pem"
  touch "$TLS/.complete"
}

admin_password() {
  [ -s "$KSEC/admin.password" ] || { mkdir -p "$KSEC"; (umask 077; openssl rand -hex 16 >"$KSEC/admin.password"); }
  cat "$KSEC/admin.password"
}

write_config() {
  local pw; pw=$(admin_password)
  local scram="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$pw\";"
  (umask 077; cat >"$KSEC/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$DXSYNC_KSEC_CONTROLLER_PORT
listeners=SASL_SSL://127.0.0.1:$DXSYNC_KSEC_PORT,CONTROLLER://127.0.0.1:$DXSYNC_KSEC_CONTROLLER_PORT
advertised.listeners=SASL_SSL://127.0.0.1:$DXSYNC_KSEC_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$scram
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$pw" user_admin="$pw";
ssl.keystore.type=PEM
ssl.keystore.location=$TLS/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/ca.pem
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin
log.dirs=$KSEC/logs
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  cat >"$KSEC/admin.properties" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$scram
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/ca.pem
PROPS
  )
  cat >"$KSEC/log4j.properties" <<'PROPS'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
PROPS
}

# tool CLASS ARGS...: a Kafka command-line tool (a short-lived JVM)
tool() {
  java -Xmx256m -XX:TieredStopAtLevel=1 -Djava.awt.headless=true "-Dlog4j.configuration=file:$KSEC/log4j.properties" \
    -cp "$KAFKA_HOME/libs/*:$TOOLS_DIR/*" "$@"
}

started() { grep -q 'Kafka Server started' "$KSEC/kafka.log" 2>/dev/null; }

cmd_start() {
  [ -f "$KAFKA_HOME/.complete" ] || "$HARNESS_DIR/kafka.sh" install
  if [ -f "$PIDFILE" ] && running "$(cat "$PIDFILE")"; then
    log "kafka-secure already running"
  elif port_open "$DXSYNC_KSEC_PORT" || port_open "$DXSYNC_KSEC_CONTROLLER_PORT"; then
    die "port $DXSYNC_KSEC_PORT or $DXSYNC_KSEC_CONTROLLER_PORT is taken by a process this harness did not start"
  else
    make_tls
    write_config
    if [ ! -f "$KSEC/logs/meta.properties" ]; then
      tool kafka.tools.StorageTool format -t "$(tool kafka.tools.StorageTool random-uuid)" -c "$KSEC/server.properties" \
        --add-scram "SCRAM-SHA-512=[name=admin,password=$(admin_password)]" >/dev/null
    fi
    start_bg kafka-secure "$KSEC/kafka.log" java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
      "-Dlog4j.configuration=file:$KSEC/log4j.properties" -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$KSEC/server.properties"
    sleep 0.5
    running "$(cat "$PIDFILE")" || { tail -n 20 "$KSEC/kafka.log" >&2; die "kafka-secure exited at start"; }
  fi
  # the port opens before the broker serves: wait for KafkaRaftServer's "started" line
  wait_for 90 started && port_open "$DXSYNC_KSEC_PORT" \
    || { tail -n 40 "$KSEC/kafka.log" >&2; die "kafka-secure did not start"; }
  printf '%s\n' "KSEC_BROKERS=$BOOTSTRAP" "KSEC_CA=$TLS/ca.pem" "KSEC_WRONG_CA=$TLS/wrong-ca.pem" \
    KSEC_ADMIN_USER=admin "KSEC_ADMIN_PASSWORD=$(admin_password)" \
    "KSEC_ADMIN_PROPERTIES=$KSEC/admin.properties" "KSEC_PID=$(cat "$PIDFILE")"
}

# admin_tool CLASS ARGS...: a tool as admin against the broker
admin_tool() {
  [ -f "$KSEC/admin.properties" ] || die "kafka-secure was never started: run $0 start"
  local cls=$1; shift
  tool "$cls" --bootstrap-server "$BOOTSTRAP" --command-config "$KSEC/admin.properties" "$@"
}

# The controller commits the credentials and the broker applies them from the metadata log a
# few ms later: always before this JVM has exited, in practice.
cmd_user() {
  [ $# -eq 2 ] || die "usage: $0 user NAME PASSWORD"
  admin_tool kafka.admin.ConfigCommand --alter --add-config "SCRAM-SHA-512=[password=$2]" --entity-type users --entity-name "$1"
}

cmd_topics() {
  if [ ! -f "$TOOLS_DIR/.complete" ]; then
    command -v mvn >/dev/null || apt_need maven
    log "fetching kafka-tools $DXSYNC_KAFKA_VERSION from Maven Central"
    mkdir -p "$DXSYNC_RUN"
    mvn -q -B dependency:copy -Dartifact="org.apache.kafka:kafka-tools:$DXSYNC_KAFKA_VERSION" -DoutputDirectory="$TOOLS_DIR" \
      >"$DXSYNC_RUN/mvn-kafka-tools.log" 2>&1 || { tail -n 30 "$DXSYNC_RUN/mvn-kafka-tools.log" >&2; die "mvn could not fetch kafka-tools"; }
    touch "$TOOLS_DIR/.complete"
  fi
  admin_tool org.apache.kafka.tools.TopicCommand "$@"
}

cmd_batch() {
  [ -f "$KSEC/admin.properties" ] || die "kafka-secure was never started: run $0 start"
  tool "$HARNESS_DIR/KafkaAdminBatch.java" "$BOOTSTRAP" "$KSEC/admin.properties"
}

cmd_stop() { stop_pidfile "$PIDFILE" 30; }

case "${1:-}" in
  start) cmd_start ;;
  user) shift; cmd_user "$@" ;;
  acl) shift; admin_tool kafka.admin.AclCommand "$@" ;;
  topics) shift; cmd_topics "$@" ;;
  batch) cmd_batch ;;
  stop) cmd_stop ;;
  *) echo "usage: $0 start|stop|user NAME PASSWORD|acl ARGS...|topics ARGS...|batch" >&2; exit 2 ;;
esac
