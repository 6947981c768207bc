#!/usr/bin/env bash
# Install (if needed) and start the test services: ClickHouse 18.16 and a Kafka KRaft broker.
# Usable from any cwd; see clickhouse.sh / kafka.sh for the AW_* environment variables.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

"$HERE/clickhouse.sh" install
"$HERE/kafka.sh" install
# promtool (Debian's prometheus package) for the Prometheus rules and Grafana dashboard tests
# (deploy/prometheus, deploy/grafana), which fail without it under CI=true. Without systemd the
# package's postinst starts no daemon; only promtool is used.
if ! command -v promtool >/dev/null 2>&1; then
    echo "[up] apt-get install prometheus (promtool)"
    apt-cache show prometheus >/dev/null 2>&1 || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null 2>&1 || true
    command -v promtool >/dev/null 2>&1 || echo "[up] WARNING: promtool not installed (apt-get install prometheus)" >&2
fi
"$HERE/clickhouse.sh" start
"$HERE/kafka.sh" start

echo "[up] ClickHouse native 127.0.0.1:${AW_CH_PORT:-19000} (http ${AW_CH_HTTP_PORT:-18123});" \
    "users default (no password) and aw_ingest, aw_detect, aw_keys, aw_retention, aw_migrate, aw_rules, aw_analyst (password <user>_dev; deploy/clickhouse/users.d)"
echo "[up] Kafka bootstrap 127.0.0.1:${AW_KAFKA_PORT:-19092}"
