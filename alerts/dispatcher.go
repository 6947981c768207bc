package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/ingest/secret"
	"github.com/auditwatch/auditwatch/rules"
)

// Options tune a Dispatcher. Zero values take the defaults in parentheses.
type Options struct {
	Router       Router
	Database     string        // for the investigation query
	PollInterval time.Duration // how often pending findings are read (10s)
	Horizon      time.Duration // findings older than this are not delivered any more (24h)
	IncidentTTL  time.Duration // how long an unresolved incident stays open (7d)
	MaxGroups    int           // findings listed per message (10)
	Attempts     int           // delivery attempts per message and cycle (3); failures left are retried next cycle
	RetryMin     time.Duration // first retry delay (1s)
	RetryMax     time.Duration // longest wait, including a Retry-After (60s)
	SendResolved bool          // post a note in the thread when an incident's condition clears
	// CatchupAfter: findings evaluated longer ago than this when they are
	// delivered (replayed after an outage, a `detect --from` catch-up, or
	// held up by a Slack outage) are folded into one message per rule and
	// channel, and resolutions of incidents whose last match is that old
	// into one note per rule and channel (10m).
	CatchupAfter time.Duration
	// WakeDelay: after Wake, how long Run waits for more wakes (the other
	// rules of the same tick) before its cycle (100ms).
	WakeDelay time.Duration
	// Fallback receives, each target all of them, the findings whose
	// delivery failed for good and those not delivered within Horizon
	// (none: they are only recorded, counted and reported by
	// DeliveryHealthy).
	Fallback []FallbackTarget
	// ExpireLookback: how far beyond Horizon findings are looked for to be
	// recorded as expired (7d).
	ExpireLookback time.Duration
	// FallbackLookback: how long a fallback target failing transiently is
	// retried (Horizon).
	FallbackLookback time.Duration
	// DegradedFor: how long after a permanent failure, an expiry or a
	// fallback failure DeliveryHealthy reports degraded delivery (30m).
	DegradedFor time.Duration
	// Fence, when set, is asked just before each message is sent; an error
	// (e.g. this process no longer leads, detect.ha) stops the cycle
	// without sending, so what is left stays pending for the leader.
	Fence func() error
}

func (o *Options) defaults() {
	if o.PollInterval <= 0 {
		o.PollInterval = 10 * time.Second
	}
	if o.Horizon <= 0 {
		o.Horizon = 24 * time.Hour
	}
	if o.IncidentTTL <= 0 {
		o.IncidentTTL = 7 * 24 * time.Hour
	}
	if o.MaxGroups <= 0 {
		o.MaxGroups = 10
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 60 * time.Second
	}
	if o.CatchupAfter <= 0 {
		o.CatchupAfter = 10 * time.Minute
	}
	if o.WakeDelay <= 0 {
		o.WakeDelay = 100 * time.Millisecond
	}
	if o.ExpireLookback <= 0 {
		o.ExpireLookback = 7 * 24 * time.Hour
	}
	if o.FallbackLookback <= 0 {
		o.FallbackLookback = o.Horizon
	}
	if o.DegradedFor <= 0 {
		o.DegradedFor = 30 * time.Minute
	}
}

// RuleLookup returns the rule with an id, or nil.
type RuleLookup func(id string) *rules.Rule

// Dispatcher delivers findings: each cycle it reads the findings waiting for
// delivery from ClickHouse, drops the silenced ones (recording them), groups
// the rest by rule run and channel, threads repeats under the incident's
// first message, sends through the Notifier with retries, posts resolutions,
// and records every attempt. Because pending state is the findings table
// minus the deliveries recorded, a restart or a Slack outage loses nothing:
// what was not sent is sent by a later cycle.
type Dispatcher struct {
	store    *Store
	notifier Notifier
	rules    RuleLookup
	opts     Options
	log      *slog.Logger
	metrics  *Metrics
	now      func() time.Time
	sleep    func(context.Context, time.Duration) error
	wake     chan struct{}   // Wake's signal to Run; one buffered, so wakes coalesce
	health   *deliveryHealth // metrics.health
}

// NewDispatcher returns a Dispatcher. metrics may be nil.
func NewDispatcher(store *Store, n Notifier, lookup RuleLookup, opts Options, log *slog.Logger, metrics *Metrics) *Dispatcher {
	opts.defaults()
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	metrics.health.configure(opts.DegradedFor, len(opts.Fallback) > 0)
	return &Dispatcher{store: store, notifier: n, rules: lookup, opts: opts, log: log, metrics: metrics, now: time.Now, sleep: sleepCtx,
		wake: make(chan struct{}, 1), health: metrics.health}
}

// Wake asks Run for a cycle now, for findings just stored: detect calls it
// after saving findings, so alerts do not wait for the next PollInterval.
// It never blocks; wakes that arrive before the cycle starts are served by
// one cycle. A nil Dispatcher (alerts disabled) ignores it.
func (d *Dispatcher) Wake() {
	if d == nil {
		return
	}
	select {
	case d.wake <- struct{}{}:
	default: // a wake is already pending
	}
}

// Run runs a cycle at once, then whenever Wake is called (after WakeDelay,
// to serve a burst of wakes with one cycle) and at the latest every
// PollInterval, until ctx ends. A failed cycle is logged and retried at the
// next tick; it never stops detection.
func (d *Dispatcher) Run(ctx context.Context) error {
	t := time.NewTicker(d.opts.PollInterval)
	defer t.Stop()
	for {
		if _, err := d.Cycle(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("alert delivery cycle failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-d.wake:
			if sleepCtx(ctx, d.opts.WakeDelay) != nil {
				return nil
			}
			select {
			case <-d.wake: // woken again while waiting: this cycle serves it
			default:
			}
		}
	}
}

// Stats counts what a cycle did.
type Stats struct {
	Messages    int // messages sent
	Sent        int // findings delivered
	Silenced    int
	Retrying    int // findings whose delivery failed and will be retried
	Failed      int // findings whose delivery failed for good
	Resolved    int // incidents resolved (resolution notes, or incidents listed in a folded note)
	Folded      int // findings delivered in catch-up messages (included in Sent)
	Escalations int // escalations delivered into their incident's thread
	Remaining   int // findings still pending after the cycle
	Expired     int // findings recorded as expired: not delivered within the horizon
	Fallback    int // findings (times targets) the fallback took
	// FallbackFailed counts findings (times targets) a fallback target
	// failed to take (retried next cycle when the failure may pass).
	FallbackFailed int
}

type msgKey struct {
	rule     string
	eval     int64
	channel  string
	kind     string
	threadTS string
}

// Cycle delivers what is pending now and returns what it did. Silenced
// findings are recorded first. Findings evaluated more than CatchupAfter
// ago are folded into one catch-up message per rule and channel (see
// catchup); the others are taken in evaluation order, so that a repeat of an
// incident opened earlier in the same cycle (or by a catch-up message) goes
// to its thread, and an escalation of an open incident goes to its thread,
// broadcast. The attempts of each message are recorded as soon as it is
// sent; if recording fails the cycle stops, so that at most one message can
// be sent again by the next cycle.
func (d *Dispatcher) Cycle(ctx context.Context) (Stats, error) {
	var st Stats
	now := d.now().UTC()
	silences, err := d.store.Silences(ctx, now)
	if err != nil {
		return st, err
	}
	pend, err := d.store.Pending(ctx, now.Add(-d.opts.Horizon), 5000)
	if err != nil {
		return st, err
	}
	incidents, err := d.store.OpenIncidents(ctx, now.Add(-d.opts.IncidentTTL))
	if err != nil {
		return st, err
	}
	record := func(as []Attempt) error {
		if err := d.store.Record(context.WithoutCancel(ctx), as); err != nil {
			return fmt.Errorf("record deliveries (the next cycle may send these again): %w", err)
		}
		return nil
	}

	type evalKey struct {
		rule string
		eval int64
	}
	byEval := map[evalKey][]pending{}
	var evals []evalKey
	var silenced []Attempt
	var old []pending
	catchupBefore := now.Add(-d.opts.CatchupAfter)
	for _, p := range pend {
		f := p.Finding
		if s := silencedBy(silences, &f, now); s != nil {
			silenced = append(silenced, d.attempt(now, &f, KindAlert, "", p.Attempts+1, OutcomeSilenced, nil, Receipt{}, "", s.ID))
			d.metrics.deliveries.WithLabelValues(d.notifier.Name(), KindAlert, OutcomeSilenced).Inc()
			st.Silenced++
			continue
		}
		if f.EvalTime.Before(catchupBefore) {
			old = append(old, p)
			continue
		}
		k := evalKey{f.RuleID, f.EvalTime.Unix()}
		if _, ok := byEval[k]; !ok {
			evals = append(evals, k)
		}
		byEval[k] = append(byEval[k], p)
	}
	if err := record(silenced); err != nil {
		return st, err
	}
	// Old findings first: they open the incidents that fresher findings of
	// the same groups then thread under.
	if err := d.catchup(ctx, now, old, incidents, record, &st); err != nil {
		return st, err
	}
	sort.SliceStable(evals, func(i, j int) bool {
		if evals[i].eval != evals[j].eval {
			return evals[i].eval < evals[j].eval
		}
		return evals[i].rule < evals[j].rule
	})

	for _, ek := range evals {
		// Decide alert, repeat or escalation now, with the incidents opened so far.
		groups := map[msgKey][]pending{}
		var order []msgKey
		for _, p := range byEval[ek] {
			ch, _ := d.opts.Router.Route(&p.Finding)
			k := msgKey{rule: ek.rule, eval: ek.eval, channel: ch, kind: KindAlert}
			if inc := incidents[incidentKey(p.RuleID, p.GroupKey)]; inc != nil {
				k.kind, k.threadTS = KindRepeat, inc.ParentTS
				if p.EscalatedFrom != "" {
					k.kind = KindEscalation
				}
				if inc.Channel != "" {
					k.channel = inc.Channel // a thread lives in its parent's channel
				}
			}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], p)
		}
		for _, k := range order {
			ps := groups[k]
			sortPending(ps)
			if err := d.mayDeliver(ctx); err != nil {
				return st, err // nothing sent, nothing recorded: still pending
			}
			m := d.message(k, ps, incidents)
			rec, err := d.deliver(ctx, m)
			outcome := d.count(&st, err, len(ps))
			if outcome == OutcomeSent && k.kind == KindEscalation {
				st.Escalations++
			}
			var as []Attempt
			for _, p := range ps {
				as = append(as, d.attempt(now, &p.Finding, k.kind, k.channel, p.Attempts+1, outcome, err, rec, k.threadTS, ""))
				d.metrics.deliveries.WithLabelValues(d.notifier.Name(), k.kind, outcome).Inc()
				if outcome == OutcomeSent && k.kind == KindAlert {
					// Later evaluations of this cycle for the same group thread here.
					incidents[incidentKey(p.RuleID, p.GroupKey)] = &Incident{RuleID: p.RuleID, GroupKey: p.GroupKey, Channel: k.channel,
						SlackChannel: rec.Channel, ParentTS: rec.TS, OpenedAt: now, LastEval: p.EvalTime}
				} else if outcome == OutcomeSent {
					if inc := incidents[incidentKey(p.RuleID, p.GroupKey)]; inc != nil {
						inc.Repeats++
					}
				}
			}
			if err != nil {
				d.log.Warn("alert delivery failed", "rule", k.rule, "channel", k.channel, "kind", k.kind, "findings", len(ps), "outcome", outcome, "err", err)
			}
			if rerr := record(as); rerr != nil {
				return st, rerr
			}
		}
	}

	if d.opts.SendResolved {
		n, err := d.resolve(ctx, now, incidents, record)
		st.Resolved += n
		if err != nil {
			return st, err
		}
	}
	// Nothing drops out silently: what the horizon ends is recorded as
	// expired, and what failed for good or expired goes to the fallback.
	if err := d.expire(ctx, now, record, &st); err != nil {
		return st, err
	}
	if err := d.fallbackStage(ctx, now, record, &st); err != nil {
		return st, err
	}
	st.Remaining = st.Retrying
	d.metrics.pending.Set(float64(st.Retrying))
	d.setDegraded()
	if st.Messages+st.Silenced+st.Failed+st.Resolved+st.Retrying+st.Expired+st.Fallback+st.FallbackFailed > 0 {
		d.log.Info("alerts delivered", "messages", st.Messages, "findings", st.Sent, "folded", st.Folded, "escalations", st.Escalations,
			"silenced", st.Silenced, "retrying", st.Retrying, "failed", st.Failed, "resolved", st.Resolved,
			"expired", st.Expired, "fallback", st.Fallback, "fallback_failed", st.FallbackFailed)
	}
	return st, nil
}

// setDegraded sets the degraded gauge from DeliveryHealthy.
func (d *Dispatcher) setDegraded() {
	if d.DeliveryHealthy() != nil {
		d.metrics.degraded.Set(1)
	} else {
		d.metrics.degraded.Set(0)
	}
}

// noteFailure counts n findings (or resolutions) whose delivery failed for
// good with err, and marks delivery degraded.
func (d *Dispatcher) noteFailure(err error, n int) {
	code := "error"
	var de *DeliveryError
	if errors.As(err, &de) && de.Code != "" {
		code = de.Code
	}
	d.metrics.failures.WithLabelValues(d.notifier.Name(), code).Add(float64(n))
	d.health.failed(d.now(), code, n)
}

// count adds the outcome of a message of n findings to st and returns it.
func (d *Dispatcher) count(st *Stats, err error, n int) string {
	switch {
	case err == nil:
		st.Messages++
		st.Sent += n
		return OutcomeSent
	case isRetryable(err):
		st.Retrying += n
		return OutcomeRetry
	default:
		st.Failed += n
		d.noteFailure(err, n)
		return OutcomeFailed
	}
}

// sortPending orders the findings of a message: most severe first, then
// highest value.
func sortPending(ps []pending) {
	sort.SliceStable(ps, func(i, j int) bool {
		si, sj := severityRank(ps[i].Severity), severityRank(ps[j].Severity)
		if si != sj {
			return si > sj
		}
		return ps[i].Value > ps[j].Value
	})
}

// message builds the message for the findings of one group of pending ones,
// sorted with sortPending.
func (d *Dispatcher) message(k msgKey, ps []pending, incidents map[string]*Incident) *Message {
	f0 := ps[0].Finding
	r := d.rules(f0.RuleID)
	m := &Message{Kind: k.kind, Channel: k.channel, ThreadTS: k.threadTS, RuleID: f0.RuleID, RuleName: f0.RuleName,
		Severity: maxSeverity(ps), Runbook: f0.Runbook, EvalTime: f0.EvalTime, TotalGroups: len(ps)}
	if r != nil {
		m.Description = r.Description
	}
	// The most severe finding's route says whom to mention.
	_, m.Mention = d.opts.Router.Route(&f0)
	var env string
	for i, p := range ps {
		e := findingEnv(&p.Finding)
		if i == 0 {
			env = e
		} else if e != env {
			env = ""
		}
		if i < d.opts.MaxGroups {
			m.Findings = append(m.Findings, p.Finding)
		}
	}
	m.Env = env
	m.Query = InvestigateQuery(d.opts.Database, r, m.Findings)
	if k.kind == KindRepeat || k.kind == KindEscalation {
		if inc := incidents[incidentKey(f0.RuleID, f0.GroupKey)]; inc != nil {
			m.UpdateTS, m.Repeats = inc.ParentTS, inc.Repeats+1
			if inc.SlackChannel != "" {
				m.Channel = inc.SlackChannel // a thread lives in its parent's channel
			}
		}
	}
	if k.kind == KindEscalation {
		m.Broadcast, m.EscalatedFrom = true, f0.EscalatedFrom
	}
	return m
}

// severityRank is the index of s in rules.Severities (-1 when unknown).
func severityRank(s string) int {
	for i, x := range rules.Severities {
		if x == s {
			return i
		}
	}
	return -1
}

func maxSeverity(ps []pending) string {
	best, bi := "info", 0
	for _, p := range ps {
		for i, s := range rules.Severities {
			if s == p.Severity && i >= bi {
				best, bi = s, i
			}
		}
	}
	return best
}

// deliver sends m through the notifier, retrying retryable failures up to
// Attempts times with backoff (honouring Retry-After, capped at RetryMax).
func (d *Dispatcher) deliver(ctx context.Context, m *Message) (Receipt, error) {
	return d.deliverVia(ctx, d.notifier, d.notifier.Name(), m)
}

// deliverVia is deliver through n, named name in the final error.
func (d *Dispatcher) deliverVia(ctx context.Context, n Notifier, name string, m *Message) (Receipt, error) {
	delay := d.opts.RetryMin
	var err error
	for attempt := 1; attempt <= d.opts.Attempts; attempt++ {
		if err = d.mayDeliver(ctx); err != nil {
			break
		}
		var rec Receipt
		// A message once started is finished (the notifier's timeout bounds
		// it) even if ctx ends meanwhile, so that its outcome is recorded:
		// a request cut off after Slack took it would leave no record and
		// be sent again by the next cycle or leader.
		rec, err = n.Notify(context.WithoutCancel(ctx), m)
		if err == nil {
			return rec, nil
		}
		retry, after := Retryable(err)
		if !retry || attempt == d.opts.Attempts {
			break
		}
		wait := max(delay, after)
		wait = min(wait, d.opts.RetryMax)
		d.log.Info("alert delivery failed; retrying", "rule", m.RuleID, "channel", m.Channel, "attempt", attempt, "retry_in", wait, "err", err)
		if serr := d.sleep(ctx, wait); serr != nil {
			break
		}
		delay = min(delay*2, d.opts.RetryMax)
	}
	return Receipt{}, fmt.Errorf("deliver %s of rule %s to %s via %s: %w", m.Kind, m.RuleID, m.Channel, name, err)
}

// mayDeliver returns why no message may be sent now: ctx ended, or the
// Fence refuses.
func (d *Dispatcher) mayDeliver(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("not sending: %w", err)
	}
	if d.opts.Fence != nil {
		if err := d.opts.Fence(); err != nil {
			return fmt.Errorf("not sending: %w", err)
		}
	}
	return nil
}

func isRetryable(err error) bool {
	r, _ := Retryable(err)
	return r
}

// resolve posts a note for each open incident whose rule has run since its
// last match without matching again, recording each note as it goes, and
// returns how many incidents were resolved. The incidents of a rule and
// channel whose last match is older than CatchupAfter (the condition ended
// during an outage or a catch-up) share one folded note in the channel when
// there are several, instead of one note per thread.
func (d *Dispatcher) resolve(ctx context.Context, now time.Time, incidents map[string]*Incident, record func([]Attempt) error) (int, error) {
	byRule := map[string][]*Incident{}
	for _, in := range incidents {
		byRule[in.RuleID] = append(byRule[in.RuleID], in)
	}
	ruleIDs := make([]string, 0, len(byRule))
	for id := range byRule {
		ruleIDs = append(ruleIDs, id)
	}
	sort.Strings(ruleIDs)
	staleBefore := now.Add(-d.opts.CatchupAfter)
	sent := 0
	for _, id := range ruleIDs {
		last, lastRun, err := d.store.LastMatches(ctx, id, now.Add(-d.opts.IncidentTTL))
		if err != nil {
			return sent, err
		}
		r := d.rules(id)
		ins := byRule[id]
		sort.Slice(ins, func(i, j int) bool { return ins[i].GroupKey < ins[j].GroupKey })
		stale := map[string][]resolution{}
		var channels []string
		for _, in := range ins {
			lm, ok := last[in.GroupKey]
			if !ok || !lastRun.After(lm) {
				continue // still matching, or nothing to compare with
			}
			res := resolution{in: in, f: resolutionFinding(r, in, lm, lastRun)}
			if lm.Before(staleBefore) {
				if _, ok := stale[in.Channel]; !ok {
					channels = append(channels, in.Channel)
				}
				stale[in.Channel] = append(stale[in.Channel], res)
				continue
			}
			n, err := d.resolveOne(ctx, now, r, res, lastRun, record)
			sent += n
			if err != nil {
				return sent, err
			}
		}
		for _, ch := range channels {
			rs := stale[ch]
			var n int
			var err error
			if len(rs) == 1 {
				n, err = d.resolveOne(ctx, now, r, rs[0], lastRun, record)
			} else {
				n, err = d.resolveFolded(ctx, now, r, ch, rs, lastRun, record)
			}
			sent += n
			if err != nil {
				return sent, err
			}
		}
	}
	return sent, nil
}

// resolution is an incident to resolve and the finding describing it.
type resolution struct {
	in *Incident
	f  detect.Finding
}

// resolutionFinding describes the resolution of in: its group, no match
// since lm, checked at lastRun.
func resolutionFinding(r *rules.Rule, in *Incident, lm, lastRun time.Time) detect.Finding {
	f := detect.Finding{RuleID: in.RuleID, GroupKey: in.GroupKey, Group: detect.ParseGroupKey(in.GroupKey), EvalTime: lastRun, WindowEnd: lastRun}
	f.KeyID, f.ClientIP = f.Group["key_id"], f.Group["client_ip"]
	if r != nil {
		f.RuleName, f.Severity = r.Name, r.Severity
	}
	f.Summary = fmt.Sprintf("no match for %s since %s", in.GroupKey, lm.UTC().Format("2006-01-02 15:04 MST"))
	l := lm.UTC()
	f.Evidence.LastSeen = &l
	return f
}

// resolutionMessage is a resolution note of rule r at lastRun.
func resolutionMessage(r *rules.Rule, ruleID, channel string, lastRun time.Time, fs []detect.Finding) *Message {
	m := &Message{Kind: KindResolved, Channel: channel, RuleID: ruleID, EvalTime: lastRun, Findings: fs, TotalGroups: len(fs)}
	if r != nil {
		m.RuleName, m.Severity, m.Runbook, m.Description = r.Name, r.Severity, r.Runbook, r.Description
	}
	return m
}

// resolveOne posts the note of one incident in its thread (and updates the
// incident's first message) and records it.
func (d *Dispatcher) resolveOne(ctx context.Context, now time.Time, r *rules.Rule, res resolution, lastRun time.Time, record func([]Attempt) error) (int, error) {
	in := res.in
	ch := in.Channel
	if in.SlackChannel != "" {
		ch = in.SlackChannel
	}
	m := resolutionMessage(r, in.RuleID, ch, lastRun, []detect.Finding{res.f})
	m.ThreadTS, m.UpdateTS, m.Repeats = in.ParentTS, in.ParentTS, in.Repeats
	rec, err := d.deliver(ctx, m)
	outcome := resolvedOutcome(err)
	if outcome == OutcomeFailed {
		d.noteFailure(err, 1)
	}
	if err != nil {
		d.log.Warn("resolution note not delivered", "rule", in.RuleID, "group", in.GroupKey, "outcome", outcome, "err", err)
	}
	d.metrics.deliveries.WithLabelValues(d.notifier.Name(), KindResolved, outcome).Inc()
	if err := record([]Attempt{d.attempt(now, &res.f, KindResolved, in.Channel, 1, outcome, err, rec, in.ParentTS, "")}); err != nil {
		return 0, err
	}
	if outcome == OutcomeSent {
		return 1, nil
	}
	return 0, nil
}

// resolveFolded posts one note in channel for the incidents rs of rule r
// ("N incidents of R no longer match") and records a resolution of each.
func (d *Dispatcher) resolveFolded(ctx context.Context, now time.Time, r *rules.Rule, channel string, rs []resolution, lastRun time.Time, record func([]Attempt) error) (int, error) {
	ch := channel
	fs := make([]detect.Finding, len(rs))
	for i, res := range rs {
		fs[i] = res.f
		if res.in.SlackChannel != "" && ch == channel {
			ch = res.in.SlackChannel
		}
	}
	m := resolutionMessage(r, rs[0].in.RuleID, ch, lastRun, fs)
	m.Folded = true
	rec, err := d.deliver(ctx, m)
	outcome := resolvedOutcome(err)
	if outcome == OutcomeFailed {
		d.noteFailure(err, len(rs))
	}
	if err != nil {
		d.log.Warn("folded resolution note not delivered", "rule", m.RuleID, "channel", channel, "incidents", len(rs), "outcome", outcome, "err", err)
	}
	as := make([]Attempt, len(rs))
	for i, res := range rs {
		as[i] = d.attempt(now, &res.f, KindResolved, channel, 1, outcome, err, rec, res.in.ParentTS, "")
		d.metrics.deliveries.WithLabelValues(d.notifier.Name(), KindResolved, outcome).Inc()
	}
	if err := record(as); err != nil {
		return 0, err
	}
	if outcome == OutcomeSent {
		return len(rs), nil
	}
	return 0, nil
}

func resolvedOutcome(err error) string {
	switch {
	case err == nil:
		return OutcomeSent
	case isRetryable(err):
		return OutcomeRetry
	}
	return OutcomeFailed
}

func (d *Dispatcher) attempt(now time.Time, f *detect.Finding, kind, channel string, n int, outcome string, err error, rec Receipt, thread, silence string) Attempt {
	a := Attempt{At: now, FindingID: f.ID, RuleID: f.RuleID, GroupKey: f.GroupKey, EvalTime: f.EvalTime, Kind: kind,
		Notifier: d.notifier.Name(), Channel: channel, Attempt: n, Outcome: outcome, SlackChannel: rec.Channel, SlackTS: rec.TS,
		ThreadTS: thread, SilenceID: silence}
	if err != nil {
		a.Error = secret.Redact(err.Error())
		var de *DeliveryError
		if errors.As(err, &de) {
			a.Code = de.Code
		}
	}
	return a
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Metrics are the alerting metrics. They also remember recent permanent
// failures, expiries and fallback failures for DeliveryHealthy, so that a
// command can register readiness before its Dispatcher exists.
type Metrics struct {
	health     *deliveryHealth
	deliveries *prometheus.CounterVec
	pending    prometheus.Gauge
	failures   *prometheus.CounterVec
	expired    prometheus.Counter
	fallback   *prometheus.CounterVec
	degraded   prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg, if not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		health: &deliveryHealth{window: 30 * time.Minute},
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "auditwatch", Subsystem: "alerts", Name: "deliveries_total",
			Help: "Findings delivered or not, by notifier, kind (alert, repeat, escalation, catchup, resolved) and outcome (sent, retry, failed, silenced)."},
			[]string{"notifier", "kind", "outcome"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "auditwatch", Subsystem: "alerts", Name: "pending_findings",
			Help: "Findings whose delivery failed in the last cycle and will be retried."}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "auditwatch", Subsystem: "alerts", Name: "delivery_failures_total",
			Help: "Findings (and resolution notes) whose delivery failed for good, by notifier and reason (the Slack error code: invalid_auth, channel_not_found, …)."},
			[]string{"notifier", "reason"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "auditwatch", Subsystem: "alerts", Name: "expired_total",
			Help: "Findings not delivered within alerts.horizon, recorded as expired and handed to the fallback."}),
		fallback: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "auditwatch", Subsystem: "alerts", Name: "fallback_total",
			Help: "Findings handed to a fallback target, by target (fallback-channel, fallback-webhook, fallback-file) and outcome (fallback, fallback_retry, fallback_failed)."},
			[]string{"target", "outcome"}),
		degraded: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "auditwatch", Subsystem: "alerts", Name: "delivery_degraded",
			Help: "1 while alert delivery is degraded: a finding failed for good or expired, or a fallback target failed, within the last 30 minutes (/readyz says why)."}),
	}
	if reg != nil {
		reg.MustRegister(m.deliveries, m.pending, m.failures, m.expired, m.fallback, m.degraded)
	}
	return m
}

// DeliveryHealthy returns nil while the alert delivery of the Dispatcher
// using m works, else why it is degraded (see Dispatcher.DeliveryHealthy).
// Before any Dispatcher uses m, and for a nil m, it returns nil. Safe for
// concurrent use: detect's /readyz calls it.
func (m *Metrics) DeliveryHealthy() error {
	if m == nil {
		return nil
	}
	return m.health.err(time.Now())
}
