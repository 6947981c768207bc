// Package leader elects one leader among the `detect` processes that share a
// database, through a Kafka consumer group on a one-partition topic: the
// member the group coordinator assigns partition 0 leads for as long as that
// generation of the group lasts. Nothing is consumed from the topic; the
// group is used only for its membership, failure detection (the session
// timeout) and generations, so no coordination is home-made.
//
// A generation of a consumer group ends, for every member, before a new one
// starts: the coordinator forms the next generation only after each member
// of the old one rejoined (having stopped its work) or was dropped when its
// session timed out. Ending leadership when the generation ends is therefore
// the fence that keeps two leaders from working at once. A process that is
// paused (GC, SIGSTOP, a frozen VM) for longer than the session timeout does
// not notice at once that it was dropped; for that case the leader renews a
// lease (an offset commit the coordinator accepts only from a member of the
// current generation) and Fence refuses once the lease is older than the
// session timeout minus a heartbeat interval — callers check Fence just
// before an action that must not be done twice (a Slack message).
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Group is the consumer-group membership the Elector runs on:
// kafka-go's ConsumerGroup (see NewKafkaGroup), or a fake in tests.
type Group interface {
	// Next waits for the next generation of the group (joining it first);
	// it returns a generation only after the previous one ended and every
	// function started in it returned.
	Next(ctx context.Context) (Generation, error)
	// Close ends the current generation (waiting for its functions) and
	// leaves the group.
	Close() error
}

// Generation is one generation of the group as this member sees it.
type Generation interface {
	ID() int32
	MemberID() string
	// Owns reports whether this member was assigned the leader partition.
	Owns() bool
	// Start runs fn in the generation; fn's ctx ends when the generation
	// does, and the group does not move to a new generation until fn
	// returns. When fn returns, the generation ends.
	Start(fn func(ctx context.Context))
	// Renew proves that the generation is still the group's current one,
	// with this member in it (an error says it is not, or that the
	// coordinator could not be asked).
	Renew() error
}

// Status is what an Elector knows about the group.
type Status struct {
	Joined     bool   // this process is a member of a generation
	Leading    bool   // and it leads
	MemberID   string // this process's member id ("" before joining)
	Generation int32
	// Leader is the member id of the leader: this process's own while it
	// leads; for a standby, as the group coordinator describes the group
	// ("" while not known).
	Leader string
	Since  time.Time // when this status (leading or standby) began
	Err    error     // the last error joining the group, until a generation is joined
}

// Errors of Fence.
var (
	ErrNotLeader    = errors.New("not the leader")
	ErrLeaseExpired = errors.New("leadership lease expired")
)

// Elector takes part in the leader group and runs a function for each term
// of leadership. Create it with New (or NewKafka).
type Elector struct {
	group   Group
	log     *slog.Logger
	metrics *Metrics
	// lease: how long a successful Renew keeps Fence open; renewEvery: how
	// often the leader renews.
	lease, renewEvery time.Duration
	// describe, when set, returns the leader's member id for a standby.
	describe func(ctx context.Context) (string, error)
	now      func() time.Time

	mu      sync.Mutex
	st      Status
	leaseTo time.Time // Fence is open until then (while leading)
	// ledGen is the generation this member led last, while it may claim to
	// keep leading in the next one (the sticky balancer's user data); 0
	// when it may not (it stood by, or the coordinator dropped it).
	ledGen int32
}

// New returns an Elector on group for a group session timeout of session
// (the lease is session minus one heartbeat interval, a third of session).
// metrics may be nil.
func New(group Group, session time.Duration, log *slog.Logger, metrics *Metrics) *Elector {
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	if session <= 0 {
		session = 10 * time.Second
	}
	return &Elector{group: group, log: log, metrics: metrics, lease: session - HeartbeatInterval(session),
		renewEvery: HeartbeatInterval(session) / 2, now: time.Now}
}

// HeartbeatInterval is the group heartbeat interval used for a session
// timeout: a third of it, as Kafka recommends.
func HeartbeatInterval(session time.Duration) time.Duration { return session / 3 }

// Run takes part in the group until ctx ends. For each generation in which
// this member owns the leader partition it calls lead with a context that
// ends when the generation does (or ctx does); lead must return promptly
// then, because the group cannot move on (and no one else can lead) until
// it has. Errors joining the group are logged and retried (kafka-go backs
// off); Run returns nil after leaving the group when ctx ends.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) error {
	for {
		gen, err := e.group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			e.mu.Lock()
			first := e.st.Err == nil
			e.st.Err, e.st.Joined = err, false
			e.ledGen = 0 // dropped from the group: no claim
			e.mu.Unlock()
			if first {
				e.log.Warn("joining the leader group failed; retrying", "err", err)
			}
			e.sleep(ctx, time.Second)
			continue
		}
		if !gen.Owns() {
			e.standby(ctx, gen)
			continue
		}
		gen.Start(func(gctx context.Context) { e.term(ctx, gctx, gen, lead) })
		// Next returns the following generation only after this term ended.
	}
	if err := e.group.Close(); err != nil {
		return fmt.Errorf("leave the leader group: %w", err)
	}
	e.log.Info("left the leader group")
	return nil
}

// standby records that this member is in gen without leading, and looks
// up who leads.
func (e *Elector) standby(ctx context.Context, gen Generation) {
	e.mu.Lock()
	was := e.st
	e.ledGen = 0
	e.st = Status{Joined: true, MemberID: gen.MemberID(), Generation: gen.ID(), Since: e.now()}
	if was.Joined && !was.Leading {
		e.st.Since = was.Since // still a standby; the leader is looked up again
	}
	e.mu.Unlock()
	e.metrics.leader.Set(0)
	if !was.Joined || was.Leading {
		e.log.Info("standing by: another detect leads", "member", gen.MemberID(), "generation", gen.ID())
	}
	if e.describe == nil {
		return
	}
	go func() {
		for i := 0; i < 10 && ctx.Err() == nil; i++ {
			id, err := e.describe(ctx)
			if err == nil && id != "" {
				e.mu.Lock()
				changed := e.st.Generation == gen.ID() && !e.st.Leading && e.st.Leader != id
				if changed {
					e.st.Leader = id
				}
				e.mu.Unlock()
				if changed {
					e.log.Info("the leader is", "leader", id, "generation", gen.ID())
				}
				return
			}
			e.sleep(ctx, 500*time.Millisecond)
		}
	}()
}

// term is one term of leadership: confirm it, run lead, renew the lease
// meanwhile, and end everything when the generation or ctx ends.
func (e *Elector) term(ctx, gctx context.Context, gen Generation, lead func(context.Context)) {
	// Only the generation ends the term: on shutdown, Run closes the group,
	// which ends the generation (and then leaves the group).
	lctx, cancel := context.WithCancel(gctx)
	defer cancel()
	e.mu.Lock()
	e.ledGen = gen.ID() // also while confirming: a rejoin keeps the partition here
	e.mu.Unlock()
	if err := e.renew(gen); err != nil {
		if IsGenerationOver(err) {
			e.mu.Lock()
			e.ledGen = 0
			e.mu.Unlock()
		}
		e.log.Warn("leadership not confirmed by the group coordinator; rejoining", "generation", gen.ID(), "err", err)
		return
	}
	e.mu.Lock()
	e.st = Status{Joined: true, Leading: true, MemberID: gen.MemberID(), Generation: gen.ID(), Leader: gen.MemberID(), Since: e.now()}
	e.mu.Unlock()
	e.metrics.leader.Set(1)
	e.metrics.changes.Inc()
	e.log.Info("leading: this detect evaluates rules and delivers alerts", "member", gen.MemberID(), "generation", gen.ID())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.renewLoop(lctx, cancel, gen)
	}()
	start := e.now()
	lead(lctx)
	// Close the fence before anything else notices the end.
	e.mu.Lock()
	e.st.Leading, e.st.Leader, e.leaseTo = false, "", time.Time{}
	e.mu.Unlock()
	cancel()
	wg.Wait()
	e.metrics.leader.Set(0)
	e.metrics.changes.Inc()
	why := "the group's generation ended (a member joined or left, or this one missed its session)"
	if ctx.Err() != nil {
		why = "shutting down"
	} else if gctx.Err() == nil {
		why = "the leader's work stopped"
	}
	e.log.Info("leadership ended", "member", gen.MemberID(), "generation", gen.ID(), "led_for", e.now().Sub(start).Round(time.Millisecond), "why", why)
}

// renewLoop renews the lease until ctx ends; when the coordinator says the
// generation is over, it ends the term at once (cancel).
func (e *Elector) renewLoop(ctx context.Context, cancel func(), gen Generation) {
	t := time.NewTicker(e.renewEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := e.renew(gen)
		switch {
		case err == nil:
			if failing {
				e.log.Info("leadership lease renewed again", "generation", gen.ID())
			}
			failing = false
		case IsGenerationOver(err):
			e.mu.Lock()
			e.ledGen = 0 // another member may lead a newer generation already
			e.mu.Unlock()
			e.log.Warn("leadership lost: the group coordinator no longer accepts this generation", "generation", gen.ID(), "err", err)
			cancel()
			return
		default:
			if !failing {
				e.log.Warn("renewing the leadership lease failed; alerts are held back while it is expired", "generation", gen.ID(), "err", err)
			}
			failing = true
		}
	}
}

// renew calls gen.Renew and, when it succeeds, extends the lease from the
// time the request was sent.
func (e *Elector) renew(gen Generation) error {
	sent := e.now()
	if err := gen.Renew(); err != nil {
		return err
	}
	e.mu.Lock()
	if to := sent.Add(e.lease); to.After(e.leaseTo) {
		e.leaseTo = to
	}
	e.mu.Unlock()
	return nil
}

// Leading reports whether this process leads now.
func (e *Elector) Leading() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.Leading
}

// Status returns what the Elector knows about the group.
func (e *Elector) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st
}

// Fence returns nil when this process leads and its lease is fresh, else
// ErrNotLeader or ErrLeaseExpired (wrapped with how old the lease is).
// Call it just before an action that must be done by the leader only; it
// reads the clock, so a process resumed after a long pause sees its lease
// expired before its timers have fired.
func (e *Elector) Fence() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.st.Leading {
		return ErrNotLeader
	}
	if now := e.now(); !now.Before(e.leaseTo) {
		return fmt.Errorf("%w %s ago (not renewed: paused, or the group coordinator unreachable)", ErrLeaseExpired, now.Sub(e.leaseTo).Round(time.Millisecond))
	}
	return nil
}

// ledGeneration returns the generation this member led last, if it may
// claim to keep leading (the sticky balancer's user data), else 0.
func (e *Elector) ledGeneration() int32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ledGen
}

func (e *Elector) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
