package keys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/ingest/event"
)

// Source is a member of a Kafka consumer group; *kafka.Reader satisfies it.
// FetchMessage blocks until a message arrives or ctx ends (returning
// ctx.Err()); CommitMessages commits, per partition, the offset after the
// highest message given.
type Source interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
}

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
func (c *Consumer) Run(ctx context.Context) error {
	// Writes outlive ctx by up to ShutdownTimeout to finish the last batch.
	wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer wcancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(c.opts.ShutdownTimeout, wcancel)
		context.AfterFunc(wctx, func() { t.Stop() })
	})
	defer stop()
	for {
		msgs, done := c.fetchBatch(ctx)
		if len(msgs) > 0 {
			if err := c.process(wctx, msgs); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
	}
}

// fetchBatch reads up to MaxBatch messages, returning early FlushInterval
// after the first one. done reports that ctx ended or the Source closed.
func (c *Consumer) fetchBatch(ctx context.Context) (msgs []kafka.Message, done bool) {
	// fetch is ctx until the first message, then ctx with the batch's
	// flush deadline.
	fetch := struct {
		ctx    context.Context
		cancel context.CancelFunc
	}{ctx, func() {}}
	defer func() { fetch.cancel() }()
	for len(msgs) < c.opts.MaxBatch {
		m, err := c.src.FetchMessage(fetch.ctx)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return msgs, true
			case errors.Is(err, context.DeadlineExceeded) && fetch.ctx != ctx:
				return msgs, false
			case errors.Is(err, io.EOF):
				return msgs, true
			}
			c.log.Warn("fetch key events from kafka failed", "err", err)
			select {
			case <-ctx.Done():
				return msgs, true
			case <-time.After(time.Second):
			}
			continue
		}
		if len(msgs) == 0 {
			fetch.ctx, fetch.cancel = context.WithTimeout(ctx, c.opts.FlushInterval)
		}
		msgs = append(msgs, m)
	}
	return msgs, false
}

// process decodes, writes (retrying until ctx ends) and commits one batch.
func (c *Consumer) process(ctx context.Context, msgs []kafka.Message) error {
	now := c.now()
	var events []Event
	var dead []event.DeadLetter
	for _, m := range msgs {
		ev, err := c.decode(m, now)
		if err != nil {
			dl := event.NewDeadLetter(err, m.Value, m.Key, m.Topic, int32(m.Partition), m.Offset, c.opts.MaxDeadLetterRaw, now.UTC())
			dead = append(dead, dl)
			c.log.Warn("key event rejected", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "reason", dl.Reason, "err", dl.Error)
			continue
		}
		events = append(events, ev)
	}
	bo := backoff{min: c.opts.RetryMin, max: c.opts.RetryMax}
	for attempt := 1; ; attempt++ {
		err := c.write(ctx, events, dead)
		if err == nil {
			break
		}
		delay := bo.next()
		c.log.Warn("write key events failed; retrying", "attempt", attempt, "events", len(events), "dead_letters", len(dead), "retry_in", delay, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("write %d key events: gave up after %d attempts (they stay uncommitted and will be read again): %w", len(msgs), attempt, err)
		case <-time.After(delay):
		}
	}
	c.stats.Messages += len(msgs)
	c.stats.Applied += len(events)
	c.stats.DeadLetters += len(dead)
	c.stats.Batches++
	c.log.Info("applied key events", "events", len(events), "dead_letters", len(dead))
	c.commit(ctx, msgs)
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

// commit commits msgs' offsets, retrying a few times; offsets left
// uncommitted mean redelivery, which is harmless.
func (c *Consumer) commit(ctx context.Context, msgs []kafka.Message) {
	bo := backoff{min: c.opts.RetryMin, max: 5 * time.Second}
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, c.opts.CommitTimeout)
		err := c.src.CommitMessages(cctx, msgs...)
		cancel()
		if err == nil {
			return
		}
		if attempt >= c.opts.CommitAttempts || ctx.Err() != nil {
			c.log.Warn("commit key event offsets failed; the events will be applied again", "attempts", attempt, "err", err)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(bo.next()):
		}
	}
}

// backoff yields exponentially growing delays from min to max with ±20%
// jitter.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	return b.cur + time.Duration(float64(b.cur)*(rand.Float64()*0.4-0.2))
}
