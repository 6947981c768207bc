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
}

// NewDispatcher returns a Dispatcher. metrics may be nil.
func NewDispatcher(store *Store, n Notifier, lookup RuleLookup, opts Options, log *slog.Logger, metrics *Metrics) *Dispatcher {
	opts.defaults()
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	return &Dispatcher{store: store, notifier: n, rules: lookup, opts: opts, log: log, metrics: metrics, now: time.Now, sleep: sleepCtx}
}

// Run runs a cycle every PollInterval until ctx ends. A failed cycle is
// logged and retried at the next tick; it never stops detection.
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
		}
	}
}

// Stats counts what a cycle did.
type Stats struct {
	Messages  int // messages sent
	Sent      int // findings delivered
	Silenced  int
	Retrying  int // findings whose delivery failed and will be retried
	Failed    int // findings whose delivery failed for good
	Resolved  int // resolution notes sent
	Remaining int // findings still pending after the cycle
}

type msgKey struct {
	rule     string
	eval     int64
	channel  string
	kind     string
	threadTS string
}

// Cycle delivers what is pending now and returns what it did. Findings
// are taken in evaluation order, so that a repeat of an incident opened
// earlier in the same cycle goes to its thread. The attempts of each message
// are recorded as soon as it is sent; if recording fails the cycle stops,
// so that at most one message can be sent again by the next cycle.
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
	for _, p := range pend {
		f := p.Finding
		if s := silencedBy(silences, &f, now); s != nil {
			silenced = append(silenced, d.attempt(now, &f, KindAlert, "", p.Attempts+1, OutcomeSilenced, nil, Receipt{}, "", s.ID))
			d.metrics.deliveries.WithLabelValues(d.notifier.Name(), KindAlert, OutcomeSilenced).Inc()
			st.Silenced++
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
	sort.SliceStable(evals, func(i, j int) bool {
		if evals[i].eval != evals[j].eval {
			return evals[i].eval < evals[j].eval
		}
		return evals[i].rule < evals[j].rule
	})

	for _, ek := range evals {
		// Decide alert or repeat now, with the incidents opened so far.
		groups := map[msgKey][]pending{}
		var order []msgKey
		for _, p := range byEval[ek] {
			ch, _ := d.opts.Router.Route(&p.Finding)
			k := msgKey{rule: ek.rule, eval: ek.eval, channel: ch, kind: KindAlert}
			if inc := incidents[incidentKey(p.RuleID, p.GroupKey)]; inc != nil {
				k.kind, k.threadTS = KindRepeat, inc.ParentTS
			}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], p)
		}
		for _, k := range order {
			ps := groups[k]
			sort.SliceStable(ps, func(i, j int) bool { return ps[i].Value > ps[j].Value })
			m := d.message(k, ps, incidents)
			rec, err := d.deliver(ctx, m)
			outcome := OutcomeSent
			switch {
			case err == nil:
				st.Messages++
				st.Sent += len(ps)
			case isRetryable(err):
				outcome = OutcomeRetry
				st.Retrying += len(ps)
			default:
				outcome = OutcomeFailed
				st.Failed += len(ps)
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
	st.Remaining = st.Retrying
	d.metrics.pending.Set(float64(st.Retrying))
	if st.Messages+st.Silenced+st.Failed+st.Resolved+st.Retrying > 0 {
		d.log.Info("alerts delivered", "messages", st.Messages, "findings", st.Sent, "silenced", st.Silenced, "retrying", st.Retrying, "failed", st.Failed, "resolved", st.Resolved)
	}
	return st, nil
}

// message builds the message for the findings of one group of pending ones.
func (d *Dispatcher) message(k msgKey, ps []pending, incidents map[string]*Incident) *Message {
	f0 := ps[0].Finding
	r := d.rules(f0.RuleID)
	m := &Message{Kind: k.kind, Channel: k.channel, ThreadTS: k.threadTS, RuleID: f0.RuleID, RuleName: f0.RuleName,
		Severity: maxSeverity(ps), Runbook: f0.Runbook, EvalTime: f0.EvalTime, TotalGroups: len(ps)}
	if r != nil {
		m.Description = r.Description
	}
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
	if k.kind == KindRepeat {
		if inc := incidents[incidentKey(f0.RuleID, f0.GroupKey)]; inc != nil {
			m.UpdateTS, m.Repeats = inc.ParentTS, inc.Repeats+1
			if inc.SlackChannel != "" {
				m.Channel = inc.SlackChannel // a thread lives in its parent's channel
			}
		}
	}
	return m
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

// deliver sends m, retrying retryable failures up to Attempts times with
// backoff (honouring Retry-After, capped at RetryMax).
func (d *Dispatcher) deliver(ctx context.Context, m *Message) (Receipt, error) {
	delay := d.opts.RetryMin
	var err error
	for attempt := 1; attempt <= d.opts.Attempts; attempt++ {
		var rec Receipt
		rec, err = d.notifier.Notify(ctx, m)
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
	return Receipt{}, fmt.Errorf("deliver %s of rule %s to %s via %s: %w", m.Kind, m.RuleID, m.Channel, d.notifier.Name(), err)
}

func isRetryable(err error) bool {
	r, _ := Retryable(err)
	return r
}

// resolve posts a note for each open incident whose rule has run since its
// last match without matching again, recording each note as it goes, and
// returns how many were sent.
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
	sent := 0
	for _, id := range ruleIDs {
		last, lastRun, err := d.store.LastMatches(ctx, id, now.Add(-d.opts.IncidentTTL))
		if err != nil {
			return sent, err
		}
		for _, in := range byRule[id] {
			lm, ok := last[in.GroupKey]
			if !ok || !lastRun.After(lm) {
				continue // still matching, or nothing to compare with
			}
			r := d.rules(id)
			f := detect.Finding{RuleID: id, GroupKey: in.GroupKey, Group: detect.ParseGroupKey(in.GroupKey), EvalTime: lastRun, WindowEnd: lastRun}
			f.KeyID, f.ClientIP = f.Group["key_id"], f.Group["client_ip"]
			m := &Message{Kind: KindResolved, Channel: in.Channel, ThreadTS: in.ParentTS, UpdateTS: in.ParentTS, RuleID: id,
				EvalTime: lastRun, Findings: []detect.Finding{f}, TotalGroups: 1, Repeats: in.Repeats}
			if in.SlackChannel != "" {
				m.Channel = in.SlackChannel
			}
			if r != nil {
				m.RuleName, m.Severity, m.Runbook, m.Description = r.Name, r.Severity, r.Runbook, r.Description
				f.RuleName = r.Name
			}
			f.Summary = fmt.Sprintf("no match for %s since %s", in.GroupKey, lm.UTC().Format("2006-01-02 15:04 MST"))
			last := lm.UTC()
			f.Evidence.LastSeen = &last
			m.Findings[0] = f
			rec, err := d.deliver(ctx, m)
			outcome := OutcomeSent
			if err != nil {
				outcome = OutcomeRetry
				if !isRetryable(err) {
					outcome = OutcomeFailed
				}
				d.log.Warn("resolution note not delivered", "rule", id, "group", in.GroupKey, "err", err)
			}
			d.metrics.deliveries.WithLabelValues(d.notifier.Name(), KindResolved, outcome).Inc()
			if outcome == OutcomeSent {
				sent++
			}
			if err := record([]Attempt{d.attempt(now, &f, KindResolved, in.Channel, 1, outcome, err, rec, in.ParentTS, "")}); err != nil {
				return sent, err
			}
		}
	}
	return sent, nil
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

// Metrics are the alerting metrics.
type Metrics struct {
	deliveries *prometheus.CounterVec
	pending    prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg, if not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "auditwatch", Subsystem: "alerts", Name: "deliveries_total",
			Help: "Findings delivered or not, by notifier, kind (alert, repeat, resolved) and outcome (sent, retry, failed, silenced)."},
			[]string{"notifier", "kind", "outcome"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "auditwatch", Subsystem: "alerts", Name: "pending_findings",
			Help: "Findings whose delivery failed in the last cycle and will be retried."}),
	}
	if reg != nil {
		reg.MustRegister(m.deliveries, m.pending)
	}
	return m
}
