package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/ingest/event"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// msgAt is a valid access-log message of topic "t" with event time ts.
func msgAt(partition int, offset, highWater int64, ts time.Time) kafka.Message {
	return kafka.Message{
		Topic: "t", Partition: partition, Offset: offset, HighWaterMark: highWater,
		Value: fmt.Appendf(nil, `{"ts":"%s","request_id":"r-%d-%d","method":"GET","path":"/v1/x","status":200,"client_ip":"203.0.113.7"}`,
			ts.Format(time.RFC3339Nano), partition, offset),
	}
}

// fill adds msgs, fetched at the given times, to a new batch the way the
// reader does.
func fill(t *testing.T, in *Ingester, fetched []time.Time, msgs ...kafka.Message) *batch {
	t.Helper()
	b := newBatch(nil)
	for i, m := range msgs {
		in.add(b, m, fetched[i])
	}
	return b
}

func testIngester(opts Options) *Ingester {
	opts.Progress = &fakeProgress{}
	opts.Topic, opts.Group, opts.Instance = "t", "g", "h:1"
	in := New(nil, nil, opts, slog.New(slog.DiscardHandler), nil)
	in.decoder = event.NewDecoder(1<<20, 100*365*24*time.Hour)
	return in
}

func byPartition(rows []Progress) map[int32]Progress {
	out := make(map[int32]Progress)
	for _, r := range rows {
		out[r.Partition] = r
	}
	return out
}

func TestProgressRowsPerBatch(t *testing.T) {
	in := testIngester(Options{})
	f1, f2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
	// Batch 1: partition 0 caught up (offset 9 of high water 10), partition 1
	// behind (offset 4 of 100), partition 2 only a dead letter, caught up.
	b1 := fill(t, in, []time.Time{f1, f1, f1, f1, f1},
		msgAt(0, 8, 10, t0.Add(3*time.Second)),
		msgAt(0, 9, 10, t0.Add(1*time.Second)),
		msgAt(1, 3, 100, t0.Add(20*time.Second)),
		msgAt(1, 4, 100, t0.Add(10*time.Second)),
		kafka.Message{Topic: "t", Partition: 2, Offset: 0, HighWaterMark: 1, Value: []byte("not json")},
	)
	in.track.written(b1)
	// Batch 2: partition 1 still behind, with older events: complete_to
	// keeps the running max; then it catches up.
	b2 := fill(t, in, []time.Time{f2}, msgAt(1, 5, 100, t0.Add(5*time.Second)))
	in.track.written(b2)
	f3 := t0.Add(3 * time.Minute)
	b3 := fill(t, in, []time.Time{f3}, msgAt(1, 99, 100, t0.Add(4*time.Second)))
	in.track.written(b3)

	// Partition 3 behind with an event stamped in the future: complete_to
	// stops at the time it was read.
	b4 := fill(t, in, []time.Time{f3}, msgAt(3, 0, 100, f3.Add(time.Hour)))
	in.track.written(b4)

	got := in.track.pending
	if len(got) != 6 {
		t.Fatalf("%d rows, want 6: %+v", len(got), got)
	}
	first := byPartition(got[:3])
	tests := []struct {
		name string
		got  Progress
		want Progress
	}{
		{"caught up: complete to the fetch time", first[0], Progress{Rows: 2, MinEventTS: t0.Add(time.Second), MaxEventTS: t0.Add(3 * time.Second),
			CompleteTo: f1, CaughtUp: true, LastOffset: 9, HighWater: 10}},
		{"behind: complete to the greatest event time", first[1], Progress{Rows: 2, MinEventTS: t0.Add(10 * time.Second), MaxEventTS: t0.Add(20 * time.Second),
			CompleteTo: t0.Add(20 * time.Second), LastOffset: 4, HighWater: 100}},
		{"dead letters only: event times are complete_to", first[2], Progress{Rows: 1, MinEventTS: f1, MaxEventTS: f1,
			CompleteTo: f1, CaughtUp: true, LastOffset: 0, HighWater: 1}},
		{"behind, older events: running max kept", got[3], Progress{Rows: 1, MinEventTS: t0.Add(5 * time.Second), MaxEventTS: t0.Add(5 * time.Second),
			CompleteTo: t0.Add(20 * time.Second), LastOffset: 5, HighWater: 100}},
		{"caught up again", got[4], Progress{Rows: 1, MinEventTS: t0.Add(4 * time.Second), MaxEventTS: t0.Add(4 * time.Second),
			CompleteTo: f3, CaughtUp: true, LastOffset: 99, HighWater: 100}},
		{"behind, event in the future: complete to the read time", got[5], Progress{Rows: 1, MinEventTS: f3.Add(time.Hour), MaxEventTS: f3.Add(time.Hour),
			CompleteTo: f3, LastOffset: 0, HighWater: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := tt.got
			if g.Topic != "t" || g.ConsumerGroup != "g" || g.Ingester != "h:1" {
				t.Errorf("identity %q %q %q", g.Topic, g.ConsumerGroup, g.Ingester)
			}
			g.Topic, g.ConsumerGroup, g.Ingester, g.Partition = "", "", "", 0
			if g != tt.want {
				t.Errorf("got  %+v\nwant %+v", g, tt.want)
			}
		})
	}
}

func TestProgressHeartbeat(t *testing.T) {
	tests := []struct {
		name  string
		batch []kafka.Message
		at    time.Time // heartbeat time; batches are fetched at t0
		want  map[int32]Progress
	}{
		{"nothing read yet: partition -1", nil, t0, map[int32]Progress{
			-1: {Topic: "t", Partition: -1, MinEventTS: t0, MaxEventTS: t0, CompleteTo: t0, CaughtUp: true}}},
		{"caught up: complete to now; behind: running max", []kafka.Message{msgAt(0, 9, 10, t0.Add(-time.Minute)), msgAt(1, 4, 10, t0.Add(-time.Hour))},
			t0.Add(time.Minute), map[int32]Progress{
				0: {Topic: "t", Partition: 0, MinEventTS: t0.Add(time.Minute), MaxEventTS: t0.Add(time.Minute), CompleteTo: t0.Add(time.Minute), CaughtUp: true, LastOffset: 9, HighWater: 10},
				1: {Topic: "t", Partition: 1, MinEventTS: t0.Add(-time.Hour), MaxEventTS: t0.Add(-time.Hour), CompleteTo: t0.Add(-time.Hour), LastOffset: 4, HighWater: 10},
			}},
		{"partitions read more than 10 minutes ago are not restated", []kafka.Message{msgAt(0, 9, 10, t0)}, t0.Add(11 * time.Minute), map[int32]Progress{
			-1: {Topic: "t", Partition: -1, MinEventTS: t0.Add(11 * time.Minute), MaxEventTS: t0.Add(11 * time.Minute), CompleteTo: t0.Add(11 * time.Minute), CaughtUp: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testIngester(Options{})
			if tt.batch != nil {
				fetched := make([]time.Time, len(tt.batch))
				for i := range fetched {
					fetched[i] = t0
				}
				in.track.written(fill(t, in, fetched, tt.batch...))
			}
			n := len(in.track.pending)
			in.track.heartbeat(tt.at)
			beats := in.track.pending[n:]
			if len(beats) != len(tt.want) {
				t.Fatalf("%d heartbeat rows, want %d: %+v", len(beats), len(tt.want), beats)
			}
			for _, r := range beats {
				w := tt.want[r.Partition]
				w.ConsumerGroup, w.Ingester = "g", "h:1"
				if r != w {
					t.Errorf("got  %+v\nwant %+v", r, w)
				}
			}
		})
	}
}

// chanSource serves the messages sent on msgs, then waits.
type chanSource struct {
	msgs chan kafka.Message
	mu   sync.Mutex
	done []kafka.Message
}

func (s *chanSource) FetchMessage(ctx context.Context) (kafka.Message, error) {
	select {
	case <-ctx.Done():
		return kafka.Message{}, ctx.Err()
	case m, ok := <-s.msgs:
		if !ok {
			return kafka.Message{}, io.EOF
		}
		return m, nil
	}
}

func (s *chanSource) CommitMessages(_ context.Context, msgs ...kafka.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = append(s.done, msgs...)
	return nil
}

// gateSink counts the rows written; while gate is not nil each write waits
// for a value from it (after announcing itself on started).
type gateSink struct {
	gate    chan struct{}
	started chan struct{}
	mu      sync.Mutex
	rows    int
}

func (s *gateSink) Write(ctx context.Context, rows *event.Rows, dead []event.DeadLetter) error {
	if s.gate != nil {
		s.started <- struct{}{}
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows += rows.Len() + len(dead)
	return nil
}

func (s *gateSink) written() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rows
}

// fakeProgress records the rows written; the first fail calls fail.
type fakeProgress struct {
	mu    sync.Mutex
	fail  int
	calls int
	rows  []Progress
}

func (p *fakeProgress) WriteProgress(_ context.Context, rows []Progress) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.calls <= p.fail {
		return errors.New("simulated progress outage")
	}
	p.rows = append(p.rows, rows...)
	return nil
}

func (p *fakeProgress) snapshot() []Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Progress(nil), p.rows...)
}

type harness struct {
	src    *chanSource
	sink   *gateSink
	prog   *fakeProgress
	in     *Ingester
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, opts Options, sink *gateSink, prog *fakeProgress) *harness {
	t.Helper()
	h := &harness{src: &chanSource{msgs: make(chan kafka.Message, 1000)}, sink: sink, prog: prog, done: make(chan error, 1)}
	opts.Progress, opts.Topic, opts.Group, opts.Instance = prog, "t", "g", "h:1"
	opts.RetryMin = time.Millisecond
	h.reg = prometheus.NewRegistry()
	h.in = New(h.src, sink, opts, slog.New(slog.DiscardHandler), NewMetrics(h.reg))
	var ctx context.Context
	ctx, h.cancel = context.WithCancel(context.Background())
	go func() { h.done <- h.in.Run(ctx) }()
	t.Cleanup(func() {
		h.cancel()
		if err := <-h.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

// metric returns the value of the first series of the named counter or gauge.
func (h *harness) metric(t *testing.T, name string) float64 {
	t.Helper()
	fams, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) > 0 {
			m := f.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func count(rows []Progress, keep func(Progress) bool) (n int) {
	for _, r := range rows {
		if keep(r) {
			n++
		}
	}
	return n
}

func isBeat(r Progress) bool { return r.Rows == 0 }

func TestRunHeartbeatsBeforeAnyMessage(t *testing.T) {
	h := start(t, Options{ProgressInterval: 10 * time.Millisecond}, &gateSink{}, &fakeProgress{})
	before := time.Now().UTC()
	waitFor(t, "three heartbeats", func() bool { return len(h.prog.snapshot()) >= 3 })
	for _, r := range h.prog.snapshot() {
		if r.Partition != -1 || r.Topic != "t" || !r.CaughtUp || r.Rows != 0 || r.CompleteTo.Before(before.Add(-time.Second)) || r.CompleteTo.After(r.WrittenAt) {
			t.Fatalf("heartbeat before any message: %+v", r)
		}
	}
}

func TestRunProgressAfterBatchThenHeartbeats(t *testing.T) {
	h := start(t, Options{ProgressInterval: 10 * time.Millisecond, FlushInterval: 20 * time.Millisecond}, &gateSink{}, &fakeProgress{})
	for i := range 10 {
		h.src.msgs <- msgAt(i%2, int64(i/2), 5, time.Now().Add(-time.Minute))
	}
	waitFor(t, "rows written", func() bool { return h.sink.written() == 10 })
	var rows []Progress
	lastBatch := func(rows []Progress) int {
		i := len(rows) - 1
		for i >= 0 && rows[i].Rows == 0 {
			i--
		}
		return i
	}
	waitFor(t, "heartbeats of both partitions after the last batch", func() bool {
		rows = h.prog.snapshot()
		return count(rows[lastBatch(rows)+1:], func(r Progress) bool { return r.Partition >= 0 }) >= 4
	})
	var batchRows uint32
	var seq uint64
	for _, r := range rows {
		if r.Seq <= seq {
			t.Fatalf("seq not increasing: %d after %d", r.Seq, seq)
		}
		seq = r.Seq
		batchRows += r.Rows
	}
	for _, r := range rows[lastBatch(rows)+1:] {
		if r.Partition < 0 || !r.CaughtUp || r.LastOffset != 4 || r.HighWater != 5 || r.Rows != 0 {
			t.Errorf("heartbeat %+v: want partition 0 or 1 caught up at offset 4 of 5", r)
		}
	}
	if batchRows != 10 {
		t.Errorf("progress rows count %d messages, want 10", batchRows)
	}
	if ct := h.metric(t, "auditwatch_ingest_partition_complete_to_seconds"); ct < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("complete_to gauge %v, want about now", ct)
	}
}

func TestRunNoHeartbeatWhileInFlight(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		gate bool // the sink blocks
	}{
		{"batch being written", Options{FlushInterval: 5 * time.Millisecond}, true},
		{"batch being filled", Options{FlushInterval: time.Hour}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &gateSink{}
			if tt.gate {
				sink.gate, sink.started = make(chan struct{}), make(chan struct{}, 1)
			}
			tt.opts.ProgressInterval = 5 * time.Millisecond
			h := start(t, tt.opts, sink, &fakeProgress{})
			h.src.msgs <- msgAt(0, 0, 1, time.Now())
			if tt.gate {
				<-sink.started
			} else {
				waitFor(t, "message read", func() bool { return len(h.src.msgs) == 0 })
			}
			time.Sleep(50 * time.Millisecond) // a heartbeat queued before may still land
			n := len(h.prog.snapshot())
			time.Sleep(100 * time.Millisecond) // 20 heartbeat intervals
			if got := h.prog.snapshot(); len(got) != n {
				t.Fatalf("%d progress rows written while a message was in flight: %+v", len(got)-n, got[n:])
			}
			if tt.gate {
				sink.gate <- struct{}{}
			} else {
				h.cancel() // shutdown flushes the batch
			}
			waitFor(t, "the batch's progress row", func() bool {
				return count(h.prog.snapshot(), func(r Progress) bool { return r.Rows == 1 && r.Partition == 0 }) == 1
			})
		})
	}
}

func TestRunProgressFailureDoesNotStopData(t *testing.T) {
	prog := &fakeProgress{fail: 5}
	h := start(t, Options{ProgressInterval: 10 * time.Millisecond, FlushInterval: 5 * time.Millisecond, MaxRows: 10}, &gateSink{}, prog)
	const n = 200
	for i := range n {
		h.src.msgs <- msgAt(i%4, int64(i/4), n/4, time.Now())
	}
	waitFor(t, "all rows written", func() bool { return h.sink.written() == n })
	waitFor(t, "progress recovered with every batch row", func() bool {
		var sum uint32
		for _, r := range prog.snapshot() {
			sum += r.Rows
		}
		return sum == n
	})
	if w := h.sink.written(); w != n {
		t.Errorf("%d rows written to the sink, want %d (progress failures must not rewrite data)", w, n)
	}
	if e := h.metric(t, "auditwatch_ingest_progress_write_errors_total"); e != 5 {
		t.Errorf("progress write errors %v, want 5", e)
	}
	h.src.mu.Lock()
	commits := len(h.src.done)
	h.src.mu.Unlock()
	if commits == 0 {
		t.Error("no offsets committed")
	}
}

// TestProgressRestatesQuietPartitions: a batch of one partition restates
// the other caught-up partitions as complete to the batch's cut, so a quiet
// partition does not hold the watermark while another is busy; a partition
// left behind is not restated.
func TestProgressRestatesQuietPartitions(t *testing.T) {
	in := testIngester(Options{})
	f1 := t0.Add(time.Minute)
	in.track.written(fill(t, in, []time.Time{f1, f1}, msgAt(0, 9, 10, t0), msgAt(1, 4, 100, t0)))
	in.track.pending = nil
	cut := f1.Add(5 * time.Second)
	b := fill(t, in, []time.Time{cut.Add(-time.Second)}, msgAt(2, 0, 1, t0.Add(time.Minute)))
	b.cut = cut
	in.track.written(b)
	got := byPartition(in.track.pending)
	if len(in.track.pending) != 2 {
		t.Fatalf("rows %+v, want partition 2's batch row and partition 0 restated", in.track.pending)
	}
	if r := got[0]; r.Rows != 0 || !r.CompleteTo.Equal(cut) || !r.CaughtUp || r.LastOffset != 9 {
		t.Fatalf("partition 0 restated as %+v, want complete to the cut %s", r, cut)
	}
	if _, ok := got[1]; ok {
		t.Fatal("partition 1 was behind: it must not be restated")
	}
}
