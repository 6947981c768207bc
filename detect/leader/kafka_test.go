package leader

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/testenv"
)

// TestKafkaElection runs two Electors on the test broker: exactly one
// leads, the other names it; when the leader shuts down (leaving the
// group) the other leads within a few heartbeats, and the first's term
// ended before.
func TestKafkaElection(t *testing.T) {
	brokers := testenv.Brokers(t)
	topic := testenv.Topic(t, brokers, 1)
	group := testenv.RandomName("aw-test-leader-group-")
	const session = 6 * time.Second

	type member struct {
		e      *Elector
		cancel context.CancelFunc
		done   chan struct{} // closed when Run returned, with err
		err    error
		ended  chan time.Time // when a term ended
	}
	start := func(name string) *member {
		e, err := NewKafka(KafkaConfig{Brokers: brokers, GroupID: group, Topic: topic, SessionTimeout: session, ClientID: "test-" + name},
			slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		m := &member{e: e, cancel: cancel, done: make(chan struct{}), ended: make(chan time.Time, 8)}
		go func() {
			defer close(m.done)
			m.err = e.Run(ctx, func(lctx context.Context) {
				<-lctx.Done()
				m.ended <- time.Now()
			})
		}()
		t.Cleanup(func() {
			cancel()
			select {
			case <-m.done:
			case <-time.After(40 * time.Second):
				t.Errorf("%s: Run did not return", name)
			}
		})
		return m
	}

	a := start("a")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return a.e.Leading(), fmt.Sprintf("a: %+v", a.e.Status()) })
	b := start("b")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		st := b.e.Status()
		return st.Joined && st.Leader != "", fmt.Sprintf("b: %+v", st)
	})
	// a joined first and keeps leading (sticky) after b joined.
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return a.e.Leading() && !b.e.Leading() && a.e.Fence() == nil, fmt.Sprintf("a %+v, b %+v", a.e.Status(), b.e.Status())
	})
	if got, want := b.e.Status().Leader, a.e.Status().MemberID; got != want {
		t.Fatalf("b says the leader is %q, want a (%q)", got, want)
	}
	if err := b.e.Fence(); err == nil {
		t.Fatal("the standby's Fence is open")
	}

	// a shuts down: it leaves the group, b leads.
	stopped := time.Now()
	a.cancel()
	<-a.done
	if a.err != nil {
		t.Fatalf("a: Run: %v", a.err)
	}
	testenv.Eventually(t, 20*time.Second, func() (bool, string) { return b.e.Leading(), fmt.Sprintf("b: %+v", b.e.Status()) })
	took := time.Since(stopped)
	if took > session {
		t.Fatalf("b led %s after a left; want less than the session timeout (a left the group)", took)
	}
	select {
	case <-a.ended:
	default:
		t.Fatal("a's term had not ended when its Run returned")
	}
	t.Logf("b leads %s after a left the group", took.Round(time.Millisecond))
}
