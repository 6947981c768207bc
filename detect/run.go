package detect

import (
	"context"
	"fmt"
	"time"

	"github.com/auditwatch/auditwatch/rules"
)

// Cooldown decides which findings alert: a finding whose group alerted
// less than the rule's cooldown before is suppressed. last maps group keys
// to their latest alert and is updated with the findings that alert.
func Cooldown(r *rules.Rule, fs []Finding, last map[string]time.Time) (alerts, suppressed int) {
	cd := r.CooldownOrDefault().D()
	for i := range fs {
		f := &fs[i]
		if t, ok := last[f.GroupKey]; ok && f.EvalTime.Sub(t) < cd {
			f.Status = StatusSuppressed
			suppressed++
			continue
		}
		f.Status = StatusNew
		last[f.GroupKey] = f.EvalTime
		alerts++
	}
	return alerts, suppressed
}

// Runner evaluates a rule, applies the cooldown kept in the Store, and
// records findings and the run.
type Runner struct {
	Engine *Engine
	Store  *Store
}

// Result is the outcome of one run.
type Result struct {
	Findings   []Finding
	Alerts     int
	Suppressed int
	Duration   time.Duration
}

// Run evaluates r at t, stores its findings and a rule_runs record with the
// given trigger, and returns them. A failed evaluation is recorded too.
func (rn *Runner) Run(ctx context.Context, r *rules.Rule, t time.Time, trigger string) (Result, error) {
	start := time.Now()
	t = t.UTC().Truncate(time.Second)
	fs, err := rn.Engine.Eval(ctx, r, t)
	var res Result
	if err == nil {
		var last map[string]time.Time
		last, err = rn.Store.LastAlerted(ctx, r.ID, t.Add(-r.CooldownOrDefault().D()), t)
		if err == nil {
			res.Alerts, res.Suppressed = Cooldown(r, fs, last)
			err = rn.Store.SaveFindings(ctx, fs)
		}
	}
	res.Findings, res.Duration = fs, time.Since(start)
	rec := RunRecord{RuleID: r.ID, EvalTime: t, StartedAt: start.UTC(), Duration: res.Duration, Rows: len(fs),
		Findings: res.Alerts, Suppressed: res.Suppressed, Err: err, Trigger: trigger}
	if serr := rn.Store.SaveRun(context.WithoutCancel(ctx), rec); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return res, fmt.Errorf("run rule %s: %w", r.ID, err)
	}
	return res, nil
}
