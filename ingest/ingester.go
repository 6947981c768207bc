package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/ingest/event"
)

// Source is a member of a Kafka consumer group. *kafka.Reader satisfies it.
//
// FetchMessage blocks until a message arrives or ctx ends, returning
// ctx.Err() then; CommitMessages commits, per partition, the offset after the
// highest message given.
type Source interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Sink stores one batch. Write returns nil only once every row and dead
// letter is stored. An error wrapping ErrRejected means ClickHouse refused
// the data (the ingester then isolates the refused rows); any other error
// is retried. When the Sink is also a StoredReader, the ingester asks it,
// before writing again, which messages are already stored, so that a
// redelivered or retried message is stored once (the key_usage rollup
// counts every insert).
type Sink interface {
	Write(ctx context.Context, rows *event.Rows, dead []event.DeadLetter) error
}

// Options tune an Ingester. Zero values take the defaults in parentheses.
type Options struct {
	MaxRows          int           // rows and dead letters per batch (50,000)
	MaxBytes         int           // raw message bytes per batch (32 MiB)
	FlushInterval    time.Duration // age at which a non-empty batch is flushed (1s)
	MaxMessageBytes  int           // larger messages are dead-lettered (1 MiB)
	MaxFuture        time.Duration // events further in the future are dead-lettered (24h)
	MaxPast          time.Duration // events further in the past are dead-lettered as too_old (0: no limit)
	FingerprintKey   []byte        // secret that keys the fingerprints of presented keys (nil: plain SHA-256)
	MaxDeadLetterRaw int           // raw bytes kept per dead letter (64 KiB)
	RetryMin         time.Duration // first retry delay of a failed write (200ms)
	RetryMax         time.Duration // longest retry delay (2s: writes resume within seconds of ClickHouse's return)
	ShutdownTimeout  time.Duration // time to flush and commit after ctx ends (30s)
	CommitTimeout    time.Duration // limit on one offset commit (10s)
	CommitAttempts   int           // commits tried before giving up on a batch's offsets (5)

	// Progress, when not nil, receives a row per partition of every batch
	// written and heartbeats while nothing is in flight (ingest_progress).
	Progress         ProgressWriter
	ProgressInterval time.Duration // heartbeat period while nothing is in flight (1s)
	Topic            string        // topic named by the heartbeat of an ingester with no partition to report
	Group            string        // consumer group recorded with progress
	Instance         string        // instance name recorded with progress (host:pid)
}

func (o *Options) setDefaults() {
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
	def(&o.MaxRows, 50_000)
	def(&o.MaxBytes, 32<<20)
	def(&o.MaxMessageBytes, 1<<20)
	def(&o.MaxDeadLetterRaw, 64<<10)
	def(&o.CommitAttempts, 5)
	defD(&o.FlushInterval, time.Second)
	defD(&o.MaxFuture, 24*time.Hour)
	defD(&o.RetryMin, 200*time.Millisecond)
	defD(&o.RetryMax, 2*time.Second)
	defD(&o.ShutdownTimeout, 30*time.Second)
	defD(&o.CommitTimeout, 10*time.Second)
	defD(&o.ProgressInterval, time.Second)
}

// Ingester moves events from a Source to a Sink. Create it with New and
// start it with Run.
type Ingester struct {
	src     Source
	sink    Sink
	opts    Options
	log     *slog.Logger
	metrics *Metrics
	decoder *event.Decoder
	now     func() time.Time
	track   *tracker // nil without Options.Progress

	sinkOK   atomic.Bool // last write succeeded
	commitOK atomic.Bool // last offset commit succeeded

	next   map[partitionKey]int64 // reader: offset after the highest read, per partition
	stored StoredReader           // nil: redelivered messages are written again
	carry  map[partitionKey]bool  // writer: the last batch's tail was found stored; check the next one
}

// New returns an Ingester. metrics may be nil.
func New(src Source, sink Sink, opts Options, log *slog.Logger, metrics *Metrics) *Ingester {
	opts.setDefaults()
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	in := &Ingester{
		src: src, sink: sink, opts: opts, log: log, metrics: metrics,
		decoder: event.NewDecoder(opts.MaxMessageBytes, opts.MaxFuture),
		now:     time.Now,
	}
	in.decoder.MaxPast, in.decoder.FingerprintKey = opts.MaxPast, opts.FingerprintKey
	in.next = make(map[partitionKey]int64)
	in.carry = make(map[partitionKey]bool)
	if sr, ok := sink.(StoredReader); ok {
		in.stored = sr
	}
	if opts.Progress != nil {
		in.track = newTracker(opts.Progress, opts, log, metrics, in.now)
	}
	in.sinkOK.Store(true)
	in.commitOK.Store(true)
	return in
}

// Ready returns nil while the last write to the sink and the last offset
// commit succeeded, else an error saying which is failing.
func (in *Ingester) Ready() error {
	var errs []error
	if !in.sinkOK.Load() {
		errs = append(errs, errors.New("writes to ClickHouse are failing; retrying"))
	}
	if !in.commitOK.Load() {
		errs = append(errs, errors.New("offset commits to Kafka are failing; written messages will be read again"))
	}
	return errors.Join(errs...)
}

// Run consumes until ctx ends or the Source is closed. On the way out it
// writes and commits what it has read, giving up after ShutdownTimeout
// (uncommitted messages are read again by the next consumer). It returns
// nil after a clean shutdown.
func (in *Ingester) Run(ctx context.Context) error {
	// The writer outlives ctx by up to ShutdownTimeout to flush the last
	// batches.
	wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer wcancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(in.opts.ShutdownTimeout, wcancel)
		context.AfterFunc(wctx, func() { t.Stop() })
	})
	defer stop()

	full := make(chan *batch)
	free := make(chan *batch, 2)
	free <- newBatch()
	free <- newBatch()

	// Progress is written by a goroutine of its own so that a slow or
	// failing insert never holds up the data; it writes what is left after
	// the writer is done.
	writerDone := make(chan struct{})
	var pwg sync.WaitGroup
	if in.track != nil {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			in.track.run(wctx, writerDone)
		}()
	}

	var wg sync.WaitGroup
	var writeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		writeErr = in.writeLoop(wctx, full, free)
	}()

	readErr := in.readLoop(ctx, full, free)
	close(full)
	wg.Wait()
	close(writerDone)
	pwg.Wait()
	return errors.Join(readErr, writeErr)
}

// readLoop fetches, decodes and batches until ctx ends, handing full or old
// batches to the writer. With progress enabled it also heartbeats every
// ProgressInterval while nothing is in flight.
func (in *Ingester) readLoop(ctx context.Context, full chan<- *batch, free <-chan *batch) error {
	b := <-free
	// fetch is the context of FetchMessage: while the batch is empty, ctx
	// (with the next heartbeat as deadline when progress is on), then ctx
	// with the batch's flush deadline.
	fetch := fetchContext{ctx: ctx, cancel: func() {}}
	defer func() { fetch.cancel() }()
	nextBeat := in.now().Add(in.opts.ProgressInterval)
	arm := func() {
		fetch.cancel()
		switch {
		case !b.empty():
			fetch.ctx, fetch.cancel = context.WithDeadline(ctx, b.started.Add(in.opts.FlushInterval))
		case in.track != nil:
			fetch.ctx, fetch.cancel = context.WithDeadline(ctx, nextBeat)
		default:
			fetch = fetchContext{ctx: ctx, cancel: func() {}}
		}
	}
	arm()
	flush := func() bool {
		if b.empty() {
			return true
		}
		fetch.cancel()
		in.metrics.batchAge.Observe(in.now().Sub(b.started).Seconds())
		// Lag per partition once per batch, not per message (a label
		// lookup on the hot path).
		for k, p := range b.parts {
			if m := p.last; m.HighWaterMark > 0 {
				in.metrics.lag.WithLabelValues(k.topic, itoa(k.partition)).Set(float64(m.HighWaterMark - m.Offset - 1))
			}
		}
		b.cut = in.now()
		full <- b
		defer func() {
			nextBeat = in.now().Add(in.opts.ProgressInterval)
			arm()
		}()
		select {
		case b = <-free:
			return true
		case <-ctx.Done():
			// The writer still holds both batches; wait for one so the last
			// messages read are not lost.
			b = <-free
			return false
		}
	}
	for {
		msg, err := in.src.FetchMessage(fetch.ctx)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				flush()
				return nil
			case errors.Is(err, context.DeadlineExceeded) && fetch.ctx != ctx && b.empty():
				in.beat(len(free) == 1)
				nextBeat = in.now().Add(in.opts.ProgressInterval)
				arm()
				continue
			case errors.Is(err, context.DeadlineExceeded) && fetch.ctx != ctx:
				flush() // the batch is FlushInterval old
				continue
			case errors.Is(err, io.EOF):
				flush()
				return nil // reader closed
			default:
				in.metrics.fetchErrors.Inc()
				in.log.Warn("fetch from kafka failed", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
				continue
			}
		}
		now := in.now()
		wasEmpty := b.empty()
		in.add(b, msg, now)
		if wasEmpty {
			b.started = now
			arm()
		}
		if b.len() >= in.opts.MaxRows || b.bytes >= in.opts.MaxBytes {
			flush()
		}
	}
}

// beat writes a heartbeat if the writer is idle (the batch being filled is
// empty: the caller checked). The reader holds one of the two batches, so
// the writer is idle when the other is free: it has written that batch and
// queued its progress.
func (in *Ingester) beat(writerIdle bool) {
	if in.track == nil || !writerIdle {
		return
	}
	in.track.heartbeat(in.now())
}

type fetchContext struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// add decodes msg into b as a row or a dead letter. A message read again
// while its first copy is still in b is skipped; one read again after an
// earlier batch (a restart, a rebalance, a failed commit), or the first
// read of a partition, marks its partition for the writer to check what is
// already stored.
func (in *Ingester) add(b *batch, msg kafka.Message, now time.Time) {
	in.metrics.messagesIn.Inc()
	in.metrics.bytesIn.Add(float64(len(msg.Value)))
	k := partitionKey{msg.Topic, msg.Partition}
	if p := b.parts[k]; p != nil && msg.Offset >= p.first && msg.Offset <= p.last.Offset {
		in.metrics.redelivered.Inc()
		return
	}
	next, seen := in.next[k]
	p := b.track(msg, now)
	if !seen || msg.Offset < next {
		if p.recheckFrom < 0 || msg.Offset < p.recheckFrom {
			p.recheckFrom = msg.Offset
		}
	}
	if msg.Offset >= next {
		in.next[k] = msg.Offset + 1
	}
	row, err := in.decoder.Decode(msg.Value, now)
	if err != nil {
		dl := event.NewDeadLetter(err, msg.Value, msg.Key, msg.Topic, int32(msg.Partition), msg.Offset, in.opts.MaxDeadLetterRaw, now.UTC())
		b.dead = append(b.dead, dl)
		in.metrics.deadLetters.WithLabelValues(string(dl.Reason)).Inc()
		return
	}
	row.KafkaPartition, row.KafkaOffset = int32(msg.Partition), msg.Offset
	p.observe(row.TS.UnixMilli())
	b.rows.Append(&row)
}

// writeLoop stores each batch, retrying until it succeeds or ctx ends, then
// commits its offsets and returns it to free.
func (in *Ingester) writeLoop(ctx context.Context, full <-chan *batch, free chan<- *batch) error {
	var lost int
	for b := range full {
		if err := in.write(ctx, b); err != nil {
			// Shutdown timed out with ClickHouse unreachable: the batch is
			// not committed, so Kafka delivers it again.
			lost += b.len()
			in.log.Error("batch not written before shutdown timeout; its messages stay uncommitted and will be read again", "messages", b.len(), "err", err)
		} else {
			if in.track != nil {
				in.track.written(b) // stored: progress may claim it
			}
			in.commit(ctx, b)
		}
		b.reset()
		free <- b
	}
	if lost > 0 {
		return fmt.Errorf("shut down with %d messages unwritten (uncommitted, they will be consumed again)", lost)
	}
	return nil
}

func (in *Ingester) commit(ctx context.Context, b *batch) {
	msgs := b.commitMessages()
	if len(msgs) == 0 {
		return
	}
	bo := backoff{min: in.opts.RetryMin, max: 5 * time.Second}
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, in.opts.CommitTimeout)
		err := in.src.CommitMessages(cctx, msgs...)
		cancel()
		if err == nil {
			if !in.commitOK.Swap(true) {
				in.log.Info("offset commits recovered", "offsets", offsets(msgs))
			}
			in.metrics.commits.Inc()
			in.metrics.lastCommit.SetToCurrentTime()
			return
		}
		in.commitOK.Store(false)
		in.metrics.commitErrors.Inc()
		if attempt >= in.opts.CommitAttempts || ctx.Err() != nil {
			// Written but not committed: Kafka delivers these messages
			// again, and the writer skips those already stored.
			in.log.Error("commit offsets failed; the messages up to these offsets are stored and will be read again (and skipped)",
				"attempts", attempt, "offsets", offsets(msgs), "err", err)
			return
		}
		in.log.Warn("commit offsets failed; retrying", "attempt", attempt, "offsets", offsets(msgs), "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(bo.next()):
		}
	}
}

// offsets describes the last message of each partition of msgs, e.g.
// "topic/0@1041 topic/1@997".
func offsets(msgs []kafka.Message) string {
	var sb strings.Builder
	for i, m := range msgs {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%s/%d@%d", m.Topic, m.Partition, m.Offset)
	}
	return sb.String()
}
