package detect

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/auditwatch/auditwatch/rules"
)

// BacktestOptions say what to replay.
type BacktestOptions struct {
	From, To time.Time
	// Step replaces each rule's schedule with a fixed interval when positive;
	// StepWindow steps by each rule's window (for fast, coarse replays).
	Step       time.Duration
	StepWindow bool
	// Keep is how many alerting findings to keep per rule (default 20).
	Keep int
	// PostureAtEnd evaluates rules about the key registry (rotation,
	// staleness, missing allowlists) once at To when their schedule has no
	// tick in the range (they typically run daily).
	PostureAtEnd bool
}

// BacktestResult is what one rule would have done over the period.
type BacktestResult struct {
	RuleID      string `json:"rule_id"`
	Name        string `json:"name"`
	Severity    string `json:"severity"`
	Evaluations int    `json:"evaluations"`
	Matches     int    `json:"matches"` // findings before cooldown
	Alerts      int    `json:"alerts"`  // findings that would have been sent
	Signals     int    `json:"signals"` // info/low findings that would have been recorded for the digest
	// NotDue says the rule's schedule had no tick in the range (so it was
	// not evaluated), with its next tick.
	NotDue     bool          `json:"not_due,omitempty"`
	NextTick   *time.Time    `json:"next_tick,omitempty"`
	Groups     int           `json:"groups"` // distinct groups that matched
	Errors     int           `json:"errors"`
	FirstError string        `json:"first_error,omitempty"`
	First      *time.Time    `json:"first_alert,omitempty"`
	Last       *time.Time    `json:"last_alert,omitempty"`
	QueryTime  time.Duration `json:"query_time_total_ns"`
	Findings   []Finding     `json:"alerts_sample,omitempty"`
}

// Evaluator evaluates one rule at one time (Engine satisfies it).
type Evaluator interface {
	Eval(ctx context.Context, r *rules.Rule, t time.Time) ([]Finding, error)
}

// Backtest replays each enabled rule's schedule over [From, To] against the
// stored history, applying the cooldown as the daemon would, and reports
// what would have fired. It stores nothing. Rules about the key registry
// (rotation, staleness, allowlists) use the registry as it is now.
func Backtest(ctx context.Context, ev Evaluator, set *rules.Set, o BacktestOptions) ([]BacktestResult, error) {
	if !o.To.After(o.From) {
		return nil, fmt.Errorf("backtest: --to must be after --from")
	}
	if o.Keep <= 0 {
		o.Keep = 20
	}
	var out []BacktestResult
	for _, r := range set.Rules {
		if !r.IsEnabled() {
			continue
		}
		res := BacktestResult{RuleID: r.ID, Name: r.Name, Severity: r.Severity}
		last := map[string]Prior{}
		groups := map[string]bool{}
		ticks := Ticks(r, o)
		if len(ticks) == 0 {
			nt := ticker(r, o)(o.To)
			res.NotDue, res.NextTick = true, &nt
			if o.PostureAtEnd && IsPosture(r) {
				ticks = []time.Time{o.To}
			}
		}
		for _, t := range ticks {
			if err := ctx.Err(); err != nil {
				return out, err
			}
			start := time.Now()
			fs, err := ev.Eval(ctx, r, t)
			res.QueryTime += time.Since(start)
			res.Evaluations++
			if err != nil {
				res.Errors++
				if res.FirstError == "" {
					res.FirstError = err.Error()
				}
				continue
			}
			res.Matches += len(fs)
			for i := range fs {
				fs[i].Trigger = TriggerBacktest
			}
			alerts, signals, _ := Cooldown(r, fs, last)
			res.Alerts += alerts
			res.Signals += signals
			for _, f := range fs {
				groups[f.GroupKey] = true
				if f.Status != StatusNew {
					continue
				}
				et := f.EvalTime
				if res.First == nil {
					res.First = &et
				}
				res.Last = &et
				if len(res.Findings) < o.Keep {
					res.Findings = append(res.Findings, f)
				}
			}
		}
		res.Groups = len(groups)
		out = append(out, res)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Alerts > out[j].Alerts })
	return out, nil
}

// IsPosture reports whether r is about the key registry's state (rotation,
// staleness, missing allowlists) rather than a window of events: such rules
// do not wait for the ingest watermark and are not evaluated again for late
// events.
func IsPosture(r *rules.Rule) bool {
	return r.Type == rules.TypeKeyRotation || r.Type == rules.TypeStaleKey || (r.Type == rules.TypeIPAllowlist && r.Mode == "missing")
}

// Ticks returns r's evaluation times in [o.From, o.To]: its schedule, or the
// fixed step of o.
func Ticks(r *rules.Rule, o BacktestOptions) []time.Time {
	var out []time.Time
	next := ticker(r, o)
	for t := next(o.From.Add(-time.Second)); !t.After(o.To); t = next(t) {
		out = append(out, t)
	}
	return out
}

// ticker returns the function giving the evaluation time after t.
func ticker(r *rules.Rule, o BacktestOptions) func(time.Time) time.Time {
	step := o.Step
	if o.StepWindow && r.Window > 0 {
		step = r.Window.D()
	}
	if step > 0 {
		return func(t time.Time) time.Time {
			if t.Before(o.From) {
				return o.From
			}
			return t.Add(step)
		}
	}
	return func(t time.Time) time.Time { return r.Sched().Next(t) }
}
