package difftest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/alerts/triage"
	"github.com/auditwatch/auditwatch/deploy/difftest"
	"github.com/auditwatch/auditwatch/deploy/migrations"
	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/deploy/testenv/benchdata"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/detect/summary"
	"github.com/auditwatch/auditwatch/ingest/gen"
	"github.com/auditwatch/auditwatch/ingest/retention"
	"github.com/auditwatch/auditwatch/rules"
)

var quiet = slog.New(slog.DiscardHandler)

// httpURL is the HTTP interface of the test server: AUDITWATCH_TEST_CLICKHOUSE_HTTP,
// else the native address's host with AW_CH_HTTP_PORT (default 18123, as
// deploy/services/clickhouse.sh starts it).
func httpURL(t *testing.T, native string) string {
	if v := os.Getenv("AUDITWATCH_TEST_CLICKHOUSE_HTTP"); v != "" {
		return "http://" + v + "/"
	}
	host, _, err := net.SplitHostPort(native)
	if err != nil {
		t.Fatal(err)
	}
	port := os.Getenv("AW_CH_HTTP_PORT")
	if port == "" {
		port = "18123"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// TestEveryStatementOnBothEngines captures every statement the product
// sends while it runs — every test case of the default rule pack (every
// rule type) with each finding's investigate query, and a generated history
// through ingest, the key registry, every rule's scheduled run (cooldown
// reads, findings and rule_runs writes), the watermark and late-data reads,
// the usage summary, an alert delivery cycle, silences and retention — then
// runs the same statements on the same data in current ClickHouse (chdb)
// and compares each answer with 18.16's. The migrations run on each engine
// in its own dialect.
func TestEveryStatementOnBothEngines(t *testing.T) {
	addr := testenv.ClickHouseAddr(t)
	testenv.NeedChdb(t)
	admin := testenv.Connect(t, addr)
	ctx := context.Background()
	run := fmt.Sprintf("awdiff_%d", time.Now().UnixNano())
	s := &difftest.Session{Admin: admin, HTTP: difftest.HTTP{URL: httpURL(t, addr)}}
	// Warm the query log so that system.query_log exists.
	if err := admin.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		t.Fatal(err)
	}

	// 1. Every case of the default pack, in the database each case builds.
	var version string
	if err := admin.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	dialect, err := migrations.DialectFor(version)
	if err != nil {
		t.Fatal(err)
	}
	caseN := 0
	var cur *difftest.Recorder
	var addErrs []string
	tr := &detect.TestRunner{Conn: admin, Dialect: dialect, Log: quiet,
		Open: func(db string) (driver.Conn, error) {
			caseN++
			r, err := difftest.OpenRecorder(addr, db, fmt.Sprintf("%s_c%03d", run, caseN))
			cur = r
			return r, err
		},
		Inspect: func(ctx context.Context, c driver.Conn, db string, r *rules.Rule, fs []detect.Finding) []string {
			for _, f := range fs {
				q := alerts.InvestigateQuery(db, r, []detect.Finding{f})
				rows, err := c.Query(ctx, q)
				if err != nil {
					return []string{fmt.Sprintf("investigate query: %v", err)}
				}
				rows.Close()
			}
			if err := s.Add(ctx, fmt.Sprintf("pack %s #%d", r.ID, caseN), db, cur); err != nil {
				addErrs = append(addErrs, err.Error())
			}
			return nil
		}}
	results, err := tr.RunDir(ctx, filepath.Join(testenv.RepoRoot(t), "rules", "pack"))
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for _, r := range results {
		if !r.Passed {
			t.Errorf("pack test %s:%d %s: %s", filepath.Base(r.File), r.Line, r.Name, strings.Join(r.Errors, "; "))
		}
	}
	set, err := rules.LoadDir(filepath.Join(testenv.RepoRoot(t), "rules", "pack"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range set.Rules {
		types[r.Type] = true
	}
	for _, e := range addErrs {
		t.Error(e)
	}

	// 2. A generated history through every other reader and writer.
	db := testenv.ScratchDB(t, admin)
	rec, err := difftest.OpenRecorder(addr, db, run+"_hist")
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	benchdata.Ingest(t, rec, db, gen.Config{Seed: 11, Start: start, Duration: 6 * 24 * time.Hour, Events: 60_000, Scenarios: []string{gen.ScenarioAll}})
	evalAt := start.Add(5*24*time.Hour + 13*time.Hour)
	reg := keys.NewStore(rec, db)
	if _, err := reg.All(ctx); err != nil {
		t.Fatal(err)
	}
	runner := &detect.Runner{Engine: detect.NewEngine(rec, db, reg, quiet), Store: detect.NewStore(rec, db)}
	var found []detect.Finding
	for _, r := range set.Rules {
		for _, at := range []time.Time{evalAt, evalAt.Add(time.Hour)} {
			res, err := runner.Run(ctx, r, detect.Tick{T: at, Trigger: detect.TriggerManual})
			if err != nil {
				t.Errorf("rule %s: %v", r.ID, err)
			}
			found = append(found, res.Findings...)
		}
	}
	if len(found) == 0 {
		t.Fatal("the generated history produced no finding: the alert reads would not be exercised")
	}
	if _, err := detect.NewProgress(rec, db).Watermark(ctx, evalAt); err != nil {
		t.Errorf("watermark: %v", err)
	}
	pl := detect.NewProgressLog(rec, db)
	if head, err := pl.Head(ctx); err != nil {
		t.Errorf("progress head: %v", err)
	} else if _, _, err := pl.Arrivals(ctx, max(head, 1)-1, evalAt.Add(-time.Hour), evalAt); err != nil {
		t.Errorf("arrivals: %v", err)
	}
	for _, period := range []string{"24h", "7d"} {
		if _, err := summary.NewBuilder(rec, db, reg).Build(ctx, summary.Options{Period: period, To: evalAt}); err != nil {
			t.Errorf("summary %s: %v", period, err)
		}
	}
	astore := alerts.NewStore(rec, db)
	sl := alerts.Silence{ID: alerts.NewSilenceID(), RuleID: found[0].RuleID, KeyID: found[0].Group["key_id"],
		Reason: "difftest", CreatedBy: "difftest", StartsAt: evalAt.Add(-time.Hour), EndsAt: evalAt.Add(24 * time.Hour)}
	if err := astore.AddSilence(ctx, sl); err != nil {
		t.Errorf("add silence: %v", err)
	}
	lookup := func(id string) *rules.Rule { return set.Get(id) }
	d := alerts.NewDispatcher(astore, alerts.NewConsole(io.Discard), lookup, alerts.Options{Database: db, Horizon: 365 * 24 * time.Hour}, quiet, nil)
	if _, err := d.Cycle(ctx); err != nil {
		t.Errorf("alert cycle: %v", err)
	}
	if _, err := astore.Silences(ctx, evalAt.Add(-48*time.Hour)); err != nil {
		t.Errorf("silences: %v", err)
	}
	// Slack triage (alerts/triage): an action recorded and read, a finding
	// read.
	tstore := triage.NewStore(rec, db)
	if err := tstore.RecordAction(ctx, triage.Action{ID: "act_difftest00000001", At: evalAt, FindingID: found[0].ID, RuleID: found[0].RuleID, GroupKey: found[0].GroupKey,
		Kind: triage.KindExpected, SlackUser: "U0DIFF", Reason: "difftest", SilenceID: sl.ID, EndsAt: sl.EndsAt, FindingStatus: triage.StatusExpected}); err != nil {
		t.Errorf("record action: %v", err)
	}
	if ok, err := tstore.ActionRecorded(ctx, "act_difftest00000001"); err != nil || !ok {
		t.Errorf("action recorded: %v %v", ok, err)
	}
	if _, err := tstore.Actions(ctx, found[0].ID); err != nil {
		t.Errorf("actions: %v", err)
	}
	// (SetFindingStatus is detect's SaveFindings insert; it is not run here:
	// a finding changed after the reads above would differ from the replay.)
	if f, err := tstore.Finding(ctx, found[0].ID); err != nil || f == nil {
		t.Errorf("finding: %v %v", f, err)
	}
	for _, f := range found[:min(len(found), 20)] {
		q := alerts.InvestigateQuery(db, set.Get(f.RuleID), []detect.Finding{f})
		rows, err := rec.Query(ctx, q)
		if err != nil {
			t.Errorf("investigate %s: %v", f.RuleID, err)
			continue
		}
		rows.Close()
	}
	if err := s.Add(ctx, "generated history", db, rec); err != nil {
		t.Fatal(err)
	}

	// 3. Retention changes the data: chdb replays it in order from the data
	// as it was before, and the counts read after it are compared.
	before, err := s.Snapshot(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	rrec := difftest.NewRecorder(rec.Conn, run+"_ret")
	ret := retention.New(rrec, db, retention.Policy{"access_log": 3, "ingest_errors": 3, "key_usage": 3, "findings": 0, "rule_runs": 0}, quiet)
	dropped, err := ret.Enforce(ctx, start.Add(6*24*time.Hour))
	if err != nil {
		t.Errorf("retention: %v", err)
	}
	if len(dropped) == 0 {
		t.Error("retention dropped nothing: its statements would not be proved")
	}
	for _, table := range []string{"access_log", "key_usage", "ingest_errors", "findings"} {
		var n uint64
		if err := rrec.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s.%s", db, table)).Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddOrdered(ctx, "retention", db, rrec, before); err != nil {
		t.Fatal(err)
	}

	// 4. Replay everything in current ClickHouse.
	counts := s.Statements()
	t.Logf("captured %d SELECT, %d INSERT and %d other statements (%d rule types; %d with readonly and limits, replayed with them)", counts["select"], counts["insert"], counts["other"], len(types), counts["readonly"])
	if len(types) < 8 || counts["select"] < 100 || counts["insert"] == 0 || counts["other"] == 0 || counts["readonly"] == 0 {
		t.Errorf("too little captured to prove anything: %v, rule types %v", counts, types)
	}
	root := testenv.RepoRoot(t)
	chdbVersion, problems, err := s.Replay(ctx, "python3", filepath.Join(root, "deploy", "chdb", "diff.py"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ClickHouse %s vs chdb %s: %d problems", version, chdbVersion, len(problems))
	for _, p := range problems {
		t.Error(p.String())
	}
}

// TestReplayCatchesADifference: a statement whose answer differs between
// the engines (rand64(), whatever their versions) and one that fails on
// current ClickHouse (a table only the server side has) are both reported;
// an agreeing one is not.
func TestReplayCatchesADifference(t *testing.T) {
	addr := testenv.ClickHouseAddr(t)
	testenv.NeedChdb(t)
	admin := testenv.Connect(t, addr)
	ctx := context.Background()
	db := testenv.ScratchDB(t, admin)
	if err := admin.Exec(ctx, "CREATE TABLE "+db+".only_on_18 (a UInt8) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	rec, err := difftest.OpenRecorder(addr, db, fmt.Sprintf("awdiffneg_%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	for _, q := range []string{"SELECT rand64()", "SELECT count() FROM " + db + ".only_on_18", "SELECT 1 + 1"} {
		rows, err := rec.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
		}
		rows.Close()
	}
	s := &difftest.Session{Admin: admin, HTTP: difftest.HTTP{URL: httpURL(t, addr)}}
	if err := s.Add(ctx, "negative control", db, rec); err != nil {
		t.Fatal(err)
	}
	_, problems, err := s.Replay(ctx, "python3", filepath.Join(testenv.RepoRoot(t), "deploy", "chdb", "diff.py"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.What)
	}
	if len(problems) != 2 || !strings.Contains(problems[0].Query+problems[1].Query, "rand64()") || !strings.Contains(problems[0].Query+problems[1].Query, "only_on_18") {
		t.Fatalf("want the rand64() difference and the missing table reported, got %d problems: %q", len(problems), got)
	}
}
