#!/usr/bin/env bash
# Stop the test services started by up.sh (and cluster.sh) (state is kept in ${AW_STATE:-<repo>/.state}).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

rc=0
"$HERE/kafka.sh" stop || rc=1
"$HERE/clickhouse.sh" stop || rc=1
"$HERE/cluster.sh" stop || rc=1   # the cluster of `make cluster-services` (and its ZooKeeper), if running
"$HERE/clickhouse-current.sh" stop || rc=1
exit "$rc"
