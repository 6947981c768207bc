#!/usr/bin/env bash
# Private single-node Apache Kafka broker (KRaft, broker+controller in one JVM) for tests and dev.
# The broker jars come from Maven Central via deploy/kafka/pom.xml.
#
# Usage: deploy/services/kafka.sh install|start|stop|status|topic-create NAME PARTITIONS
#
# Environment:
#   AW_STATE                   state root (default: <repo>/.state); broker state in $AW_STATE/kafka
#   AW_KAFKA_PORT              PLAINTEXT listener on 127.0.0.1 (default 19092)
#   AW_KAFKA_CONTROLLER_PORT   KRaft controller listener on 127.0.0.1 (default 19093)
#   AW_KAFKA_HEAP              JVM heap options (default "-Xmx768m -Xms256m")
#   AW_KAFKA_SASL_PORT         SASL_PLAINTEXT listener (default AW_KAFKA_PORT+2 = 19094; 0 = none)
#   AW_KAFKA_SSL_PORT          SASL_SSL listener, client certificate required (default AW_KAFKA_PORT+3 = 19095; 0 = none)
#
# The SASL listeners accept SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN for the test user aw_sasl
# (password aw_sasl_dev). The SASL_SSL listener's certificates come from a throwaway CA made
# with openssl at the first start, in $AW_STATE/kafka/tls: ca.pem (trust it), server.pem (the
# broker's key and certificate, for localhost and 127.0.0.1), client.pem + client.key (a client
# certificate the broker accepts). A changed configuration restarts a running broker.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${AW_STATE:-$REPO/.state}/kafka"
PORT="${AW_KAFKA_PORT:-19092}"
CONTROLLER_PORT="${AW_KAFKA_CONTROLLER_PORT:-19093}"
HEAP="${AW_KAFKA_HEAP:--Xmx768m -Xms256m}"
SASL_PORT="${AW_KAFKA_SASL_PORT:-$((PORT + 2))}"
SSL_PORT="${AW_KAFKA_SSL_PORT:-$((PORT + 3))}"
SASL_USER=aw_sasl
SASL_PASSWORD=aw_sasl_dev
POM="$REPO/deploy/kafka/pom.xml"
LIBS="$STATE/libs"
DATA="$STATE/data"
CONF="$STATE/config"
LOGS="$STATE/logs"
TLS="$STATE/tls"
PIDFILE="$STATE/kafka.pid"
BOOTSTRAP="127.0.0.1:$PORT"
START_TIMEOUT=90

log() { echo "[kafka] $*"; }
die() { echo "[kafka] ERROR: $*" >&2; exit 1; }
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

kafka_version() { sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1; }

# Libs are complete when the marker for the pom's Kafka version exists.
libs_ok() { [[ -f "$LIBS/.complete-$(kafka_version)" ]]; }

cmd_install() {
    local pkg
    for pkg in kcat openssl; do # openssl makes the SASL_SSL listener's test certificates
        command -v "$pkg" >/dev/null 2>&1 && continue
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-cache show "$pkg" >/dev/null 2>&1; then
            log "apt-get update"
            apt-get update -qq
        fi
        log "apt-get install $pkg"
        apt-get install -y -qq "$pkg" >/dev/null 2>&1 || die "apt-get install $pkg failed"
    done
    command -v java >/dev/null 2>&1 || die "java not found (Kafka 4.x needs Java 17+)"
    if libs_ok; then
        log "Kafka $(kafka_version) jars already in $LIBS"
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found"
    log "fetching Kafka $(kafka_version) jars with Maven into $LIBS"
    rm -rf "$LIBS"
    mkdir -p "$LIBS"
    mkdir -p "$LOGS"
    if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DoutputDirectory="$LIBS" >"$LOGS/maven.log" 2>&1; then
        tail -n 40 "$LOGS/maven.log" >&2
        die "maven dependency:copy-dependencies failed (log: $LOGS/maven.log)"
    fi
    [[ -f "$LIBS/kafka_2.13-$(kafka_version).jar" ]] || die "kafka_2.13 jar missing after maven run"
    touch "$LIBS/.complete-$(kafka_version)"
    log "installed $(find "$LIBS" -name "*.jar" | wc -l) jars"
}

k_pid() { pidfile_pid "$PIDFILE" "kafka.Kafka"; }

# The broker answers metadata requests and lists itself (node 1).
answering() {
    command -v kcat >/dev/null 2>&1 || return 1
    # Cheap TCP probe first: kcat waits for its full timeout when nothing listens.
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || return 1
    kcat -b "$BOOTSTRAP" -L -m 3 2>/dev/null | grep -q "broker 1 at"
}

# Run a Kafka CLI class from the jars (quiet logging to stderr).
kjava() {
    java -Xmx256m -XX:TieredStopAtLevel=1 -Xshare:auto \
        -Dlog4j2.configurationFile="$CONF/tools-log4j2.xml" \
        -cp "$LIBS/*" "$@"
}

# The broker's listeners: PLAINTEXT always, the SASL ones unless their port is 0.
listeners_conf() {
    local listeners="PLAINTEXT://127.0.0.1:$PORT" map="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT" l
    if ((SASL_PORT > 0)); then
        listeners+=",SASL_PLAINTEXT://127.0.0.1:$SASL_PORT"
        map+=",SASL_PLAINTEXT:SASL_PLAINTEXT"
    fi
    if ((SSL_PORT > 0)); then
        listeners+=",SASL_SSL://127.0.0.1:$SSL_PORT"
        map+=",SASL_SSL:SASL_SSL"
    fi
    echo "listeners=$listeners,CONTROLLER://127.0.0.1:$CONTROLLER_PORT"
    echo "advertised.listeners=$listeners"
    echo "listener.security.protocol.map=$map"
    if ((SASL_PORT > 0 || SSL_PORT > 0)); then
        echo "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN"
        for l in sasl_plaintext sasl_ssl; do
            echo "listener.name.$l.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
            echo "listener.name.$l.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
            echo "listener.name.$l.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER=\"$SASL_PASSWORD\";"
        done
    fi
    if ((SSL_PORT > 0)); then
        echo "listener.name.sasl_ssl.ssl.keystore.type=PEM"
        echo "listener.name.sasl_ssl.ssl.keystore.location=$TLS/server.pem"
        echo "listener.name.sasl_ssl.ssl.truststore.type=PEM"
        echo "listener.name.sasl_ssl.ssl.truststore.location=$TLS/ca.pem"
        echo "listener.name.sasl_ssl.ssl.client.auth=required"
    fi
}

# A throwaway CA, the broker's certificate (localhost, 127.0.0.1) and a client certificate,
# made once; 10 years, so a long-lived state directory keeps working.
make_certs() {
    ((SSL_PORT > 0)) || return 0
    [[ -f "$TLS/client.key" ]] && return 0
    command -v openssl >/dev/null 2>&1 || die "openssl not found (needed for the SASL_SSL listener; or set AW_KAFKA_SSL_PORT=0)"
    rm -rf "$TLS.tmp" && mkdir -p "$TLS.tmp"
    (
        cd "$TLS.tmp"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -subj "/CN=auditwatch test CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
        printf "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -extfile server.ext -out server.crt
        openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=auditwatch"
        printf "extendedKeyUsage=clientAuth\n" >client.ext
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -extfile client.ext -out client.pem
        cat server.key server.crt >server.pem # the PEM keystore: unencrypted PKCS#8 key, then the chain
        rm -f ./*.csr ./*.ext ./*.srl server.key server.crt
        chmod 600 ./*.key server.pem
    ) >"$LOGS/openssl.log" 2>&1 || { cat "$LOGS/openssl.log" >&2; die "making the test certificates failed"; }
    rm -rf "$TLS" && mv "$TLS.tmp" "$TLS"
    log "test CA and certificates in $TLS"
}

server_properties() {
    cat <<EOF
# Generated by deploy/services/kafka.sh: single-node KRaft test broker.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
$(listeners_conf)
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA
num.partitions=4
auto.create.topics.enable=true
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Room for oversized test messages (the ingester dead-letters anything over
# its own max_message_bytes); batches of small events stay well below this.
message.max.bytes=4194304
replica.fetch.max.bytes=4194304
num.network.threads=2
num.io.threads=4
log.cleaner.dedupe.buffer.size=33554432
log.retention.hours=24
EOF
}

write_conf() {
    mkdir -p "$CONF" "$DATA" "$LOGS"
    make_certs
    server_properties >"$CONF/server.properties"
    cat >"$CONF/log4j2.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <File name="server" fileName="$LOGS/server.log">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Root level="info"><AppenderRef ref="server"/></Root>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="state.change.logger" level="warn"/>
    <Logger name="kafka.log.LogCleaner" level="warn"/>
    <Logger name="org.apache.kafka.storage.internals.log" level="warn"/>
    <Logger name="org.apache.kafka.clients.consumer" level="warn"/>
    <Logger name="org.apache.kafka.clients.producer" level="warn"/>
  </Loggers>
</Configuration>
EOF
    cat >"$CONF/tools-log4j2.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <Console name="stderr" target="SYSTEM_ERR"><PatternLayout pattern="%p %m%n"/></Console>
  </Appenders>
  <Loggers><Root level="error"><AppenderRef ref="stderr"/></Root></Loggers>
</Configuration>
EOF
}

# Format the KRaft storage once (static quorum: controller.quorum.voters).
format_storage() {
    [[ -f "$DATA/meta.properties" ]] && return 0
    local cid
    # Cluster id = 16 random bytes, base64url without padding (what `StorageTool random-uuid`
    # prints); generated here to save a JVM start. A leading '-' would confuse the CLI.
    cid="-"
    while [[ "$cid" == -* ]]; do
        cid="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    done
    log "formatting storage (cluster id $cid)"
    kjava kafka.tools.StorageTool format -t "$cid" -c "$CONF/server.properties" \
        -S "SCRAM-SHA-256=[name=$SASL_USER,password=$SASL_PASSWORD]" \
        -S "SCRAM-SHA-512=[name=$SASL_USER,password=$SASL_PASSWORD]" \
        >"$LOGS/format.log" 2>&1 || { cat "$LOGS/format.log" >&2; die "storage format failed"; }
    touch "$DATA/.scram-users"
}

# SCRAM credentials of the test user, for storage formatted before they existed (once).
ensure_scram_users() {
    [[ -f "$DATA/.scram-users" ]] && return 0
    local mech
    log "adding SCRAM credentials for $SASL_USER"
    for mech in SCRAM-SHA-256 SCRAM-SHA-512; do # one per request, or the broker refuses
        kjava org.apache.kafka.tools.ConfigCommand --bootstrap-server "$BOOTSTRAP" --alter --entity-type users \
            --entity-name "$SASL_USER" --add-config "$mech=[password=$SASL_PASSWORD]" \
            >"$LOGS/scram.log" 2>&1 || { cat "$LOGS/scram.log" >&2; die "adding $mech credentials failed"; }
    done
    touch "$DATA/.scram-users"
}

# The running broker was started with the configuration this script writes now.
conf_current() {
    [[ -f "$CONF/server.properties" ]] && [[ "$(server_properties)" == "$(cat "$CONF/server.properties")" ]]
}

cmd_start() {
    if k_pid >/dev/null && answering; then
        if conf_current; then
            ensure_scram_users
            log "already running (pid $(k_pid)) on $BOOTSTRAP"
            return 0
        fi
        log "configuration changed (listeners); restarting"
        cmd_stop
    fi
    if answering; then
        die "something else already answers on $BOOTSTRAP (not our pid file $PIDFILE)"
    fi
    libs_ok || die "Kafka jars missing (run: $0 install)"
    command -v kcat >/dev/null 2>&1 || die "kcat missing (run: $0 install)"
    if ! k_pid >/dev/null; then
        write_conf
        format_storage
        log "starting Kafka $(kafka_version) on $BOOTSTRAP (controller 127.0.0.1:$CONTROLLER_PORT), state $STATE"
        # shellcheck disable=SC2086 # HEAP is a list of JVM options
        setsid java $HEAP -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
            -Dlog4j2.configurationFile="$CONF/log4j2.xml" -Dkafka.logs.dir="$LOGS" \
            -cp "$LIBS/*" kafka.Kafka "$CONF/server.properties" \
            </dev/null >"$LOGS/kafka.out" 2>&1 &
        echo $! >"$PIDFILE"
    else
        log "process $(k_pid) exists but does not answer yet; waiting"
    fi
    local start=$SECONDS
    while ((SECONDS - start < START_TIMEOUT)); do
        if answering; then
            ensure_scram_users
            log "up on $BOOTSTRAP (pid $(cat "$PIDFILE"), $((SECONDS - start)) s)"
            if ((SASL_PORT > 0)); then log "SASL_PLAINTEXT on 127.0.0.1:$SASL_PORT (SCRAM-SHA-256/512, PLAIN; user $SASL_USER)"; fi
            if ((SSL_PORT > 0)); then log "SASL_SSL on 127.0.0.1:$SSL_PORT (client certificate required; CA $TLS/ca.pem)"; fi
            return 0
        fi
        k_pid >/dev/null || break
        sleep 1
    done
    echo "[kafka] broker did not answer on $BOOTSTRAP; log tails:" >&2
    tail -n 20 "$LOGS/kafka.out" >&2 2>/dev/null || true
    tail -n 40 "$LOGS/server.log" >&2 2>/dev/null || true
    die "start failed"
}

cmd_stop() { stop_pidfile "$PIDFILE" "kafka.Kafka" 30; }

cmd_status() {
    if answering; then
        log "running on $BOOTSTRAP (pid $(k_pid || echo '?'))"
        return 0
    fi
    log "not answering on $BOOTSTRAP"
    return 1
}

cmd_topic_create() {
    local name="${1:-}" parts="${2:-}" have
    [[ -n "$name" && "$parts" =~ ^[0-9]+$ ]] || die "usage: $0 topic-create NAME PARTITIONS"
    answering || die "broker not answering on $BOOTSTRAP"
    kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
        --create --if-not-exists --topic "$name" --partitions "$parts" --replication-factor 1 >/dev/null
    # Report the actual partition count (an existing topic keeps its own).
    have="$(kcat -b "$BOOTSTRAP" -L -t "$name" -m 5 2>/dev/null | sed -n 's/.* with \([0-9]*\) partitions.*/\1/p' | head -n1)"
    if [[ "$have" != "$parts" ]]; then
        log "WARNING: topic $name has ${have:-?} partitions (asked for $parts)"
    else
        log "topic $name: $have partitions"
    fi
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    topic-create) shift; cmd_topic_create "$@" ;;
    *) echo "usage: $0 install|start|stop|status|topic-create NAME PARTITIONS" >&2; exit 2 ;;
esac
