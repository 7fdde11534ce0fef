#!/usr/bin/env bash
# Apache Kafka for the tests: one KRaft node (broker + controller) on loopback.
#   kafka.sh install    fetch the jars of kafka_2.13:$DXSYNC_KAFKA_VERSION from Maven Central
#                       into $DXSYNC_CACHE/kafka-<version>/libs (once)
#   kafka.sh start      format the storage (once) and start; prints KAFKA_BROKERS
#   kafka.sh stop       SIGTERM by pid (controlled shutdown), SIGKILL after 30 s
#   kafka.sh kill       SIGKILL by pid (for fault tests)
# Kafka 3.9 keeps the old protocol versions that Debian's librdkafka 2.0.2 speaks; Kafka 4
# removed some of them.
set -euo pipefail
. "$(dirname "$0")/../lib/dx.sh"

KAFKA_HOME="$DXSYNC_CACHE/kafka-$DXSYNC_KAFKA_VERSION"
KAFKA_DATA="$DXSYNC_RUN/kafka"
PIDFILE="$DXSYNC_RUN/kafka.pid"

cmd_install() {
  if [ -f "$KAFKA_HOME/.complete" ]; then return 0; fi
  command -v java >/dev/null || apt_need openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_need maven
  log "fetching Kafka $DXSYNC_KAFKA_VERSION jars from Maven Central"
  mkdir -p "$KAFKA_HOME" "$DXSYNC_RUN"
  mvn -q -B -f "$HARNESS_DIR/kafka-pom.xml" -Dkafka.version="$DXSYNC_KAFKA_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$KAFKA_HOME/libs" -DincludeScope=runtime >"$DXSYNC_RUN/mvn.log" 2>&1 \
    || { tail -n 30 "$DXSYNC_RUN/mvn.log" >&2; die "mvn could not fetch Kafka $DXSYNC_KAFKA_VERSION"; }
  ls "$KAFKA_HOME/libs/kafka_2.13-$DXSYNC_KAFKA_VERSION.jar" >/dev/null
  touch "$KAFKA_HOME/.complete"
}

write_config() {
  mkdir -p "$KAFKA_DATA"
  cat >"$DXSYNC_RUN/kafka.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$DXSYNC_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$DXSYNC_KAFKA_PORT,CONTROLLER://127.0.0.1:$DXSYNC_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$DXSYNC_KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DATA/logs
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.flush.interval.messages=9223372036854775807
PROPS
  cat >"$DXSYNC_RUN/kafka-log4j.properties" <<'PROPS'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
PROPS
}

java_args() {
  JAVA_ARGS=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j.configuration=file:$DXSYNC_RUN/kafka-log4j.properties" -cp "$KAFKA_HOME/libs/*")
}
java_cmd() { java_args; java "${JAVA_ARGS[@]}" "$@"; }

cmd_start() {
  [ -f "$KAFKA_HOME/.complete" ] || cmd_install
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    log "kafka already running"
  elif (exec 3<>"/dev/tcp/127.0.0.1/$DXSYNC_KAFKA_PORT") 2>/dev/null; then
    die "port $DXSYNC_KAFKA_PORT is taken by a process this harness did not start"
  else
    write_config
    if [ ! -f "$KAFKA_DATA/logs/meta.properties" ]; then
      java_cmd kafka.tools.StorageTool format -t "$(java_cmd kafka.tools.StorageTool random-uuid)" \
        -c "$DXSYNC_RUN/kafka.properties" >/dev/null
    fi
    # java itself in the background (not a shell function), so the pid file holds the JVM
    java_args
    start_bg kafka "$DXSYNC_RUN/kafka.log" java "${JAVA_ARGS[@]}" kafka.Kafka "$DXSYNC_RUN/kafka.properties"
    sleep 0.5
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { tail -n 20 "$DXSYNC_RUN/kafka.log" >&2; die "kafka exited at start"; }
  fi
  wait_port "$DXSYNC_KAFKA_PORT" 90 || { tail -n 40 "$DXSYNC_RUN/kafka.log" >&2; die "kafka did not start"; }
  echo "KAFKA_BROKERS=127.0.0.1:$DXSYNC_KAFKA_PORT"
  echo "KAFKA_PID=$(cat "$PIDFILE")"
}

cmd_stop() { stop_pidfile "$PIDFILE" 30; }

cmd_kill() {
  [ -f "$PIDFILE" ] || return 0
  local pid; pid=$(cat "$PIDFILE")
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$PIDFILE"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  kill) cmd_kill ;;
  *) echo "usage: $0 install|start|stop|kill" >&2; exit 2 ;;
esac
