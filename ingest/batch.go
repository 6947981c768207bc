package ingest

import (
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/ingest/event"
)

// batch is a set of decoded messages written and committed together. It is
// the ingester's consume.Batch.
type batch struct {
	in      *Ingester
	rows    event.Rows
	dead    []event.DeadLetter
	parts   map[partitionKey]*partStats // per partition read into the batch
	bytes   int
	started time.Time
	// cut is when the reader handed the batch to the writer: every message
	// fetched before it is in this batch or an earlier one.
	cut time.Time
}

type partitionKey struct {
	topic     string
	partition int
}

// partStats is what a batch holds of one partition: enough to commit it and
// to report its progress.
type partStats struct {
	last  kafka.Message // highest message, without its payload
	first int64         // lowest offset in the batch
	// recheckFrom is the lowest offset read again after an earlier batch
	// (or read first since start): from it on, the writer checks what is
	// already stored. -1: none.
	recheckFrom int64
	fetchedAt   time.Time // when FetchMessage returned last
	n           int       // rows and dead letters
	hasTS       bool      // minTS and maxTS are set (the partition has rows)
	minTS       int64     // earliest event time of its rows, unix ms
	maxTS       int64     // latest event time of its rows, unix ms
}

// observe records the event time of one row, in unix milliseconds.
func (p *partStats) observe(ms int64) {
	if !p.hasTS {
		p.minTS, p.maxTS, p.hasTS = ms, ms, true
		return
	}
	p.minTS = min(p.minTS, ms)
	p.maxTS = max(p.maxTS, ms)
}

func newBatch(in *Ingester) *batch {
	return &batch{in: in, parts: make(map[partitionKey]*partStats)}
}

// Add decodes msg, fetched at now, into b (consume.Batch).
func (b *batch) Add(msg kafka.Message, now time.Time) { b.in.add(b, msg, now) }

// Len returns the rows and dead letters held (consume.Batch).
func (b *batch) Len() int { return b.len() }

// Bytes returns the raw message bytes read into b (consume.Batch).
func (b *batch) Bytes() int { return b.bytes }

// Reset empties b for reuse (consume.Batch).
func (b *batch) Reset() { b.reset() }

func (b *batch) len() int    { return b.rows.Len() + len(b.dead) }
func (b *batch) empty() bool { return b.len() == 0 }

// track records msg, fetched at now, as read, for the commit and the
// progress report, and returns its partition's stats.
func (b *batch) track(msg kafka.Message, now time.Time) *partStats {
	b.bytes += len(msg.Value)
	k := partitionKey{msg.Topic, msg.Partition}
	p := b.parts[k]
	if p == nil {
		p = &partStats{last: kafka.Message{Offset: -1}, first: msg.Offset, recheckFrom: -1}
		b.parts[k] = p
	}
	p.first = min(p.first, msg.Offset)
	p.n++
	if msg.Offset > p.last.Offset {
		// Keep only what a commit needs, not the payload.
		p.last = kafka.Message{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset, HighWaterMark: msg.HighWaterMark}
		p.fetchedAt = now
	}
	return p
}

func (b *batch) reset() {
	b.rows.Reset()
	clear(b.dead) // drop references to strings
	b.dead = b.dead[:0]
	clear(b.parts)
	b.bytes = 0
	b.started, b.cut = time.Time{}, time.Time{}
}

func itoa(i int) string { return strconv.Itoa(i) }
