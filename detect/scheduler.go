package detect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/auditwatch/auditwatch/rules"
)

// RuleRunner runs one rule at one tick (Runner satisfies it).
type RuleRunner interface {
	Run(ctx context.Context, r *rules.Rule, tick Tick) (Result, error)
}

// Scheduler runs the rules of a directory on their schedules, so that no
// window is ever skipped silently:
//
//   - each rule has a cursor, its last evaluated tick (persisted in
//     rule_runs and read back on start); every tick after it is evaluated
//     in order, so ticks missed while detect was down or busy are replayed
//     (back to ReplayLookback; when a rule is further behind than its window,
//     the replay steps by half the window until it is close);
//   - a tick's window is evaluated once the ingest watermark has passed its
//     end, or MaxWait after that end at the latest (the run is then recorded
//     as incomplete and counted);
//   - rows that arrive after their window was evaluated cause the windows
//     they fall in to be evaluated again (trigger late), back to
//     ReplayLookback;
//   - a tick whose evaluation fails is retried (backoff up to a minute) and
//     holds its rule back until it succeeds.
//
// Rule files are reloaded when they change; a reload is all or nothing: if
// any file is invalid, every error is logged with file:line:col and the
// rules already running keep running. Cursors survive reloads.
type Scheduler struct {
	dir     string
	runner  RuleRunner
	log     *slog.Logger
	metrics *Metrics

	// ReloadInterval is how often the directory is checked for changes (5s).
	ReloadInterval time.Duration
	// Watermarks tells how far the stored events are complete (nil: always
	// complete, no waiting).
	Watermarks WatermarkSource
	// Runs is the persisted run history: cursors on start and the runs that
	// late rows are compared with (nil: start fresh).
	Runs RunHistory
	// Late finds rows stored after their window was evaluated (nil: late
	// data is not looked for).
	Late LateSource
	// MaxWait (2m), ReplayLookback (24h), LateCheckInterval (5s).
	MaxWait           time.Duration
	ReplayLookback    time.Duration
	LateCheckInterval time.Duration

	now func() time.Time

	mu      sync.Mutex
	set     *rules.Set
	version string
	loops   map[string]*ruleLoop
	cursors map[string]time.Time
	history map[string]*evalLog
	lateSeq uint64 // ingest_progress rows up to this seq were checked for late data
	wg      sync.WaitGroup
}

// ruleLoop is the goroutine evaluating one rule.
type ruleLoop struct {
	rule       *rules.Rule
	incomplete bool // the last window waited for was evaluated incomplete (logged once per episode)
	wmFailing  bool // the last watermark read failed (logged once per episode)
	stop       chan struct{}
	done       chan struct{}
	late       chan []time.Time // ticks to evaluate again for late data
}

// NewScheduler returns a Scheduler for the rule files in dir. metrics may be
// nil.
func NewScheduler(dir string, runner RuleRunner, log *slog.Logger, metrics *Metrics) *Scheduler {
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	return &Scheduler{dir: dir, runner: runner, log: log, metrics: metrics, ReloadInterval: 5 * time.Second,
		MaxWait: 2 * time.Minute, ReplayLookback: 24 * time.Hour, LateCheckInterval: 5 * time.Second,
		now: time.Now, loops: map[string]*ruleLoop{}, cursors: map[string]time.Time{}, history: map[string]*evalLog{}}
}

// Run loads the rules (failing if they are invalid), reads the cursors,
// runs every enabled rule in its own goroutine and checks for changes and
// late data until ctx ends; then it stops and waits for running evaluations
// to finish.
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.restore(ctx); err != nil {
		return err
	}
	if err := s.reload(ctx, true); err != nil {
		return err
	}
	reload := time.NewTicker(s.ReloadInterval)
	defer reload.Stop()
	var lateC <-chan time.Time
	if s.Late != nil {
		t := time.NewTicker(s.LateCheckInterval)
		defer t.Stop()
		lateC = t.C
	}
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			for _, l := range s.loops {
				close(l.stop)
			}
			s.mu.Unlock()
			s.wg.Wait()
			return nil
		case <-reload.C:
			_ = s.reload(ctx, false)
		case <-lateC:
			if err := s.checkLate(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("looking for late data failed; will retry", "err", err)
			}
		}
	}
}

// Rules returns the rule set in force.
func (s *Scheduler) Rules() *rules.Set {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set
}

// restore reads the cursors and the recent evaluations from the run
// history.
func (s *Scheduler) restore(ctx context.Context) error {
	if s.Runs == nil {
		return nil
	}
	since := s.now().Add(-s.ReplayLookback)
	evs, err := s.Runs.Evaluated(ctx, since)
	if err != nil {
		return fmt.Errorf("restore rule cursors: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, list := range evs {
		h := s.historyOf(id)
		for _, e := range list {
			h.add(e.T, e.StartedAt)
			if e.Trigger != TriggerLate && e.T.After(s.cursors[id]) {
				s.cursors[id] = e.T
			}
		}
	}
	s.lateSeq, err = s.lateStart(ctx)
	return err
}

// dirVersion hashes the names, sizes and modification times of the rule
// files.
func dirVersion(dir string) (string, error) {
	files, err := rules.RuleFiles(dir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d %d\n", f, st.Size(), st.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (s *Scheduler) reload(ctx context.Context, first bool) error {
	v, err := dirVersion(s.dir)
	if err != nil {
		s.log.Error("rules directory unreadable; keeping the current rules", "dir", s.dir, "err", err)
		return err
	}
	s.mu.Lock()
	same := v == s.version
	s.mu.Unlock()
	if same {
		return nil
	}
	set, err := rules.LoadDir(s.dir)
	if err != nil {
		s.metrics.reloads.WithLabelValues("failure").Inc()
		if errs, ok := err.(rules.Errors); ok {
			for _, e := range errs {
				s.log.Error("invalid rule file", "error", e)
			}
		}
		if first {
			return fmt.Errorf("load rules from %s: %w", s.dir, err)
		}
		s.log.Error("rule reload rejected; the previous rules keep running", "dir", s.dir, "errors", countErrs(err))
		s.mu.Lock()
		s.version = v // don't re-report until the files change again
		s.mu.Unlock()
		return err
	}
	// Stop the running loops between evaluations, then start the new ones
	// from the cursors the old ones left.
	s.mu.Lock()
	old := s.loops
	s.loops = map[string]*ruleLoop{}
	s.mu.Unlock()
	for _, l := range old {
		close(l.stop)
	}
	for _, l := range old {
		<-l.done
	}
	enabled := 0
	s.mu.Lock()
	now := s.now().UTC()
	for _, r := range set.Rules {
		if !r.IsEnabled() {
			continue
		}
		enabled++
		if _, ok := s.cursors[r.ID]; !ok {
			s.cursors[r.ID] = now // a new rule starts now; it has no missed ticks
		}
		l := &ruleLoop{rule: r, stop: make(chan struct{}), done: make(chan struct{}), late: make(chan []time.Time, 16)}
		s.loops[r.ID] = l
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(l.done)
			s.loop(ctx, l)
		}()
	}
	prev := s.set
	s.set, s.version = set, v
	s.mu.Unlock()
	if prev == nil {
		for _, f := range set.Files {
			s.log.Info("rule file loaded", "file", f, "hash", set.Hashes[f])
		}
	}
	logRuleChanges(s.log, RuleChanges(prev, set))
	s.metrics.reloads.WithLabelValues("success").Inc()
	s.metrics.rulesLoaded.Set(float64(enabled))
	s.log.Info("rules loaded", "dir", s.dir, "files", len(set.Files), "rules", len(set.Rules), "enabled", enabled)
	return nil
}

func countErrs(err error) int {
	if errs, ok := err.(rules.Errors); ok {
		return len(errs)
	}
	return 1
}

// loop evaluates one rule's ticks in order until stopped.
func (s *Scheduler) loop(ctx context.Context, l *ruleLoop) {
	r := l.rule
	failures := 0
	for {
		select {
		case <-l.stop:
			return
		case <-ctx.Done():
			return
		case ticks := <-l.late:
			s.reevaluate(ctx, l, ticks)
			continue
		default:
		}
		now := s.now().UTC()
		s.mu.Lock()
		cursor := s.cursors[r.ID]
		s.mu.Unlock()
		next, trigger, dropped := s.nextTick(r, cursor, now)
		if dropped > 0 {
			s.metrics.dropped.WithLabelValues(r.ID).Add(float64(dropped))
			s.log.Warn("ticks older than the replay lookback are not evaluated", "rule", r.ID, "ticks", dropped, "lookback", s.ReplayLookback)
		}
		if next.After(now) {
			if !s.sleep(ctx, l, next.Sub(now)) {
				return
			}
			continue
		}
		tick, ok := s.await(ctx, l, r, next, trigger)
		if !ok {
			return
		}
		start := s.now()
		if _, err := s.RunOnce(ctx, r, tick); err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			wait := min(time.Second<<min(failures-1, 6), time.Minute)
			s.log.Warn("rule evaluation failed; the tick is retried and holds the rule back", "rule", r.ID, "eval_time", next, "attempt", failures, "retry_in", wait)
			if !s.sleep(ctx, l, wait) {
				return
			}
			continue
		}
		failures = 0
		if trigger == TriggerReplay {
			s.metrics.replayed.WithLabelValues(r.ID).Inc()
		}
		s.mu.Lock()
		s.cursors[r.ID] = next
		h := s.historyOf(r.ID)
		h.add(next, start)
		h.prune(now.Add(-s.ReplayLookback))
		s.mu.Unlock()
	}
}

// nextTick returns the tick after cursor, whether it is a replay (the tick
// after it is due too), and how many ticks older than the replay lookback
// were dropped. A rule further behind than its window steps by half its
// window, so a long outage is replayed in a bounded number of evaluations
// that still see every event (any burst shorter than half the window lies
// whole within one of them).
func (s *Scheduler) nextTick(r *rules.Rule, cursor, now time.Time) (time.Time, string, int) {
	dropped := 0
	if lb := now.Add(-s.ReplayLookback); cursor.Before(lb) {
		for t := r.Sched().Next(cursor); t.Before(lb) && dropped < 1_000_000; t = r.Sched().Next(t) {
			dropped++
		}
		cursor = lb
	}
	next := r.Sched().Next(cursor)
	if next.After(now) || r.Sched().Next(next).After(now) {
		return next, TriggerSchedule, dropped
	}
	if w := r.Window.D(); w > 0 && now.Sub(next) > w {
		if coarse := cursor.Add(w / 2).Truncate(time.Second); coarse.After(next) {
			next = coarse
		}
	}
	return next, TriggerReplay, dropped
}

// await waits until the ingest watermark passes the window's end of r at t,
// or MaxWait after the window's end, and returns the tick to run. It
// returns false when the loop is stopped.
func (s *Scheduler) await(ctx context.Context, l *ruleLoop, r *rules.Rule, t time.Time, trigger string) (Tick, bool) {
	tick := Tick{T: t, Trigger: trigger, Complete: true}
	if s.Watermarks == nil || IsPosture(r) {
		return tick, true
	}
	end := WindowFor(r, t).To
	deadline := end.Add(s.MaxWait)
	for {
		now := s.now()
		wm, err := s.Watermarks.Watermark(ctx, now)
		if err != nil && !l.wmFailing {
			s.log.Warn("reading the ingest watermark failed; waiting for it until max_wait", "rule", r.ID, "err", err)
		}
		l.wmFailing = err != nil
		tick.Watermark = wm.At
		if err == nil && !wm.At.Before(end) {
			s.metrics.waited.WithLabelValues(r.ID).Observe(max(now.Sub(end), 0).Seconds())
			if l.incomplete {
				l.incomplete = false
				s.log.Info("the ingest watermark passes window ends again; windows are complete", "rule", r.ID, "watermark", wm.At)
			}
			return tick, true
		}
		if !now.Before(deadline) {
			tick.Complete = false
			s.metrics.incomplete.WithLabelValues(r.ID).Inc()
			lvl := slog.LevelDebug
			if !l.incomplete {
				lvl, l.incomplete = slog.LevelWarn, true // once per episode; the metric counts every run
			}
			s.log.Log(ctx, lvl, "evaluating an incomplete window: the ingest watermark did not pass its end within max_wait; rows that arrive later are evaluated as late data",
				"rule", r.ID, "window_end", end, "watermark", wm.At, "max_wait", s.MaxWait, "active_partitions", wm.Active, "ingester_live", wm.Live)
			return tick, true
		}
		if !s.sleep(ctx, l, min(250*time.Millisecond, deadline.Sub(now))) {
			return tick, false
		}
	}
}

// sleep waits d, evaluating late ticks handed to the loop meanwhile; false
// when the loop is stopped first.
func (s *Scheduler) sleep(ctx context.Context, l *ruleLoop, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case ticks := <-l.late:
			s.reevaluate(ctx, l, ticks)
		case <-l.stop:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// reevaluate runs r again at ticks whose windows received late rows.
func (s *Scheduler) reevaluate(ctx context.Context, l *ruleLoop, ticks []time.Time) {
	for _, t := range ticks {
		if ctx.Err() != nil {
			return
		}
		start := s.now()
		if _, err := s.RunOnce(ctx, l.rule, Tick{T: t, Trigger: TriggerLate, Watermark: start, Complete: true}); err != nil {
			continue // logged; the late rows stay in the table, and a later tick sees them if its window covers them
		}
		s.metrics.late.WithLabelValues(l.rule.ID).Inc()
		s.mu.Lock()
		s.historyOf(l.rule.ID).add(t, start)
		s.mu.Unlock()
	}
}

// RunOnce runs r at tick, recovering a panic, and logs and counts the
// outcome.
func (s *Scheduler) RunOnce(ctx context.Context, r *rules.Rule, tick Tick) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.metrics.runs.WithLabelValues(r.ID, "panic").Inc()
			s.log.Error("rule evaluation panicked", "rule", r.ID, "eval_time", tick.T, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("rule %s panicked: %v", r.ID, p)
			if rn, ok := s.runner.(*Runner); ok {
				_ = rn.Store.SaveRun(context.WithoutCancel(ctx), RunRecord{RuleID: r.ID, RuleHash: r.Hash, EvalTime: tick.T, Window: WindowFor(r, tick.T), StartedAt: time.Now().UTC(),
					Err: err, Trigger: tick.Trigger, Watermark: tick.Watermark, Complete: tick.Complete})
			}
		}
	}()
	res, err = s.runner.Run(ctx, r, tick)
	s.metrics.duration.WithLabelValues(r.ID).Observe(res.Duration.Seconds())
	if err != nil {
		s.metrics.runs.WithLabelValues(r.ID, "error").Inc()
		s.log.Error("rule evaluation failed", "rule", r.ID, "eval_time", tick.T, "trigger", tick.Trigger, "err", err)
		return res, err
	}
	s.metrics.runs.WithLabelValues(r.ID, "success").Inc()
	if res.Dropped > 0 {
		s.log.Warn("rule produced more findings than detect.sql_rules.max_findings; the most severe were stored, with a findings_cap finding", "rule", r.ID, "eval_time", tick.T,
			"produced", len(res.Findings)-1+res.Dropped, "dropped", res.Dropped, "rule_hash", r.Hash)
	}
	for _, f := range res.Findings {
		s.metrics.findings.WithLabelValues(r.ID, f.Severity, f.Status).Inc()
		if f.Status == StatusNew {
			s.log.Info("finding", "rule", r.ID, "severity", f.Severity, "group", f.GroupKey, "value", f.Value, "trigger", f.Trigger, "escalated_from", f.EscalatedFrom, "summary", f.Summary)
		}
	}
	s.log.Debug("rule evaluated", "rule", r.ID, "eval_time", tick.T, "trigger", tick.Trigger, "complete", tick.Complete, "findings", len(res.Findings), "alerts", res.Alerts, "took", res.Duration)
	return res, nil
}
