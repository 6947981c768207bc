#!/usr/bin/env bash
# Private ClickHouse server (Debian's clickhouse-server 18.16) for tests and dev.
#
# Usage: deploy/services/clickhouse.sh install|start|stop|status|client [args...]
#
# Environment:
#   AW_STATE                 state root (default: <repo>/.state); server state in $AW_STATE/clickhouse
#   AW_CH_PORT               native TCP port      (default 19000)
#   AW_CH_HTTP_PORT          HTTP port            (default 18123)
#   AW_CH_INTERSERVER_PORT   interserver port     (default 19009)
#   AW_CH_STATE              server state dir     (default $AW_STATE/clickhouse; cluster.sh sets one per node)
#   AW_CH_EXTRA_CONF         an XML file copied into the server's config.d (cluster.sh: remote_servers,
#                            zookeeper, macros); a running server whose copy differs is left running: stop it first
#   AW_CH_EXTRA_USERS        an XML file copied into the server's users.d (cluster.sh: profile settings)
#
# The server runs as the current user with its own copy of the packaged config in
# $STATE/conf (plus deploy/clickhouse/users.d/*.xml), so it never touches /etc or /var.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${AW_CH_STATE:-${AW_STATE:-$REPO/.state}/clickhouse}"
PORT="${AW_CH_PORT:-19000}"
HTTP_PORT="${AW_CH_HTTP_PORT:-18123}"
INTERSERVER_PORT="${AW_CH_INTERSERVER_PORT:-19009}"
PIDFILE="$STATE/clickhouse.pid"
START_TIMEOUT=60

log() { echo "[clickhouse] $*"; }
die() { echo "[clickhouse] ERROR: $*" >&2; exit 1; }
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

installed() { command -v clickhouse-server >/dev/null 2>&1 && command -v clickhouse-client >/dev/null 2>&1; }

cmd_install() {
    if installed; then
        log "already installed: $(clickhouse-client --version 2>/dev/null | head -n1)"
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Refresh the package lists only if they are missing or don't know the package.
    if ! apt-cache show clickhouse-server >/dev/null 2>&1; then
        log "apt-get update"
        apt-get update -qq
    fi
    log "apt-get install clickhouse-server clickhouse-client"
    # No systemd here: a postinst that tries to start the packaged service may fail
    # (or be blocked by policy-rc.d). That is irrelevant to us, so only the
    # presence of the binaries decides success.
    local aptlog
    aptlog="$(mktemp)"
    apt-get install -y -qq -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        clickhouse-server clickhouse-client >"$aptlog" 2>&1 || true
    if ! installed; then
        tail -n 30 "$aptlog" >&2
        die "clickhouse-server/clickhouse-client not installed"
    fi
    rm -f "$aptlog"
    log "installed: $(clickhouse-client --version 2>/dev/null | head -n1)"
}

ch_pid() { pidfile_pid "$PIDFILE" "clickhouse-server"; }

# answering: a bounded probe (something else on the port, e.g. an HTTP
# listener, would otherwise keep the client waiting for a reply forever).
answering() {
    timeout 10 clickhouse-client --host 127.0.0.1 --port "$PORT" --query 'SELECT 1' >/dev/null 2>&1
}

# Build $STATE/conf from the packaged config plus the repo's users.d files.
write_conf() {
    local src=/etc/clickhouse-server
    [[ -f "$src/config.xml" && -f "$src/users.xml" ]] || die "missing $src/config.xml or users.xml (run install)"
    rm -rf "$STATE/conf"
    mkdir -p "$STATE/conf/users.d" "$STATE/conf/config.d"
    cp "$src/config.xml" "$src/users.xml" "$STATE/conf/"
    sync_users || true
    # Keep everything relative to the state dir; the ports etc. go on the command line.
    cat >"$STATE/conf/config.d/auditwatch.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <users_config>$STATE/conf/users.xml</users_config>
</yandex>
EOF
    if [[ -n "${AW_CH_EXTRA_CONF:-}" ]]; then
        cp "$AW_CH_EXTRA_CONF" "$STATE/conf/config.d/extra.xml"
    fi
    if [[ -n "${AW_CH_EXTRA_USERS:-}" ]]; then
        cp "$AW_CH_EXTRA_USERS" "$STATE/conf/users.d/zz_extra.xml"
    fi
}

# Copy the repo's users.d files into the server's config. A running server
# re-reads users.xml and users.d/ when a file changes (within a few seconds,
# no restart), so `start` on a running server picks up new users and profiles.
sync_users() {
    local f changed=0
    mkdir -p "$STATE/conf/users.d"
    for f in "$REPO"/deploy/clickhouse/users.d/*.xml; do
        if ! cmp -s "$f" "$STATE/conf/users.d/$(basename "$f")"; then
            cp "$f" "$STATE/conf/users.d/"
            changed=1
        fi
    done
    return $((1 - changed))
}

cmd_start() {
    if ch_pid >/dev/null && answering; then
        log "already running (pid $(ch_pid)) on 127.0.0.1:$PORT"
        if sync_users; then
            # The server's config reloader checks the users files every 2 s.
            log "users.d changed: copied; the running server reloads its users (waiting 4 s)"
            sleep 4
        fi
        return 0
    fi
    if answering; then
        die "something else already answers on port $PORT (not our pid file $PIDFILE)"
    fi
    installed || die "clickhouse-server not installed (run: $0 install)"
    if ! ch_pid >/dev/null; then
        mkdir -p "$STATE"/{data,tmp,user_files,format_schemas,log}
        write_conf
        log "starting on 127.0.0.1:$PORT (http $HTTP_PORT, interserver $INTERSERVER_PORT), state $STATE"
        # setsid: detach from this shell so the server outlives the script.
        setsid clickhouse-server --config-file="$STATE/conf/config.xml" -- \
            --path="$STATE/data/" --tmp_path="$STATE/tmp/" \
            --user_files_path="$STATE/user_files/" --format_schema_path="$STATE/format_schemas/" \
            --tcp_port="$PORT" --http_port="$HTTP_PORT" --interserver_http_port="$INTERSERVER_PORT" \
            --logger.log="$STATE/log/server.log" --logger.errorlog="$STATE/log/error.log" \
            --logger.level=information \
            </dev/null >"$STATE/log/stdout.log" 2>&1 &
        echo $! >"$PIDFILE"
    else
        log "process $(ch_pid) exists but does not answer yet; waiting"
    fi
    local i
    for ((i = 0; i < START_TIMEOUT * 2; i++)); do
        if answering; then
            log "up: $(timeout 10 clickhouse-client --port "$PORT" --query 'SELECT version()') (pid $(cat "$PIDFILE"))"
            return 0
        fi
        if ! ch_pid >/dev/null; then
            break
        fi
        sleep 0.5
    done
    echo "[clickhouse] server did not answer on port $PORT; log tails:" >&2
    tail -n 30 "$STATE/log/error.log" "$STATE/log/stdout.log" >&2 2>/dev/null || true
    die "start failed"
}

cmd_stop() { stop_pidfile "$PIDFILE" "clickhouse-server" 30; }

cmd_status() {
    if answering; then
        log "running on 127.0.0.1:$PORT${PIDFILE:+ (pid $(ch_pid || echo '?'))}"
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
