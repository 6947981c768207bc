-- API key registry: one row per version of a key, written by
-- `auditwatch keys import` and `auditwatch keys consume`. The row with the
-- highest updated_at is the key's current state: read with FINAL and filter
-- in an outer query (SELECT ... FROM (SELECT * FROM keys FINAL) WHERE ...),
-- so a filter on a non-key column never picks an older version.
-- No full API key is ever stored, only its fingerprint and hint.
CREATE TABLE IF NOT EXISTS {{local "keys"}}{{onCluster}}
(
    key_id          String                      COMMENT 'Registry key id; the key fingerprint when the source gave no id. Joins access_log.key_id',
    key_fingerprint String                      COMMENT 'First 16 hex digits of SHA-256 of the current full key (joins access_log.key_fingerprint and a fingerprint access_log.key_id); empty when unknown',
    key_hint        String                      COMMENT 'Masked current key a person can recognise, e.g. bk_live_a1b2…i9j0; empty when unknown',
    env             {{lc "String"}}             COMMENT 'live or test; empty when unknown',
    account_id      String                      COMMENT 'Account owning the key',
    owner           String                      COMMENT 'Team or application the key was issued to',
    status          {{lc "String"}}             COMMENT 'active, revoked or expired',
    created_at      DateTime                    COMMENT 'When the key was created (UTC); the first event time when the source never said',
    rotated_at      Nullable(DateTime)          COMMENT 'Last rotation (UTC); NULL when never rotated',
    expires_at      Nullable(DateTime)          COMMENT 'When the key expires (UTC); NULL when it does not expire',
    allowed_cidrs   Array(String)               COMMENT 'IP allowlist as normalised CIDRs (a single address is /32 or /128); empty array = no allowlist, any address may use the key',
    last_used_at    Nullable(DateTime)          COMMENT 'Last use as reported by the source (registry export), NULL when not reported; access_log is the authority on use',
    updated_at      DateTime                    COMMENT 'Version of this row: when auditwatch wrote it (strictly increasing per write); the highest wins',
    source          {{lc "String"}}             COMMENT 'What wrote this version: import (auditwatch keys import) or kafka (lifecycle event)',
    deleted         UInt8                       COMMENT '1 when the entry was withdrawn (e.g. a key first known by fingerprint was merged into its registry id); readers skip such keys'
)
ENGINE = {{engine "ReplacingMergeTree(updated_at)" "keys"}}
ORDER BY key_id
;
{{- distributed "keys"}}

-- History of key lifecycle changes, for analysts: every lifecycle event
-- consumed from Kafka and every key written by an import. Redelivered events
-- share every sorting-key column and are merged away.
CREATE TABLE IF NOT EXISTS {{local "key_events"}}{{onCluster}}
(
    ts              DateTime                    COMMENT 'When the change happened (event ts, UTC; the import time for imports)',
    type            {{lc "String"}}             COMMENT 'created, rotated, revoked, expired, allowlist_changed, updated, or imported',
    key_id          String                      COMMENT 'Key the change applies to (keys.key_id)',
    key_fingerprint String                      COMMENT 'Fingerprint of the key named by the event, when it named one; never the key itself',
    details         String                      COMMENT 'The change as JSON (fields the event carried, normalised; the API key replaced by its fingerprint and hint)',
    source          {{lc "String"}}             COMMENT 'kafka or import',
    kafka_topic     String                      COMMENT 'Kafka topic of the event; empty for imports',
    kafka_partition Int32                       COMMENT 'Kafka partition of the event; -1 for imports',
    kafka_offset    Int64                       COMMENT 'Kafka offset of the event; -1 for imports',
    received_at     DateTime                    COMMENT 'When auditwatch wrote the row'
)
ENGINE = {{engine "ReplacingMergeTree" "key_events"}}
PARTITION BY toYYYYMM(ts)
ORDER BY (key_id, ts, type, kafka_partition, kafka_offset)
;
{{- distributed "key_events"}}
