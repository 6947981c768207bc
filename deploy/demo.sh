#!/usr/bin/env bash
# The local demo of the whole pipeline (run by `make demo`, which first starts
# ClickHouse and Kafka with deploy/services/up.sh and builds bin/auditwatch):
#   1. apply the schema to a fresh database auditwatch_demo
#   2. generate 24 h of gateway traffic with every incident scenario and some
#      malformed messages, into a fresh Kafka topic
#   3. run `auditwatch ingest` until everything has arrived, then stop it
#   4. import the key registry and run the default rules over the last 24h
#   5. deliver the alerts (console here; Slack when AUDITWATCH_SLACK_TOKEN or
#      AUDITWATCH_SLACK_WEBHOOK_URL is set) and write the usage review
#   6. show what analysts see in ClickHouse, and which incidents were found
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="$ROOT/bin/auditwatch"
CH_PORT="${AW_CH_PORT:-19000}"
RATE="${DEMO_RATE:-5}"
RUN="$(date +%s)"
OUT="$ROOT/out"
mkdir -p "$OUT"

export AUDITWATCH_CONFIG="$ROOT/deploy/config/demo.yaml"
export AUDITWATCH_CLICKHOUSE_ADDR="127.0.0.1:$CH_PORT"
export AUDITWATCH_CLICKHOUSE_DATABASE=auditwatch_demo
export AUDITWATCH_KAFKA_BROKERS="127.0.0.1:${AW_KAFKA_PORT:-19092}"
export AUDITWATCH_KAFKA_TOPIC="auditwatch-demo-$RUN"
export AUDITWATCH_KAFKA_GROUP_ID="auditwatch-demo-$RUN"
export AUDITWATCH_HTTP_LISTEN="127.0.0.1:${DEMO_METRICS_PORT:-9464}"

q() { clickhouse-client --port "$CH_PORT" --database auditwatch_demo "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "schema (database auditwatch_demo)"
clickhouse-client --port "$CH_PORT" --query "DROP DATABASE IF EXISTS auditwatch_demo"
"$BIN" migrate

step "generating 24h of traffic at ${RATE} events/s with all incident scenarios → Kafka topic $AUDITWATCH_KAFKA_TOPIC"
"$BIN" gen --out kafka --seed 42 --start -24h --duration 24h --rate "$RATE" --malformed 25 \
  --incidents "$OUT/incidents.json" --registry "$OUT/registry.yaml" 2> "$OUT/gen.log"
cat "$OUT/gen.log"
read -r EVENTS BAD < <(sed -n 's/^generated \([0-9]*\) events and \([0-9]*\) malformed.*/\1 \2/p' "$OUT/gen.log")

step "ingesting (log: out/ingest.log, metrics: http://$AUDITWATCH_HTTP_LISTEN/metrics)"
"$BIN" ingest > "$OUT/ingest.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
start=$(date +%s.%N)
for _ in $(seq 1 600); do
  got=$(q --query "SELECT uniqExact(request_id) FROM access_log")
  dead=$(q --query "SELECT count() FROM ingest_errors")
  printf '\r  %s / %s events, %s / %s dead letters' "$got" "$EVENTS" "$dead" "$BAD"
  if [ "$got" -ge "$EVENTS" ] && [ "$dead" -ge "$BAD" ]; then break; fi
  sleep 0.5
done
echo
end=$(date +%s.%N)
kill -TERM $PID; wait $PID || { echo "ingest exited with an error; see out/ingest.log"; exit 1; }
trap - EXIT
printf '  all arrived in %.1fs; ingest stopped cleanly\n' "$(echo "$end - $start" | bc)"
[ "$got" -eq "$EVENTS" ] || { echo "MISMATCH: $got of $EVENTS events in ClickHouse"; exit 1; }

step "key registry: importing the dashboard export (full keys are fingerprinted and dropped)"
"$BIN" keys import "$OUT/registry.yaml"

step "detection: the default rules (rules/pack) over the last 24h, findings stored in ClickHouse"
"$BIN" detect --rules rules/pack --from -24h --to 0s --step window > "$OUT/findings.txt" 2> "$OUT/detect.log" \
  || { cat "$OUT/detect.log"; exit 1; }
cat "$OUT/findings.txt"
tail -1 "$OUT/detect.log"

step "alerts: grouped, routed messages (console notifier; out/alerts.txt has them all)"
"$BIN" alerts flush --rules rules/pack > "$OUT/alerts.txt" 2> "$OUT/alerts.log" || { cat "$OUT/alerts.log"; exit 1; }
head -40 "$OUT/alerts.txt"
echo "  …"
tail -1 "$OUT/alerts.log"

step "usage review: auditwatch summary --period 24h (out/summary.html is the printable report)"
"$BIN" summary --period 24h --format html --out "$OUT/summary.html" 2>/dev/null
"$BIN" summary --period 24h --format table | head -25

step "traffic by hour (last 24h)"
q --format PrettyCompactMonoBlock --query "
  SELECT toStartOfHour(ts) AS hour, uniqExact(request_id) AS requests,
         countIf(status >= 400) AS errors, round(quantile(0.95)(latency_ms), 1) AS p95_ms
  FROM access_log GROUP BY hour ORDER BY hour"

step "authentication failures by code"
q --format PrettyCompactMonoBlock --query "
  SELECT error_code, uniqExact(request_id) AS requests, uniqExact(key_id) AS keys, uniqExact(client_ip) AS ips
  FROM access_log WHERE status = 401 GROUP BY error_code ORDER BY requests DESC"

step "keys with the most invalid signatures in any 5 minutes (the keys are never stored: hint and fingerprint only)"
q --format PrettyCompactMonoBlock --query "
  SELECT key_id, any(key_hint) AS hint, toStartOfFiveMinute(ts) AS window, uniqExact(request_id) AS bad_signatures,
         uniqExact(client_ip) AS ips, round(avg(clock_offset_s)) AS avg_clock_offset_s
  FROM access_log WHERE error_code = 'invalid_signature'
  GROUP BY key_id, window ORDER BY bad_signatures DESC LIMIT 5"

step "client IPs trying many distinct keys (enumeration)"
q --format PrettyCompactMonoBlock --query "
  SELECT client_ip, uniqExact(key_fingerprint) AS distinct_keys, count() AS attempts, min(ts) AS first, max(ts) AS last
  FROM access_log WHERE error_code = 'invalid_api_key' GROUP BY client_ip HAVING distinct_keys >= 10
  ORDER BY distinct_keys DESC LIMIT 5"

step "live keys used from a browser (Origin header)"
q --format PrettyCompactMonoBlock --query "
  SELECT key_id, any(key_hint) AS hint, uniqExact(request_id) AS requests, uniqExact(origin) AS origins, any(origin) AS example
  FROM access_log WHERE env = 'live' AND origin != '' GROUP BY key_id ORDER BY requests DESC LIMIT 5"

step "dead letters (raw text kept with keys masked)"
q --format PrettyCompactMonoBlock --query "
  SELECT reason, field, count() AS messages, any(substring(raw, 1, 70)) AS example
  FROM ingest_errors GROUP BY reason, field ORDER BY messages DESC"

step "findings by rule (SELECT … FROM findings)"
q --format PrettyCompactMonoBlock --query "
  SELECT rule_id, severity, countIf(status = 'new') AS alerts, countIf(status = 'signal') AS signals, countIf(status = 'suppressed') AS suppressed,
         uniqExact(group_key) AS groups, min(eval_time) AS first, max(eval_time) AS last
  FROM findings FINAL GROUP BY rule_id, severity ORDER BY alerts DESC"

step "injected incidents (ground truth, out/incidents.json) and the findings that caught them"
q --format TSV --query "SELECT rule_id, key_id, client_ip, group_key, toUnixTimestamp(window_start), toUnixTimestamp(eval_time) FROM findings FINAL WHERE status IN ('new', 'signal')" > "$OUT/findings.tsv"
python3 - "$OUT/incidents.json" "$OUT/findings.tsv" <<'PY'
import json, sys, datetime as dt
inc = json.load(open(sys.argv[1]))
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[2]) if l.strip()]
def ts(s): return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
missed = 0
for i in inc:
    start, end = ts(i["start"]), ts(i["end"])
    who = {i.get("key_id")} | {i.get("client_ip")} | set(i.get("client_ips") or [])
    who.discard(None); who.discard("")
    hits = sorted({r[0] for r in rows if (r[1] in who or r[2] in who or any(("=" + w) in r[3] for w in who))
                   and float(r[4]) <= end + 3600 and float(r[5]) >= start})
    if not hits: missed += 1
    print("  %-24s %-30s %s  →  %s" % (i["name"], i.get("key_id") or i.get("client_ip", ""), i["start"][:16], ", ".join(hits) or "NOT FOUND"))
print("\n  %d of %d incidents found by a rule" % (len(inc) - missed, len(inc)))
print("  (the spike rules need days of history to learn each key's baseline, so 24 hours of demo data leave them in\n"
      "   warm-up: `make anomaly-eval` replays 28 generated days and shows usage_spike and error_rate_jump found)")
PY
echo
echo "Explore: clickhouse-client --port $CH_PORT --database auditwatch_demo"
