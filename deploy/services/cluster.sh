#!/usr/bin/env bash
# A two-server ClickHouse 18.16 cluster on this machine for the cluster-mode tests:
# one shard with two replicas, coordinated by the ZooKeeper of zookeeper.sh.
#
# Usage: deploy/services/cluster.sh install|start|stop|status|start-node N|stop-node N|client N [args...]
#
# Environment:
#   AW_STATE            state root (default: <repo>/.state); node N's state in $AW_STATE/cluster/nodeN
#   AW_CLUSTER_NAME     cluster name in <remote_servers> (default aw_cluster)
#   AW_CLUSTER_PORT1    node 1 native port (default 19100; http +90 → 18190... see below)
#   AW_CLUSTER_PORT2    node 2 native port (default 19200)
#   AW_ZK_PORT          ZooKeeper client port (default 19181)
#
# Node N listens on 127.0.0.1: native AW_CLUSTER_PORTN, HTTP AW_CLUSTER_PORTN-910 (18190, 18290),
# interserver (replica fetches) AW_CLUSTER_PORTN+9 (19109, 19209). Each node gets the packaged
# config plus config.d/extra.xml: <remote_servers> (the cluster, internal_replication=true),
# <zookeeper>, <macros> (shard 01, replica r1 / r2), <distributed_ddl>. The users are those of
# deploy/clickhouse/users.d, as on the single server.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ROOT="${AW_STATE:-$REPO/.state}/cluster"
NAME="${AW_CLUSTER_NAME:-aw_cluster}"
ZK_PORT="${AW_ZK_PORT:-19181}"
P1="${AW_CLUSTER_PORT1:-19100}"
P2="${AW_CLUSTER_PORT2:-19200}"

log() { echo "[cluster] $*"; }

port() { case "$1" in 1) echo "$P1" ;; 2) echo "$P2" ;; *) echo "[cluster] no node $1" >&2; exit 2 ;; esac; }

# extra_conf N writes node N's cluster configuration and prints its path.
extra_conf() {
    local n="$1" f="$ROOT/node$1.xml"
    mkdir -p "$ROOT"
    cat >"$f" <<EOF
<?xml version="1.0"?>
<yandex>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <remote_servers>
        <$NAME>
            <shard>
                <internal_replication>true</internal_replication>
                <replica><host>127.0.0.1</host><port>$P1</port></replica>
                <replica><host>127.0.0.1</host><port>$P2</port></replica>
            </shard>
        </$NAME>
    </remote_servers>
    <zookeeper>
        <node><host>127.0.0.1</host><port>$ZK_PORT</port></node>
        <session_timeout_ms>10000</session_timeout_ms>
    </zookeeper>
    <macros>
        <shard>01</shard>
        <replica>r$n</replica>
    </macros>
    <distributed_ddl>
        <path>/clickhouse/task_queue/ddl</path>
    </distributed_ddl>
</yandex>
EOF
    echo "$f"
}

# users_conf writes the profile settings of the cluster's servers and prints its path:
# load_balancing=in_order makes every Distributed insert and read use the first replica of a
# shard that is up, so that a read sees the writes before it (replication is asynchronous);
# here, where both servers are 127.0.0.1, 18.16 does not recognise its own replica
# (system.clusters.is_local = 0), so the default (random) would spread reads over both.
users_conf() {
    local f="$ROOT/users.xml" p profiles=""
    for p in default aw_writer aw_retention aw_migrate aw_rules aw_analyst; do
        profiles+="        <$p><load_balancing>in_order</load_balancing><insert_distributed_sync>1</insert_distributed_sync></$p>"$'\n'
    done
    mkdir -p "$ROOT"
    printf '<?xml version="1.0"?>\n<yandex>\n    <profiles>\n%s    </profiles>\n</yandex>\n' "$profiles" >"$f"
    echo "$f"
}

node() {
    local n="$1"; shift
    local p
    p="$(port "$n")"
    AW_CH_STATE="$ROOT/node$n" AW_CH_PORT="$p" AW_CH_HTTP_PORT="$((p - 910))" \
        AW_CH_INTERSERVER_PORT="$((p + 9))" AW_CH_EXTRA_CONF="$(extra_conf "$n")" AW_CH_EXTRA_USERS="$(users_conf)" \
        "$HERE/clickhouse.sh" "$@" 2>&1 | sed "s/^\[clickhouse\]/[cluster node$n]/"
    return "${PIPESTATUS[0]}"
}

case "${1:-}" in
    install)
        "$HERE/zookeeper.sh" install
        "$HERE/clickhouse.sh" install
        ;;
    start)
        "$HERE/zookeeper.sh" start
        node 1 start
        node 2 start
        log "cluster $NAME: 1 shard × 2 replicas on 127.0.0.1:$P1 and 127.0.0.1:$P2 (ZooKeeper 127.0.0.1:$ZK_PORT)"
        ;;
    stop)
        rc=0
        node 1 stop || rc=1
        node 2 stop || rc=1
        "$HERE/zookeeper.sh" stop || rc=1
        exit "$rc"
        ;;
    status)
        rc=0
        "$HERE/zookeeper.sh" status || rc=1
        node 1 status || rc=1
        node 2 status || rc=1
        exit "$rc"
        ;;
    start-node) node "${2:?node number}" start ;;
    stop-node) node "${2:?node number}" stop ;;
    client)
        n="${2:?node number}"
        shift 2
        exec clickhouse-client --host 127.0.0.1 --port "$(port "$n")" "$@"
        ;;
    *) echo "usage: $0 install|start|stop|status|start-node N|stop-node N|client N [args...]" >&2; exit 2 ;;
esac
