package leader

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// fakeGroup hands out the generations sent on gens, one after the other,
// ending each before the next as kafka-go does.
type fakeGroup struct {
	gens   chan *fakeGen
	mu     sync.Mutex
	cur    *fakeGen
	closed chan struct{}
	once   sync.Once
}

func newFakeGroup() *fakeGroup {
	return &fakeGroup{gens: make(chan *fakeGen), closed: make(chan struct{})}
}

func (g *fakeGroup) Next(ctx context.Context) (Generation, error) {
	g.mu.Lock()
	prev := g.cur
	g.mu.Unlock()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-g.closed:
		return nil, errors.New("group closed")
	case gen := <-g.gens:
		if prev != nil {
			prev.end() // the previous generation ends (and its functions return) first
		}
		g.mu.Lock()
		g.cur = gen
		g.mu.Unlock()
		return gen, nil
	}
}

func (g *fakeGroup) Close() error {
	g.once.Do(func() { close(g.closed) })
	g.mu.Lock()
	cur := g.cur
	g.mu.Unlock()
	if cur != nil {
		cur.end()
	}
	return nil
}

type fakeGen struct {
	id    int32
	owns  bool
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	mu    sync.Mutex
	renew error
}

func newFakeGen(id int32, owns bool) *fakeGen {
	ctx, stop := context.WithCancel(context.Background())
	return &fakeGen{id: id, owns: owns, ctx: ctx, stop: stop}
}

func (g *fakeGen) ID() int32        { return g.id }
func (g *fakeGen) MemberID() string { return "member-a" }
func (g *fakeGen) Owns() bool       { return g.owns }
func (g *fakeGen) Start(fn func(ctx context.Context)) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		fn(g.ctx)
		g.stop() // a returning function ends the generation
	}()
}
func (g *fakeGen) Renew() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.renew
}
func (g *fakeGen) setRenew(err error) {
	g.mu.Lock()
	g.renew = err
	g.mu.Unlock()
}
func (g *fakeGen) end() { g.stop(); g.wg.Wait() }

// clock is a settable clock for the lease.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for: %s", what)
}

// harness runs an Elector on a fake group and records its terms.
type harness struct {
	e      *Elector
	g      *fakeGroup
	clk    *clock
	mu     sync.Mutex
	terms  int
	active bool
	cancel context.CancelFunc
	done   chan error

	stopOnce sync.Once
}

func start(t *testing.T) *harness {
	t.Helper()
	h := &harness{g: newFakeGroup(), clk: &clock{t: time.Unix(1_000_000, 0)}, done: make(chan error, 1)}
	h.e = New(h.g, 6*time.Second, slog.New(slog.DiscardHandler), nil)
	h.e.now = h.clk.now
	h.e.renewEvery = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		h.done <- h.e.Run(ctx, func(lctx context.Context) {
			h.mu.Lock()
			h.terms++
			h.active = true
			h.mu.Unlock()
			<-lctx.Done()
			h.mu.Lock()
			h.active = false
			h.mu.Unlock()
		})
	}()
	t.Cleanup(func() { h.stop(t) })
	return h
}

func (h *harness) stop(t *testing.T) {
	h.stopOnce.Do(func() {
		h.cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

func (h *harness) state() (terms int, active bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.terms, h.active
}

func TestLeadsOnlyWhileOwningTheGeneration(t *testing.T) {
	h := start(t)
	g1 := newFakeGen(1, true)
	h.g.gens <- g1
	eventually(t, "leading", func() bool { _, a := h.state(); return a && h.e.Leading() })
	if err := h.e.Fence(); err != nil {
		t.Fatalf("Fence while leading: %v", err)
	}
	if st := h.e.Status(); st.Leader != "member-a" || st.Generation != 1 || !st.Joined {
		t.Fatalf("status %+v", st)
	}

	// The next generation goes to another member: the term ends first.
	h.g.gens <- newFakeGen(2, false)
	eventually(t, "standing by", func() bool { _, a := h.state(); return !a && !h.e.Leading() })
	if err := h.e.Fence(); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Fence on a standby = %v, want ErrNotLeader", err)
	}
	if st := h.e.Status(); st.Leading || st.Generation != 2 || !st.Joined {
		t.Fatalf("status %+v", st)
	}
	if terms, _ := h.state(); terms != 1 {
		t.Fatalf("%d terms, want 1", terms)
	}

	// Leadership comes back in generation 3: a new term.
	h.g.gens <- newFakeGen(3, true)
	eventually(t, "leading again", func() bool { n, a := h.state(); return n == 2 && a })
}

func TestGenerationOverEndsTheTerm(t *testing.T) {
	h := start(t)
	g := newFakeGen(1, true)
	h.g.gens <- g
	eventually(t, "leading", func() bool { _, a := h.state(); return a })
	if got := h.e.ledGeneration(); got != 1 {
		t.Fatalf("claim while leading generation 1: %d", got)
	}
	g.setRenew(kafka.IllegalGeneration) // the coordinator moved on
	eventually(t, "term ended", func() bool { _, a := h.state(); return !a && !h.e.Leading() })
	// Dropped: it must not claim leadership when it rejoins, or it would
	// take it back from the member that leads the newer generation.
	if got := h.e.ledGeneration(); got != 0 {
		t.Fatalf("claim after the coordinator dropped the generation: %d, want 0", got)
	}
}

func TestLeaseExpiresWhenNotRenewed(t *testing.T) {
	h := start(t)
	g := newFakeGen(1, true)
	h.g.gens <- g
	eventually(t, "leading", func() bool { _, a := h.state(); return a })
	// The coordinator cannot be reached: the lease is not renewed, the term
	// goes on (the generation may still be ours) but Fence closes once the
	// lease (session − heartbeat = 4s) is over.
	g.setRenew(errors.New("dial tcp: connection refused"))
	time.Sleep(50 * time.Millisecond) // renewals fail from now on
	h.clk.add(3 * time.Second)
	if err := h.e.Fence(); err != nil {
		t.Fatalf("Fence 3s into a 4s lease: %v", err)
	}
	h.clk.add(2 * time.Second)
	if err := h.e.Fence(); !errors.Is(err, ErrLeaseExpired) {
		t.Fatalf("Fence 5s after the last renewal = %v, want ErrLeaseExpired", err)
	}
	if !h.e.Leading() {
		t.Fatal("a transient renewal failure ended the term")
	}
	// Renewed again: open again.
	g.setRenew(nil)
	eventually(t, "fence open again", func() bool { return h.e.Fence() == nil })
}

func TestUnconfirmedLeadershipIsNotTaken(t *testing.T) {
	h := start(t)
	g := newFakeGen(1, true)
	g.setRenew(kafka.RebalanceInProgress)
	h.g.gens <- g
	time.Sleep(100 * time.Millisecond)
	if n, _ := h.state(); n != 0 || h.e.Leading() {
		t.Fatalf("led %d terms though the coordinator refused the generation", n)
	}
}

func TestShutdownEndsTheTermAndLeaves(t *testing.T) {
	h := start(t)
	h.g.gens <- newFakeGen(1, true)
	eventually(t, "leading", func() bool { _, a := h.state(); return a })
	h.stop(t)
	if _, a := h.state(); a {
		t.Fatal("lead still running after Run returned")
	}
	select {
	case <-h.g.closed:
	default:
		t.Fatal("group not closed")
	}
}

func TestStickyBalancer(t *testing.T) {
	parts := []kafka.Partition{{Topic: "t", ID: 0}}
	tests := []struct {
		name    string
		members []kafka.GroupMember
		want    string
	}{
		{name: "lowest id without a previous leader", members: []kafka.GroupMember{{ID: "b"}, {ID: "a"}, {ID: "c"}}, want: "a"},
		{name: "the previous leader keeps it", members: []kafka.GroupMember{{ID: "a"}, {ID: "c", UserData: []byte("led:3")}}, want: "c"},
		{name: "a dropped leader's older claim loses", members: []kafka.GroupMember{{ID: "a", UserData: []byte("led:2")}, {ID: "c", UserData: []byte("led:3")}}, want: "c"},
		{name: "garbage is no claim", members: []kafka.GroupMember{{ID: "b", UserData: []byte("led:x")}, {ID: "a"}}, want: "a"},
		{name: "one member", members: []kafka.GroupMember{{ID: "z"}}, want: "z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := stickyBalancer{}.AssignGroups(tc.members, parts)
			if len(got) != len(tc.members) {
				t.Fatalf("assignments for %d members, want %d", len(got), len(tc.members))
			}
			for id, a := range got {
				owns := len(a["t"]) == 1 && a["t"][0] == 0
				if owns != (id == tc.want) {
					t.Errorf("member %s owns=%v, want the owner to be %s", id, owns, tc.want)
				}
			}
		})
	}
}

func TestIsGenerationOver(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{kafka.IllegalGeneration, true},
		{kafka.UnknownMemberId, true},
		{kafka.RebalanceInProgress, true},
		{errors.New("i/o timeout"), false},
		{kafka.RequestTimedOut, false},
	} {
		if got := IsGenerationOver(tc.err); got != tc.want {
			t.Errorf("IsGenerationOver(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
