-- Gateway access log: one row per request, as ingested from Kafka.
-- Duplicates from Kafka redelivery share every sorting-key column and are
-- merged away by ReplacingMergeTree; until a merge runs, count
-- uniqExact(request_id) or read with FINAL (every shipped query does).
CREATE TABLE IF NOT EXISTS {{local "access_log"}}{{onCluster}}
(
    ts              DateTime                    COMMENT 'When the gateway received the request (UTC, whole seconds)',
    ts_ms           UInt16                      COMMENT 'Millisecond part of ts (0-999)',
    request_id      String                      COMMENT 'Gateway request id, unique per request; the deduplication key',
    method          {{lc "String"}}             COMMENT 'HTTP method, upper case',
    path            String                      COMMENT 'Request path without query string',
    status          UInt16                      COMMENT 'HTTP status returned',
    error_code      {{lc "String"}}             COMMENT 'Gateway error code (invalid_api_key, expired_api_key, invalid_signature, ip_not_whitelisted, ...), empty on success',
    client_ip       String                      COMMENT 'Caller IP, canonical text form (IPv4-mapped IPv6 unmapped)',
    client_net      String                      COMMENT 'Caller network: the /24 of an IPv4 address or the /48 of an IPv6 address',
    key_id          String                      COMMENT 'Key identity for joins: the registry key id when the gateway knew it, else key_fingerprint; empty when no key was presented',
    key_id_source   {{lc "String"}}             COMMENT 'registry when key_id came from the gateway, fingerprint when derived from the key, empty when no key',
    key_fingerprint String                      COMMENT 'First 16 hex digits of SHA-256 of the key as presented; the key itself is never stored',
    key_hint        String                      COMMENT 'Masked key a person can recognise, e.g. bk_live_a1b2…i9j0',
    env             {{lc "String"}}             COMMENT 'live or test: from the event, else from the key prefix; empty when unknown',
    auth_method     {{lc "String"}}             COMMENT 'api_key, oauth or none',
    oauth_client_id String                      COMMENT 'OAuth client id for OAuth requests',
    account_id      String                      COMMENT 'Account owning the key, when the gateway knows it',
    signed          UInt8                       COMMENT '1 when the X-Brokeret-Signature header was present',
    signature_ts    Nullable(UInt32)            COMMENT 'X-Brokeret-Timestamp header value (unix seconds)',
    clock_offset_s  Nullable(Int32)             COMMENT 'signature_ts minus ts in seconds: a steady large offset for one key means a skewed client clock',
    user_agent      String                      COMMENT 'User-Agent header (truncated to 512 bytes)',
    origin          String                      COMMENT 'Origin header: set by browsers, so a live key with an origin is exposed client-side',
    latency_ms      Float32                     COMMENT 'Gateway latency in milliseconds',
    bytes_in        UInt64                      COMMENT 'Request body size in bytes',
    bytes_out       UInt64                      COMMENT 'Response body size in bytes',
    kafka_partition Int32                       COMMENT 'Kafka partition the event was read from',
    kafka_offset    Int64                       COMMENT 'Kafka offset the event was read from',
    ingested_at     DateTime                    COMMENT 'When auditwatch wrote the row'
)
ENGINE = {{engine "ReplacingMergeTree" "access_log"}}
PARTITION BY toYYYYMMDD(ts)
ORDER BY (toStartOfHour(ts), key_id, ts, request_id)
SETTINGS index_granularity = 8192
;
{{- distributed "access_log"}}

-- Messages that could not be ingested, with the reason. Nothing is dropped
-- silently: every rejected message is here, its raw text with key-like
-- strings masked.
CREATE TABLE IF NOT EXISTS {{local "ingest_errors"}}{{onCluster}}
(
    received_at     DateTime                    COMMENT 'When auditwatch read the message',
    topic           String                      COMMENT 'Kafka topic',
    partition       Int32                       COMMENT 'Kafka partition',
    offset          Int64                       COMMENT 'Kafka offset',
    reason          {{lc "String"}}             COMMENT 'Reason class: too_large, invalid_utf8, not_json, wrong_type, missing_field, bad_value, bad_timestamp',
    field           String                      COMMENT 'The offending field, when one is to blame',
    error           String                      COMMENT 'Human-readable error',
    raw             String                      COMMENT 'The message as received, key-like strings masked, truncated to the configured limit (raw_size says how long it was)',
    raw_size        UInt32                      COMMENT 'Size of the original message in bytes',
    message_key     String                      COMMENT 'Kafka message key (masked)'
)
ENGINE = {{engine "ReplacingMergeTree" "ingest_errors"}}
PARTITION BY toYYYYMMDD(received_at)
ORDER BY (topic, partition, offset)
;
{{- distributed "ingest_errors"}}
