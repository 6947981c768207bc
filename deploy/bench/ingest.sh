#!/usr/bin/env bash
# Ingest benchmark (run by `make bench`, which starts the services and builds
# bin/auditwatch): preloads N generated events (default 1,000,000) into a fresh
# 4-partition Kafka topic, then runs `auditwatch ingest` until every event is in
# ClickHouse and reports events/s end to end, ingester CPU seconds per million
# events and peak RSS. Broker, ClickHouse and ingester share this machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
N="${1:-1000000}"
BIN="$ROOT/bin/auditwatch"
CH_PORT="${AW_CH_PORT:-19000}"
RUN="$(date +%s)"
OUT="$ROOT/out"
mkdir -p "$OUT"
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

export AUDITWATCH_CLICKHOUSE_ADDR="127.0.0.1:$CH_PORT"
export AUDITWATCH_CLICKHOUSE_DATABASE=auditwatch_bench
export AUDITWATCH_KAFKA_BROKERS="127.0.0.1:${AW_KAFKA_PORT:-19092}"
export AUDITWATCH_KAFKA_TOPIC="auditwatch-bench-$RUN"
export AUDITWATCH_KAFKA_GROUP_ID="auditwatch-bench-$RUN"
export AUDITWATCH_HTTP_LISTEN="127.0.0.1:0"
q() { clickhouse-client --port "$CH_PORT" --database auditwatch_bench --query "$1"; }

clickhouse-client --port "$CH_PORT" --query "DROP DATABASE IF EXISTS auditwatch_bench"
"$BIN" migrate >/dev/null 2>&1
if [ -n "${BENCH_NO_ROLLUPS:-}" ]; then
  # Measure ingestion without the rollups' materialized views, to see what they cost.
  for mv in key_usage_mv; do q "DROP TABLE IF EXISTS $mv"; done
  echo "rollup materialized views dropped (BENCH_NO_ROLLUPS)"
fi

echo "preloading $N events into $AUDITWATCH_KAFKA_TOPIC ..."
"$BIN" gen --out kafka --seed 99 --events "$N" --scenarios none --start -24h --duration 24h 2>&1 | tail -1

# CPU time of a process (user + system, seconds) from /proc.
cpu_of() { [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ] && awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14+$15)/hz}' "/proc/$1/stat" || echo 0; }
STATE="${AW_STATE:-$ROOT/.state}"
CH_PID="$(cat "$STATE/clickhouse/clickhouse.pid" 2>/dev/null || true)"
KAFKA_PID="$(cat "$STATE/kafka/kafka.pid" 2>/dev/null || true)"
sleep 2  # let the preload's merges settle
ch0=$(cpu_of "$CH_PID"); k0=$(cpu_of "$KAFKA_PID")
echo "draining into ClickHouse ..."
/usr/bin/time -v -o "$OUT/bench-time.txt" "$BIN" ingest ${BENCH_CONFIG:+--config "$BENCH_CONFIG"} > "$OUT/bench-ingest.log" 2>&1 &
TPID=$!
t0=$(date +%s.%N)
first=""
while :; do
  n=$(q "SELECT count() FROM access_log")
  now=$(date +%s.%N)
  if [ -z "$first" ] && [ "$n" -gt 0 ]; then first=$now; fi
  if [ "$n" -ge "$N" ]; then break; fi
  if ! kill -0 $TPID 2>/dev/null; then echo "ingest died; see out/bench-ingest.log"; exit 1; fi
  if [ "$(echo "$now - $t0 > 600" | bc)" = 1 ]; then echo "timed out at $n rows"; exit 1; fi
  sleep 0.2
done
t1=$(date +%s.%N)
ch1=$(cpu_of "$CH_PID"); k1=$(cpu_of "$KAFKA_PID")
pkill -TERM -P $TPID || true
wait $TPID || true

distinct=$(q "SELECT uniqExact(request_id) FROM access_log")
user=$(sed -n 's/.*User time (seconds): //p' "$OUT/bench-time.txt")
sys=$(sed -n 's/.*System time (seconds): //p' "$OUT/bench-time.txt")
rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$OUT/bench-time.txt")
total=$(echo "$t1 - $t0" | bc)
steady=$(echo "$t1 - $first" | bc)
cpu=$(echo "$user + $sys" | bc)
chcpu=$(echo "$ch1 - $ch0" | bc); kcpu=$(echo "$k1 - $k0" | bc)
python3 - "$N" "$distinct" "$total" "$steady" "$cpu" "$rss_kb" "$OUT/bench.json" "$chcpu" "$kcpu" <<'PY'
import json, sys
n, distinct, total, steady, cpu, rss_kb, out, chcpu, kcpu = sys.argv[1:]
chcpu, kcpu = float(chcpu), float(kcpu)
n, distinct, total, steady, cpu, rss_kb = int(n), int(distinct), float(total), float(steady), float(cpu), int(rss_kb)
r = {
    "events": n, "distinct_in_clickhouse": distinct,
    "seconds_from_start": round(total, 2), "events_per_second_from_start": round(n / total),
    "seconds_from_first_row": round(steady, 2), "events_per_second_from_first_row": round(n / steady),
    "cpu_seconds_per_million": round(cpu / n * 1e6, 2), "peak_rss_mib": round(rss_kb / 1024, 1),
    "clickhouse_cpu_seconds_per_million": round(chcpu / n * 1e6, 2), "kafka_cpu_seconds_per_million": round(kcpu / n * 1e6, 2),
    "total_cpu_seconds_per_million": round((cpu + chcpu + kcpu) / n * 1e6, 2),
}
json.dump(r, open(out, "w"), indent=2)
print(f"events:                 {n:,} ({distinct:,} distinct in ClickHouse)")
print(f"end to end:             {r['events_per_second_from_start']:,} events/s ({total:.2f}s from process start, group join included)")
print(f"steady:                 {r['events_per_second_from_first_row']:,} events/s ({steady:.2f}s from the first row written)")
print(f"ingester CPU:           {r['cpu_seconds_per_million']} s per million events")
print(f"ingester peak RSS:      {r['peak_rss_mib']} MiB")
print(f"ClickHouse CPU:         {r['clickhouse_cpu_seconds_per_million']} s per million events (Kafka broker {r['kafka_cpu_seconds_per_million']} s)")
print(f"total CPU:              {r['total_cpu_seconds_per_million']} s per million events (ingester + ClickHouse + Kafka, during the drain)")
if distinct != n:
    sys.exit(f"MISMATCH: {distinct} of {n} distinct events")
PY
