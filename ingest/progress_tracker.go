package ingest

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

const (
	// heartbeatWindow is how long after its last message a partition is
	// still restated by heartbeats.
	heartbeatWindow = 10 * time.Minute
	// progressWriteTimeout bounds one progress insert.
	progressWriteTimeout = 10 * time.Second
	// maxRetainedProgress bounds the batch rows kept for retry while
	// progress inserts fail; the oldest go first.
	maxRetainedProgress = 10_000
)

// partProgress is what the ingester has written of one partition.
type partProgress struct {
	lastOffset int64
	highWater  int64
	caughtUp   bool
	fetchedAt  time.Time // when the last message written was fetched
	maxEvent   time.Time // greatest event time written by this process (zero: none)
}

// tracker keeps per-partition progress and the rows waiting to be written.
// The writer goroutine reports written batches, the reader goroutine
// heartbeats, and run writes the queued rows in the order they were made.
type tracker struct {
	w                      ProgressWriter
	group, instance, topic string
	log                    *slog.Logger
	metrics                *Metrics
	now                    func() time.Time

	mu      sync.Mutex
	parts   map[partitionKey]*partProgress
	pending []Progress
	lastSeq uint64
	wake    chan struct{} // a row was queued
}

func newTracker(w ProgressWriter, opts Options, log *slog.Logger, metrics *Metrics, now func() time.Time) *tracker {
	return &tracker{
		w: w, group: opts.Group, instance: opts.Instance, topic: opts.Topic, log: log, metrics: metrics, now: now,
		parts: make(map[partitionKey]*partProgress),
		wake:  make(chan struct{}, 1),
	}
}

// written records that b is stored in ClickHouse and queues one row per
// partition of b, and a restating row (rows = 0) for each other partition
// read within heartbeatWindow that had caught up.
func (t *tracker) written(b *batch) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, s := range b.parts {
		p := t.parts[k]
		if p == nil {
			p = &partProgress{}
			t.parts[k] = p
		}
		p.lastOffset, p.highWater, p.fetchedAt = s.last.Offset, s.last.HighWaterMark, s.fetchedAt
		p.caughtUp = s.last.Offset+1 >= s.last.HighWaterMark
		var minTS, maxTS time.Time
		if s.hasTS {
			minTS, maxTS = time.UnixMilli(s.minTS).UTC(), time.UnixMilli(s.maxTS).UTC()
			if maxTS.After(p.maxEvent) {
				p.maxEvent = maxTS
			}
		}
		row := t.row(k, p, p.fetchedAt)
		row.Rows = uint32(s.n)
		if s.hasTS {
			row.MinEventTS, row.MaxEventTS = minTS, maxTS
		}
		t.pending = append(t.pending, row)
	}
	// Partitions the batch has nothing of, that had caught up: nothing was
	// fetched from them since, so they are complete to when the batch was
	// cut. Restating them with each batch keeps a quiet partition from
	// holding detection's watermark back while others are busy (heartbeats
	// only run when the whole ingester is idle).
	if !b.cut.IsZero() {
		for k, p := range t.parts {
			if _, in := b.parts[k]; in || !p.caughtUp || b.cut.Sub(p.fetchedAt) > heartbeatWindow || !b.cut.After(p.fetchedAt) {
				continue
			}
			t.pending = append(t.pending, t.row(k, p, b.cut))
		}
	}
	t.signal()
}

// heartbeat queues, as of now, a row restating every partition read within
// heartbeatWindow, or one row for partition -1 when there is none. The
// caller guarantees that no message it has fetched is waiting to be
// written.
func (t *tracker) heartbeat(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.pending)
	for k, p := range t.parts {
		if now.Sub(p.fetchedAt) > heartbeatWindow {
			continue
		}
		t.pending = append(t.pending, t.row(k, p, now))
	}
	if len(t.pending) == n {
		t.pending = append(t.pending, Progress{
			Topic: t.topic, Partition: -1, ConsumerGroup: t.group, Ingester: t.instance,
			MinEventTS: now.UTC(), MaxEventTS: now.UTC(), CompleteTo: now.UTC(), CaughtUp: true,
		})
	}
	t.signal()
}

// row returns the progress of partition k as of at: complete to at when it
// had caught up, else to the greatest event time written, but never past
// the time its last message was read (an event stamped in the future by a
// skewed clock must not vouch for events not yet produced). Event times
// default to complete_to (a heartbeat, or a batch of dead letters only).
func (t *tracker) row(k partitionKey, p *partProgress, at time.Time) Progress {
	complete := p.maxEvent
	if complete.After(p.fetchedAt) {
		complete = p.fetchedAt
	}
	if p.caughtUp {
		complete = at
	}
	if complete.IsZero() {
		complete = time.Unix(0, 0) // nothing known to be complete
	}
	complete = complete.UTC()
	return Progress{
		Topic: k.topic, Partition: int32(k.partition), ConsumerGroup: t.group, Ingester: t.instance,
		MinEventTS: complete, MaxEventTS: complete, CompleteTo: complete, CaughtUp: p.caughtUp,
		LastOffset: p.lastOffset, HighWater: p.highWater,
	}
}

func (t *tracker) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// run writes queued rows as they come until done is closed, then writes
// what is left once and returns.
func (t *tracker) run(ctx context.Context, done <-chan struct{}) {
	for {
		select {
		case <-t.wake:
			t.flush(ctx)
		case <-done:
			t.flush(ctx)
			return
		}
	}
}

// flush inserts the queued rows, stamping them with the time of the
// insert. On failure it logs, counts, and keeps the batch rows (heartbeats
// are superseded by the next one) for the next flush.
func (t *tracker) flush(ctx context.Context) {
	t.mu.Lock()
	rows := t.pending
	t.pending = nil
	now := t.now().UTC()
	seq := max(uint64(now.UnixNano()), t.lastSeq+1)
	for i := range rows {
		rows[i].WrittenAt, rows[i].Seq = now, seq
		seq++
	}
	t.lastSeq = seq - 1
	t.mu.Unlock()
	if len(rows) == 0 {
		return
	}

	wctx, cancel := context.WithTimeout(ctx, progressWriteTimeout)
	err := t.w.WriteProgress(wctx, rows)
	cancel()
	if err == nil {
		for _, r := range rows {
			if r.Partition >= 0 {
				t.metrics.completeTo.WithLabelValues(r.Topic, itoa(int(r.Partition))).Set(float64(r.CompleteTo.Unix()))
			}
		}
		return
	}
	t.metrics.progressErrors.Inc()
	keep := rows[:0]
	for _, r := range rows {
		if r.Rows > 0 {
			keep = append(keep, r)
		}
	}
	t.log.Warn("write ingest progress failed; batch rows retried with the next write", "rows", len(rows), "kept", len(keep), "err", err)
	t.mu.Lock()
	t.pending = append(keep, t.pending...)
	if over := len(t.pending) - maxRetainedProgress; over > 0 {
		t.log.Warn("dropping the oldest unwritten progress rows", "dropped", over)
		t.pending = append(t.pending[:0], t.pending[over:]...)
	}
	t.mu.Unlock()
}
