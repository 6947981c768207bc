// Package chsink writes decoded access-log rows and dead letters to
// ClickHouse over the native protocol, column by column.
package chsink

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

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
}

// New returns a Sink writing to database db through conn.
func New(conn driver.Conn, db string) *Sink {
	return &Sink{
		conn:     conn,
		db:       db,
		now:      time.Now,
		insertAL: fmt.Sprintf("INSERT INTO %s.access_log (%s)", db, strings.Join(accessLogColumns, ", ")),
		insertDL: fmt.Sprintf("INSERT INTO %s.ingest_errors (%s)", db, strings.Join(deadLetterColumns, ", ")),
	}
}

// Write inserts dead letters into ingest_errors, then rows into access_log,
// one insert each. An error means the rows may not have been written; the
// caller writes the whole batch again. Dead letters go first because a
// repeated dead letter is harmless (ingest_errors deduplicates on topic,
// partition and offset), while repeated rows, although deduplicated in
// access_log, count again in the key_usage rollup.
func (s *Sink) Write(ctx context.Context, rows *event.Rows, dead []event.DeadLetter) error {
	if len(dead) > 0 {
		if err := s.writeDead(ctx, dead); err != nil {
			return fmt.Errorf("insert %d dead letters into %s.ingest_errors: %w", len(dead), s.db, err)
		}
	}
	if rows != nil && rows.Len() > 0 {
		if err := s.writeRows(ctx, rows); err != nil {
			return fmt.Errorf("insert %d rows into %s.access_log: %w", rows.Len(), s.db, err)
		}
	}
	return nil
}

func (s *Sink) writeRows(ctx context.Context, rows *event.Rows) error {
	s.cols.fill(rows, s.now().UTC().Truncate(time.Second))
	defer s.cols.release()
	b, err := s.conn.PrepareBatch(ctx, s.insertAL)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer b.Abort() //nolint:errcheck // no-op after Send
	for i, data := range s.cols.slices(rows) {
		if err := b.Column(i).Append(data); err != nil {
			return fmt.Errorf("append column %s: %w", accessLogColumns[i], err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

func (s *Sink) writeDead(ctx context.Context, dead []event.DeadLetter) error {
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
