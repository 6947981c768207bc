package ingest

import (
	"context"
	"time"
)

// Progress is one row of ingest_progress: what the ingester has durably
// written of one Kafka partition (see deploy/migrations/sql/0009_ingest_progress.sql).
type Progress struct {
	WrittenAt     time.Time // when the row was inserted (UTC); set by the ingester just before the insert
	Seq           uint64    // unix nanoseconds of WrittenAt, strictly increasing within a process
	Topic         string    // Kafka topic
	Partition     int32     // Kafka partition; -1 for an ingester with no partition to report
	ConsumerGroup string    // Kafka consumer group
	Ingester      string    // instance name (host:pid)
	Rows          uint32    // rows and dead letters of the partition in the batch; 0 for a heartbeat
	MinEventTS    time.Time // earliest event time of the batch's rows of the partition
	MaxEventTS    time.Time // latest event time of the batch's rows of the partition
	CompleteTo    time.Time // every event of the partition before this time is stored
	CaughtUp      bool      // the last message written was the newest of its partition when read
	LastOffset    int64     // offset of the last message written
	HighWater     int64     // high-water mark when that message was read
}

// ProgressWriter stores progress rows. WriteProgress returns nil only once
// every row is stored; after an error the ingester offers the rows of
// batches (not heartbeats) again with the next write.
type ProgressWriter interface {
	WriteProgress(ctx context.Context, rows []Progress) error
}
