// Package consume is the one Kafka consumer loop of auditwatch: it fetches
// from a consumer group into batches flushed by size or age, hands each
// batch to a writer goroutine, and commits a batch's offsets only after the
// writer has stored it. The access-log ingester and the key-lifecycle
// consumer both run on it.
//
// At most two batches exist at a time (one filling, one being written), so a
// backlog or an outage of the store never grows memory: the reader stops
// fetching until the writer catches up. On shutdown the loop writes and
// commits what it has read, giving up after ShutdownTimeout (what is left
// uncommitted is read again by the next consumer).
package consume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
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

// Batch collects fetched messages. Add is called for every message fetched
// (the loop itself keeps what the commit needs); Len and Bytes decide when
// the batch is full.
type Batch interface {
	Add(msg kafka.Message, now time.Time)
	Len() int
	Bytes() int
	Reset()
}

// Options tune a Loop. Zero values take the defaults in parentheses.
type Options struct {
	MaxMessages     int           // messages per batch (50,000)
	MaxBytes        int           // Batch.Bytes per batch (32 MiB)
	FlushInterval   time.Duration // age at which a non-empty batch is flushed (1s)
	IdleInterval    time.Duration // period of Hooks.Idle while nothing is being filled (0: never)
	ShutdownTimeout time.Duration // time to write and commit after ctx ends (30s)
	CommitTimeout   time.Duration // limit on one offset commit (10s)
	CommitAttempts  int           // commits tried before leaving a batch's offsets to the next (5)
	RetryMin        time.Duration // first commit retry delay (200ms)
}

func (o *Options) setDefaults() {
	if o.MaxMessages <= 0 {
		o.MaxMessages = 50_000
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 32 << 20
	}
	if o.CommitAttempts <= 0 {
		o.CommitAttempts = 5
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&o.FlushInterval, time.Second}, {&o.ShutdownTimeout, 30 * time.Second}, {&o.CommitTimeout, 10 * time.Second}, {&o.RetryMin, 200 * time.Millisecond}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
}

// Hooks let the owner of a Loop observe it. Every field may be nil.
type Hooks[B Batch] struct {
	// Idle runs on the reader goroutine every IdleInterval while the batch
	// being filled is empty; writerIdle says no batch is being written.
	Idle func(writerIdle bool)
	// Flush runs on the reader goroutine when b is handed to the writer.
	Flush func(b B)
	// Written runs on the writer goroutine once b is stored, before its
	// offsets are committed.
	Written func(b B)
	// Commit runs after each commit attempt sequence: err is nil once the
	// offsets are committed.
	Commit func(err error)
	// FetchError runs when a fetch fails (the loop waits a second and
	// fetches again).
	FetchError func(err error)
}

// Loop moves messages from a Source through batches to a write function.
type Loop[B Batch] struct {
	src      Source
	newBatch func() B
	write    func(ctx context.Context, b B) error
	hooks    Hooks[B]
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	commitOK atomic.Bool
	// committed is the highest offset committed per partition by this
	// Loop (writer goroutine only). A batch re-read after a rebalance can
	// end below it; committing that would move the group's offset back.
	committed map[partition]int64
}

// New returns a Loop. write stores one batch: it returns nil once the batch
// is stored, retrying what may pass; an error (only once ctx has ended)
// leaves the batch uncommitted.
func New[B Batch](src Source, newBatch func() B, write func(ctx context.Context, b B) error, opts Options, hooks Hooks[B], log *slog.Logger) *Loop[B] {
	opts.setDefaults()
	l := &Loop[B]{src: src, newBatch: newBatch, write: write, hooks: hooks, opts: opts, log: log, now: time.Now,
		committed: make(map[partition]int64)}
	l.commitOK.Store(true)
	return l
}

// CommitsOK reports whether the last offset commit succeeded.
func (l *Loop[B]) CommitsOK() bool { return l.commitOK.Load() }

// slot is a batch with what its commit needs: the highest message of each
// partition, without payload.
type slot[B Batch] struct {
	b       B
	last    map[partition]kafka.Message
	n       int
	started time.Time
}

type partition struct {
	topic string
	id    int
}

func (s *slot[B]) empty() bool { return s.n == 0 }

func (s *slot[B]) reset() {
	s.b.Reset()
	clear(s.last)
	s.n = 0
	s.started = time.Time{}
}

// commits returns the last message of each partition in a stable order.
func (s *slot[B]) commits() []kafka.Message {
	out := make([]kafka.Message, 0, len(s.last))
	for _, m := range s.last {
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

// Run consumes until ctx ends or the Source is closed, then writes and
// commits what it has read, giving up after ShutdownTimeout. It returns nil
// after a clean shutdown, or an error counting the messages left unwritten.
func (l *Loop[B]) Run(ctx context.Context) error {
	// The writer outlives ctx by up to ShutdownTimeout to flush the last
	// batches.
	wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer wcancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(l.opts.ShutdownTimeout, wcancel)
		context.AfterFunc(wctx, func() { t.Stop() })
	})
	defer stop()

	full := make(chan *slot[B])
	free := make(chan *slot[B], 2)
	for range 2 {
		free <- &slot[B]{b: l.newBatch(), last: make(map[partition]kafka.Message)}
	}
	var wg sync.WaitGroup
	var writeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		writeErr = l.writeLoop(wctx, full, free)
	}()
	readErr := l.readLoop(ctx, full, free)
	close(full)
	wg.Wait()
	return errors.Join(readErr, writeErr)
}

type fetchContext struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// readLoop fetches into the current batch until ctx ends, handing full or
// old batches to the writer, and runs Hooks.Idle every IdleInterval while
// nothing is being filled.
func (l *Loop[B]) readLoop(ctx context.Context, full chan<- *slot[B], free <-chan *slot[B]) error {
	s := <-free
	// fetch is the context of FetchMessage: while the batch is empty, ctx
	// (with the next idle tick as deadline when there is an Idle hook),
	// then ctx with the batch's flush deadline.
	fetch := fetchContext{ctx: ctx, cancel: func() {}}
	defer func() { fetch.cancel() }()
	idle := l.hooks.Idle != nil && l.opts.IdleInterval > 0
	nextIdle := l.now().Add(l.opts.IdleInterval)
	arm := func() {
		fetch.cancel()
		switch {
		case !s.empty():
			fetch.ctx, fetch.cancel = context.WithDeadline(ctx, s.started.Add(l.opts.FlushInterval))
		case idle:
			fetch.ctx, fetch.cancel = context.WithDeadline(ctx, nextIdle)
		default:
			fetch = fetchContext{ctx: ctx, cancel: func() {}}
		}
	}
	arm()
	flush := func() {
		if s.empty() {
			return
		}
		fetch.cancel()
		if l.hooks.Flush != nil {
			l.hooks.Flush(s.b)
		}
		full <- s
		select {
		case s = <-free:
		case <-ctx.Done():
			// The writer holds both batches; wait for one so the last
			// messages read are not lost.
			s = <-free
		}
		nextIdle = l.now().Add(l.opts.IdleInterval)
		arm()
	}
	for {
		msg, err := l.src.FetchMessage(fetch.ctx)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				flush()
				return nil
			case errors.Is(err, context.DeadlineExceeded) && fetch.ctx != ctx && s.empty():
				l.hooks.Idle(len(free) == 1)
				nextIdle = l.now().Add(l.opts.IdleInterval)
				arm()
				continue
			case errors.Is(err, context.DeadlineExceeded) && fetch.ctx != ctx:
				flush() // the batch is FlushInterval old
				continue
			case errors.Is(err, io.EOF):
				flush()
				return nil // reader closed
			default:
				if l.hooks.FetchError != nil {
					l.hooks.FetchError(err)
				}
				l.log.Warn("fetch from kafka failed", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
				continue
			}
		}
		now := l.now()
		wasEmpty := s.empty()
		s.b.Add(msg, now)
		s.n++
		k := partition{msg.Topic, msg.Partition}
		if m, ok := s.last[k]; !ok || msg.Offset > m.Offset {
			// Keep only what a commit needs, not the payload.
			s.last[k] = kafka.Message{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset, HighWaterMark: msg.HighWaterMark}
		}
		if wasEmpty {
			s.started = now
			arm()
		}
		if s.b.Len() >= l.opts.MaxMessages || s.b.Bytes() >= l.opts.MaxBytes {
			flush()
		}
	}
}

// writeLoop stores each batch, then commits its offsets and returns it to
// free.
func (l *Loop[B]) writeLoop(ctx context.Context, full <-chan *slot[B], free chan<- *slot[B]) error {
	var lost int
	for s := range full {
		if err := l.write(ctx, s.b); err != nil {
			// Shutdown timed out with the store unreachable: the batch is
			// not committed, so Kafka delivers it again.
			lost += s.n
			l.log.Error("batch not stored before shutdown timeout; its messages stay uncommitted and will be read again",
				"messages", s.n, "offsets", offsets(s.commits()), "err", err)
		} else {
			if l.hooks.Written != nil {
				l.hooks.Written(s.b)
			}
			l.commit(ctx, s.commits())
		}
		s.reset()
		free <- s
	}
	if lost > 0 {
		return fmt.Errorf("shut down with %d messages uncommitted (their batches were not stored; they will be consumed again)", lost)
	}
	return nil
}

// commit commits msgs, retrying a few times. Offsets left uncommitted mean
// the messages are read again; the next batch's commit covers them. An
// offset at or below one this Loop already committed is left out, so the
// group's offset never moves back.
func (l *Loop[B]) commit(ctx context.Context, msgs []kafka.Message) {
	msgs = l.ahead(msgs)
	if len(msgs) == 0 {
		return
	}
	bo := Backoff{Min: l.opts.RetryMin, Max: 5 * time.Second}
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, l.opts.CommitTimeout)
		err := l.src.CommitMessages(cctx, msgs...)
		cancel()
		if err == nil {
			for _, m := range msgs {
				l.committed[partition{m.Topic, m.Partition}] = m.Offset
			}
			if !l.commitOK.Swap(true) {
				l.log.Info("offset commits recovered", "offsets", offsets(msgs))
			}
			if l.hooks.Commit != nil {
				l.hooks.Commit(nil)
			}
			return
		}
		l.commitOK.Store(false)
		if l.hooks.Commit != nil {
			l.hooks.Commit(err)
		}
		if attempt >= l.opts.CommitAttempts || ctx.Err() != nil {
			l.log.Error("commit offsets failed; the messages up to these offsets are stored and will be read again",
				"attempts", attempt, "offsets", offsets(msgs), "err", err)
			return
		}
		l.log.Warn("commit offsets failed; retrying", "attempt", attempt, "offsets", offsets(msgs), "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(bo.Next()):
		}
	}
}

// ahead returns the messages of msgs past the offset committed last on
// their partition.
func (l *Loop[B]) ahead(msgs []kafka.Message) []kafka.Message {
	out := msgs[:0]
	for _, m := range msgs {
		if c, ok := l.committed[partition{m.Topic, m.Partition}]; ok && m.Offset <= c {
			continue
		}
		out = append(out, m)
	}
	return out
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
