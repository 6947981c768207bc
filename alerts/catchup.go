package alerts

import (
	"context"
	"time"
)

// catchup delivers findings evaluated more than CatchupAfter ago — replayed
// after detect was down, found by a `detect --from` catch-up, or held back
// by a Slack outage — as one message per rule and channel instead of one
// per evaluation: "While detect was down or catching up: N findings of R
// between T1 and T2", listing the top MaxGroups groups. The message takes
// the highest severity of the findings and that finding's mention. Each
// finding is recorded with kind catchup. A group without an open incident
// opens one under the catch-up message (later repeats thread there); a
// group with one keeps its thread, recorded in thread_ts.
func (d *Dispatcher) catchup(ctx context.Context, now time.Time, old []pending, incidents map[string]*Incident, record func([]Attempt) error, st *Stats) error {
	type foldKey struct{ rule, channel string }
	byKey := map[foldKey][]pending{}
	var keys []foldKey
	for _, p := range old { // in evaluation order
		ch, _ := d.opts.Router.Route(&p.Finding)
		k := foldKey{p.RuleID, ch}
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], p)
	}
	for _, k := range keys {
		ps := byKey[k]
		m := d.foldMessage(k.channel, ps)
		rec, err := d.deliver(ctx, m)
		outcome := d.count(st, err, len(ps))
		if outcome == OutcomeSent {
			st.Folded += len(ps)
		}
		as := make([]Attempt, 0, len(ps))
		for _, p := range ps {
			ik := incidentKey(p.RuleID, p.GroupKey)
			inc := incidents[ik]
			thread := ""
			if inc != nil {
				thread = inc.ParentTS
			}
			as = append(as, d.attempt(now, &p.Finding, KindCatchup, k.channel, p.Attempts+1, outcome, err, rec, thread, ""))
			d.metrics.deliveries.WithLabelValues(d.notifier.Name(), KindCatchup, outcome).Inc()
			switch {
			case outcome != OutcomeSent:
			case inc == nil:
				incidents[ik] = &Incident{RuleID: p.RuleID, GroupKey: p.GroupKey, Channel: k.channel,
					SlackChannel: rec.Channel, ParentTS: rec.TS, OpenedAt: now, LastEval: p.EvalTime}
			default:
				inc.Repeats++
				if p.EvalTime.After(inc.LastEval) {
					inc.LastEval = p.EvalTime
				}
			}
		}
		if err != nil {
			d.log.Warn("catch-up delivery failed", "rule", k.rule, "channel", k.channel, "findings", len(ps), "outcome", outcome, "err", err)
		}
		if err := record(as); err != nil {
			return err
		}
	}
	return nil
}

// foldMessage builds the catch-up message of ps (one rule, one channel):
// one finding per group — its most severe, then highest, one — the top
// MaxGroups of them listed, with how many findings each group had.
func (d *Dispatcher) foldMessage(channel string, ps []pending) *Message {
	byGroup := map[string]int{} // group key → index in reps
	var reps []pending
	counts := map[string]int{}
	first, last := ps[0].EvalTime, ps[0].EvalTime
	for _, p := range ps {
		if p.EvalTime.Before(first) {
			first = p.EvalTime
		}
		if p.EvalTime.After(last) {
			last = p.EvalTime
		}
		counts[p.GroupKey]++
		i, ok := byGroup[p.GroupKey]
		if !ok {
			byGroup[p.GroupKey] = len(reps)
			reps = append(reps, p)
			continue
		}
		r := reps[i]
		if sr, sp := severityRank(r.Severity), severityRank(p.Severity); sp > sr || (sp == sr && p.Value > r.Value) {
			reps[i] = p
		}
	}
	sortPending(reps)
	f0 := reps[0].Finding
	r := d.rules(f0.RuleID)
	m := &Message{Kind: KindCatchup, Folded: true, Channel: channel, RuleID: f0.RuleID, RuleName: f0.RuleName,
		Severity: maxSeverity(ps), Runbook: f0.Runbook, EvalTime: last, FirstEval: first,
		TotalGroups: len(reps), TotalFindings: len(ps), GroupCounts: map[string]int{}}
	if r != nil {
		m.Description = r.Description
		if m.RuleName == "" {
			m.RuleName = r.Name
		}
	}
	_, m.Mention = d.opts.Router.Route(&f0) // the most severe finding's mention
	env := findingEnv(&f0)
	for i, p := range reps {
		if findingEnv(&p.Finding) != env {
			env = ""
		}
		if i < d.opts.MaxGroups {
			m.Findings = append(m.Findings, p.Finding)
			m.GroupCounts[p.GroupKey] = counts[p.GroupKey]
		}
	}
	m.Env = env
	m.Query = InvestigateQuery(d.opts.Database, r, m.Findings)
	return m
}
