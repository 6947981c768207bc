package chsink

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/ingest"
)

// progressColumns is the column list of ingest_progress inserts.
var progressColumns = []string{
	"written_at", "seq", "topic", "partition", "consumer_group", "ingester", "rows",
	"min_event_ts", "max_event_ts", "complete_to", "caught_up", "last_offset", "high_water",
}

// ProgressWriter inserts the ingester's progress rows into ingest_progress.
// It implements ingest.ProgressWriter and is safe for concurrent use.
type ProgressWriter struct {
	conn    driver.Conn
	db      string
	insert  string
	cluster bool
}

// NewProgressWriter returns a ProgressWriter writing to database db through
// conn.
func NewProgressWriter(conn driver.Conn, db string) *ProgressWriter {
	return &ProgressWriter{
		conn:   conn,
		db:     db,
		insert: fmt.Sprintf("INSERT INTO %s.ingest_progress (%s)", db, strings.Join(progressColumns, ", ")),
	}
}

var _ ingest.ProgressWriter = (*ProgressWriter)(nil)

// WriteProgress inserts rows in one batch.
func (w *ProgressWriter) WriteProgress(ctx context.Context, rows []ingest.Progress) error {
	if len(rows) == 0 {
		return nil
	}
	if err := w.write(ctx, rows); err != nil {
		return fmt.Errorf("insert %d rows into %s.ingest_progress: %w", len(rows), w.db, err)
	}
	return nil
}

func (w *ProgressWriter) write(ctx context.Context, rows []ingest.Progress) error {
	if w.cluster {
		ctx = distributedSync(ctx)
	}
	b, err := w.conn.PrepareBatch(ctx, w.insert)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer b.Abort() //nolint:errcheck // no-op after Send
	for _, r := range rows {
		var caughtUp uint8
		if r.CaughtUp {
			caughtUp = 1
		}
		if err := b.Append(r.WrittenAt.UTC(), r.Seq, r.Topic, r.Partition, r.ConsumerGroup, r.Ingester, r.Rows,
			r.MinEventTS.UTC(), r.MaxEventTS.UTC(), r.CompleteTo.UTC(), caughtUp, r.LastOffset, r.HighWater); err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}
