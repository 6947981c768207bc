// Package chsink writes decoded access-log rows and dead letters to
// ClickHouse over the native protocol, column by column.
package chsink

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/ingest"
	"github.com/auditwatch/auditwatch/ingest/event"
)

// accessLogColumns is the column list of every insert: the 18.16 server
// needs it named (see docs/clickhouse.md).
var accessLogColumns = []string{
	"ts", "ts_ms", "request_id", "method", "path", "route", "status", "error_code", "client_ip", "client_net",
	"key_id", "key_id_source", "key_fingerprint", "key_hint", "env", "auth_method", "oauth_client_id", "account_id",
	"signed", "signature_ts", "clock_offset_s", "user_agent", "origin", "latency_ms", "bytes_in", "bytes_out",
	"kafka_partition", "kafka_offset", "ingested_at",
}

var deadLetterColumns = []string{
	"received_at", "topic", "partition", "offset", "reason", "field", "error", "raw", "raw_size", "message_key",
}

// Sink writes batches to one database. It is safe for use by one goroutine
// at a time; it reuses its column buffers between writes.
type Sink struct {
	conn     driver.Conn
	db       string
	now      func() time.Time
	cols     columns
	insertAL string
	insertDL string
	// maxParts is the most access_log partitions (days) one insert spans.
	maxParts int
	// blockRows is the most rows per block of an insert (BlockRows).
	blockRows int
	// cluster: the tables are Distributed (SetCluster).
	cluster bool
}

// DefaultMaxPartitions is the most partitions one insert spans unless
// configured: the default of current servers' max_partitions_per_insert_block.
const DefaultMaxPartitions = 100

// New returns a Sink writing to database db through conn. One insert spans
// at most DefaultMaxPartitions days of access_log (see SetMaxPartitions); a
// batch spanning more is written in several inserts.
func New(conn driver.Conn, db string) *Sink {
	return &Sink{
		conn:      conn,
		db:        db,
		now:       time.Now,
		maxParts:  DefaultMaxPartitions,
		blockRows: BlockRows,
		insertAL:  fmt.Sprintf("INSERT INTO %s.access_log (%s)", db, strings.Join(accessLogColumns, ", ")),
		insertDL:  fmt.Sprintf("INSERT INTO %s.ingest_errors (%s)", db, strings.Join(deadLetterColumns, ", ")),
	}
}

// SetMaxPartitions sets the most access_log partitions (days) one insert
// spans: at most the server's max_partitions_per_insert_block. n <= 0 keeps
// the default.
func (s *Sink) SetMaxPartitions(n int) {
	if n > 0 {
		s.maxParts = n
	}
}

// Write inserts dead letters into ingest_errors, then rows into access_log:
// one insert each, or one per group of at most maxPartitions days when the
// rows span more. An error means some rows may have been written; the
// caller asks Stored before writing again. An error wrapping
// ingest.ErrRejected means ClickHouse refused the data itself.
func (s *Sink) Write(ctx context.Context, rows *event.Rows, dead []event.DeadLetter) error {
	if len(dead) > 0 {
		if err := s.writeDead(ctx, dead); err != nil {
			return fmt.Errorf("insert %d dead letters into %s.ingest_errors: %w", len(dead), s.db, classify(err))
		}
	}
	if rows == nil || rows.Len() == 0 {
		return nil
	}
	for _, part := range s.byPartitions(rows) {
		if err := s.writeRows(ctx, part); err != nil {
			return fmt.Errorf("insert %d rows into %s.access_log: %w", part.Len(), s.db, classify(err))
		}
	}
	return nil
}

// byPartitions returns rows whole when they span at most maxParts days
// (the partitions of access_log), else in groups that each do.
func (s *Sink) byPartitions(rows *event.Rows) []*event.Rows {
	day := func(i int) int64 { return rows.TSMilli[i] / 86_400_000 } // toYYYYMMDD(ts), UTC
	seen := make(map[int64]struct{}, 4)
	for i := 0; i < rows.Len() && len(seen) <= s.maxParts; i++ {
		seen[day(i)] = struct{}{}
	}
	if len(seen) <= s.maxParts {
		return []*event.Rows{rows}
	}
	days := make(map[int64][]int)
	var order []int64
	for i := 0; i < rows.Len(); i++ {
		d := day(i)
		if _, ok := days[d]; !ok {
			order = append(order, d)
		}
		days[d] = append(days[d], i)
	}
	slices.Sort(order)
	var out []*event.Rows
	for len(order) > 0 {
		n := min(s.maxParts, len(order))
		var idx []int
		for _, d := range order[:n] {
			idx = append(idx, days[d]...)
		}
		slices.Sort(idx)
		out = append(out, rows.Subset(idx))
		order = order[n:]
	}
	return out
}

// Stored returns the messages of q's range already stored: rows (offset to
// request id) and dead letters. access_log has no topic column, so rows are
// matched on partition, offset and the event-time range; callers compare
// request ids.
func (s *Sink) Stored(ctx context.Context, q ingest.StoredQuery) (map[int64]string, map[int64]bool, error) {
	rows := make(map[int64]string)
	dead := make(map[int64]bool)
	if q.RowsToo && !q.MinTS.IsZero() {
		r, err := s.conn.Query(ctx, fmt.Sprintf(`SELECT kafka_offset, request_id FROM %s.access_log
WHERE ts >= toDateTime(?) AND ts <= toDateTime(?) AND kafka_partition = ? AND kafka_offset >= ? AND kafka_offset <= ?`, s.db),
			q.MinTS.UTC().Truncate(time.Second), q.MaxTS.UTC().Truncate(time.Second).Add(time.Second), q.Partition, q.From, q.To)
		if err != nil {
			return nil, nil, fmt.Errorf("read stored rows of partition %d offsets %d-%d: %w", q.Partition, q.From, q.To, err)
		}
		for r.Next() {
			var off int64
			var id string
			if err := r.Scan(&off, &id); err != nil {
				r.Close()
				return nil, nil, fmt.Errorf("read stored rows: %w", err)
			}
			rows[off] = id
		}
		err = r.Err()
		r.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("read stored rows: %w", err)
		}
	}
	r, err := s.conn.Query(ctx, fmt.Sprintf(`SELECT offset FROM %s.ingest_errors
WHERE topic = ? AND partition = ? AND offset >= ? AND offset <= ?`, s.db), q.Topic, q.Partition, q.From, q.To)
	if err != nil {
		return nil, nil, fmt.Errorf("read stored dead letters of partition %d offsets %d-%d: %w", q.Partition, q.From, q.To, err)
	}
	defer r.Close()
	for r.Next() {
		var off int64
		if err := r.Scan(&off); err != nil {
			return nil, nil, fmt.Errorf("read stored dead letters: %w", err)
		}
		dead[off] = true
	}
	return rows, dead, r.Err()
}

// BlockRows is the most rows of one block of an insert: a batch is sent as
// blocks of one INSERT, so the driver's column, encoding and compression
// buffers are sized by a block and reused, not grown to a whole batch and
// dropped after it. The server squashes the blocks of one INSERT
// (min_insert_block_size_rows), so the parts written are the same.
const BlockRows = 8192

func (s *Sink) writeRows(ctx context.Context, rows *event.Rows) error {
	if s.cluster {
		ctx = distributedSync(ctx)
	}
	defer s.cols.release()
	b, err := s.conn.PrepareBatch(ctx, s.insertAL)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer b.Abort() //nolint:errcheck // no-op after Send
	now := s.now().UTC().Truncate(time.Second)
	for from := 0; from < rows.Len(); from += s.blockRows {
		to := min(from+s.blockRows, rows.Len())
		s.cols.fill(rows, from, to, now)
		for i, data := range s.cols.slices(rows, from, to) {
			if err := b.Column(i).Append(data); err != nil {
				return fmt.Errorf("append column %s: %w", accessLogColumns[i], err)
			}
		}
		if to < rows.Len() {
			if err := b.Flush(); err != nil {
				return fmt.Errorf("send block of rows %d-%d: %w", from, to-1, err)
			}
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

func (s *Sink) writeDead(ctx context.Context, dead []event.DeadLetter) error {
	if s.cluster {
		ctx = distributedSync(ctx)
	}
	b, err := s.conn.PrepareBatch(ctx, s.insertDL)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer b.Abort() //nolint:errcheck // no-op after Send
	for _, d := range dead {
		if err := b.Append(d.ReceivedAt.UTC(), d.Topic, d.Partition, d.Offset, string(d.Reason), d.Field, d.Error, d.Raw, d.RawSize, d.MessageKey); err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}
