package keys

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/ingest/consume"
	"github.com/auditwatch/auditwatch/ingest/event"
)

// Source is a member of a Kafka consumer group; *kafka.Reader satisfies it
// (see consume.Source).
type Source = consume.Source

// DeadLetterWriter stores rejected messages in ingest_errors; *chsink.Sink
// satisfies it (rows is always nil here). It returns nil only once every
// dead letter is stored.
type DeadLetterWriter interface {
	Write(ctx context.Context, rows *event.Rows, dead []event.DeadLetter) error
}

// Applier applies lifecycle events; *Store satisfies it.
type Applier interface {
	Apply(ctx context.Context, events ...Event) error
}

// ConsumerOptions tune a Consumer. Zero values take the defaults in
// parentheses.
type ConsumerOptions struct {
	MaxBatch         int           // messages per batch (500)
	FlushInterval    time.Duration // a batch is written at the latest this long after its first message (1s)
	MaxMessageBytes  int           // larger messages are dead-lettered unparsed (1 MiB)
	MaxDeadLetterRaw int           // raw bytes kept per dead letter (64 KiB)
	RetryMin         time.Duration // first retry delay of a failed write (200ms)
	RetryMax         time.Duration // longest retry delay (30s)
	ShutdownTimeout  time.Duration // time to write and commit the last batch after ctx ends (30s)
	CommitTimeout    time.Duration // limit on one offset commit (10s)
	CommitAttempts   int           // commits tried before leaving the offsets to the next batch (5)
}

func (o *ConsumerOptions) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxBatch, 500)
	def(&o.MaxMessageBytes, 1<<20)
	def(&o.MaxDeadLetterRaw, 64<<10)
	def(&o.CommitAttempts, 5)
	defD(&o.FlushInterval, time.Second)
	defD(&o.RetryMin, 200*time.Millisecond)
	defD(&o.RetryMax, 30*time.Second)
	defD(&o.ShutdownTimeout, 30*time.Second)
	defD(&o.CommitTimeout, 10*time.Second)
}

// ConsumerStats counts what a Consumer did.
type ConsumerStats struct {
	Messages, Applied, DeadLetters, Batches int
}

// Consumer applies the key lifecycle topic to the registry: it reads
// batches, decodes each message (bad ones become dead letters in
// ingest_errors, and the stream goes on), applies the events, and commits
// the offsets only after ClickHouse has the batch. Delivery is at-least-once;
// applying an event twice is harmless. Create it with NewConsumer.
type Consumer struct {
	src   Source
	apply Applier
	dead  DeadLetterWriter
	opts  ConsumerOptions
	log   *slog.Logger
	now   func() time.Time
	stats ConsumerStats
}

// NewConsumer returns a Consumer reading src, applying events through apply
// and writing dead letters to dead.
func NewConsumer(src Source, apply Applier, dead DeadLetterWriter, opts ConsumerOptions, log *slog.Logger) *Consumer {
	opts.setDefaults()
	return &Consumer{src: src, apply: apply, dead: dead, opts: opts, log: log, now: time.Now}
}

// Stats returns the counts so far. It must not be called while Run runs.
func (c *Consumer) Stats() ConsumerStats { return c.stats }

// Run consumes until ctx ends or the Source is closed, then writes and
// commits the batch it holds, giving up after ShutdownTimeout (uncommitted
// messages are read again by the next consumer). Failed writes are retried
// with backoff until they succeed. It returns nil after a clean shutdown.
// It runs on the same consumer loop as the ingester (ingest/consume).
func (c *Consumer) Run(ctx context.Context) error {
	loop := consume.New(c.src, func() *keyBatch { return &keyBatch{c: c} }, c.process, consume.Options{
		MaxMessages: c.opts.MaxBatch, FlushInterval: c.opts.FlushInterval, ShutdownTimeout: c.opts.ShutdownTimeout,
		CommitTimeout: c.opts.CommitTimeout, CommitAttempts: c.opts.CommitAttempts, RetryMin: c.opts.RetryMin,
	}, consume.Hooks[*keyBatch]{}, c.log)
	return loop.Run(ctx)
}

// keyBatch is the consumer's consume.Batch: decoded events and dead
// letters.
type keyBatch struct {
	c      *Consumer
	events []Event
	dead   []event.DeadLetter
	bytes  int
}

// Add decodes m; a message that does not decode becomes a dead letter.
func (b *keyBatch) Add(m kafka.Message, now time.Time) {
	b.bytes += len(m.Value)
	ev, err := b.c.decode(m, now)
	if err != nil {
		dl := event.NewDeadLetter(err, m.Value, m.Key, m.Topic, int32(m.Partition), m.Offset, b.c.opts.MaxDeadLetterRaw, now.UTC())
		b.dead = append(b.dead, dl)
		b.c.log.Warn("key event rejected", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "reason", dl.Reason, "err", dl.Error)
		return
	}
	b.events = append(b.events, ev)
}

func (b *keyBatch) Len() int   { return len(b.events) + len(b.dead) }
func (b *keyBatch) Bytes() int { return b.bytes }
func (b *keyBatch) Reset()     { b.events, b.dead, b.bytes = b.events[:0], b.dead[:0], 0 }

// process applies one batch, retrying until it succeeds or ctx ends.
func (c *Consumer) process(ctx context.Context, b *keyBatch) error {
	bo := consume.Backoff{Min: c.opts.RetryMin, Max: c.opts.RetryMax}
	for attempt := 1; ; attempt++ {
		err := c.write(ctx, b.events, b.dead)
		if err == nil {
			break
		}
		delay := bo.Next()
		c.log.Warn("write key events failed; retrying", "attempt", attempt, "events", len(b.events), "dead_letters", len(b.dead), "retry_in", delay, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("write %d key events: gave up after %d attempts (they stay uncommitted and will be read again): %w", b.Len(), attempt, err)
		case <-time.After(delay):
		}
	}
	c.stats.Messages += b.Len()
	c.stats.Applied += len(b.events)
	c.stats.DeadLetters += len(b.dead)
	c.stats.Batches++
	c.log.Info("applied key events", "events", len(b.events), "dead_letters", len(b.dead))
	return nil
}

func (c *Consumer) decode(m kafka.Message, now time.Time) (Event, error) {
	if len(m.Value) > c.opts.MaxMessageBytes {
		return Event{}, &event.Error{Reason: event.ReasonTooLarge, Msg: fmt.Sprintf("message of %d bytes exceeds the limit of %d", len(m.Value), c.opts.MaxMessageBytes)}
	}
	ev, err := DecodeEvent(m.Value, now)
	if err != nil {
		return ev, err
	}
	ev.Topic, ev.Partition, ev.Offset = m.Topic, int32(m.Partition), m.Offset
	return ev, nil
}

func (c *Consumer) write(ctx context.Context, events []Event, dead []event.DeadLetter) error {
	if err := c.apply.Apply(ctx, events...); err != nil {
		return err
	}
	if len(dead) > 0 {
		if err := c.dead.Write(ctx, nil, dead); err != nil {
			return err
		}
	}
	return nil
}
