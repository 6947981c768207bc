#!/usr/bin/env bash
# Private ZooKeeper (Debian's zookeeper 3.8 package) for the ClickHouse test cluster
# (deploy/services/cluster.sh): replicated tables and ON CLUSTER DDL need one.
#
# Usage: deploy/services/zookeeper.sh install|start|stop|status
#
# Environment:
#   AW_STATE       state root (default: <repo>/.state); server state in $AW_STATE/zk
#   AW_ZK_PORT     client port on 127.0.0.1 (default 19181)
#   AW_ZK_HEAP     JVM heap options (default "-Xmx128m -Xms32m")
#
# Debian's zkServer.sh ignores --config, so the server class is run directly as the
# current user with a zoo.cfg of our own; nothing under /etc or /var is touched.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${AW_STATE:-$REPO/.state}/zk"
PORT="${AW_ZK_PORT:-19181}"
HEAP="${AW_ZK_HEAP:--Xmx128m -Xms32m}"
PIDFILE="$STATE/zk.pid"
START_TIMEOUT=60

log() { echo "[zookeeper] $*"; }
die() { echo "[zookeeper] ERROR: $*" >&2; exit 1; }
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

installed() { [[ -f /usr/share/java/zookeeper.jar ]] && command -v java >/dev/null 2>&1; }

cmd_install() {
    if installed; then
        log "already installed"
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show zookeeper >/dev/null 2>&1; then
        log "apt-get update"
        apt-get update -qq
    fi
    log "apt-get install zookeeper"
    local aptlog
    aptlog="$(mktemp)"
    apt-get install -y -qq -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        zookeeper >"$aptlog" 2>&1 || true
    if ! installed; then
        tail -n 30 "$aptlog" >&2
        die "zookeeper not installed"
    fi
    rm -f "$aptlog"
    log "installed"
}

zk_pid() { pidfile_pid "$PIDFILE" "QuorumPeerMain"; }

# The four-letter word "srvr" is whitelisted by default in 3.8; bash's /dev/tcp needs no nc.
answering() {
    local out
    out="$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && printf srvr >&3 && cat <&3" 2>/dev/null || true)"
    [[ "$out" == *"Mode: standalone"* ]]
}

cmd_start() {
    if zk_pid >/dev/null && answering; then
        log "already running (pid $(zk_pid)) on 127.0.0.1:$PORT"
        return 0
    fi
    if answering; then
        die "something else already answers on port $PORT (not our pid file $PIDFILE)"
    fi
    installed || die "zookeeper not installed (run: $0 install)"
    if ! zk_pid >/dev/null; then
        mkdir -p "$STATE/data" "$STATE/logs"
        cat >"$STATE/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$STATE/data
clientPort=$PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
# a throwaway test server: no fsync per transaction (ON CLUSTER DDL and replicated inserts are ZooKeeper writes)
forceSync=no
maxClientCnxns=200
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
        log "starting on 127.0.0.1:$PORT, state $STATE"
        # shellcheck disable=SC2086 # HEAP is a list of JVM options
        setsid java $HEAP -Dzookeeper.log.dir="$STATE/logs" -Dzookeeper.root.logger=INFO,CONSOLE \
            -cp "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar" \
            org.apache.zookeeper.server.quorum.QuorumPeerMain "$STATE/zoo.cfg" \
            </dev/null >"$STATE/logs/stdout.log" 2>&1 &
        echo $! >"$PIDFILE"
    else
        log "process $(zk_pid) exists but does not answer yet; waiting"
    fi
    local i
    for ((i = 0; i < START_TIMEOUT * 2; i++)); do
        if answering; then
            log "up (pid $(cat "$PIDFILE"))"
            return 0
        fi
        zk_pid >/dev/null || break
        sleep 0.5
    done
    echo "[zookeeper] server did not answer on port $PORT; log tail:" >&2
    tail -n 30 "$STATE/logs/stdout.log" >&2 2>/dev/null || true
    die "start failed"
}

cmd_stop() { stop_pidfile "$PIDFILE" "QuorumPeerMain" 20; }

cmd_status() {
    if answering; then
        log "running on 127.0.0.1:$PORT (pid $(zk_pid || echo '?'))"
        return 0
    fi
    log "not answering on 127.0.0.1:$PORT"
    return 1
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
