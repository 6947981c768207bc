#!/usr/bin/env bash
# Private *current* ClickHouse server (26.x) for a second integration-test pass.
#
# Usage: deploy/services/clickhouse-current.sh install|start|stop|status|client [args...]
#
# There is no package of a current clickhouse-server binary these machines can
# install (see docs/clickhouse-current.md). The engine that does install is chdb
# (PyPI: chdb + chdb-core, deploy/chdb/install.sh), whose library contains
# clickhouse-local. clickhouse-local of 26.x implements `SYSTEM START LISTEN`:
# run through chdb's one-shot query entry point (chdb._chdb.query, which runs
# clickhouse-local's LocalServer), with a config.xml in the working directory
# that names tcp_port/http_port/listen_host, it opens the real native (TCP) and
# HTTP listeners of ClickHouse. The launcher below then keeps that query alive
# (a sleepEachRow over system.numbers, FORMAT Null) so the listeners stay up
# until the process is stopped.
#
# It is ClickHouse's own server code (TCPHandler, HTTPHandler) of the version
# chdb-core bundles, but the process is clickhouse-local, not clickhouse-server:
# users come from a users.xml written here (`default`, no password, localhost)
# plus deploy/clickhouse/current/users.d: the component users of
# deploy/clickhouse/grants.sql as a users file (<grants>, profile <constraints>),
# since clickhouse-local has no writable access storage for CREATE USER.
# No replication/keeper.
#
# Environment:
#   AW_STATE                 state root (default: <repo>/.state); state in $AW_STATE/clickhouse-current
#   AW_CHC_PORT              native TCP port (default 29000)
#   AW_CHC_HTTP_PORT         HTTP port       (default 28123)
#   PYTHON                   python with chdb installed (default python3)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${AW_STATE:-$REPO/.state}/clickhouse-current"
PORT="${AW_CHC_PORT:-29000}"
HTTP_PORT="${AW_CHC_HTTP_PORT:-28123}"
PY="${PYTHON:-python3}"
PIDFILE="$STATE/server.pid"
START_TIMEOUT=60

log() { echo "[clickhouse-current] $*"; }
die() { echo "[clickhouse-current] ERROR: $*" >&2; exit 1; }
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

have_chdb() { "$PY" -c "from chdb import _chdb" >/dev/null 2>&1; }

cmd_install() {
    # chdb (pinned in deploy/chdb/requirements.txt) is the engine; the 18.16
    # clickhouse-client (Debian) is only used for the readiness check and `client`.
    PYTHON="$PY" "$REPO/deploy/chdb/install.sh"
    if ! command -v clickhouse-client >/dev/null 2>&1; then
        "$REPO/deploy/services/clickhouse.sh" install
    fi
    have_chdb || die "chdb does not import with $PY"
}

srv_pid() { pidfile_pid "$PIDFILE" "clickhouse-current/launch.py"; }

answering() {
    if command -v clickhouse-client >/dev/null 2>&1; then
        timeout 10 clickhouse-client --host 127.0.0.1 --port "$PORT" --query 'SELECT 1' >/dev/null 2>&1
    else
        curl -fsS --max-time 10 "http://127.0.0.1:$HTTP_PORT/?query=SELECT%201" >/dev/null 2>&1
    fi
}

version() {
    curl -fsS --max-time 10 "http://127.0.0.1:$HTTP_PORT/?query=SELECT%20version()%20FORMAT%20TabSeparated" 2>/dev/null \
        || timeout 10 clickhouse-client --host 127.0.0.1 --port "$PORT" --query 'SELECT version()' 2>/dev/null
}

write_files() {
    mkdir -p "$STATE/conf" "$STATE/data" "$STATE/log"
    # clickhouse-local reads ./config.xml from its working directory.
    cat >"$STATE/conf/config.xml" <<EOF
<clickhouse>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$PORT</tcp_port>
    <http_port>$HTTP_PORT</http_port>
    <users_config>users.xml</users_config>
    <!-- deploy/difftest reads system.query_log; clickhouse-local keeps it only if configured. -->
    <query_log>
        <database>system</database>
        <table>query_log</table>
        <flush_interval_milliseconds>1000</flush_interval_milliseconds>
    </query_log>
</clickhouse>
EOF
    # Users: `default` (no password, localhost, may manage access) for the tests'
    # scratch databases, plus deploy/clickhouse/current/users.d (the component
    # users with grants.sql's GRANTs and profiles, dev passwords), merged in by
    # ClickHouse's config processor. Not the 18.16 users.d: current ClickHouse
    # reads its <allow_databases> as grants on those databases only (no system
    # tables, but OPTIMIZE and more in auditwatch), which is neither grants.sql
    # nor what 18.16 enforces.
    cat >"$STATE/conf/users.xml" <<'EOF'
<clickhouse>
    <profiles><default></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>::1</ip><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
            <access_management>1</access_management>
            <named_collection_control>1</named_collection_control>
        </default>
    </users>
    <quotas><default></default></quotas>
</clickhouse>
EOF
    rm -rf "$STATE/conf/users.d"
    mkdir -p "$STATE/conf/users.d"
    cp "$REPO"/deploy/clickhouse/current/users.d/*.xml "$STATE/conf/users.d/"
    cat >"$STATE/launch.py" <<'EOF'
# Generated by deploy/services/clickhouse-current.sh: serve chdb's clickhouse-local
# on the TCP/HTTP ports of ./config.xml until killed.
import os, sys
from chdb import _chdb

data = sys.argv[1]
sql = ("SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; "
       "SELECT sleepEachRow(1) FROM system.numbers "
       "SETTINGS max_block_size = 1, max_execution_time = 0 FORMAT Null")
print("chdb engine: serving from", os.getcwd(), "data", data, flush=True)
_chdb.query(sql, "TabSeparated", path=data)
# The query only returns if a listener failed to start (errors go to stderr).
print("chdb engine: serving query ended", flush=True)
sys.exit(1)
EOF
}

# The component users' default database (as grants.sql creates it first):
# a user whose default database is missing cannot log in at all.
create_db() {
    curl -fsS "http://127.0.0.1:$HTTP_PORT/" --data-binary 'CREATE DATABASE IF NOT EXISTS auditwatch' >/dev/null \
        || clickhouse-client --host 127.0.0.1 --port "$PORT" --query 'CREATE DATABASE IF NOT EXISTS auditwatch' \
        || die "cannot create the database auditwatch"
}

cmd_start() {
    if srv_pid >/dev/null && answering; then
        create_db
        log "already running (pid $(srv_pid)) on 127.0.0.1:$PORT (http $HTTP_PORT)"
        return 0
    fi
    if answering; then
        die "something else already answers on port $PORT (not our pid file $PIDFILE)"
    fi
    have_chdb || die "chdb not installed (run: $0 install)"
    if ! srv_pid >/dev/null; then
        write_files
        log "starting chdb's clickhouse-local as a server on 127.0.0.1:$PORT (http $HTTP_PORT), state $STATE"
        # setsid: detach from this shell so the server outlives the script.
        (cd "$STATE/conf" && exec setsid "$PY" "$STATE/launch.py" "$STATE/data" \
            </dev/null >"$STATE/log/server.log" 2>&1) &
        echo $! >"$PIDFILE"
    else
        log "process $(srv_pid) exists but does not answer yet; waiting"
    fi
    local i
    for ((i = 0; i < START_TIMEOUT * 2; i++)); do
        if answering; then
            create_db
            log "up: $(version) (pid $(cat "$PIDFILE"))"
            return 0
        fi
        srv_pid >/dev/null || break
        sleep 0.5
    done
    echo "[clickhouse-current] server did not answer on port $PORT; log tail:" >&2
    tail -n 30 "$STATE/log/server.log" >&2 2>/dev/null || true
    die "start failed"
}

cmd_stop() { stop_pidfile "$PIDFILE" "clickhouse-current/launch.py" 20; }

cmd_status() {
    if answering; then
        log "running on 127.0.0.1:$PORT (http $HTTP_PORT): $(version) (pid $(srv_pid || echo '?'))"
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
    client) shift; exec clickhouse-client --host 127.0.0.1 --port "$PORT" "$@" ;;
    *) echo "usage: $0 install|start|stop|status|client [args...]" >&2; exit 2 ;;
esac
