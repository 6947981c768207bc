package ingest

import (
	"sort"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/ingest/event"
)

// batch is a set of decoded messages written and committed together.
type batch struct {
	rows    event.Rows
	dead    []event.DeadLetter
	last    map[partitionKey]kafka.Message // highest message per partition
	bytes   int
	started time.Time
}

type partitionKey struct {
	topic     string
	partition int
}

func newBatch() *batch {
	return &batch{last: make(map[partitionKey]kafka.Message)}
}

func (b *batch) len() int    { return b.rows.Len() + len(b.dead) }
func (b *batch) empty() bool { return b.len() == 0 }

// track records msg as read, for the commit.
func (b *batch) track(msg kafka.Message) {
	b.bytes += len(msg.Value)
	k := partitionKey{msg.Topic, msg.Partition}
	if cur, ok := b.last[k]; !ok || msg.Offset > cur.Offset {
		// Keep only what a commit needs, not the payload.
		b.last[k] = kafka.Message{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset, HighWaterMark: msg.HighWaterMark}
	}
}

// commitMessages returns the last message of each partition, in a stable
// order.
func (b *batch) commitMessages() []kafka.Message {
	out := make([]kafka.Message, 0, len(b.last))
	for _, m := range b.last {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

func (b *batch) reset() {
	b.rows.Reset()
	clear(b.dead) // drop references to strings
	b.dead = b.dead[:0]
	clear(b.last)
	b.bytes = 0
	b.started = time.Time{}
}

func itoa(i int) string { return strconv.Itoa(i) }
