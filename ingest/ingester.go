package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/ingest/consume"
	"github.com/auditwatch/auditwatch/ingest/event"
)

// Source is a member of a Kafka consumer group; *kafka.Reader satisfies it
// (see consume.Source).
type Source = consume.Source

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
	// scratch is the decoder's memory for the reader goroutine (add).
	scratch event.Scratch
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
	loop := consume.New(in.src, func() *batch { return newBatch(in) }, in.write, consume.Options{
		MaxMessages: in.opts.MaxRows, MaxBytes: in.opts.MaxBytes, FlushInterval: in.opts.FlushInterval,
		IdleInterval: in.opts.ProgressInterval, ShutdownTimeout: in.opts.ShutdownTimeout,
		CommitTimeout: in.opts.CommitTimeout, CommitAttempts: in.opts.CommitAttempts, RetryMin: in.opts.RetryMin,
	}, consume.Hooks[*batch]{
		Idle:    in.beat,
		Flush:   in.flushed,
		Written: in.written,
		Commit: func(err error) {
			if err != nil {
				in.commitOK.Store(false)
				in.metrics.commitErrors.Inc()
				return
			}
			in.commitOK.Store(true)
			in.metrics.commits.Inc()
			in.metrics.lastCommit.SetToCurrentTime()
		},
		FetchError: func(error) { in.metrics.fetchErrors.Inc() },
	}, in.log)
	if in.track == nil {
		return loop.Run(ctx)
	}
	// Progress is written by a goroutine of its own so that a slow or
	// failing insert never holds up the data; it writes what is left after
	// the loop is done.
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		in.track.run(context.WithoutCancel(ctx), done)
	}()
	err := loop.Run(ctx)
	close(done)
	wg.Wait()
	return err
}

// flushed runs when b is handed to the writer: every message fetched before
// now is in b or an earlier batch.
func (in *Ingester) flushed(b *batch) {
	now := in.now()
	in.metrics.batchAge.Observe(now.Sub(b.started).Seconds())
	// Lag per partition once per batch, not per message (a label lookup on
	// the hot path).
	for k, p := range b.parts {
		if m := p.last; m.HighWaterMark > 0 {
			in.metrics.lag.WithLabelValues(k.topic, itoa(k.partition)).Set(float64(m.HighWaterMark - m.Offset - 1))
		}
	}
	b.cut = now
}

// written runs once b is stored, before its offsets are committed:
// progress may now claim it.
func (in *Ingester) written(b *batch) {
	if in.track != nil {
		in.track.written(b)
	}
}

// beat writes a heartbeat if the writer is idle (the batch being filled is
// empty: the loop checked). The writer is idle when it has written its last
// batch and queued that batch's progress.
func (in *Ingester) beat(writerIdle bool) {
	if in.track == nil || !writerIdle {
		return
	}
	in.track.heartbeat(in.now())
}

// add decodes msg into b as a row or a dead letter. A message read again
// while its first copy is still in b is skipped; one read again after an
// earlier batch (a restart, a rebalance, a failed commit), or the first
// read of a partition, marks its partition for the writer to check what is
// already stored.
func (in *Ingester) add(b *batch, msg kafka.Message, now time.Time) {
	in.metrics.messagesIn.Inc()
	in.metrics.bytesIn.Add(float64(len(msg.Value)))
	if b.started.IsZero() {
		b.started = now
	}
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
	// The row borrows in.scratch until the next message: Rows.Append copies it.
	row, err := in.decoder.DecodeBorrowed(&in.scratch, msg.Value, now)
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
