package detect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/auditwatch/auditwatch/rules"
)

// Tick is one evaluation of a rule: its time, how it was started, and what
// the ingest watermark said when it started.
type Tick struct {
	T       time.Time
	Trigger string // TriggerSchedule, TriggerReplay, TriggerLate, TriggerManual, …
	// Watermark is the ingest watermark when the run started (zero when not
	// known, e.g. a manual run); Complete says it had passed the window's end.
	Watermark time.Time
	Complete  bool
}

// Runner evaluates a rule, applies the cooldown kept in the Store, and
// records findings and the run.
type Runner struct {
	Engine *Engine
	Store  *Store
	// Stored, when set, is called after findings with status new were
	// stored (e.g. to wake the alert dispatcher). It must not block.
	Stored func()
	// MaxFindings caps the findings one run stores (0: DefaultMaxFindings;
	// negative: no cap). A run over it stores the most severe ones and one
	// finding (group findings_cap=<cap>, severity high or more) saying so.
	MaxFindings int
}

// Result is the outcome of one run.
type Result struct {
	Findings   []Finding
	Alerts     int
	Signals    int
	Suppressed int
	// Dropped counts the findings over MaxFindings that were not stored.
	Dropped  int
	Duration time.Duration
}

// Run evaluates r at tick.T, applies the cooldown as stored (a finding more
// severe than what its group reported within the cooldown breaks it), stores
// the findings and a rule_runs record, and returns them. A failed evaluation
// is recorded too. Findings of a late re-evaluation get their own ids, so the
// findings of the first evaluation of the window stay as they were.
func (rn *Runner) Run(ctx context.Context, r *rules.Rule, tick Tick) (Result, error) {
	start := time.Now()
	t := tick.T.UTC().Truncate(time.Second)
	fs, err := rn.Engine.Eval(ctx, r, t)
	var res Result
	produced := len(fs)
	if err == nil {
		maxF := rn.MaxFindings
		if maxF == 0 {
			maxF = DefaultMaxFindings
		}
		fs, res.Dropped = capFindings(r, WindowFor(r, t), fs, maxF)
		ids := make([]string, len(fs))
		for i := range fs {
			fs[i].Trigger = tick.Trigger
			if tick.Trigger == TriggerLate {
				fs[i].ID = revisionID(fs[i].ID, start)
			}
			ids[i] = fs[i].ID
		}
		cd := r.CooldownOrDefault().D()
		var prior map[string]Prior
		prior, err = rn.Store.Reported(ctx, r.ID, t.Add(-cd), t.Add(cd), ids)
		if err == nil {
			res.Alerts, res.Signals, res.Suppressed = Cooldown(r, fs, prior)
			err = rn.Store.SaveFindings(ctx, fs)
		}
	}
	res.Findings, res.Duration = fs, time.Since(start)
	rec := RunRecord{RuleID: r.ID, RuleHash: r.Hash, EvalTime: t, Window: WindowFor(r, t), Watermark: tick.Watermark, Complete: tick.Complete,
		StartedAt: start.UTC(), Duration: res.Duration, Rows: produced,
		Findings: res.Alerts, Signals: res.Signals, Suppressed: res.Suppressed, Dropped: res.Dropped, Err: err, Trigger: tick.Trigger}
	if serr := rn.Store.SaveRun(context.WithoutCancel(ctx), rec); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return res, fmt.Errorf("run rule %s: %w", r.ID, err)
	}
	if res.Alerts > 0 && rn.Stored != nil {
		rn.Stored()
	}
	return res, nil
}

// revisionID derives the id of a finding found again at time at.
func revisionID(id string, at time.Time) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s|late|%d", id, at.UnixNano()))
	return hex.EncodeToString(sum[:8])
}
