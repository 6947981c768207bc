package ingest_test

// Unit tests of the Ingester through its Source and Sink seams, with
// in-memory fakes: no Kafka, no ClickHouse. `make test` runs them with the
// race detector (go test -race -run '^TestUnit' ./ingest/).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/ingest"
	"github.com/auditwatch/auditwatch/ingest/event"
)

const unitTopic = "access-logs"

// unitKey names one message: rows carry only partition and offset.
type unitKey struct {
	p   int32
	off int64
}

func (k unitKey) String() string { return fmt.Sprintf("%d@%d", k.p, k.off) }

// unitValue is a valid access-log event; its length depends only on id's.
func unitValue(id string, ts time.Time) []byte {
	return fmt.Appendf(nil, `{"ts":"%s","request_id":"%s","method":"GET","path":"/v1/orders","status":200,"client_ip":"203.0.113.5","api_key":"bk_live_%032d"}`,
		ts.UTC().Format("2006-01-02T15:04:05.000Z07:00"), id, 7919)
}

// unitFeed is what a test produces: the messages in delivery order (a
// message may come twice) and what each must end up as.
type unitFeed struct {
	msgs []kafka.Message
	// want per message: a request id (stored as a row) or "!reason" (stored
	// as a dead letter with that reason).
	want map[unitKey]string
	ts   map[unitKey]int64 // event time of rows, unix ms
}

func newUnitFeed() *unitFeed {
	return &unitFeed{want: make(map[unitKey]string), ts: make(map[unitKey]int64)}
}

// row appends a valid event at partition p, offset off.
func (f *unitFeed) row(p int, off int64, id string, ts time.Time) {
	f.msgs = append(f.msgs, kafka.Message{Topic: unitTopic, Partition: p, Offset: off, Value: unitValue(id, ts)})
	k := unitKey{int32(p), off}
	f.want[k] = id
	f.ts[k] = ts.UnixMilli()
}

// malformed appends a message the decoder dead-letters as not_json.
func (f *unitFeed) malformed(p int, off int64) {
	f.msgs = append(f.msgs, kafka.Message{Topic: unitTopic, Partition: p, Offset: off, Value: []byte("not json, bk_live_00000000000000000000000000000001")})
	f.want[unitKey{int32(p), off}] = "!" + string(event.ReasonNotJSON)
}

// again appends copies of the messages already in the feed at partition p
// with offsets from..to (a redelivery).
func (f *unitFeed) again(p int, from, to int64) {
	var add []kafka.Message
	for _, m := range f.msgs {
		if m.Partition == p && m.Offset >= from && m.Offset <= to {
			add = append(add, m)
		}
	}
	sort.Slice(add, func(i, j int) bool { return add[i].Offset < add[j].Offset })
	seen := make(map[int64]bool)
	for _, m := range add {
		if !seen[m.Offset] {
			seen[m.Offset] = true
			f.msgs = append(f.msgs, m)
		}
	}
}

// grid appends perPart messages to each of parts partitions, interleaved,
// offsets from first on. kind says what message (p, off) is: "" a row, "poison"
// a row the sink rejects, "malformed" a dead letter. day is the event's day
// back from base.
func (f *unitFeed) grid(parts int, first, perPart int64, base time.Time, kind func(p int, off int64) string, day func(p int, off int64) int) {
	for off := first; off < first+perPart; off++ {
		for p := 0; p < parts; p++ {
			k := ""
			if kind != nil {
				k = kind(p, off)
			}
			d := 0
			if day != nil {
				d = day(p, off)
			}
			ts := base.Add(-time.Duration(d) * 24 * time.Hour).Add(time.Duration(off) * time.Millisecond)
			switch k {
			case "malformed":
				f.malformed(p, off)
			case "poison":
				f.row(p, off, fmt.Sprintf("poison-%d-%04d", p, off), ts)
				f.want[unitKey{int32(p), off}] = "!" + ingest.ReasonRejected
			default:
				f.row(p, off, fmt.Sprintf("req-%d-%04d", p, off), ts)
			}
		}
	}
}

// lastOffsets returns the highest offset of each partition.
func (f *unitFeed) lastOffsets() map[int32]int64 {
	out := make(map[int32]int64)
	for k := range f.want {
		if o, ok := out[k.p]; !ok || k.off > o {
			out[k.p] = k.off
		}
	}
	return out
}

// unitStep is one event in the order the sink stored data and the source
// committed offsets.
type unitStep struct {
	commit map[int32]int64 // a commit: the offset of the last message per partition
	keys   []unitKey       // a write: the messages stored
}

type unitStoredRow struct {
	id string
	ts int64
}

// unitWorld is the state shared by the fakes: everything stored, every
// commit, and the order of the two.
type unitWorld struct {
	mu        sync.Mutex
	want      map[unitKey]string
	rows      map[unitKey][]unitStoredRow    // every copy stored
	dead      map[unitKey][]event.DeadLetter // every copy stored
	writes    [][]unitKey                    // successful writes (and writes stored before failing)
	seq       []unitStep
	committed map[int32]int64 // last commit per partition (offset of the last message)
	commits   int
	problems  []string
}

func newUnitWorld(f *unitFeed) *unitWorld {
	return &unitWorld{
		want: f.want, rows: make(map[unitKey][]unitStoredRow), dead: make(map[unitKey][]event.DeadLetter),
		committed: make(map[int32]int64),
	}
}

func (w *unitWorld) store(rows *event.Rows, dead []event.DeadLetter) {
	w.mu.Lock()
	defer w.mu.Unlock()
	keys := make([]unitKey, 0, rows.Len()+len(dead))
	for i := 0; i < rows.Len(); i++ {
		k := unitKey{rows.KafkaPartition[i], rows.KafkaOffset[i]}
		w.rows[k] = append(w.rows[k], unitStoredRow{rows.RequestID.Get(i), rows.TSMilli[i]})
		keys = append(keys, k)
	}
	for _, d := range dead {
		k := unitKey{d.Partition, d.Offset}
		if d.Topic != unitTopic {
			w.problems = append(w.problems, fmt.Sprintf("dead letter %v has topic %q", k, d.Topic))
		}
		w.dead[k] = append(w.dead[k], d)
		keys = append(keys, k)
	}
	w.writes = append(w.writes, keys)
	w.seq = append(w.seq, unitStep{keys: keys})
}

func (w *unitWorld) commit(msgs []kafka.Message) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := make(map[int32]int64)
	for _, m := range msgs {
		if m.Topic != unitTopic {
			w.problems = append(w.problems, fmt.Sprintf("commit of topic %q", m.Topic))
		}
		c[int32(m.Partition)] = m.Offset
		w.committed[int32(m.Partition)] = m.Offset
	}
	w.commits++
	w.seq = append(w.seq, unitStep{commit: c})
}

func (w *unitWorld) stored(q ingest.StoredQuery) (map[int64]string, map[int64]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if q.Topic != unitTopic {
		w.problems = append(w.problems, fmt.Sprintf("stored query for topic %q", q.Topic))
	}
	rows, dead := make(map[int64]string), make(map[int64]bool)
	for k, c := range w.rows {
		// Like chsink: rows only when asked, within the event-time range.
		if q.RowsToo && !q.MinTS.IsZero() && k.p == q.Partition && k.off >= q.From && k.off <= q.To &&
			c[0].ts >= q.MinTS.UnixMilli() && c[0].ts <= q.MaxTS.UnixMilli() {
			rows[k.off] = c[0].id
		}
	}
	for k, ds := range w.dead {
		if ds[0].Topic == q.Topic && k.p == q.Partition && k.off >= q.From && k.off <= q.To {
			dead[k.off] = true
		}
	}
	return rows, dead
}

// copies returns how many times k is stored, as a row or a dead letter.
func (w *unitWorld) copies(k unitKey) int {
	return len(w.rows[k]) + len(w.dead[k])
}

// complete reports whether every message wanted is stored and the last
// offset of each partition committed.
func (w *unitWorld) complete(last map[int32]int64) (bool, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	missing := 0
	for k := range w.want {
		if w.copies(k) == 0 {
			missing++
		}
	}
	if missing > 0 {
		return false, fmt.Sprintf("%d of %d messages not stored", missing, len(w.want))
	}
	for p, o := range last {
		if c, ok := w.committed[p]; !ok || c != o {
			return false, fmt.Sprintf("partition %d committed to %d (ok=%v), want %d", p, c, ok, o)
		}
	}
	return true, ""
}

func (w *unitWorld) storedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.rows) + len(w.dead)
}

func (w *unitWorld) commitCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.commits
}

// check asserts that every message is stored exactly once as what it
// should be, that nothing else is stored, and that no offset was committed
// before every message up to it was stored.
func (w *unitWorld) check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.problems {
		t.Error(p)
	}
	var bad []string
	for k, want := range w.want {
		n := w.copies(k)
		switch {
		case n != 1:
			bad = append(bad, fmt.Sprintf("%v stored %d times", k, n))
		case strings.HasPrefix(want, "!"):
			if len(w.dead[k]) != 1 || string(w.dead[k][0].Reason) != want[1:] {
				bad = append(bad, fmt.Sprintf("%v: want a dead letter %s, got rows %v dead %v", k, want[1:], w.rows[k], w.dead[k]))
			}
		default:
			if len(w.rows[k]) != 1 || w.rows[k][0].id != want {
				bad = append(bad, fmt.Sprintf("%v: want row %s, got rows %v dead letters %d", k, want, w.rows[k], len(w.dead[k])))
			}
		}
	}
	for k := range w.rows {
		if _, ok := w.want[k]; !ok {
			bad = append(bad, fmt.Sprintf("row %v stored but never produced", k))
		}
	}
	for k := range w.dead {
		if _, ok := w.want[k]; !ok {
			bad = append(bad, fmt.Sprintf("dead letter %v stored but never produced", k))
		}
	}
	sort.Strings(bad)
	if len(bad) > 10 {
		bad = append(bad[:10], fmt.Sprintf("... and %d more", len(bad)-10))
	}
	for _, b := range bad {
		t.Error(b)
	}
	for _, p := range w.orderProblems() {
		t.Error(p)
	}
}

// orderProblems replays the sequence of writes and commits: a commit up to
// offset o of a partition must come after every message of the partition
// up to o was stored. Call with w.mu held.
func (w *unitWorld) orderProblems() []string {
	var out []string
	stored := make(map[unitKey]bool)
	for i, s := range w.seq {
		if s.commit == nil {
			for _, k := range s.keys {
				stored[k] = true
			}
			continue
		}
		for p, o := range s.commit {
			for k := range w.want {
				if k.p == p && k.off <= o && !stored[k] {
					out = append(out, fmt.Sprintf("step %d: partition %d committed up to %d before message %v was stored", i, p, o, k))
					break
				}
			}
		}
	}
	return out
}

// unitSource delivers a feed's messages in order, then blocks until more
// are added or ctx ends. A gate holds back the message at its index until
// its condition holds.
type unitSource struct {
	w       *unitWorld
	mu      sync.Mutex
	msgs    []kafka.Message
	gates   map[int]func() bool
	pos     int
	fetched int // messages returned
	calls   int // FetchMessage calls
	more    chan struct{}
	closed  bool // once every message is fetched, FetchMessage returns io.EOF

	failCommits atomic.Bool
	commitErrs  atomic.Int32
}

func newUnitSource(w *unitWorld, msgs []kafka.Message) *unitSource {
	s := &unitSource{w: w, gates: make(map[int]func() bool), more: make(chan struct{})}
	s.add(msgs...)
	return s
}

// add makes more messages available, with the high-water mark of each
// partition moved to the end.
func (s *unitSource) add(msgs ...kafka.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, msgs...)
	hwm := make(map[int]int64)
	for _, m := range s.msgs {
		hwm[m.Partition] = max(hwm[m.Partition], m.Offset+1)
	}
	for i := range s.msgs {
		s.msgs[i].HighWaterMark = hwm[s.msgs[i].Partition]
	}
	close(s.more)
	s.more = make(chan struct{})
}

func (s *unitSource) FetchMessage(ctx context.Context) (kafka.Message, error) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	for {
		if err := ctx.Err(); err != nil {
			return kafka.Message{}, err
		}
		s.mu.Lock()
		if s.pos < len(s.msgs) {
			if g := s.gates[s.pos]; g == nil || g() {
				m := s.msgs[s.pos]
				s.pos++
				s.fetched++
				s.mu.Unlock()
				return m, nil
			}
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return kafka.Message{}, ctx.Err()
			case <-time.After(time.Millisecond):
			}
			continue
		}
		if s.closed {
			s.mu.Unlock()
			return kafka.Message{}, io.EOF
		}
		more := s.more
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return kafka.Message{}, ctx.Err()
		case <-more:
		}
	}
}

// close makes FetchMessage return io.EOF once every message is fetched,
// as a closed *kafka.Reader does.
func (s *unitSource) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	close(s.more)
	s.more = make(chan struct{})
}

func (s *unitSource) CommitMessages(ctx context.Context, msgs ...kafka.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.failCommits.Load() {
		s.commitErrs.Add(1)
		return errors.New("simulated commit failure: coordinator not available")
	}
	s.w.commit(msgs)
	return nil
}

func (s *unitSource) counts() (fetched, calls int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetched, s.calls
}

// unitSink stores into its world. It can fail for now (transient errors),
// reject rows whose request id starts with "poison" (ErrRejected) or writes
// spanning more than maxDays UTC days (ErrPartitionLimit), and block.
type unitSink struct {
	w             *unitWorld
	failNext      atomic.Int32  // transient failures left
	failing       atomic.Bool   // every write fails for now while set
	storeThenFail bool          // a transient failure comes after the data was stored
	maxDays       int           // > 0: writes whose rows span more days are rejected
	delay         time.Duration // each write takes this long
	hold          chan struct{} // not nil: writes wait until it is closed (or ctx ends)

	calls    atomic.Int32 // Write calls
	waiting  atomic.Int32 // Write calls waiting on hold
	failed   atomic.Int32 // transient failures returned
	rejected atomic.Int32 // rejections returned

	storedFailNext atomic.Int32 // Stored calls left to fail
	storedCalls    atomic.Int32
}

func (s *unitSink) Write(ctx context.Context, rows *event.Rows, dead []event.DeadLetter) error {
	s.calls.Add(1)
	if s.hold != nil {
		s.waiting.Add(1)
		select {
		case <-s.hold:
		case <-ctx.Done():
		}
		s.waiting.Add(-1)
	}
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
		}
	}
	if err := ctx.Err(); err != nil {
		s.failed.Add(1)
		return fmt.Errorf("simulated insert: %w", err)
	}
	if s.failing.Load() || s.failNext.Add(-1) >= 0 {
		s.failed.Add(1)
		if s.storeThenFail {
			s.w.store(rows, dead)
		}
		return errors.New("simulated outage: read: connection reset by peer")
	}
	// The partition limit first: ClickHouse splits the block by partition
	// before it writes (and a view throws on a row).
	if s.maxDays > 0 {
		days := make(map[int64]bool)
		for i := 0; i < rows.Len(); i++ {
			days[rows.TSMilli[i]/86_400_000] = true
		}
		if len(days) > s.maxDays {
			s.rejected.Add(1)
			return fmt.Errorf("%w: %w: code: 252, message: too many partitions for single INSERT block (more than %d)",
				ingest.ErrRejected, ingest.ErrPartitionLimit, s.maxDays)
		}
	}
	for i := 0; i < rows.Len(); i++ {
		if id := rows.RequestID.Get(i); strings.HasPrefix(id, "poison") {
			s.rejected.Add(1)
			return fmt.Errorf("%w: code: 53, message: cannot convert row with request id %s", ingest.ErrRejected, id)
		}
	}
	s.w.store(rows, dead)
	return nil
}

// unitStoredSink is a unitSink that answers which messages are stored.
type unitStoredSink struct{ *unitSink }

func (s unitStoredSink) Stored(ctx context.Context, q ingest.StoredQuery) (map[int64]string, map[int64]bool, error) {
	s.storedCalls.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if s.storedFailNext.Add(-1) >= 0 {
		return nil, nil, errors.New("simulated outage: stored query failed")
	}
	rows, dead := s.w.stored(q)
	return rows, dead, nil
}

var _ ingest.StoredReader = unitStoredSink{}

// unitSinkFor returns sink as an ingest.Sink, with or without the StoredReader.
func unitSinkFor(s *unitSink, stored bool) ingest.Sink {
	if stored {
		return unitStoredSink{s}
	}
	return s
}

func unitOpts() ingest.Options {
	return ingest.Options{
		MaxRows: 10, FlushInterval: 20 * time.Millisecond,
		RetryMin: 2 * time.Millisecond, RetryMax: 10 * time.Millisecond,
		ShutdownTimeout: 2 * time.Second, CommitTimeout: time.Second, CommitAttempts: 3,
	}
}

// unitRun is an Ingester running in the background.
type unitRun struct {
	in     *ingest.Ingester
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func startUnit(t *testing.T, src ingest.Source, sink ingest.Sink, opts ingest.Options) *unitRun {
	t.Helper()
	reg := prometheus.NewRegistry()
	in := ingest.New(src, sink, opts, slog.New(slog.DiscardHandler), ingest.NewMetrics(reg))
	ctx, cancel := context.WithCancel(context.Background())
	r := &unitRun{in: in, reg: reg, cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = in.Run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return 10s after its context ended")
		}
	})
	return r
}

// stop cancels Run and returns its error and how long it took to return.
func (r *unitRun) stop(t *testing.T) (error, time.Duration) {
	t.Helper()
	start := time.Now()
	r.cancel()
	select {
	case <-r.done:
		return r.err, time.Since(start)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10s after its context ended")
		return nil, 0
	}
}

// stopClean stops r and fails the test unless Run returned nil.
func (r *unitRun) stopClean(t *testing.T) {
	t.Helper()
	if err, _ := r.stop(t); err != nil {
		t.Errorf("Run: %v", err)
	}
}

func (r *unitRun) counter(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// unitEventually polls cond until it holds or timeout passes.
func unitEventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %v: %s", timeout, msg)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func unitBase() time.Time { return time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond) }

// TestUnitWriteBeforeCommit: whatever the sink does, no partition's offset
// is committed before every message up to it is stored; every message is
// stored once and the last offset of each partition is committed.
func TestUnitWriteBeforeCommit(t *testing.T) {
	tests := []struct {
		name      string
		parts     int
		perPart   int64
		malformed func(p int, off int64) bool
		failNext  int32
		storeFail bool
		delay     time.Duration
		stored    bool
		maxRows   int
	}{
		{name: "healthy sink", parts: 3, perPart: 40},
		{name: "slow sink, reader ahead", parts: 3, perPart: 40, delay: 3 * time.Millisecond},
		{name: "one big batch", parts: 2, perPart: 50, maxRows: 1000},
		{name: "dead letters among rows", parts: 2, perPart: 30, malformed: func(p int, off int64) bool { return (int64(p)+off)%7 == 0 }},
		{name: "transient failures", parts: 3, perPart: 20, failNext: 4},
		{name: "failures after storing, with stored reader", parts: 3, perPart: 20, failNext: 3, storeFail: true, stored: true},
		{name: "stored reader, healthy", parts: 4, perPart: 25, stored: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newUnitFeed()
			f.grid(tt.parts, 0, tt.perPart, unitBase(), func(p int, off int64) string {
				if tt.malformed != nil && tt.malformed(p, off) {
					return "malformed"
				}
				return ""
			}, nil)
			w := newUnitWorld(f)
			src := newUnitSource(w, f.msgs)
			sink := &unitSink{w: w, storeThenFail: tt.storeFail, delay: tt.delay}
			sink.failNext.Store(tt.failNext)
			opts := unitOpts()
			if tt.maxRows > 0 {
				opts.MaxRows = tt.maxRows
			}
			r := startUnit(t, src, unitSinkFor(sink, tt.stored), opts)
			unitEventually(t, 5*time.Second, func() (bool, string) { return w.complete(f.lastOffsets()) })
			r.stopClean(t)
			w.check(t)

			// Commits move forward only.
			w.mu.Lock()
			defer w.mu.Unlock()
			prev := make(map[int32]int64)
			for _, s := range w.seq {
				for p, o := range s.commit {
					if q, ok := prev[p]; ok && o < q {
						t.Errorf("partition %d committed %d after %d", p, o, q)
					}
					prev[p] = o
				}
			}
			if w.commits == 0 {
				t.Error("no commit")
			}
		})
	}
}

// TestUnitTransientWriteFailures: a sink failing for now is retried until
// it works, nothing lost and nothing stored twice, even when a failed write
// had in fact stored the rows (with a StoredReader the ingester finds them).
func TestUnitTransientWriteFailures(t *testing.T) {
	tests := []struct {
		name        string
		failNext    int32
		storeFail   bool
		stored      bool
		storedFails int32
		malformed   bool
	}{
		{name: "write fails 3 times", failNext: 3},
		{name: "write fails 3 times, stored reader", failNext: 3, stored: true},
		{name: "write stores then fails", failNext: 3, storeFail: true, stored: true},
		{name: "write stores then fails, dead letters too", failNext: 2, storeFail: true, stored: true, malformed: true},
		{name: "write and stored check fail", failNext: 2, storeFail: true, stored: true, storedFails: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newUnitFeed()
			f.grid(2, 0, 25, unitBase(), func(p int, off int64) string {
				if tt.malformed && off%5 == 2 {
					return "malformed"
				}
				return ""
			}, nil)
			w := newUnitWorld(f)
			src := newUnitSource(w, f.msgs)
			sink := &unitSink{w: w, storeThenFail: tt.storeFail}
			sink.failNext.Store(tt.failNext)
			sink.storedFailNext.Store(tt.storedFails)
			r := startUnit(t, src, unitSinkFor(sink, tt.stored), unitOpts())
			unitEventually(t, 5*time.Second, func() (bool, string) { return w.complete(f.lastOffsets()) })
			r.stopClean(t)
			w.check(t)
			if got := int32(r.counter(t, "auditwatch_ingest_write_errors_total")); got < tt.failNext+tt.storedFails {
				t.Errorf("write_errors_total %d, want ≥ %d", got, tt.failNext+tt.storedFails)
			}
			if err := r.in.Ready(); err != nil {
				t.Errorf("Ready after recovery: %v", err)
			}
		})
	}
}

// TestUnitReadyWhileWritesFail: Ready reports failing writes, nothing is
// committed meanwhile, and Ready is nil again once writes pass.
func TestUnitReadyWhileWritesFail(t *testing.T) {
	f := newUnitFeed()
	f.grid(2, 0, 15, unitBase(), nil, nil)
	w := newUnitWorld(f)
	src := newUnitSource(w, f.msgs)
	sink := &unitSink{w: w}
	sink.failing.Store(true)
	r := startUnit(t, src, unitStoredSink{sink}, unitOpts())
	unitEventually(t, 5*time.Second, func() (bool, string) {
		err := r.in.Ready()
		return sink.failed.Load() >= 3 && err != nil, fmt.Sprintf("%d failed writes, Ready: %v", sink.failed.Load(), err)
	})
	if err := r.in.Ready(); !strings.Contains(err.Error(), "writes") {
		t.Errorf("Ready while writes fail: %v, want it to say writes fail", err)
	}
	if n := w.commitCount(); n != 0 {
		t.Errorf("%d commits while every write failed", n)
	}
	sink.failing.Store(false)
	unitEventually(t, 5*time.Second, func() (bool, string) { return w.complete(f.lastOffsets()) })
	unitEventually(t, 2*time.Second, func() (bool, string) {
		err := r.in.Ready()
		return err == nil, fmt.Sprintf("Ready after recovery: %v", err)
	})
	r.stopClean(t)
	w.check(t)
}

// TestUnitPermanentRejection: rows the sink refuses for good are isolated
// by splitting (by day on the partition limit, else by halves) and
// dead-lettered as rejected with their partition and offset; all other
// rows are stored once, offsets committed, with few writes.
func TestUnitPermanentRejection(t *testing.T) {
	type pos = unitKey
	tests := []struct {
		name      string
		parts     int
		perPart   int64
		poison    []pos
		malformed []pos
		days      int // rows spread over this many days (0, 1: one)
		maxDays   int // sink's partition limit, in days (0: none)
		stored    bool
	}{
		{name: "one poison row", parts: 1, perPart: 64, poison: []pos{{0, 37}}},
		{name: "poison in each partition", parts: 3, perPart: 50, poison: []pos{{0, 0}, {1, 25}, {2, 49}}},
		{name: "adjacent poison rows", parts: 1, perPart: 40, poison: []pos{{0, 10}, {0, 11}, {0, 12}}},
		{name: "first and last rows", parts: 2, perPart: 33, poison: []pos{{0, 0}, {1, 32}}},
		{name: "every row poison", parts: 1, perPart: 4, poison: []pos{{0, 0}, {0, 1}, {0, 2}, {0, 3}}},
		{name: "poison and malformed, stored reader", parts: 2, perPart: 30, poison: []pos{{1, 7}}, malformed: []pos{{0, 3}, {1, 20}}, stored: true},
		{name: "poison, stored reader", parts: 3, perPart: 40, poison: []pos{{0, 5}, {2, 39}}, stored: true},
		{name: "partition limit: 6 days, 2 per insert", parts: 2, perPart: 60, days: 6, maxDays: 2},
		{name: "partition limit: 8 days, 1 per insert, stored reader", parts: 3, perPart: 40, days: 8, maxDays: 1, stored: true},
		{name: "partition limit and poison", parts: 2, perPart: 50, days: 5, maxDays: 2, poison: []pos{{0, 13}, {1, 44}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isIn := func(ks []pos, p int, off int64) bool {
				for _, k := range ks {
					if k == (pos{int32(p), off}) {
						return true
					}
				}
				return false
			}
			f := newUnitFeed()
			f.grid(tt.parts, 0, tt.perPart, unitBase(), func(p int, off int64) string {
				switch {
				case isIn(tt.poison, p, off):
					return "poison"
				case isIn(tt.malformed, p, off):
					return "malformed"
				}
				return ""
			}, func(p int, off int64) int {
				if tt.days > 1 {
					return int(off) % tt.days
				}
				return 0
			})
			n := len(f.msgs)
			w := newUnitWorld(f)
			src := newUnitSource(w, f.msgs)
			sink := &unitSink{w: w, maxDays: tt.maxDays}
			opts := unitOpts()
			opts.MaxRows, opts.FlushInterval = n, time.Second // one batch
			r := startUnit(t, src, unitSinkFor(sink, tt.stored), opts)
			unitEventually(t, 5*time.Second, func() (bool, string) { return w.complete(f.lastOffsets()) })
			r.stopClean(t)
			w.check(t)

			w.mu.Lock()
			defer w.mu.Unlock()
			for _, k := range tt.poison {
				ds := w.dead[k]
				if len(ds) != 1 {
					continue // reported by check
				}
				d := ds[0]
				if d.Topic != unitTopic || d.Partition != k.p || d.Offset != k.off || d.Error == "" || !strings.Contains(d.Raw, "poison") {
					t.Errorf("dead letter of %v: topic %q partition %d offset %d error %q raw %q", k, d.Topic, d.Partition, d.Offset, d.Error, d.Raw)
				}
				if strings.Contains(d.Raw, fmt.Sprintf("bk_live_%032d", 7919)) {
					t.Errorf("dead letter of %v holds the full key: %q", k, d.Raw)
				}
			}
			k := len(tt.poison)
			if got := int(r.counter(t, "auditwatch_ingest_rejected_rows_total")); got != k {
				t.Errorf("rejected_rows_total %d, want %d", got, k)
			}
			if splits := r.counter(t, "auditwatch_ingest_write_splits_total"); (k > 0 || tt.days > tt.maxDays && tt.maxDays > 0) && splits == 0 {
				t.Error("write_splits_total 0, want the batch split")
			}
			// Few writes: a binary search per poison row, one dead-letter
			// write per rejected row, a split tree over the days.
			logn := int(math.Ceil(math.Log2(float64(n))))
			bound := 2*k*logn + k + 3
			if tt.maxDays > 0 {
				bound += 2 * tt.days
			}
			if calls := int(sink.calls.Load()); calls > bound {
				t.Errorf("%d sink writes for %d rows with %d poison, want ≤ %d", calls, n, k, bound)
			}
			// The partition limit splits by day, not by halves: each day is
			// written in one insert.
			if tt.maxDays > 0 && k == 0 {
				writesOfDay := make(map[int64]map[int]bool)
				for i, keys := range w.writes {
					for _, key := range keys {
						if ts, ok := f.ts[key]; ok && len(w.rows[key]) > 0 {
							d := ts / 86_400_000
							if writesOfDay[d] == nil {
								writesOfDay[d] = make(map[int]bool)
							}
							writesOfDay[d][i] = true
						}
					}
				}
				for d, ws := range writesOfDay {
					if len(ws) != 1 {
						t.Errorf("rows of day %s written in %d inserts, want 1", time.UnixMilli(d*86_400_000).UTC().Format(time.DateOnly), len(ws))
					}
				}
			}
		})
	}
}

// TestUnitRedelivery: messages delivered again are stored once: within
// the batch being filled they are dropped on read; after a restart or a
// rebalance the ingester asks the StoredReader and skips what is stored.
// redelivered_skipped_total counts them.
func TestUnitRedelivery(t *testing.T) {
	t.Run("restart after failed commits", func(t *testing.T) {
		f := newUnitFeed()
		f.grid(2, 0, 20, unitBase(), func(p int, off int64) string {
			if off == 6 {
				return "malformed"
			}
			return ""
		}, nil)
		w := newUnitWorld(f)
		sink := &unitSink{w: w}
		opts := unitOpts()
		opts.CommitAttempts = 1

		// First run: everything stored, every commit fails.
		src1 := newUnitSource(w, f.msgs)
		src1.failCommits.Store(true)
		r1 := startUnit(t, src1, unitStoredSink{sink}, opts)
		unitEventually(t, 5*time.Second, func() (bool, string) {
			n := w.storedCount()
			return n == 40 && src1.commitErrs.Load() > 0, fmt.Sprintf("%d/40 stored, %d commit errors", n, src1.commitErrs.Load())
		})
		r1.stopClean(t)
		if n := w.commitCount(); n != 0 {
			t.Fatalf("%d commits succeeded, want none", n)
		}
		writes := sink.calls.Load()

		// Second run reads it all again, and 10 new messages per partition.
		old := len(f.msgs)
		f.grid(2, 20, 10, unitBase(), nil, nil)
		src2 := newUnitSource(w, f.msgs)
		r2 := startUnit(t, src2, unitStoredSink{sink}, opts)
		unitEventually(t, 5*time.Second, func() (bool, string) { return w.complete(f.lastOffsets()) })
		r2.stopClean(t)
		w.check(t)
		if got := r2.counter(t, "auditwatch_ingest_redelivered_skipped_total"); got != float64(old) {
			t.Errorf("redelivered_skipped_total %v, want %d", got, old)
		}
		if got := r2.counter(t, "auditwatch_ingest_rows_written_total"); got != 20 {
			t.Errorf("second run wrote %v rows, want the 20 new ones", got)
		}
		if sink.calls.Load() == writes {
			t.Error("second run wrote nothing")
		}
	})

	// The table: one partition, offsets 0..29; a redelivery of from..to is
	// held back until every message before it (in delivery order) is
	// stored when gated, else comes right away.
	tests := []struct {
		name     string
		maxRows  int
		flush    time.Duration
		from, to int64 // redelivered after offset `after`
		after    int64
		gated    bool
		stored   bool
		skipped  float64
	}{
		// Rebalance: 0..24 are written ([0..9], [10..19], [20..24]), then
		// 10..29 come: 10..19 found stored, the next batch checked too
		// (its head 20..24 stored), 25..29 written.
		{name: "rebalance after writes", maxRows: 10, flush: 20 * time.Millisecond, after: 24, from: 10, to: 24, gated: true, stored: true, skipped: 15},
		{name: "rebalance, redelivery ends on a batch boundary", maxRows: 5, flush: 20 * time.Millisecond, after: 19, from: 5, to: 19, gated: true, stored: true, skipped: 15},
		// Within the batch being filled (read in well under the flush
		// interval): dropped on read, with or without a StoredReader.
		{name: "same batch, stored reader", maxRows: 1000, flush: 100 * time.Millisecond, after: 9, from: 3, to: 6, stored: true, skipped: 4},
		{name: "same batch, no stored reader", maxRows: 1000, flush: 100 * time.Millisecond, after: 9, from: 3, to: 6, skipped: 4},
		{name: "same batch, whole batch again", maxRows: 1000, flush: 100 * time.Millisecond, after: 29, from: 0, to: 29, skipped: 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := unitBase()
			f := newUnitFeed()
			f.grid(1, 0, tt.after+1, base, nil, nil)
			f.again(0, tt.from, tt.to)
			gateAt := len(f.msgs) - int(tt.to-tt.from+1)
			if tt.after < 29 {
				f.grid(1, tt.after+1, 29-tt.after, base, nil, nil)
			}
			w := newUnitWorld(f)
			src := newUnitSource(w, f.msgs)
			if tt.gated {
				src.gates[gateAt] = func() bool {
					w.mu.Lock()
					defer w.mu.Unlock()
					for off := int64(0); off <= tt.after; off++ {
						if w.copies(unitKey{0, off}) == 0 {
							return false
						}
					}
					return true
				}
			}
			sink := &unitSink{w: w}
			opts := unitOpts()
			opts.MaxRows, opts.FlushInterval = tt.maxRows, tt.flush
			r := startUnit(t, src, unitSinkFor(sink, tt.stored), opts)
			unitEventually(t, 5*time.Second, func() (bool, string) { return w.complete(f.lastOffsets()) })
			r.stopClean(t)
			w.check(t)
			if got := r.counter(t, "auditwatch_ingest_redelivered_skipped_total"); got != tt.skipped {
				t.Errorf("redelivered_skipped_total %v, want %v", got, tt.skipped)
			}
			if got := r.counter(t, "auditwatch_ingest_rows_written_total"); got != 30 {
				t.Errorf("rows_written_total %v, want 30", got)
			}
		})
	}
}

// TestUnitShutdown: cancelling Run flushes and commits what was read; with
// a sink that never answers, Run gives up after ShutdownTimeout, says that
// messages are unwritten, and commits nothing for them.
func TestUnitShutdown(t *testing.T) {
	t.Run("sink blocks forever", func(t *testing.T) {
		f := newUnitFeed()
		f.grid(2, 0, 15, unitBase(), nil, nil)
		w := newUnitWorld(f)
		src := newUnitSource(w, f.msgs)
		sink := &unitSink{w: w, hold: make(chan struct{})} // never closed
		opts := unitOpts()
		opts.ShutdownTimeout = 150 * time.Millisecond
		r := startUnit(t, src, sink, opts)
		unitEventually(t, 5*time.Second, func() (bool, string) {
			fetched, _ := src.counts()
			return sink.waiting.Load() == 1 && fetched >= 2*opts.MaxRows, fmt.Sprintf("%d writes waiting, %d fetched", sink.waiting.Load(), fetched)
		})
		err, took := r.stop(t)
		if err == nil || !strings.Contains(err.Error(), "uncommitted") {
			t.Errorf("Run: %v, want an error saying messages are uncommitted", err)
		}
		if slack := 500 * time.Millisecond; took > opts.ShutdownTimeout+slack {
			t.Errorf("Run returned %v after cancel, want ≤ %v + %v", took, opts.ShutdownTimeout, slack)
		}
		if took < opts.ShutdownTimeout/2 {
			t.Errorf("Run returned %v after cancel: gave up before ShutdownTimeout %v", took, opts.ShutdownTimeout)
		}
		if n := w.commitCount(); n != 0 {
			t.Errorf("%d commits, want none: nothing was written", n)
		}
		if n := w.storedCount(); n != 0 {
			t.Errorf("%d messages stored by a sink that never returned", n)
		}
	})

	tests := []struct {
		name      string
		failFirst time.Duration // the sink fails this long after cancel, then recovers
		storeFail bool          // a failed write stored the rows
		stored    bool
	}{
		{name: "healthy sink"},
		{name: "sink recovers during shutdown", failFirst: 60 * time.Millisecond},
		{name: "sink recovers during shutdown, stored reader", failFirst: 60 * time.Millisecond, stored: true},
		{name: "write stored but failed during shutdown", failFirst: 60 * time.Millisecond, storeFail: true, stored: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newUnitFeed()
			f.grid(2, 0, 13, unitBase(), nil, nil)
			w := newUnitWorld(f)
			src := newUnitSource(w, f.msgs)
			sink := &unitSink{w: w, storeThenFail: tt.storeFail}
			opts := unitOpts()
			opts.MaxRows, opts.FlushInterval = 1000, 10*time.Second // only shutdown flushes
			opts.ShutdownTimeout = time.Second
			r := startUnit(t, src, unitSinkFor(sink, tt.stored), opts)
			unitEventually(t, 5*time.Second, func() (bool, string) {
				fetched, _ := src.counts()
				return fetched == len(f.msgs), fmt.Sprintf("%d/%d fetched", fetched, len(f.msgs))
			})
			time.Sleep(5 * time.Millisecond)
			if n := w.storedCount(); n != 0 {
				t.Fatalf("%d stored before shutdown: the batch was flushed early", n)
			}
			if tt.failFirst > 0 {
				sink.failing.Store(true)
				time.AfterFunc(tt.failFirst, func() { sink.failing.Store(false) })
			}
			err, took := r.stop(t)
			if err != nil {
				t.Errorf("Run: %v", err)
			}
			if took > opts.ShutdownTimeout {
				t.Errorf("Run returned %v after cancel, want ≤ %v", took, opts.ShutdownTimeout)
			}
			if ok, msg := w.complete(f.lastOffsets()); !ok {
				t.Errorf("after shutdown: %s", msg)
			}
			w.check(t)
		})
	}
}

// TestUnitBackPressure: while the sink blocks, the reader holds at most two
// batches (one being written, one full) and stops fetching; it resumes
// when the sink does.
func TestUnitBackPressure(t *testing.T) {
	tests := []struct {
		name     string
		maxRows  int
		maxBytes func(msgLen int) int
		perBatch int
	}{
		{name: "by rows", maxRows: 10, perBatch: 10},
		{name: "by bytes", maxRows: 1000, maxBytes: func(l int) int { return 7 * l }, perBatch: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newUnitFeed()
			f.grid(1, 0, 100, unitBase(), nil, nil)
			w := newUnitWorld(f)
			src := newUnitSource(w, f.msgs)
			sink := &unitSink{w: w, hold: make(chan struct{})}
			opts := unitOpts()
			opts.MaxRows = tt.maxRows
			if tt.maxBytes != nil {
				opts.MaxBytes = tt.maxBytes(len(f.msgs[0].Value)) // all values have the same length
			}
			r := startUnit(t, src, sink, opts)
			unitEventually(t, 5*time.Second, func() (bool, string) {
				return sink.waiting.Load() == 1, "no write waiting"
			})
			time.Sleep(5 * opts.FlushInterval)
			fetched, calls := src.counts()
			time.Sleep(5 * opts.FlushInterval)
			fetched2, calls2 := src.counts()
			if fetched > 2*tt.perBatch {
				t.Errorf("fetched %d messages while the sink blocks, want ≤ 2 batches (%d)", fetched, 2*tt.perBatch)
			}
			if fetched < tt.perBatch {
				t.Errorf("fetched %d messages, fewer than the batch being written", fetched)
			}
			if calls2 != calls || fetched2 != fetched {
				t.Errorf("still fetching while the sink blocks: %d→%d calls, %d→%d messages", calls, calls2, fetched, fetched2)
			}
			if n := w.commitCount(); n != 0 {
				t.Errorf("%d commits before any write returned", n)
			}
			close(sink.hold)
			unitEventually(t, 5*time.Second, func() (bool, string) { return w.complete(f.lastOffsets()) })
			r.stopClean(t)
			w.check(t)
		})
	}
}

// TestUnitCommitFailures: Ready reports failing commits (writes go on),
// and is nil again after a commit succeeds.
func TestUnitCommitFailures(t *testing.T) {
	f := newUnitFeed()
	f.grid(2, 0, 10, unitBase(), nil, nil)
	w := newUnitWorld(f)
	src := newUnitSource(w, f.msgs)
	src.failCommits.Store(true)
	sink := &unitSink{w: w}
	opts := unitOpts()
	opts.CommitAttempts = 2
	r := startUnit(t, src, unitStoredSink{sink}, opts)
	unitEventually(t, 5*time.Second, func() (bool, string) {
		err := r.in.Ready()
		return src.commitErrs.Load() >= 2 && err != nil, fmt.Sprintf("%d commit errors, Ready: %v", src.commitErrs.Load(), err)
	})
	err := r.in.Ready()
	if !strings.Contains(err.Error(), "commit") {
		t.Errorf("Ready while commits fail: %v, want it to say commits fail", err)
	}
	if strings.Contains(err.Error(), "writes") {
		t.Errorf("Ready while only commits fail: %v, says writes fail", err)
	}
	unitEventually(t, 5*time.Second, func() (bool, string) {
		n := w.storedCount()
		return n == 20, fmt.Sprintf("%d/20 stored while commits fail", n)
	})
	if got := r.counter(t, "auditwatch_ingest_commit_errors_total"); got < 2 {
		t.Errorf("commit_errors_total %v, want ≥ 2", got)
	}

	src.failCommits.Store(false)
	more := newUnitFeed()
	more.grid(2, 10, 5, unitBase(), nil, nil)
	w.mu.Lock()
	for k, v := range more.want {
		w.want[k] = v // w.want is f.want
	}
	w.mu.Unlock()
	src.add(more.msgs...)
	unitEventually(t, 5*time.Second, func() (bool, string) { return w.complete(f.lastOffsets()) })
	unitEventually(t, 2*time.Second, func() (bool, string) {
		err := r.in.Ready()
		return err == nil, fmt.Sprintf("Ready after a commit succeeded: %v", err)
	})
	r.stopClean(t)
	w.check(t)
}

// TestUnitSourceClosed: when the Source is closed (io.EOF), Run writes and
// commits what it read and returns nil without ctx ending.
func TestUnitSourceClosed(t *testing.T) {
	f := newUnitFeed()
	f.grid(3, 0, 9, unitBase(), nil, nil)
	w := newUnitWorld(f)
	src := newUnitSource(w, f.msgs)
	sink := &unitSink{w: w}
	opts := unitOpts()
	opts.MaxRows, opts.FlushInterval = 1000, 10*time.Second // only the end flushes
	r := startUnit(t, src, unitStoredSink{sink}, opts)
	unitEventually(t, 5*time.Second, func() (bool, string) {
		fetched, _ := src.counts()
		return fetched == len(f.msgs), fmt.Sprintf("%d/%d fetched", fetched, len(f.msgs))
	})
	src.close()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the source was closed")
	}
	if r.err != nil {
		t.Errorf("Run: %v", r.err)
	}
	if ok, msg := w.complete(f.lastOffsets()); !ok {
		t.Errorf("after the source closed: %s", msg)
	}
	w.check(t)
}
