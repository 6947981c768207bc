# Shared by the service scripts (sourced): the pid of a service started from
# this state directory, and stopping it. Each script defines log() first.

# pidfile_pid PIDFILE PATTERN prints the pid in PIDFILE when that process is
# alive and really ours — its command line holds PATTERN (guards against a
# stale pid file whose pid was reused) — and fails otherwise.
pidfile_pid() {
    local pid
    [[ -f "$1" ]] || return 1
    pid="$(cat "$1" 2>/dev/null || true)"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null \
        && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" && echo "$pid"
}

# stop_pidfile PIDFILE PATTERN SECONDS sends SIGTERM to the service, waits up
# to SECONDS for it to exit, then sends SIGKILL; the pid file is removed.
stop_pidfile() {
    local pid i
    if ! pid="$(pidfile_pid "$1" "$2")"; then
        log "not running"
        rm -f "$1"
        return 0
    fi
    log "stopping pid $pid"
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < $3 * 2; i++)); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$1"; log "stopped"; return 0; }
        sleep 0.5
    done
    log "still running after $3 s; sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$1"
}
