package detect

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Watermark is how far the stored events are complete, from the ingest
// progress the ingesters record per Kafka partition (ingest_progress).
type Watermark struct {
	// At: every event before At is stored, as far as the ingesters know.
	// Zero when nothing is known (no ingester has written progress).
	At time.Time
	// Active is how many partitions hold the watermark (written recently or
	// still behind); Idle how many were excluded because they had caught up
	// and have not been written for IdleTimeout; Live says an ingester has
	// written progress within IdleTimeout.
	Active, Idle int
	Live         bool
}

// WatermarkSource tells how far the stored events are complete.
// Watermark must be cheap enough to call about once a second.
type WatermarkSource interface {
	Watermark(ctx context.Context, now time.Time) (Watermark, error)
}

// Progress reads the watermark from the ingest_progress table.
//
// Per partition it takes the complete_to of the row with the furthest
// offset (the latest of them). A partition is
// idle, and does not hold the watermark back, when its latest row says it
// had caught up and nothing was written for it within IdleTimeout (the
// ingesters heartbeat the partitions they read about once a second, so a
// partition stops being written only when no live ingester reads it). A
// partition that was still behind holds the watermark however old its rows
// are: the watermark then waits (and detect gives up after max_wait) instead
// of evaluating windows whose events may still be in Kafka. With no active
// partition, a live ingester's heartbeat (an ingester idle on every
// partition) moves the watermark; with no live ingester it stays at the
// last thing known.
type Progress struct {
	conn driver.Conn
	db   string
	// IdleTimeout (default 30s) and Lookback, how far back progress rows are
	// read (default 24h).
	IdleTimeout time.Duration
	Lookback    time.Duration

	mu     sync.Mutex
	cached Watermark
	at     time.Time
}

// NewProgress returns a Progress reading database db.
func NewProgress(conn driver.Conn, db string) *Progress {
	return &Progress{conn: conn, db: db, IdleTimeout: 30 * time.Second, Lookback: 24 * time.Hour}
}

// partitionProgress is the latest state of one partition.
type partitionProgress struct {
	Partition  int32
	CaughtUp   bool
	CompleteTo time.Time
	WrittenAt  time.Time
}

// Watermark implements WatermarkSource. Answers are cached for half a second.
func (p *Progress) Watermark(ctx context.Context, now time.Time) (Watermark, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.at.IsZero() && now.Sub(p.at) >= 0 && now.Sub(p.at) < 500*time.Millisecond {
		return p.cached, nil
	}
	// The state of a partition is its row with the furthest offset (the
	// latest of those): what is durably written. After a rebalance or a
	// restart, rows of a consumer still behind that offset do not pull it
	// back; the former owner's restatements stop when it stops reading.
	rows, err := p.conn.Query(ctx, "SELECT topic, partition, argMax(caught_up, (last_offset, seq)), argMax(complete_to, (last_offset, seq)), max(written_at) FROM "+p.db+
		".ingest_progress WHERE written_at >= toDateTime(?) GROUP BY topic, partition", uint32(now.Add(-p.Lookback).Unix()))
	if err != nil {
		return Watermark{}, fmt.Errorf("read ingest progress: %w", err)
	}
	defer rows.Close()
	var ps []partitionProgress
	for rows.Next() {
		var topic string
		var pp partitionProgress
		var caught uint8
		if err := rows.Scan(&topic, &pp.Partition, &caught, &pp.CompleteTo, &pp.WrittenAt); err != nil {
			return Watermark{}, fmt.Errorf("read ingest progress: %w", err)
		}
		pp.CaughtUp = caught == 1
		ps = append(ps, pp)
	}
	if err := rows.Err(); err != nil {
		return Watermark{}, fmt.Errorf("read ingest progress: %w", err)
	}
	w := computeWatermark(ps, now, p.IdleTimeout)
	p.cached, p.at = w, now
	return w, nil
}

// computeWatermark applies the rules of Progress to the partitions' states.
func computeWatermark(ps []partitionProgress, now time.Time, idle time.Duration) Watermark {
	var w Watermark
	var minActive, maxLive, maxAll time.Time
	for _, p := range ps {
		fresh := now.Sub(p.WrittenAt) <= idle
		if fresh {
			w.Live = true
		}
		if p.CompleteTo.After(maxAll) {
			maxAll = p.CompleteTo
		}
		if p.Partition < 0 { // heartbeat of an ingester that has read nothing
			if fresh && p.CompleteTo.After(maxLive) {
				maxLive = p.CompleteTo
			}
			continue
		}
		if !fresh && p.CaughtUp {
			w.Idle++
			continue
		}
		w.Active++
		if minActive.IsZero() || p.CompleteTo.Before(minActive) {
			minActive = p.CompleteTo
		}
	}
	switch {
	case w.Active > 0:
		w.At = minActive
	case w.Live:
		w.At = maxLive
		if w.At.IsZero() {
			w.At = maxAll
		}
	default:
		w.At = maxAll
	}
	return w
}

// FixedWatermark is a WatermarkSource that always says everything is
// complete (for catch-up runs and tests).
type FixedWatermark struct{}

// Watermark implements WatermarkSource: complete up to now.
func (FixedWatermark) Watermark(_ context.Context, now time.Time) (Watermark, error) {
	return Watermark{At: now, Live: true}, nil
}
