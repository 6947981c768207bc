-- access_log.route: the path with identifiers folded to {id}, computed at
-- ingest (cheaper than a regular expression in the rollup's view), and the
-- hourly rollup's view reading it.
ALTER TABLE {{local "access_log"}}{{alterOnCluster}} ADD COLUMN {{ifNotExists}}route String AFTER path
;

ALTER TABLE {{local "access_log"}}{{alterOnCluster}} COMMENT COLUMN route 'Path with identifiers (ord_…, numbers, UUIDs) replaced by {id}, e.g. /v1/orders/{id}: groups requests by endpoint'
;

DROP TABLE IF EXISTS {{.DB}}.key_usage_hourly_mv{{onCluster}}
;

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
    topKState(10)(route) AS routes,
    minState(ts) AS first_seen,
    maxState(ts) AS last_seen
FROM {{local "access_log"}}
GROUP BY hour, key_id, error_code
;
{{- redistribute "access_log"}}
