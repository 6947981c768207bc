#!/usr/bin/env bash
# Install (if needed) and start the test services: ClickHouse 18.16 and a Kafka KRaft broker.
# Usable from any cwd; see clickhouse.sh / kafka.sh for the AW_* environment variables.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

"$HERE/clickhouse.sh" install
"$HERE/kafka.sh" install
"$HERE/clickhouse.sh" start
"$HERE/kafka.sh" start

echo "[up] ClickHouse native 127.0.0.1:${AW_CH_PORT:-19000} (http ${AW_CH_HTTP_PORT:-18123});" \
    "users default (no password) and aw_ingest, aw_detect, aw_keys, aw_retention, aw_migrate, aw_rules, aw_analyst (password <user>_dev; deploy/clickhouse/users.d)"
echo "[up] Kafka bootstrap 127.0.0.1:${AW_KAFKA_PORT:-19092}"
