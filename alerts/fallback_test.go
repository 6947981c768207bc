package alerts_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/alerts/slack"
	"github.com/auditwatch/auditwatch/alerts/slack/slacktest"
	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/rules"
)

// metricValue returns the value of the sample of metric name whose labels
// include labels (0 when there is none).
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// fileLines reads the fallback file's records.
func fileLines(t *testing.T, path string) []alerts.FileRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []alerts.FileRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r alerts.FileRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("fallback file line is not JSON: %v", err)
		}
		out = append(out, r)
	}
	return out
}

// fallbackRig is a dispatcher delivering through a Slack bot (primary),
// with the three fallback targets: another channel through the same bot, a
// second Slack incoming webhook, and a file.
type fallbackRig struct {
	e        *env
	bot, fb  *slacktest.Server
	primary  *slack.Notifier
	file     *alerts.FileNotifier
	reg      *prometheus.Registry
	disp     *alerts.Dispatcher
	filePath string
}

func newFallbackRig(t *testing.T, e *env, webhookPrimary bool) *fallbackRig {
	t.Helper()
	r := &fallbackRig{e: e, bot: slacktest.NewServer(t), fb: slacktest.NewServer(t), reg: prometheus.NewRegistry()}
	cfg := slack.Config{Token: token, APIURL: r.bot.APIURL(), HTTPClient: r.bot.Client(), Timeout: time.Second}
	if webhookPrimary {
		cfg = slack.Config{WebhookURL: r.bot.WebhookURL(), HTTPClient: r.bot.Client(), Timeout: time.Second}
	}
	var err error
	if r.primary, err = slack.New(cfg); err != nil {
		t.Fatal(err)
	}
	hook, err := slack.New(slack.Config{WebhookURL: r.fb.WebhookURL(), HTTPClient: r.fb.Client(), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r.filePath = filepath.Join(t.TempDir(), "undelivered.jsonl")
	if r.file, err = alerts.NewFileNotifier(r.filePath); err != nil {
		t.Fatal(err)
	}
	targets := []alerts.FallbackTarget{
		{Name: alerts.FallbackWebhook, Notifier: hook, Where: "webhook"},
		{Name: alerts.FallbackFile, Notifier: r.file, Where: r.filePath},
	}
	if !webhookPrimary {
		targets = append([]alerts.FallbackTarget{{Name: alerts.FallbackChannel, Notifier: r.primary, Channel: "#aw-fallback", Where: "#aw-fallback"}}, targets...)
	}
	r.disp = alerts.NewDispatcher(e.as, r.primary, func(id string) *rules.Rule { return &rules.Rule{ID: id, Name: "Rule " + id} },
		alerts.Options{Router: e.router, Database: e.db, RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond, CatchupAfter: 24 * time.Hour,
			Fallback: targets}, quiet, alerts.NewMetrics(r.reg))
	return r
}

// channelErrors are the permanent errors of one channel: the same bot can
// still post to the fallback channel. The others (token, scope, message)
// fail there too.
var channelErrors = []string{"channel_not_found", "is_archived", "not_in_channel"}

// TestPermanentSlackErrorsGoToFallback drives each permanent Slack error
// through the real Slack notifier against the local Slack API server: the
// finding is recorded failed with its code, every fallback target takes it
// (or, for the channel target when the token itself is refused, is recorded
// as refusing it), the failure metric counts it, readiness reports degraded
// delivery, and a second cycle sends nothing again.
func TestPermanentSlackErrorsGoToFallback(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	conn := testenv.ClickHouse(t)
	for i, code := range slacktest.PermanentErrors {
		t.Run(code, func(t *testing.T) {
			r := newFallbackRig(t, e, false)
			rule := "perm" + string(rune('a'+i))
			f := e.finding(rule, "critical", "k1", e.now.Add(-5*time.Minute), 50)
			e.save(f)
			sameChannel := slices.Contains(channelErrors, code)
			if sameChannel {
				r.bot.FailNext(1, slacktest.SlackError(code).Only("chat.postMessage").InChannel("#sec-critical"))
			} else {
				r.bot.FailNext(2, slacktest.SlackError(code).Only("chat.postMessage")) // the fallback channel is refused too
			}
			if r.disp.DeliveryHealthy() != nil {
				t.Fatal("degraded before any delivery")
			}
			st, err := r.disp.Cycle(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantFB := 2
			if sameChannel {
				wantFB = 3
			}
			if st.Failed != 1 || st.Fallback != wantFB || st.Retrying != 0 {
				t.Fatalf("stats %+v: want 1 failed, %d fallback deliveries", st, wantFB)
			}
			if n := testenv.Count(t, conn, "SELECT count() FROM "+e.db+".alert_deliveries WHERE finding_id = ? AND outcome = 'failed' AND code = ?", f.ID, code); n != 1 {
				t.Fatalf("%d failed records with code %s, want 1", n, code)
			}
			for _, target := range []string{alerts.FallbackWebhook, alerts.FallbackFile} {
				if n := testenv.Count(t, conn, "SELECT count() FROM "+e.db+".alert_deliveries WHERE finding_id = ? AND outcome = 'fallback' AND notifier = ?", f.ID, target); n != 1 {
					t.Errorf("%s: %d fallback records, want 1", target, n)
				}
			}
			chOutcome := "fallback_failed"
			if sameChannel {
				chOutcome = "fallback"
				var ok bool
				for _, q := range r.bot.Requests() {
					if q.API == "chat.postMessage" && q.Channel == "#aw-fallback" && q.Status == 200 && q.Error == "" &&
						strings.Contains(q.Text+string(q.Blocks), code) {
						ok = true
					}
				}
				if !ok {
					t.Error("no post to the fallback channel naming the failure")
				}
			}
			if n := testenv.Count(t, conn, "SELECT count() FROM "+e.db+".alert_deliveries WHERE finding_id = ? AND outcome = ? AND notifier = ?", f.ID, chOutcome, alerts.FallbackChannel); n != 1 {
				t.Errorf("fallback channel: %d records with outcome %s, want 1", n, chOutcome)
			}
			// The webhook got one message saying why.
			var hooks []slacktest.Request
			for _, q := range r.fb.Requests() {
				if q.Webhook {
					hooks = append(hooks, q)
				}
			}
			if len(hooks) != 1 || !strings.Contains(hooks[0].BlocksText(), "fallback route") || !strings.Contains(hooks[0].BlocksText(), code) {
				t.Fatalf("fallback webhook: %d requests, want 1 naming the fallback and %s", len(hooks), code)
			}
			// The file: one JSON line, 0600, no key.
			lines := fileLines(t, r.filePath)
			if len(lines) != 1 || len(lines[0].Findings) != 1 || lines[0].Findings[0].ID != f.ID || !strings.Contains(lines[0].Reason, code) {
				t.Fatalf("fallback file: %+v", lines)
			}
			if fi, err := os.Stat(r.filePath); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("fallback file mode %v (%v), want 0600", fi.Mode().Perm(), err)
			}
			raw, _ := os.ReadFile(r.filePath)
			if strings.Contains(string(raw), fullKey) || strings.Contains(string(raw), token) {
				t.Fatal("fallback file holds a key or the token")
			}
			// Metric and readiness.
			if v := metricValue(t, r.reg, "auditwatch_alerts_delivery_failures_total", map[string]string{"reason": code}); v != 1 {
				t.Errorf("delivery_failures_total{reason=%s} = %v, want 1", code, v)
			}
			if v := metricValue(t, r.reg, "auditwatch_alerts_delivery_degraded", nil); v != 1 {
				t.Errorf("delivery_degraded = %v, want 1", v)
			}
			if err := r.disp.DeliveryHealthy(); err == nil || !strings.Contains(err.Error(), code) {
				t.Errorf("DeliveryHealthy = %v, want degraded naming %s", err, code)
			}
			// Nothing again: not retried, not handed to the fallback twice.
			before := len(r.fb.Requests()) + len(r.bot.Requests())
			st, err = r.disp.Cycle(ctx)
			if err != nil || st.Failed+st.Fallback+st.FallbackFailed+st.Sent != 0 {
				t.Fatalf("second cycle: %+v %v", st, err)
			}
			if after := len(r.fb.Requests()) + len(r.bot.Requests()); after != before {
				t.Fatalf("second cycle sent %d requests", after-before)
			}
		})
	}
}

// TestPermanentWebhookErrorsGoToFallback: an incoming webhook answering each
// permanent error (its HTTP status and code): recorded failed, in the
// fallback webhook and file.
func TestPermanentWebhookErrorsGoToFallback(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	conn := testenv.ClickHouse(t)
	for i, code := range slacktest.PermanentWebhookErrors {
		t.Run(code, func(t *testing.T) {
			r := newFallbackRig(t, e, true)
			f := e.finding("hook"+string(rune('a'+i)), "high", "k2", e.now.Add(-5*time.Minute), 50)
			e.save(f)
			r.bot.FailNext(1, slacktest.SlackError(code).Only("webhook"))
			st, err := r.disp.Cycle(ctx)
			if err != nil || st.Failed != 1 || st.Fallback != 2 {
				t.Fatalf("stats %+v %v: want 1 failed, 2 fallback deliveries", st, err)
			}
			if n := testenv.Count(t, conn, "SELECT count() FROM "+e.db+".alert_deliveries WHERE finding_id = ? AND outcome = 'failed' AND code = ?", f.ID, code); n != 1 {
				t.Fatalf("%d failed records with code %s, want 1", n, code)
			}
			if lines := fileLines(t, r.filePath); len(lines) != 1 || !strings.Contains(lines[0].Reason, code) {
				t.Fatalf("fallback file: %+v", lines)
			}
			if v := metricValue(t, r.reg, "auditwatch_alerts_delivery_failures_total", map[string]string{"reason": code}); v != 1 {
				t.Errorf("delivery_failures_total{reason=%s} = %v, want 1", code, v)
			}
			if r.disp.DeliveryHealthy() == nil {
				t.Error("not degraded")
			}
		})
	}
}

// TestTransientErrorsNotFallback: 5xx and rate limits are retried, then
// left pending for the next cycle — never handed to the fallback, never
// counted as failures, readiness unaffected.
func TestTransientErrorsNotFallback(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := newFallbackRig(t, e, false)
	f := e.finding("flaky", "high", "k3", e.now.Add(-5*time.Minute), 50)
	e.save(f)
	r.bot.FailNext(1, slacktest.RateLimited(0))
	r.bot.FailNext(2, slacktest.ServerError(503))
	st, err := r.disp.Cycle(ctx)
	if err != nil || st.Retrying != 1 || st.Failed != 0 || st.Fallback != 0 {
		t.Fatalf("outage cycle: %+v %v", st, err)
	}
	if len(r.fb.Requests()) != 0 {
		t.Fatal("a transient failure went to the fallback webhook")
	}
	if fi, _ := os.Stat(r.filePath); fi.Size() != 0 {
		t.Fatal("a transient failure went to the fallback file")
	}
	if err := r.disp.DeliveryHealthy(); err != nil {
		t.Fatalf("degraded by a transient failure: %v", err)
	}
	if v := metricValue(t, r.reg, "auditwatch_alerts_delivery_failures_total", nil); v != 0 {
		t.Fatalf("failures counted: %v", v)
	}
	st, err = r.disp.Cycle(ctx)
	if err != nil || st.Sent != 1 || st.Fallback != 0 {
		t.Fatalf("after the outage: %+v %v", st, err)
	}
}

// TestExpiredFindingsRecordedOnceAndFallback: a finding older than the
// horizon that was never delivered is recorded expired once, handed to
// every fallback target, counted, and makes readiness degraded; it is never
// sent to its own channel.
func TestExpiredFindingsRecordedOnceAndFallback(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	conn := testenv.ClickHouse(t)
	r := newFallbackRig(t, e, false)
	old1 := e.finding("late", "high", "k4", e.now.Add(-26*time.Hour), 50)
	old2 := e.finding("late", "high", "k5", e.now.Add(-25*time.Hour), 60)
	fresh := e.finding("late", "high", "k6", e.now.Add(-5*time.Minute), 70)
	e.save(old1, old2, fresh)
	st, err := r.disp.Cycle(ctx)
	if err != nil || st.Expired != 2 || st.Sent != 1 || st.Fallback != 6 {
		t.Fatalf("stats %+v %v: want 2 expired, 1 sent, 6 fallback deliveries (2 findings × 3 targets)", st, err)
	}
	for _, f := range []string{old1.ID, old2.ID} {
		if n := testenv.Count(t, conn, "SELECT count() FROM "+e.db+".alert_deliveries WHERE finding_id = ? AND outcome = 'expired' AND code = 'horizon'", f); n != 1 {
			t.Fatalf("%s: %d expired records, want 1", f, n)
		}
	}
	// One folded message per target (two evaluations of one rule).
	lines := fileLines(t, r.filePath)
	if len(lines) != 1 || len(lines[0].Findings) != 2 || !strings.Contains(lines[0].Reason, "horizon") {
		t.Fatalf("fallback file: %+v", lines)
	}
	var toOwn, toFallback int
	for _, q := range r.bot.Requests() {
		switch q.Channel {
		case "#auditwatch":
			toOwn++
		case "#aw-fallback":
			toFallback++
		}
	}
	if toOwn != 1 || toFallback != 1 {
		t.Fatalf("%d posts to the routed channel (want 1: the fresh finding), %d to the fallback channel (want 1)", toOwn, toFallback)
	}
	if v := metricValue(t, r.reg, "auditwatch_alerts_expired_total", nil); v != 2 {
		t.Fatalf("expired_total = %v, want 2", v)
	}
	if err := r.disp.DeliveryHealthy(); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("DeliveryHealthy = %v", err)
	}
	// Once: a new dispatcher (a restart) records and sends nothing again.
	r2 := newFallbackRig(t, e, false)
	st, err = r2.disp.Cycle(ctx)
	if err != nil || st.Expired != 0 || st.Fallback != 0 || st.Sent != 0 {
		t.Fatalf("second cycle: %+v %v", st, err)
	}
	if n := testenv.Count(t, conn, "SELECT count() FROM "+e.db+".alert_deliveries WHERE outcome = 'expired'"); n != 2 {
		t.Fatalf("%d expired records after two cycles, want 2", n)
	}
}

// flakyTarget fails its first failures calls with a retryable error.
type flakyTarget struct {
	recorder
	failures int
}

func (f *flakyTarget) Notify(ctx context.Context, m *alerts.Message) (alerts.Receipt, error) {
	if f.failures > 0 {
		f.failures--
		return alerts.Receipt{}, &alerts.DeliveryError{Err: errors.New("disk full"), Retry: true, Code: "write"}
	}
	return f.recorder.Notify(ctx, m)
}

// TestFallbackTargetRetried: a fallback target that fails transiently is
// retried by the next cycle, while the target that took the finding is not
// sent it again; without a fallback, failed findings are still counted and
// reported.
func TestFallbackTargetRetried(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	down := &recorder{fail: func(*alerts.Message) error {
		return &alerts.DeliveryError{Err: errors.New("invalid_auth"), Code: "invalid_auth"}
	}}
	good, flaky := &recorder{}, &flakyTarget{failures: 3} // 3 = all attempts of the first cycle
	d := e.dispatcherWith(down, func(o *alerts.Options) {
		o.Fallback = []alerts.FallbackTarget{{Name: "fallback-a", Notifier: good}, {Name: "fallback-b", Notifier: flaky}}
	})
	e.save(e.finding("auth", "high", "k7", e.now.Add(-5*time.Minute), 50))
	st, err := d.Cycle(ctx)
	if err != nil || st.Failed != 1 || st.Fallback != 1 || st.FallbackFailed != 1 {
		t.Fatalf("first cycle: %+v %v", st, err)
	}
	if err := d.DeliveryHealthy(); err == nil || !strings.Contains(err.Error(), "fallback-b") {
		t.Fatalf("DeliveryHealthy = %v, want the failing fallback named", err)
	}
	st, err = d.Cycle(ctx)
	if err != nil || st.Fallback != 1 || st.FallbackFailed != 0 || len(good.msgs) != 1 || len(flaky.msgs) != 1 {
		t.Fatalf("second cycle: %+v %v; %d and %d fallback messages, want 1 each", st, err, len(good.msgs), len(flaky.msgs))
	}
	if good.msgs[0].FallbackReason == "" || !strings.Contains(good.msgs[0].FallbackReason, "invalid_auth") {
		t.Fatalf("fallback message does not say why: %q", good.msgs[0].FallbackReason)
	}

	// Without any fallback: recorded and reported, nothing else.
	e2 := newEnv(t)
	reg := prometheus.NewRegistry()
	d2 := alerts.NewDispatcher(e2.as, down, func(string) *rules.Rule { return nil }, alerts.Options{Router: e2.router, Database: e2.db, RetryMin: time.Millisecond},
		quiet, alerts.NewMetrics(reg))
	e2.save(e2.finding("auth", "high", "k8", e2.now.Add(-5*time.Minute), 50))
	if st, err := d2.Cycle(ctx); err != nil || st.Failed != 1 {
		t.Fatalf("no fallback: %+v %v", st, err)
	}
	if err := d2.DeliveryHealthy(); err == nil || !strings.Contains(err.Error(), "no fallback configured") {
		t.Fatalf("DeliveryHealthy = %v", err)
	}
	if v := metricValue(t, reg, "auditwatch_alerts_delivery_failures_total", map[string]string{"notifier": "slack", "reason": "invalid_auth"}); v != 1 {
		t.Fatalf("delivery_failures_total = %v", v)
	}
}
