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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"

	"github.com/auditwatch/auditwatch/rules"
)

// RuleRunner runs one rule at one time (Runner satisfies it).
type RuleRunner interface {
	Run(ctx context.Context, r *rules.Rule, t time.Time, trigger string) (Result, error)
}

// Scheduler runs the rules of a directory on their cron schedules and
// reloads them when the files change. A reload is all or nothing: if any file
// is invalid, every error is logged with file:line:col and the rules already
// running keep running.
type Scheduler struct {
	dir     string
	runner  RuleRunner
	log     *slog.Logger
	metrics *Metrics
	// ReloadInterval is how often the directory is checked for changes
	// (default 5s).
	ReloadInterval time.Duration

	mu      sync.Mutex
	cron    *cron.Cron
	set     *rules.Set
	version string
	busy    map[string]*sync.Mutex
	wg      sync.WaitGroup
}

// NewScheduler returns a Scheduler for the rule files in dir. metrics may be
// nil.
func NewScheduler(dir string, runner RuleRunner, log *slog.Logger, metrics *Metrics) *Scheduler {
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	return &Scheduler{dir: dir, runner: runner, log: log, metrics: metrics, ReloadInterval: 5 * time.Second, busy: map[string]*sync.Mutex{}}
}

// Run loads the rules (failing if they are invalid), schedules them, and
// checks for changes until ctx ends; then it stops scheduling and waits for
// running evaluations to finish.
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.reload(ctx, true); err != nil {
		return err
	}
	t := time.NewTicker(s.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			c := s.cron
			s.mu.Unlock()
			<-c.Stop().Done()
			s.wg.Wait()
			return nil
		case <-t.C:
			_ = s.reload(ctx, false)
		}
	}
}

// Rules returns the rule set in force.
func (s *Scheduler) Rules() *rules.Set {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set
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
	c := cron.New(cron.WithLocation(time.UTC))
	enabled := 0
	for _, r := range set.Rules {
		if !r.IsEnabled() {
			continue
		}
		enabled++
		c.Schedule(r.Sched(), s.job(ctx, r))
	}
	s.mu.Lock()
	old := s.cron
	s.cron, s.set, s.version = c, set, v
	s.mu.Unlock()
	if old != nil {
		old.Stop() // running jobs finish on their own
	}
	c.Start()
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

// job returns the cron job of r: it never overlaps itself (a tick that finds
// the previous run still going is skipped and counted), and recovers and
// reports a panic.
func (s *Scheduler) job(ctx context.Context, r *rules.Rule) cron.Job {
	s.mu.Lock()
	lock, ok := s.busy[r.ID]
	if !ok {
		lock = &sync.Mutex{}
		s.busy[r.ID] = lock
	}
	s.mu.Unlock()
	return cron.FuncJob(func() {
		t := time.Now().UTC().Truncate(time.Second)
		if !lock.TryLock() {
			s.metrics.skipped.WithLabelValues(r.ID).Inc()
			s.log.Warn("rule still running from the previous tick; skipping this one", "rule", r.ID, "eval_time", t)
			return
		}
		s.wg.Add(1)
		defer s.wg.Done()
		defer lock.Unlock()
		if ctx.Err() != nil {
			return
		}
		s.RunOnce(ctx, r, t, "schedule")
	})
}

// RunOnce runs r at t, recovering a panic, and logs and counts the outcome.
func (s *Scheduler) RunOnce(ctx context.Context, r *rules.Rule, t time.Time, trigger string) {
	defer func() {
		if p := recover(); p != nil {
			s.metrics.runs.WithLabelValues(r.ID, "panic").Inc()
			s.log.Error("rule evaluation panicked", "rule", r.ID, "eval_time", t, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if rn, ok := s.runner.(*Runner); ok {
				_ = rn.Store.SaveRun(context.WithoutCancel(ctx), RunRecord{RuleID: r.ID, EvalTime: t, StartedAt: time.Now().UTC(),
					Err: fmt.Errorf("panic: %v", p), Trigger: trigger})
			}
		}
	}()
	res, err := s.runner.Run(ctx, r, t, trigger)
	s.metrics.duration.WithLabelValues(r.ID).Observe(res.Duration.Seconds())
	if err != nil {
		s.metrics.runs.WithLabelValues(r.ID, "error").Inc()
		s.log.Error("rule evaluation failed", "rule", r.ID, "eval_time", t, "err", err)
		return
	}
	s.metrics.runs.WithLabelValues(r.ID, "success").Inc()
	for _, f := range res.Findings {
		s.metrics.findings.WithLabelValues(r.ID, f.Severity, f.Status).Inc()
		if f.Status == StatusNew {
			s.log.Info("finding", "rule", r.ID, "severity", f.Severity, "group", f.GroupKey, "value", f.Value, "summary", f.Summary)
		}
	}
	s.log.Debug("rule evaluated", "rule", r.ID, "eval_time", t, "findings", len(res.Findings), "alerts", res.Alerts, "took", res.Duration)
}

// Metrics are the detector's Prometheus metrics. Labels carry rule ids and
// severities only.
type Metrics struct {
	runs        *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	findings    *prometheus.CounterVec
	skipped     *prometheus.CounterVec
	reloads     *prometheus.CounterVec
	rulesLoaded prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg, if not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "auditwatch", "detect"
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rule_runs_total",
			Help: "Rule evaluations by outcome (success, error, panic)."}, []string{"rule", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "rule_run_seconds",
			Help: "Time to evaluate and record a rule.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}, []string{"rule"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "findings_total",
			Help: "Findings stored, by rule, severity and status (new or suppressed)."}, []string{"rule", "severity", "status"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rule_ticks_skipped_total",
			Help: "Schedule ticks skipped because the previous run of the rule was still going."}, []string{"rule"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rule_reloads_total",
			Help: "Rule file reloads by result (a failure keeps the previous rules)."}, []string{"result"}),
		rulesLoaded: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "rules_enabled",
			Help: "Enabled rules in force."}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.duration, m.findings, m.skipped, m.reloads, m.rulesLoaded)
	}
	return m
}
