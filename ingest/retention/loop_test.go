package retention_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/ingest/retention"
)

// listConn answers every partition listing with nothing, failing the first
// fail calls, and counts the listings.
type listConn struct {
	fail  int32
	calls atomic.Int32
}

func (c *listConn) Exec(context.Context, string, ...any) error {
	return errors.New("unexpected Exec: nothing to drop")
}

func (c *listConn) Select(context.Context, any, string, ...any) error {
	if c.calls.Add(1) <= c.fail {
		return errors.New("connection refused")
	}
	return nil
}

func TestUnitLoopEnforcesAtOnceRetriesAndStopsWithContext(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		fail     int32
		want     int32 // listings at least
	}{
		{name: "runs at once and then every interval", interval: 5 * time.Millisecond, want: 3},
		{name: "a failed run is retried at the next tick", interval: 5 * time.Millisecond, fail: 2, want: 4},
		{name: "an hour's interval still runs once at start", interval: time.Hour, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := &listConn{fail: tt.fail}
			e := retention.New(conn, "db", retention.Policy{"access_log": 90}, slog.New(slog.DiscardHandler))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				e.Loop(ctx, tt.interval)
			}()
			deadline := time.Now().Add(5 * time.Second)
			for conn.calls.Load() < tt.want && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			cancel()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Loop did not return after its context ended")
			}
			if got := conn.calls.Load(); got < tt.want {
				t.Fatalf("%d partition listings, want at least %d", got, tt.want)
			}
		})
	}
}

func TestUnitLoopWithoutIntervalReturns(t *testing.T) {
	conn := &listConn{}
	retention.New(conn, "db", retention.Policy{"access_log": 90}, slog.New(slog.DiscardHandler)).Loop(context.Background(), 0)
	if n := conn.calls.Load(); n != 0 {
		t.Fatalf("Loop with interval 0 listed partitions %d times, want none", n)
	}
}
