package detect_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/ingest/chsink"
	"github.com/auditwatch/auditwatch/ingest/event"
	"github.com/auditwatch/auditwatch/ingest/secret"
	"github.com/auditwatch/auditwatch/rules"
)

// eventsFrom stores raws as if the ingester had read them from Kafka
// partition p at offsets first, first+1, … and records the batch in
// ingest_progress, written now.
func (e *env) eventsFrom(t *testing.T, p int32, first int64, raws ...string) {
	t.Helper()
	dec := event.NewDecoder(0, 1000*time.Hour)
	var rows event.Rows
	var minTS, maxTS time.Time
	for i, raw := range raws {
		r, err := dec.Decode([]byte(raw), time.Now())
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		r.KafkaPartition, r.KafkaOffset = p, first+int64(i)
		ts := r.TS.UTC()
		if minTS.IsZero() || ts.Before(minTS) {
			minTS = ts
		}
		if ts.After(maxTS) {
			maxTS = ts
		}
		rows.Append(&r)
	}
	ctx := context.Background()
	if err := chsink.New(e.conn, e.db).Write(ctx, &rows, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := e.conn.Exec(ctx, "INSERT INTO "+e.db+".ingest_progress (written_at, seq, topic, partition, consumer_group, ingester, rows, min_event_ts, max_event_ts, complete_to, caught_up, last_offset, high_water) "+
		"SELECT toDateTime(?), toUInt64(?), 'gateway-access-logs', toInt32(?), 'test', 'test', toUInt32(?), toDateTime(?), toDateTime(?), toDateTime(?), 1, toInt64(?), toInt64(?)",
		uint32(now.Unix()), uint64(now.UnixNano()), p, uint32(len(raws)), uint32(minTS.Unix()), uint32(maxTS.Unix()), uint32(now.Unix()),
		first+int64(len(raws))-1, first+int64(len(raws))); err != nil {
		t.Fatal(err)
	}
}

func writeRules(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte("rules:\n"+body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

const fastRule = `  - id: fast
    name: Fast burst
    severity: high
    schedule: "@every 2s"
    type: threshold
    filter: {error_code: invalid_signature}
    group_by: [key_id]
    window: 1m
    query_delay: 0s
    threshold: 10
    cooldown: 30m
`

// findingOf returns the stored findings of rule for key.
func findingsOf(t *testing.T, e *env, rule, key string) []detect.Finding {
	t.Helper()
	fs, err := e.runner.Store.Findings(context.Background(), rule, time.Now().Add(-2*time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var out []detect.Finding
	for _, f := range fs {
		if f.KeyID == key {
			out = append(out, f)
		}
	}
	return out
}

func hasFinding(fs []detect.Finding, trigger, status string) bool {
	for _, f := range fs {
		if f.Trigger == trigger && f.Status == status {
			return true
		}
	}
	return false
}

// TestMissedTicksAndLateDataAreEvaluated: detect was down for ten minutes
// while a burst happened — on start it replays the missed ticks and alerts
// (trigger replay); then a burst whose events are ten minutes old arrives —
// the windows it falls in are evaluated again and it is alerted (trigger
// late).
func TestMissedTicksAndLateDataAreEvaluated(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	// The last tick evaluated before the outage.
	if err := e.runner.Store.SaveRun(ctx, detect.RunRecord{RuleID: "fast", EvalTime: now.Add(-10 * time.Minute), StartedAt: now.Add(-10 * time.Minute), Trigger: detect.TriggerSchedule, Complete: true}); err != nil {
		t.Fatal(err)
	}
	e.eventsFrom(t, 0, 0, burst(15, now.Add(-5*time.Minute), "key_down", "198.51.100.1", "invalid_signature")...)

	s := detect.NewScheduler(writeRules(t, fastRule), e.runner, quiet, nil)
	s.Runs, s.Watermarks, s.Late = e.runner.Store, detect.FixedWatermark{}, detect.NewProgressLog(e.conn, e.db)
	s.LateCheckInterval = 300 * time.Millisecond
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return hasFinding(findingsOf(t, e, "fast", "key_down"), detect.TriggerReplay, detect.StatusNew), "waiting for the burst during the outage to be alerted by the replay"
	})
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		n := testenv.Count(t, e.conn, "SELECT count() FROM "+e.db+".rule_runs WHERE rule_id = 'fast' AND trigger = 'schedule' AND eval_time > toDateTime(?)", uint32(now.Unix()))
		return n >= 2, "waiting for the replay to catch up with the schedule"
	})
	replays := testenv.Count(t, e.conn, "SELECT count() FROM "+e.db+".rule_runs WHERE rule_id = 'fast' AND trigger = 'replay'")
	if replays < 10 || replays > 300 {
		t.Fatalf("%d replayed ticks for a 10-minute outage of a 2s rule with a 1m window: want the coarse steps then full resolution", replays)
	}

	// Events from eight minutes ago, stored only now: their windows were
	// evaluated (by the replay) before they arrived.
	e.eventsFrom(t, 0, 100, burst(15, now.Add(-8*time.Minute), "key_late", "198.51.100.2", "invalid_signature")...)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return hasFinding(findingsOf(t, e, "fast", "key_late"), detect.TriggerLate, detect.StatusNew), "waiting for the late burst to be alerted"
	})
	if n := testenv.Count(t, e.conn, "SELECT count() FROM "+e.db+".rule_runs WHERE rule_id = 'fast' AND trigger = 'late'"); n == 0 || n > 12 {
		t.Fatalf("%d late re-evaluations, want 1..12 (sampled)", n)
	}
	// The late finding is not alerted twice, and the earlier burst is not
	// alerted again by the re-evaluations.
	if fs := findingsOf(t, e, "fast", "key_late"); countStatus(fs, detect.StatusNew) != 1 {
		t.Fatalf("late burst alerted %d times", countStatus(fs, detect.StatusNew))
	}
	if fs := findingsOf(t, e, "fast", "key_down"); countStatus(fs, detect.StatusNew) != 1 {
		t.Fatalf("replayed burst alerted %d times", countStatus(fs, detect.StatusNew))
	}
}

func countStatus(fs []detect.Finding, status string) int {
	n := 0
	for _, f := range fs {
		if f.Status == status {
			n++
		}
	}
	return n
}

// TestWatermarkGatesEvaluation: with the ingest progress of a partition
// behind the window's end, detect waits, then evaluates after max_wait and
// records the run as incomplete; with the partition caught up the run is
// complete.
func TestWatermarkGatesEvaluation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := time.Now().UTC()
	insert := func(p int32, writtenAt, completeTo time.Time, caughtUp uint8) {
		t.Helper()
		if err := e.conn.Exec(ctx, "INSERT INTO "+e.db+".ingest_progress (written_at, seq, topic, partition, consumer_group, ingester, rows, min_event_ts, max_event_ts, complete_to, caught_up, last_offset, high_water) "+
			"SELECT toDateTime(?), toUInt64(?), 't', toInt32(?), 'g', 'i', 1, toDateTime(?), toDateTime(?), toDateTime(?), toUInt8(?), 0, 1",
			uint32(writtenAt.Unix()), uint64(writtenAt.UnixNano()), p, uint32(completeTo.Unix()), uint32(completeTo.Unix()), uint32(completeTo.Unix()), caughtUp); err != nil {
			t.Fatal(err)
		}
	}
	insert(0, now, now.Add(time.Hour), 1)                    // a partition far ahead
	insert(1, now, now.Add(-10*time.Minute), 0)              // one left behind holds the watermark
	insert(2, now.Add(-time.Hour), now.Add(-time.Hour), 1)   // caught up and not written for an hour: idle
	insert(3, now.Add(-time.Hour), now.Add(-2*time.Hour), 0) // behind, its ingester gone: holds it too
	insert(3, now.Add(-time.Hour+time.Second), now.Add(-20*time.Minute), 0)
	p := detect.NewProgress(e.conn, e.db)
	w, err := p.Watermark(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if w.At.Unix() != now.Add(-20*time.Minute).Unix() || w.Active != 3 || w.Idle != 1 || !w.Live {
		t.Fatalf("watermark %+v, want the greatest complete_to of the slowest active partition (3: %s), 3 active, 1 idle", w, now.Add(-20*time.Minute))
	}
	insert(3, now, now.Add(time.Hour), 1) // partition 3 is read again and catches up

	s := detect.NewScheduler(writeRules(t, fastRule), e.runner, quiet, nil)
	s.Watermarks, s.MaxWait = p, 2*time.Second
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		return testenv.Count(t, e.conn, "SELECT count() FROM "+e.db+".rule_runs WHERE complete = 0") >= 1, "waiting for an incomplete run after max_wait"
	})
	var waited time.Duration
	var started, windowEnd time.Time
	if err := e.conn.QueryRow(ctx, "SELECT started_at, window_end FROM "+e.db+".rule_runs WHERE complete = 0 ORDER BY eval_time LIMIT 1").Scan(&started, &windowEnd); err != nil {
		t.Fatal(err)
	}
	if waited = started.Sub(windowEnd); waited < time.Second {
		t.Fatalf("an incomplete run started %s after its window's end, want about max_wait (2s)", waited)
	}
	// The partition catches up: runs are complete again.
	insert(1, time.Now(), time.Now().Add(time.Minute), 1)
	mark := time.Now()
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		return testenv.Count(t, e.conn, "SELECT count() FROM "+e.db+".rule_runs WHERE complete = 1 AND started_at >= toDateTime(?)", uint32(mark.Unix())) >= 1, "waiting for a complete run"
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestEscalationBreaksCooldown is the evaluation's scenario: a key's single
// rejected request from outside its allowlist is a low signal; twenty
// minutes later twenty successful requests from outside alert at once as
// critical; key enumeration growing from 17 to 150 keys escalates too.
func TestEscalationBreaksCooldown(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pack, err := rules.LoadDir(filepath.Join(testenv.RepoRoot(t), "rules", "pack"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.keys.Upsert(ctx, []keys.Key{{ID: "key_ok", Env: "live", Status: "active", CreatedAt: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC),
		AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}}, "import"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	one := burst(1, t0.Add(-30*time.Second), "key_ok", "198.51.100.9", "ip_not_whitelisted")
	e.events(t, one...)
	r := pack.Get("request-outside-allowlist")
	res, err := e.runner.Run(ctx, r, manual(t0))
	if err != nil || res.Alerts != 0 || res.Signals != 1 || res.Findings[0].Severity != "low" {
		t.Fatalf("one rejected request: %+v, %v", res, err)
	}
	var ok []string
	for _, raw := range burst(20, t0.Add(20*time.Minute-40*time.Second), "key_ok", "198.51.100.9", "") {
		ok = append(ok, strings.Replace(raw, `"status":401`, `"status":200`, 1))
	}
	e.events(t, ok...)
	res, err = e.runner.Run(ctx, r, manual(t0.Add(20*time.Minute)))
	if err != nil || res.Alerts != 1 {
		t.Fatalf("20 successful requests from outside 20 minutes later: %+v, %v", res, err)
	}
	if f := res.Findings[0]; f.Severity != "critical" || f.Status != detect.StatusNew || f.EscalatedFrom != "low" {
		t.Fatalf("want a critical alert escalated from low, got %s %s from %q", f.Severity, f.Status, f.EscalatedFrom)
	}

	enum := pack.Get("key-enumeration")
	guesses := func(n int, at time.Time) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = `{"ts":"` + at.Add(time.Duration(i)*time.Second/10).Format(time.RFC3339) + `","request_id":"enum` + at.Format("1504") + itoa(i) +
				`","method":"GET","path":"/v1/account","status":401,"error_code":"invalid_api_key","client_ip":"192.0.2.77","api_key":"bk_live_GUESS` + at.Format("1504") + strings.Repeat("x", 20) + itoa(1000+i) + `"}`
		}
		return out
	}
	e.events(t, guesses(17, t0.Add(-3*time.Minute))...)
	if res, err = e.runner.Run(ctx, enum, manual(t0)); err != nil || res.Alerts != 1 || res.Findings[0].Severity != "high" {
		t.Fatalf("17 keys tried: %+v, %v", res, err)
	}
	e.events(t, guesses(150, t0.Add(17*time.Minute))...)
	res, err = e.runner.Run(ctx, enum, manual(t0.Add(20*time.Minute)))
	if err != nil || res.Alerts != 1 || res.Findings[0].Severity != "critical" || res.Findings[0].EscalatedFrom != "high" {
		t.Fatalf("150 keys tried 20 minutes later: %+v, %v", res, err)
	}
	// A repeat at the same severity stays suppressed.
	res, err = e.runner.Run(ctx, enum, manual(t0.Add(21*time.Minute)))
	if err != nil || res.Alerts != 0 || res.Suppressed != 1 {
		t.Fatalf("repeat at critical: %+v, %v", res, err)
	}
}

// TestOneIdentityPerKey: a registered key whose requests the gateway logged
// partly with its registry id and partly with only the key (so key_id holds
// the fingerprint) is one group, named by the registry id, with its
// fingerprint and hint; an exception by fingerprint drops it.
func TestOneIdentityPerKey(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const full = "bk_live_IDENTidentIDENTidentIDENTident12"
	fp := secret.Fingerprint(full)
	if err := e.keys.Upsert(ctx, []keys.Key{{ID: "key_reg", Fingerprint: fp, Hint: secret.Hint(full), Env: "live", Status: "active",
		CreatedAt: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)}}, "import"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	e.events(t, burst(8, t0.Add(-4*time.Minute), "key_reg", "198.51.100.1", "invalid_signature")...)
	var byKey []string
	for _, raw := range burst(8, t0.Add(-3*time.Minute), "", "198.51.100.1", "invalid_signature") {
		byKey = append(byKey, strings.Replace(raw, `"key_id":""`, `"api_key":"`+full+`"`, 1))
	}
	e.events(t, byKey...)
	r := mustRule(t, strings.Replace(thresholdRule, "threshold: 10", "threshold: 15", 1))
	res, err := e.runner.Run(ctx, r, manual(t0))
	if err != nil || len(res.Findings) != 1 {
		t.Fatalf("want one finding for the key under both names, got %+v, %v", res.Findings, err)
	}
	f := res.Findings[0]
	if f.KeyID != "key_reg" || f.KeyFingerprint != fp || f.GroupKey != "key_id=key_reg" || f.Value != 16 || f.KeyHint != secret.Hint(full) {
		t.Fatalf("finding %+v: want key_reg with its fingerprint and hint, 16 requests", f)
	}
	for _, id := range []string{"key_reg", fp} {
		ex := mustRule(t, strings.Replace(thresholdRule, "threshold: 10", "threshold: 15\n    exceptions: {keys: ["+id+"]}", 1))
		if fs, err := e.runner.Engine.Eval(ctx, ex, t0); err != nil || len(fs) != 0 {
			t.Fatalf("exception by %s: %d findings, %v", id, len(fs), err)
		}
	}
}
