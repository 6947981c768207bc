-- Ingest progress: what the ingester has durably written, per Kafka topic
-- partition, so that `detect` evaluates a window once its events are in
-- (event-time watermarks) and finds rows that arrived after their window was
-- evaluated (late data). One row per partition per written batch, plus a
-- heartbeat row (rows = 0) about once a second while the ingester has nothing
-- in flight (the batch being filled is empty and no batch is being written),
-- restating every partition read in the last 10 minutes, so an idle partition
-- does not hold detection back and a dead ingester falls silent. A row with
-- partition -1 is a heartbeat of an ingester with no partition to report (it
-- has read nothing yet, or nothing in the last 10 minutes). Progress inserts
-- never hold up the data; a failed one is retried with the next.
-- Kept for a few days by `auditwatch retention` (retention.ingest_progress_days).
CREATE TABLE IF NOT EXISTS {{local "ingest_progress"}}{{onCluster}}
(
    written_at      DateTime            COMMENT 'Wall-clock time this row was inserted, after the batch it reports was durably written (UTC)',
    seq             UInt64              COMMENT 'Unix nanoseconds when written: orders the rows of one partition',
    topic           String              COMMENT 'Kafka topic',
    partition       Int32               COMMENT 'Kafka partition; -1 for the heartbeat of an ingester with no partition to report (nothing read yet, or nothing in 10 minutes)',
    consumer_group  String              COMMENT 'Kafka consumer group of the ingester',
    ingester        String              COMMENT 'Ingester instance (host:pid)',
    rows            UInt32              COMMENT 'Rows and dead letters written for this partition in the batch; 0 for a heartbeat',
    min_event_ts    DateTime            COMMENT 'Earliest event time (access_log.ts) among the rows of this batch and partition; complete_to for a heartbeat',
    max_event_ts    DateTime            COMMENT 'Latest event time among the rows of this batch and partition; complete_to for a heartbeat',
    complete_to     DateTime            COMMENT 'Every event of this partition before this time is stored: the wall-clock time of the read when the ingester had caught up with the partition, else the greatest event time it has written for the partition (at most the time of that read)',
    caught_up       UInt8               COMMENT '1 when the last message written was the newest in the partition when it was read (nothing was waiting)',
    last_offset     Int64               COMMENT 'Offset of the last message written for the partition',
    high_water      Int64               COMMENT 'Partition high-water mark when that message was read (offset of the next message to be produced)'
)
ENGINE = {{engine "MergeTree" "ingest_progress"}}
PARTITION BY toYYYYMMDD(written_at)
ORDER BY (written_at, topic, partition)
;
{{- distributed "ingest_progress"}}
