-- Daily rollup of key use per client address, maintained at ingest time by a
-- materialized view. Rules about key use over weeks (stale keys, keys in use,
-- new networks for a key) read this instead of scanning the access log, so
-- their cost does not grow with traffic. Read with the -Merge functions:
--   SELECT key_id, client_net, countMerge(requests), maxMerge(last_seen)
--   FROM key_ip_daily WHERE day >= today() - 30 GROUP BY key_id, client_net
-- Counts include redelivered duplicates (at-least-once ingest); use
-- access_log with uniqExact(request_id) for exact counts.
CREATE TABLE IF NOT EXISTS {{local "key_ip_daily"}}{{onCluster}}
(
    day         Date                                 COMMENT 'UTC day',
    key_id      String                               COMMENT 'Key identity (as access_log.key_id)',
    client_net  String                               COMMENT 'Client /24 or /48',
    client_ip   String                               COMMENT 'Client IP',
    requests    AggregateFunction(count)             COMMENT 'Requests (countMerge)',
    successes   AggregateFunction(countIf, UInt8)    COMMENT 'Requests with status < 400 (countIfMerge)',
    first_seen  AggregateFunction(min, DateTime)     COMMENT 'First request of the day (minMerge)',
    last_seen   AggregateFunction(max, DateTime)     COMMENT 'Last request of the day (maxMerge)'
)
ENGINE = {{engine "AggregatingMergeTree" "key_ip_daily"}}
PARTITION BY toYYYYMM(day)
ORDER BY (key_id, day, client_net, client_ip)
;
{{- distributed "key_ip_daily"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.key_ip_daily_mv{{onCluster}} TO {{local "key_ip_daily"}} AS
SELECT
    toDate(ts) AS day,
    key_id,
    client_net,
    client_ip,
    countState() AS requests,
    countIfState(status < 400) AS successes,
    minState(ts) AS first_seen,
    maxState(ts) AS last_seen
FROM {{local "access_log"}}
WHERE key_id != ''
GROUP BY day, key_id, client_net, client_ip
;
