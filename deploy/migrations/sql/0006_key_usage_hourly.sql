-- Hourly rollup of each key's use, maintained at ingest time by a
-- materialized view: what usage summaries read instead of the raw log, so a
-- summary over a month of traffic reads a few thousand rows. One row per
-- hour, key and error code (empty = success); read with the -Merge functions:
--   SELECT key_id, countMerge(requests) AS requests,
--          countIfMerge(successes) AS ok,
--          quantilesTDigestMerge(0.5, 0.95)(latency_ms) AS p50_p95
--   FROM key_usage_hourly WHERE hour >= now() - 86400 GROUP BY key_id
-- Counts are of rows: a message redelivered before a merge counts twice
-- (rare; compare with count() on access_log, not uniqExact).
CREATE TABLE IF NOT EXISTS {{local "key_usage_hourly"}}{{onCluster}}
(
    hour        DateTime                                              COMMENT 'UTC hour (toStartOfHour(ts))',
    key_id      String                                                COMMENT 'Key identity (as access_log.key_id); empty for requests without a key',
    error_code  String                                                COMMENT 'Gateway error code; empty for requests without one',
    key_hint    AggregateFunction(any, String)                        COMMENT 'Masked key (anyMerge)',
    env         AggregateFunction(any, String)                        COMMENT 'live or test (anyMerge)',
    account_id  AggregateFunction(any, String)                        COMMENT 'Account (anyMerge)',
    requests    AggregateFunction(count)                              COMMENT 'Requests (countMerge)',
    successes   AggregateFunction(countIf, UInt8)                     COMMENT 'Requests with status < 400 (countIfMerge)',
    client_ips  AggregateFunction(uniqExact, String)                  COMMENT 'Distinct client IPs (uniqExactMerge)',
    bytes_in    AggregateFunction(sum, UInt64)                        COMMENT 'Request bytes (sumMerge)',
    bytes_out   AggregateFunction(sum, UInt64)                        COMMENT 'Response bytes (sumMerge)',
    latency_ms  AggregateFunction(quantilesTDigest(0.5, 0.95), Float32) COMMENT 'Latency quantiles p50, p95 (quantilesTDigestMerge(0.5, 0.95))',
    routes      AggregateFunction(topK(10), String)                   COMMENT 'Top request routes, ids in paths replaced by {id} (topKMerge(10))',
    first_seen  AggregateFunction(min, DateTime)                      COMMENT 'First request (minMerge)',
    last_seen   AggregateFunction(max, DateTime)                      COMMENT 'Last request (maxMerge)'
)
ENGINE = {{engine "AggregatingMergeTree" "key_usage_hourly"}}
PARTITION BY toYYYYMM(hour)
ORDER BY (key_id, hour, error_code)
;
{{- distributed "key_usage_hourly"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.key_usage_hourly_mv{{onCluster}} TO {{local "key_usage_hourly"}} AS
SELECT
    toStartOfHour(ts) AS hour,
    key_id,
    error_code,
    anyState(key_hint) AS key_hint,
    anyState(env) AS env,
    anyState(account_id) AS account_id,
    countState() AS requests,
    countIfState(status < 400) AS successes,
    uniqExactState(client_ip) AS client_ips,
    sumState(bytes_in) AS bytes_in,
    sumState(bytes_out) AS bytes_out,
    quantilesTDigestState(0.5, 0.95)(latency_ms) AS latency_ms,
    topKState(10)(replaceRegexpAll(path, '/([A-Za-z]{2,8}_[A-Za-z0-9]{6,}|[0-9]+|[0-9a-fA-F-]{16,})', '/{id}')) AS routes,
    minState(ts) AS first_seen,
    maxState(ts) AS last_seen
FROM {{local "access_log"}}
GROUP BY hour, key_id, error_code
;
