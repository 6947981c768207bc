package detect_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/deploy/testenv/benchdata"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/ingest/gen"
	"github.com/auditwatch/auditwatch/ingest/secret"
	"github.com/auditwatch/auditwatch/rules"
)

// incidentRules maps each generator scenario to the pack rule meant for it;
// signalOnly marks the benign ones, which must be recorded as a signal by
// that rule and never alerted by it; critical marks the one whose alert
// must be critical.
var incidentRules = map[string]struct {
	rule                 string
	signalOnly, critical bool
}{
	gen.ScenarioInvalidSignatureBurst:    {rule: "invalid-signature-burst"},
	gen.ScenarioClockSkew:                {rule: "invalid-signature-clock-skew", signalOnly: true},
	gen.ScenarioOutsideAllowlist:         {rule: "request-outside-allowlist", critical: true},
	gen.ScenarioOutsideAllowlistRejected: {rule: "request-outside-allowlist", signalOnly: true},
	gen.ScenarioKeyEnumeration:           {rule: "key-enumeration"},
	gen.ScenarioExpiredKeyInUse:          {rule: "expired-key-in-use"},
	gen.ScenarioUsageSpike:               {rule: "usage-spike"},
	gen.ScenarioErrorRateJump:            {rule: "error-rate-anomaly"},
	gen.ScenarioDormantKeyReturns:        {rule: "dormant-key-returns"},
	gen.ScenarioBrowserExposedKey:        {rule: "live-key-from-browser"},
	gen.ScenarioAuthFailureBurstIP:       {rule: "auth-failure-burst-ip"},
}

// maxNoisePer100KeyDays is the target: alerts not explained by an injected
// incident, per 100 registry keys and day.
const maxNoisePer100KeyDays = 2.0

// recorder keeps every finding an Evaluator returns. Backtest sets their
// status (new, signal, suppressed) in place after Eval returns, so once the
// backtest is done the recorded findings carry their final status.
type recorder struct {
	detect.Evaluator
	got [][]detect.Finding
}

func (r *recorder) Eval(ctx context.Context, rule *rules.Rule, t time.Time) ([]detect.Finding, error) {
	fs, err := r.Evaluator.Eval(ctx, rule, t)
	if len(fs) > 0 {
		r.got = append(r.got, fs)
	}
	return fs, err
}

// all returns the recorded findings.
func (r *recorder) all() []detect.Finding {
	var out []detect.Finding
	for _, fs := range r.got {
		out = append(out, fs...)
	}
	return out
}

// ruleRun is one rule's backtest with everything it found.
type ruleRun struct {
	rule     *rules.Rule
	res      detect.BacktestResult
	findings []detect.Finding // every finding, with its final status
	step     time.Duration    // 0: the rule's own schedule
}

// TestAlertNoise is the alert-precision evaluation behind `make alert-noise`:
// 21 generated days (50 keys, background noise on, every scenario injected
// in the last 7), the whole default pack replayed on the last 7 days through
// Backtest. It reports, per rule, alerts, alerts on injected incidents and
// noise alerts (alerts no incident explains), the noise rate per 100
// registry keys and day, every noise alert, and for each incident whether
// the rule meant for it alerted (or, for the benign ones, recorded a signal
// without alerting). It fails when the noise rate is above
// maxNoisePer100KeyDays or an incident's rule missed it.
//
// An alert belongs to an incident when it names the incident's key (key id
// or fingerprint) or one of its client addresses (as its group, its client
// IP or one of the top client IPs of its evidence: an incident that fails
// requests on other keys explains their findings too), and its evaluation
// time is within [start, end + the rule's window + 1h].
//
// Rules that run every minute are stepped by half their window (set
// AUDITWATCH_ALERT_NOISE_STEP=schedule for their real schedule): a burst
// shorter than half a window is still seen whole by one evaluation, and a
// 7-day replay of every minute would take several minutes.
//
// It takes several minutes even so, so it runs only with
// AUDITWATCH_ALERT_NOISE=1 (which `make alert-noise` sets).
func TestAlertNoise(t *testing.T) {
	if os.Getenv("AUDITWATCH_ALERT_NOISE") == "" {
		t.Skip("set AUDITWATCH_ALERT_NOISE=1 (make alert-noise): the replay takes minutes")
	}
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	ctx := context.Background()
	const (
		historyDays = 14 // the spike rules' baseline (usage-spike: 14 days)
		measureDays = 7
	)
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	from := start.Add(historyDays * 24 * time.Hour)
	end := from.Add(measureDays * 24 * time.Hour)
	seed := int64(5)
	if v := os.Getenv("AUDITWATCH_ALERT_NOISE_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseInt(v, 10, 64); err != nil {
			t.Fatalf("AUDITWATCH_ALERT_NOISE_SEED: %v", err)
		}
	}
	began := time.Now()
	g := benchdata.Ingest(t, conn, db, gen.Config{Seed: seed, Start: start, Duration: end.Sub(start), Events: 1_500_000,
		Scenarios: []string{gen.ScenarioAll}, ScenarioStart: from, Noise: 1})
	loaded := time.Since(began)

	pack, err := rules.LoadDir(filepath.Join(testenv.RepoRoot(t), "rules", "pack"))
	if err != nil {
		t.Fatal(err)
	}
	engine := detect.NewEngine(conn, db, keys.NewStore(conn, db), quiet)
	// The registry does not change during the replay: read it once, not
	// once per evaluation.
	engine.RegistryTTL = time.Hour
	// Hourly rules read windows ending after the data: let the last
	// incidents' alerts come.
	runs := backtestRules(ctx, t, engine, pack, from, end.Add(2*time.Hour), os.Getenv("AUDITWATCH_ALERT_NOISE_STEP") != "schedule")

	registry := g.Keys()
	fingerprints := map[string]string{}
	for _, k := range registry {
		fingerprints[k.ID] = secret.Fingerprint(k.Secret)
	}
	incidents := g.Incidents()
	belongs := func(f *detect.Finding, r *rules.Rule, in gen.Incident) bool {
		named := in.KeyID != "" && (f.KeyID == in.KeyID || f.KeyFingerprint == fingerprints[in.KeyID])
		for _, ip := range append([]string{f.ClientIP, f.Group["client_ip"]}, f.Evidence.TopClientIPs...) {
			named = named || ip != "" && slices.Contains(in.ClientIPs, ip)
		}
		return named && !f.EvalTime.Before(in.Start) && !f.EvalTime.After(in.End.Add(r.Window.D()+time.Hour))
	}

	type noiseAlert struct {
		rule string
		f    detect.Finding
	}
	var noise []noiseAlert
	var total int
	t.Logf("alert noise: %d days generated (seed %d, %d registry keys, noise 1, every scenario in the last %d days), loaded in %s",
		historyDays+measureDays, seed, len(registry), measureDays, loaded.Round(time.Second))
	t.Logf("%-30s %7s %7s %7s %8s %8s %s", "rule", "alerts", "on inc", "noise", "signals", "evals", "replay")
	for _, rr := range runs {
		var alerts, onInc, signals int
		for i := range rr.findings {
			f := &rr.findings[i]
			switch f.Status {
			case detect.StatusNew:
			case detect.StatusSignal:
				signals++
				continue
			default:
				continue
			}
			alerts++
			explained := slices.ContainsFunc(incidents, func(in gen.Incident) bool { return belongs(f, rr.rule, in) })
			if explained {
				onInc++
			} else {
				noise = append(noise, noiseAlert{rr.rule.ID, *f})
			}
		}
		total += alerts
		how := "schedule"
		if rr.step > 0 {
			how = "every " + rr.step.String()
		}
		t.Logf("%-30s %7d %7d %7d %8d %8d %s, %.1f ms/eval", rr.rule.ID, alerts, onInc, alerts-onInc, signals, rr.res.Evaluations,
			how, float64(rr.res.QueryTime.Microseconds())/1000/float64(max(rr.res.Evaluations, 1)))
	}
	rate := float64(len(noise)) / (float64(len(registry)) / 100) / measureDays
	t.Logf("%d alerts, %d noise: %.2f noise alerts per 100 keys per day (target ≤ %.0f)", total, len(noise), rate, maxNoisePer100KeyDays)

	byID := map[string]*ruleRun{}
	for i := range runs {
		byID[runs[i].rule.ID] = &runs[i]
	}
	t.Logf("incidents:")
	for _, in := range incidents {
		want, ok := incidentRules[in.Name]
		if !ok {
			t.Errorf("incident %s: no rule mapped to it", in.Name)
			continue
		}
		rr := byID[want.rule]
		if rr == nil {
			t.Errorf("incident %s: rule %s is not in the pack", in.Name, want.rule)
			continue
		}
		var alerted, signalled []string
		critical := false
		var others []string
		for _, o := range runs {
			for i := range o.findings {
				f := &o.findings[i]
				if !belongs(f, o.rule, in) {
					continue
				}
				at := f.EvalTime.Format("01-02 15:04")
				switch {
				case o.rule.ID == want.rule && f.Status == detect.StatusNew:
					alerted = append(alerted, f.Severity+" at "+at)
					critical = critical || f.Severity == "critical"
				case o.rule.ID == want.rule:
					signalled = append(signalled, f.Status+" "+f.Severity+" at "+at)
				case f.Status == detect.StatusNew:
					others = append(others, o.rule.ID+" "+f.Severity+" at "+at)
				}
			}
		}
		verdict := "ok"
		switch {
		case want.signalOnly && len(alerted) > 0:
			verdict = "FAIL: alerted, want a signal only"
		case want.signalOnly && len(signalled) == 0:
			verdict = "FAIL: no signal"
		case !want.signalOnly && len(alerted) == 0:
			verdict = "FAIL: not alerted"
		case want.critical && !critical:
			verdict = "FAIL: alerted, but not critical"
		}
		t.Logf("  %-27s %-26s %s–%s %-30s %s", in.Name, in.KeyID+in.ClientIP, in.Start.Format("01-02 15:04"), in.End.Format("15:04"), want.rule, verdict)
		t.Logf("      alerts: %s; signals/suppressed: %s; other rules' alerts: %s", list(alerted), list(signalled), list(others))
		if verdict != "ok" {
			t.Errorf("incident %s: rule %s: %s", in.Name, want.rule, strings.TrimPrefix(verdict, "FAIL: "))
		}
	}

	sort.SliceStable(noise, func(i, j int) bool {
		if noise[i].rule != noise[j].rule {
			return noise[i].rule < noise[j].rule
		}
		return noise[i].f.EvalTime.Before(noise[j].f.EvalTime)
	})
	perRule := map[string]int{}
	for _, n := range noise {
		perRule[n.rule]++
	}
	var counts []string
	for _, rr := range runs {
		if c := perRule[rr.rule.ID]; c > 0 {
			counts = append(counts, fmt.Sprintf("%s %d", rr.rule.ID, c))
		}
	}
	t.Logf("noise alerts (%d): %s", len(noise), strings.Join(counts, ", "))
	for _, n := range noise {
		t.Logf("  %s %-28s %-8s %s", n.f.EvalTime.Format("01-02 15:04"), n.rule, n.f.Severity, n.f.Summary)
	}
	if rate > maxNoisePer100KeyDays {
		t.Errorf("%.2f noise alerts per 100 keys per day, want ≤ %.0f", rate, maxNoisePer100KeyDays)
	}
	t.Logf("runtime %s (load %s, replay %s)", time.Since(began).Round(time.Second), loaded.Round(time.Second), (time.Since(began) - loaded).Round(time.Second))
}

// backtestRules replays every enabled rule of pack over [from, to], each in
// its own Backtest (two at a time), and returns them in pack order. With
// coarse set, rules scheduled more often than every half window step by
// half their window.
func backtestRules(ctx context.Context, t *testing.T, ev detect.Evaluator, pack *rules.Set, from, to time.Time, coarse bool) []ruleRun {
	t.Helper()
	var runs []ruleRun
	for _, r := range pack.Rules {
		if !r.IsEnabled() {
			continue
		}
		rr := ruleRun{rule: r}
		// A rule scheduled more often than every half window steps by half
		// its window: every incident shorter than that still falls wholly
		// inside one evaluated window, and 7 days of 5-second ticks would
		// take hours.
		if every, ok := strings.CutPrefix(r.Schedule, "@every "); coarse && ok {
			if d, err := time.ParseDuration(every); err == nil && d < r.Window.D()/2 {
				rr.step = r.Window.D() / 2
			}
		}
		runs = append(runs, rr)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	errs := make([]error, len(runs))
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rr := &runs[i]
			rec := &recorder{Evaluator: ev}
			began := time.Now()
			defer func() { t.Logf("  replayed %s in %s", rr.rule.ID, time.Since(began).Round(time.Second)) }()
			res, err := detect.Backtest(ctx, rec, &rules.Set{Rules: []*rules.Rule{rr.rule}},
				detect.BacktestOptions{From: from, To: to, Step: rr.step, Keep: 1 << 20})
			if err != nil {
				errs[i] = fmt.Errorf("backtest %s: %w", rr.rule.ID, err)
				return
			}
			if len(res) == 1 {
				rr.res = res[0]
				if rr.res.Errors > 0 {
					errs[i] = fmt.Errorf("rule %s: %d errors, first: %s", rr.rule.ID, rr.res.Errors, rr.res.FirstError)
				}
			}
			rr.findings = rec.all()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return runs
}

// list joins items, or says none.
func list(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	if len(items) > 6 {
		return strings.Join(items[:6], ", ") + fmt.Sprintf(" … (%d)", len(items))
	}
	return strings.Join(items, ", ")
}
