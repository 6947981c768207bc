package detect_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/deploy/migrations"
	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/ingest/chsink"
	"github.com/auditwatch/auditwatch/ingest/event"
	"github.com/auditwatch/auditwatch/rules"
)

var quiet = slog.New(slog.DiscardHandler)

func dialect(t *testing.T, conn driver.Conn) migrations.Dialect {
	t.Helper()
	var v string
	if err := conn.QueryRow(context.Background(), "SELECT version()").Scan(&v); err != nil {
		t.Fatal(err)
	}
	d, err := migrations.DialectFor(v)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDefaultRulePack runs every test case shipped beside the default rules
// (what `auditwatch rules test rules/pack` does) against the real server.
func TestDefaultRulePack(t *testing.T) {
	addr := testenv.ClickHouseAddr(t)
	conn := testenv.Connect(t, addr)
	tr := &detect.TestRunner{Conn: conn, Dialect: dialect(t, conn), Log: quiet,
		Open: func(db string) (driver.Conn, error) {
			return clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Auth: clickhouse.Auth{Database: db}})
		}}
	dir := filepath.Join(testenv.RepoRoot(t), "rules", "pack")
	results, err := tr.RunDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := rules.LoadDir(dir)
	covered := map[string][2]int{} // rule → (cases expecting findings, cases expecting none)
	for _, r := range results {
		c := covered[r.Rule]
		if len(r.Got) > 0 {
			c[0]++
		} else {
			c[1]++
		}
		covered[r.Rule] = c
		if !r.Passed {
			t.Errorf("%s:%d %s: %s", filepath.Base(r.File), r.Line, r.Name, strings.Join(r.Errors, "; "))
		}
	}
	for _, r := range set.Rules {
		if c := covered[r.ID]; c[0] == 0 || c[1] == 0 {
			t.Errorf("rule %s needs a test that fires and one that does not (has %d and %d)", r.ID, c[0], c[1])
		}
	}
}

// env is a scratch database with a runner.
type env struct {
	conn   driver.Conn
	db     string
	runner *detect.Runner
	keys   *keys.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	ks := keys.NewStore(conn, db)
	return &env{conn: conn, db: db, keys: ks, runner: &detect.Runner{Engine: detect.NewEngine(conn, db, ks, quiet), Store: detect.NewStore(conn, db)}}
}

func (e *env) events(t *testing.T, raws ...string) {
	t.Helper()
	dec := event.NewDecoder(0, 1000*time.Hour)
	var rows event.Rows
	for _, raw := range raws {
		r, err := dec.Decode([]byte(raw), time.Now())
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		rows.Append(&r)
	}
	if err := chsink.New(e.conn, e.db).Write(context.Background(), &rows, nil); err != nil {
		t.Fatal(err)
	}
}

func mustRule(t *testing.T, yaml string) *rules.Rule {
	t.Helper()
	rs, errs := rules.Parse("test.yaml", []byte("rules:\n"+yaml))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return rs[0]
}

func burst(n int, at time.Time, keyID, ip, code string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = `{"ts":"` + at.Add(time.Duration(i)*time.Second).Format(time.RFC3339) + `","request_id":"` + keyID + ip + at.Format("150405") + string(rune('a'+i%26)) + itoa(i) +
			`","method":"GET","path":"/v1/orders","status":401,"error_code":"` + code + `","client_ip":"` + ip + `","key_id":"` + keyID + `"}`
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

const thresholdRule = `  - id: burst
    severity: high
    schedule: "@every 1m"
    type: threshold
    filter: {error_code: invalid_signature}
    group_by: [key_id]
    window: 5m
    query_delay: 0s
    threshold: 10
    cooldown: 30m
`

// TestCooldownSurvivesRestart: a second runner (a restarted daemon) reads the
// cooldown from the findings table and does not alert again.
func TestCooldownSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	e.events(t, burst(20, t0.Add(-4*time.Minute), "key_a", "198.51.100.1", "invalid_signature")...)
	r := mustRule(t, thresholdRule)
	ctx := context.Background()
	res, err := e.runner.Run(ctx, r, manual(t0))
	if err != nil || res.Alerts != 1 {
		t.Fatalf("first run: %+v, %v", res, err)
	}
	// Re-running the same evaluation (a catch-up over a range already seen)
	// finds the same alert, not a suppressed copy of itself.
	res, err = e.runner.Run(ctx, r, manual(t0))
	if err != nil || res.Alerts != 1 {
		t.Fatalf("re-run at the same time: %+v, %v", res, err)
	}
	restarted := &detect.Runner{Engine: detect.NewEngine(e.conn, e.db, e.keys, quiet), Store: detect.NewStore(e.conn, e.db)}
	res, err = restarted.Run(ctx, r, manual(t0.Add(time.Minute)))
	if err != nil || res.Alerts != 0 || res.Suppressed != 1 {
		t.Fatalf("run after restart within cooldown: alerts %d suppressed %d, %v", res.Alerts, res.Suppressed, err)
	}
	// After the cooldown the same condition alerts again.
	e.events(t, burst(20, t0.Add(31*time.Minute-4*time.Minute), "key_a", "198.51.100.1", "invalid_signature")...)
	res, err = restarted.Run(ctx, r, manual(t0.Add(31*time.Minute)))
	if err != nil || res.Alerts != 1 {
		t.Fatalf("run after cooldown: %+v, %v", res, err)
	}
	// Every run is recorded.
	if n := testenv.Count(t, e.conn, "SELECT count() FROM "+e.db+".rule_runs WHERE rule_id = 'burst' AND error = ''"); n != 4 {
		t.Fatalf("%d runs recorded, want 4", n)
	}
	if n := testenv.Count(t, e.conn, "SELECT count() FROM "+e.db+".findings FINAL WHERE status = 'suppressed'"); n != 1 {
		t.Fatalf("%d suppressed findings stored, want 1", n)
	}
}

// TestFilterValuesAreBound: a filter value crafted as SQL matches nothing and
// breaks nothing.
func TestFilterValuesAreBound(t *testing.T) {
	e := newEnv(t)
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	e.events(t, burst(20, t0.Add(-4*time.Minute), "key_a", "198.51.100.1", "invalid_signature")...)
	r := mustRule(t, strings.Replace(thresholdRule, "{error_code: invalid_signature}", `{error_code: "x' OR 1=1 --", path: {prefix: "/v1'); DROP TABLE access_log; --"}}`, 1))
	fs, err := e.runner.Engine.Eval(context.Background(), r, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 0 {
		t.Fatalf("injected filter matched: %+v", fs)
	}
	if n := testenv.Count(t, e.conn, "SELECT count() FROM "+e.db+".access_log"); n != 20 {
		t.Fatalf("access_log has %d rows", n)
	}
}

// TestExceptionsAndOverrides: excepted IPs/CIDRs and keys are never flagged;
// an override raises one key's threshold.
func TestExceptionsAndOverrides(t *testing.T) {
	e := newEnv(t)
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	var evs []string
	evs = append(evs, burst(15, t0.Add(-4*time.Minute), "key_busy", "198.51.100.1", "invalid_signature")...)
	evs = append(evs, burst(15, t0.Add(-4*time.Minute), "key_ok", "198.51.100.2", "invalid_signature")...)
	evs = append(evs, burst(15, t0.Add(-4*time.Minute), "key_x", "198.51.100.3", "invalid_signature")...)
	e.events(t, evs...)
	r := mustRule(t, `  - id: ipburst
    severity: high
    schedule: "@every 1m"
    type: threshold
    filter: {error_code: invalid_signature}
    group_by: [key_id, client_ip]
    window: 5m
    query_delay: 0s
    threshold: 10
    overrides: [{match: {key_id: key_busy}, threshold: 100}]
    exceptions: {keys: [key_ok], ips: ["198.51.100.0/30"]}
`)
	fs, err := e.runner.Engine.Eval(context.Background(), r, t0)
	if err != nil {
		t.Fatal(err)
	}
	// key_busy: override; key_ok: excepted key; key_x at .3: inside the excepted /30.
	if len(fs) != 0 {
		t.Fatalf("findings %v", fs)
	}
	r2 := mustRule(t, `  - id: ipburst
    severity: high
    schedule: "@every 1m"
    type: threshold
    filter: {error_code: invalid_signature}
    group_by: [key_id, client_ip]
    window: 5m
    query_delay: 0s
    threshold: 10
    exceptions: {keys: [key_ok]}
`)
	fs, err = e.runner.Engine.Eval(context.Background(), r2, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 || fs[0].Evidence.Requests != 15 || len(fs[0].Evidence.SampleRequestIDs) == 0 || len(fs[0].Evidence.TopClientIPs) != 1 {
		t.Fatalf("want 2 findings with evidence, got %+v", fs)
	}
}

// TestSchedulerReloadIsAllOrNothing: a broken edit is rejected and the
// previous rules keep running; a good edit replaces them.
func TestSchedulerReloadIsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) {
		if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("rules:\n" + strings.Replace(thresholdRule, `"@every 1m"`, `"@every 1s"`, 1))
	rr := &countingRunner{}
	s := detect.NewScheduler(dir, rr, quiet, nil)
	s.ReloadInterval = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) { return rr.runs.Load() >= 2, "waiting for scheduled runs" })

	time.Sleep(20 * time.Millisecond)
	write("rules:\n  - id: broken\n    severity: urgent\n")
	time.Sleep(500 * time.Millisecond)
	if set := s.Rules(); set == nil || set.Get("burst") == nil {
		t.Fatal("a broken file replaced the running rules")
	}
	before := rr.runs.Load()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) { return rr.runs.Load() > before, "rules stopped running after a bad reload" })

	write("rules:\n" + strings.Replace(strings.Replace(thresholdRule, "id: burst", "id: burst2", 1), `"@every 1m"`, `"@every 1s"`, 1))
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		set := s.Rules()
		return set.Get("burst2") != nil && set.Get("burst") == nil, "waiting for the good edit to load"
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSchedulerSurvivesPanicsAndSkipsOverlaps: a panicking rule does not stop
// the scheduler; a slow rule never runs twice at once.
func TestSchedulerSurvivesPanicsAndSkipsOverlaps(t *testing.T) {
	dir := t.TempDir()
	body := "rules:\n" + strings.Replace(thresholdRule, `"@every 1m"`, `"@every 1s"`, 1)
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	rr := &countingRunner{panicFirst: true, sleep: 2500 * time.Millisecond}
	s := detect.NewScheduler(dir, rr, quiet, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	testenv.Eventually(t, 15*time.Second, func() (bool, string) { return rr.runs.Load() >= 3, "waiting for runs after a panic" })
	cancel()
	<-done
	if rr.maxConcurrent.Load() > 1 {
		t.Fatalf("%d concurrent runs of one rule", rr.maxConcurrent.Load())
	}
}

type countingRunner struct {
	runs, concurrent, maxConcurrent atomic.Int32
	panicFirst                      bool
	sleep                           time.Duration
}

func (c *countingRunner) Run(ctx context.Context, r *rules.Rule, tick detect.Tick) (detect.Result, error) {
	n := c.concurrent.Add(1)
	defer c.concurrent.Add(-1)
	if n > c.maxConcurrent.Load() {
		c.maxConcurrent.Store(n)
	}
	if c.runs.Add(1) == 1 && c.panicFirst {
		panic("rule blew up")
	}
	if c.sleep > 0 {
		time.Sleep(c.sleep)
	}
	return detect.Result{}, nil
}

func manual(t time.Time) detect.Tick {
	return detect.Tick{T: t, Trigger: detect.TriggerManual, Complete: true}
}
