package ingest

import (
	"context"
	"errors"
	"time"
)

// Errors a Sink wraps to say that a write failed for good, not for now.
var (
	// ErrRejected marks a write that ClickHouse refused because of the data
	// (a value, a type, a row a view threw on): writing it again fails
	// again. The ingester isolates the refused rows and dead-letters them.
	ErrRejected = errors.New("rows rejected by ClickHouse")
	// ErrPartitionLimit marks a rejection because the rows span more table
	// partitions than one insert may (max_partitions_per_insert_block): the
	// ingester splits the rows by partition.
	ErrPartitionLimit = errors.New("rows span more partitions than one insert may")
)

// ReasonRejected is the dead-letter reason of a row that ClickHouse refused.
const ReasonRejected = "rejected"

// StoredQuery asks which messages of one partition, in an offset range,
// are already stored: the range a consumer read again after a restart or a
// rebalance (redelivery).
type StoredQuery struct {
	Topic        string
	Partition    int32
	From, To     int64     // offsets, inclusive
	MinTS, MaxTS time.Time // event times of the rows in the range (zero: the range has no rows)
	RowsToo      bool      // look in access_log, not only among dead letters
}

// StoredReader tells which offsets are already stored, as rows (with their
// request id) or as dead letters.
type StoredReader interface {
	Stored(ctx context.Context, q StoredQuery) (rows map[int64]string, dead map[int64]bool, err error)
}
