package alerts_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/alerts"
)

// TestFenceStopsSending: with a Fence that refuses (this detect no longer
// leads), a cycle sends and records nothing, and what it did not send stays
// pending for the next cycle (the new leader's); a fence that closes after
// the first message stops the cycle there.
func TestFenceStopsSending(t *testing.T) {
	e := newEnv(t)
	t0 := e.now.Add(-10 * time.Minute)
	e.save(e.finding("burst", "high", "k1", t0, 50), e.finding("enum", "high", "k2", t0.Add(time.Minute), 30))
	notLeader := errors.New("not the leader")

	rec := &recorder{}
	st, err := e.dispatcherWith(rec, func(o *alerts.Options) {
		o.CatchupAfter = 24 * time.Hour
		o.Fence = func() error { return notLeader }
	}).Cycle(context.Background())
	if !errors.Is(err, notLeader) || len(rec.msgs) != 0 || st.Messages != 0 {
		t.Fatalf("fenced cycle: err %v, %d messages sent, stats %+v; want the fence's error and nothing sent", err, len(rec.msgs), st)
	}

	// The fence closes once the first message has gone.
	open := true
	st, err = e.dispatcherWith(rec, func(o *alerts.Options) {
		o.CatchupAfter = 24 * time.Hour
		o.Fence = func() error {
			if !open {
				return notLeader
			}
			return nil
		}
	}).Cycle(ctxAfter(rec, func() { open = false }))
	if !errors.Is(err, notLeader) || len(rec.msgs) != 1 || rec.msgs[0].RuleID != "burst" {
		t.Fatalf("fence closing mid-cycle: err %v, %d messages; want only the first (burst) sent", err, len(rec.msgs))
	}

	// Open: the rest is still pending and goes now, once.
	st, err = e.dispatcher(rec).Cycle(context.Background())
	if err != nil || st.Messages != 1 || len(rec.msgs) != 2 || rec.msgs[1].RuleID != "enum" {
		t.Fatalf("after the fence: err %v, stats %+v, %d messages; want the enum message only", err, st, len(rec.msgs))
	}
}

// ctxAfter makes rec call close as it sends each message (so the fence
// closes with the first) and returns the cycle's context.
func ctxAfter(rec *recorder, close func()) context.Context {
	rec.fail = func(*alerts.Message) error { close(); return nil }
	return context.Background()
}

// TestSendFinishesWhenCancelled: a message being sent when ctx ends is
// finished and recorded, so that it is not sent again.
func TestSendFinishesWhenCancelled(t *testing.T) {
	e := newEnv(t)
	e.save(e.finding("burst", "high", "k1", e.now.Add(-10*time.Minute), 50))
	ctx, cancel := context.WithCancel(context.Background())
	n := &cancellingNotifier{cancel: cancel}
	st, _ := e.dispatcher(n).Cycle(ctx)
	if n.sawCancelled {
		t.Fatal("the notifier's context was cancelled mid-send")
	}
	if st.Messages != 1 {
		t.Fatalf("stats %+v: want the message counted as sent", st)
	}
	rec := &recorder{}
	if st, err := e.dispatcher(rec).Cycle(context.Background()); err != nil || len(rec.msgs) != 0 {
		t.Fatalf("next cycle: err %v, stats %+v, %d messages: the message sent while cancelled was not recorded", err, st, len(rec.msgs))
	}
}

// cancellingNotifier cancels the caller's context while "sending".
type cancellingNotifier struct {
	cancel       context.CancelFunc
	sawCancelled bool
}

func (n *cancellingNotifier) Name() string { return "slack" }

func (n *cancellingNotifier) Notify(ctx context.Context, m *alerts.Message) (alerts.Receipt, error) {
	n.cancel()
	time.Sleep(10 * time.Millisecond)
	n.sawCancelled = ctx.Err() != nil
	return alerts.Receipt{Channel: "C1", TS: "1700000000.0001"}, nil
}
