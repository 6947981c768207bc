package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/ingest/event"
)

// fakeSource serves messages from a channel and records commits.
type fakeSource struct {
	msgs chan kafka.Message
	mu   sync.Mutex
	// committed holds the offsets of every committed message.
	committed []int64
}

func (f *fakeSource) FetchMessage(ctx context.Context) (kafka.Message, error) {
	select {
	case m := <-f.msgs:
		return m, nil
	case <-ctx.Done():
		return kafka.Message{}, ctx.Err()
	}
}

func (f *fakeSource) CommitMessages(_ context.Context, msgs ...kafka.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range msgs {
		f.committed = append(f.committed, m.Offset)
	}
	return nil
}

func (f *fakeSource) commits() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.committed...)
}

// fakeStore fails its first failures calls (forever if negative).
type fakeStore struct {
	mu       sync.Mutex
	failures int
	calls    int
	applied  []Event
	dead     []event.DeadLetter
}

func (f *fakeStore) Apply(_ context.Context, evs ...Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failures != 0 {
		f.failures--
		return errors.New("simulated ClickHouse outage")
	}
	f.applied = append(f.applied, evs...)
	return nil
}

func (f *fakeStore) Write(_ context.Context, _ *event.Rows, dead []event.DeadLetter) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dead = append(f.dead, dead...)
	return nil
}

func (f *fakeStore) counts() (calls, applied, dead int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, len(f.applied), len(f.dead)
}

func messages(n int, badAt int) chan kafka.Message {
	ch := make(chan kafka.Message, n)
	for i := range n {
		v := fmt.Sprintf(`{"type":"updated","ts":"2026-11-27T10:00:00Z","key_id":"key_%d","owner":"o"}`, i)
		if i == badAt {
			v = `{"type":"updated"` // cut short
		}
		ch <- kafka.Message{Topic: "t", Offset: int64(i), Value: []byte(v)}
	}
	return ch
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
	}
}

func TestConsumerRetriesThenCommits(t *testing.T) {
	tests := []struct {
		name      string
		n, batch  int
		failures  int
		wantCalls int
	}{
		{"one batch, written first time", 5, 500, 0, 1},
		{"one batch, two failed writes", 5, 500, 2, 3},
		{"three batches", 7, 3, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &fakeSource{msgs: messages(tt.n, 1)}
			st := &fakeStore{failures: tt.failures}
			c := NewConsumer(src, st, st, ConsumerOptions{MaxBatch: tt.batch, FlushInterval: 20 * time.Millisecond, RetryMin: time.Millisecond}, slog.New(slog.DiscardHandler))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			// The last message of the partition is committed (which
			// commits everything before it).
			waitFor(t, func() bool { c := src.commits(); return len(c) > 0 && c[len(c)-1] == int64(tt.n-1) })
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			calls, applied, dead := st.counts()
			if calls != tt.wantCalls || applied != tt.n-1 || dead != 1 {
				t.Fatalf("%d Apply calls, %d applied, %d dead letters; want %d, %d, 1", calls, applied, dead, tt.wantCalls, tt.n-1)
			}
			if s := c.Stats(); s.Messages != tt.n || s.DeadLetters != 1 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestConsumerShutdownWithClickHouseDown(t *testing.T) {
	src := &fakeSource{msgs: messages(3, -1)}
	st := &fakeStore{failures: -1}
	c := NewConsumer(src, st, st, ConsumerOptions{FlushInterval: 10 * time.Millisecond, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, ShutdownTimeout: 100 * time.Millisecond}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, func() bool { calls, _, _ := st.counts(); return calls >= 3 })
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned nil with the batch unwritten")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not give up after the shutdown timeout")
	}
	if n := len(src.commits()); n != 0 {
		t.Fatalf("%d offsets committed for an unwritten batch", n)
	}
}

func TestConsumerDeadLettersTooLarge(t *testing.T) {
	ch := make(chan kafka.Message, 1)
	ch <- kafka.Message{Topic: "t", Value: []byte(`{"type":"revoked","ts":"2026-11-27T10:00:00Z","key_id":"key_1","pad":"` + string(make([]byte, 100)) + `"}`)}
	src := &fakeSource{msgs: ch}
	st := &fakeStore{}
	c := NewConsumer(src, st, st, ConsumerOptions{MaxMessageBytes: 64, FlushInterval: 10 * time.Millisecond}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, func() bool { return len(src.commits()) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, applied, dead := st.counts(); applied != 0 || dead != 1 || st.dead[0].Reason != event.ReasonTooLarge {
		t.Fatalf("applied %d, dead %+v", applied, st.dead)
	}
}
