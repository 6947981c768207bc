package detect_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/rules"
)

// syncBuffer is a log sink safe for the scheduler's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const scanRule = `  - id: scan-all
    severity: medium
    schedule: "@every 1m"
    type: sql
    window: 1h
    query_delay: 0s
    query: |
      SELECT key_id AS group, uniqExact(request_id) AS count
      FROM {db}.access_log WHERE ts >= {from} AND ts < {to} GROUP BY key_id
`

// TestSQLRuleOverLimitFailsAlone: a sql rule reading more rows than
// max_rows_to_read fails with an error naming the limit, recorded in
// rule_runs and logged; another rule run after it still works.
func TestSQLRuleOverLimitFailsAlone(t *testing.T) {
	e := newEnv(t)
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	e.events(t, burst(20, t0.Add(-4*time.Minute), "key_a", "198.51.100.1", "invalid_signature")...)
	e.runner.Engine.SQLLimits = detect.SQLLimits{MaxRowsToRead: 5}
	var logs syncBuffer
	s := detect.NewScheduler(t.TempDir(), e.runner, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	ctx := context.Background()

	over := mustRule(t, scanRule)
	if _, err := s.RunOnce(ctx, over, manual(t0)); err == nil || !strings.Contains(err.Error(), "max_rows_to_read = 5") {
		t.Fatalf("over-limit run: %v, want an error naming max_rows_to_read", err)
	}
	other := mustRule(t, thresholdRule)
	res, err := s.RunOnce(ctx, other, manual(t0))
	if err != nil || res.Alerts != 1 {
		t.Fatalf("the other rule after the failure: %+v, %v", res, err)
	}
	var msg string
	if err := e.conn.QueryRow(ctx, "SELECT error FROM "+e.db+".rule_runs WHERE rule_id = 'scan-all'").Scan(&msg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "sql rule exceeded max_rows_to_read = 5 (detect.sql_rules.max_rows_to_read)") || !strings.Contains(msg, "code: 158") {
		t.Fatalf("rule_runs.error = %q", msg)
	}
	if n := testenv.Count(t, e.conn, "SELECT count() FROM "+e.db+".rule_runs WHERE rule_id = 'burst' AND error = '' AND findings = 1"); n != 1 {
		t.Fatalf("%d successful runs of the other rule recorded, want 1", n)
	}
	if out := logs.String(); !strings.Contains(out, `level=ERROR msg="rule evaluation failed" rule=scan-all`) || !strings.Contains(out, "max_rows_to_read") {
		t.Fatalf("no log line for the failure:\n%s", out)
	}
	// Within the limits the same rule runs.
	e.runner.Engine.SQLLimits = detect.SQLLimits{}
	if _, err := e.runner.Run(ctx, over, manual(t0)); err != nil {
		t.Fatalf("within the default limits: %v", err)
	}
}

// TestSQLRuleCannotWrite: queries that would write, alter or drop — which
// rules.Parse refuses, built here by hand — are refused by ClickHouse.
func TestSQLRuleCannotWrite(t *testing.T) {
	e := newEnv(t)
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	e.events(t, burst(3, t0.Add(-4*time.Minute), "key_a", "198.51.100.1", "invalid_signature")...)
	ctx := context.Background()
	for _, q := range []string{
		"INSERT INTO {db}.rule_runs (rule_id, eval_time) SELECT 'forged', toDateTime({from})",
		"ALTER TABLE {db}.access_log DELETE WHERE ts >= {from} AND ts < {to}",
		"DROP TABLE {db}.access_log",
		"CREATE TABLE {db}.probe ENGINE = Memory AS SELECT {from} AS a, {to} AS b",
	} {
		t.Run(strings.Fields(q)[0], func(t *testing.T) {
			r := mustRule(t, scanRule)
			r.Query = q
			_, err := e.runner.Engine.Eval(ctx, r, t0)
			if err == nil || !strings.Contains(err.Error(), "sql rule refused: rules may only read") || !strings.Contains(err.Error(), "readonly") {
				t.Fatalf("%s: %v, want a readonly refusal", q, err)
			}
		})
	}
	if n := testenv.Count(t, e.conn, "SELECT count() FROM "+e.db+".access_log"); n != 3 {
		t.Fatalf("access_log has %d rows, want 3", n)
	}
	if n := testenv.Count(t, e.conn, "SELECT count() FROM "+e.db+".rule_runs"); n != 0 {
		t.Fatalf("rule_runs has %d rows, want 0", n)
	}
	if n := testenv.Count(t, e.conn, "SELECT count() FROM system.tables WHERE database = ? AND name = 'probe'", e.db); n != 0 {
		t.Fatal("a sql rule created a table")
	}
	// A rule cannot lift the limits with its own SETTINGS: Parse refuses it.
	_, errs := rules.Parse("x.yaml", []byte("rules:\n"+strings.Replace(scanRule, "GROUP BY key_id", "GROUP BY key_id SETTINGS max_rows_to_read = 0", 1)))
	if len(errs) == 0 || !strings.Contains(errs.Error(), "must not set SETTINGS") {
		t.Fatalf("SETTINGS clause accepted: %v", errs)
	}
}

// TestFindingsCap: a run producing more findings than the cap stores the
// most severe ones and one alerting finding saying the cap was hit;
// rule_runs records how many were produced and dropped, and the rule hash.
func TestFindingsCap(t *testing.T) {
	e := newEnv(t)
	e.runner.MaxFindings = 3
	r := mustRule(t, `  - id: many
    severity: medium
    schedule: "@every 5m"
    type: sql
    window: 5m
    query: "SELECT concat('g', toString(number)) AS group, number + 1 AS count FROM system.numbers WHERE {from} < {to} LIMIT 10"
`)
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	ctx := context.Background()
	res, err := e.runner.Run(ctx, r, manual(t0))
	if err != nil {
		t.Fatal(err)
	}
	if res.Dropped != 7 || len(res.Findings) != 4 || res.Alerts != 4 {
		t.Fatalf("result: dropped %d, findings %d, alerts %d; want 7, 4, 4", res.Dropped, len(res.Findings), res.Alerts)
	}
	stored, err := e.runner.Store.Findings(ctx, "many", t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var groups []string
	var capF *detect.Finding
	for i, f := range stored {
		if f.GroupKey == "findings_cap=3" {
			capF = &stored[i]
			continue
		}
		groups = append(groups, f.GroupKey)
	}
	if strings.Join(groups, " ") != "group=g7 group=g8 group=g9" {
		t.Fatalf("stored groups %v, want the 3 highest counts", groups)
	}
	if capF == nil || capF.Severity != "high" || capF.Status != detect.StatusNew || capF.Value != 10 || capF.Threshold != 3 ||
		!strings.Contains(capF.Summary, "10 findings in one run, over the cap of 3") {
		t.Fatalf("cap finding %+v", capF)
	}
	var rows, dropped uint32
	var hash string
	if err := e.conn.QueryRow(ctx, "SELECT rows, findings_dropped, rule_hash FROM "+e.db+".rule_runs WHERE rule_id = 'many'").Scan(&rows, &dropped, &hash); err != nil {
		t.Fatal(err)
	}
	if rows != 10 || dropped != 7 || hash != r.Hash || len(hash) != 64 {
		t.Fatalf("rule_runs: rows %d, findings_dropped %d, rule_hash %q (rule %q)", rows, dropped, hash, r.Hash)
	}
}

// TestRuleHashFollowsTheFile: detect reloads the rules directory; the runs
// after an edit record the new file hash, and the reload logs the rule with
// the old and new hash at WARN.
func TestRuleHashFollowsTheFile(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "r.yaml")
	write := func(body string) string {
		t.Helper()
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return rules.FileHash([]byte(body))
	}
	body := "rules:\n" + strings.Replace(thresholdRule, `"@every 1m"`, `"@every 1s"`, 1)
	h1 := write(body)
	var logs syncBuffer
	s := detect.NewScheduler(dir, e.runner, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	s.ReloadInterval = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	runsWith := func(h string) uint64 {
		return testenv.Count(t, e.conn, "SELECT count() FROM "+e.db+".rule_runs WHERE rule_id = 'burst' AND rule_hash = ?", h)
	}
	testenv.Eventually(t, 15*time.Second, func() (bool, string) { return runsWith(h1) >= 1, "waiting for a run with the first hash" })

	h2 := write(strings.Replace(body, "    cooldown: 30m\n", "    cooldown: 30m\n    exceptions: {keys: [key_a]}\n", 1))
	testenv.Eventually(t, 15*time.Second, func() (bool, string) { return runsWith(h2) >= 1, "waiting for a run with the edited file's hash" })
	out := logs.String()
	if !strings.Contains(out, `level=WARN msg="rule file changed" rule=burst`) || !strings.Contains(out, "old_hash="+h1) ||
		!strings.Contains(out, "new_hash="+h2) || !strings.Contains(out, "exceptions_changed=true") {
		t.Fatalf("no WARN naming the changed rule and its hashes:\n%s", out)
	}
	if n := testenv.Count(t, e.conn, "SELECT uniqExact(rule_hash) FROM "+e.db+".rule_runs WHERE rule_id = 'burst'"); n != 2 {
		t.Fatalf("%d distinct rule hashes in rule_runs, want 2", n)
	}
}

// TestSQLRuleLimitsNotInForceRefused: as a user whose profile has readonly =
// 1 (aw_analyst, deploy/clickhouse/users.d), 18.16 ignores the per-query
// limits silently; the engine notices and refuses to run the rule.
func TestSQLRuleLimitsNotInForceRefused(t *testing.T) {
	addr := testenv.ClickHouseAddr(t)
	admin := testenv.Connect(t, addr)
	ctx := context.Background()
	if err := admin.Exec(ctx, "CREATE DATABASE IF NOT EXISTS auditwatch"); err != nil {
		t.Fatal(err)
	}
	analyst, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr},
		Auth: clickhouse.Auth{Database: "auditwatch", Username: "aw_analyst", Password: "aw_analyst_dev"}})
	if err != nil {
		t.Fatal(err)
	}
	defer analyst.Close()
	eng := detect.NewEngine(admin, "auditwatch", nil, quiet)
	eng.SQLConn = analyst
	r := mustRule(t, `  - id: numbers
    severity: medium
    schedule: "@every 5m"
    type: sql
    window: 5m
    query: "SELECT 'x' AS group, 1 AS count FROM system.one WHERE {from} < {to}"
`)
	_, err = eng.Eval(ctx, r, time.Now())
	if err == nil || !strings.Contains(err.Error(), "sql rule limits not in force for this ClickHouse user") || !strings.Contains(err.Error(), "give the rules user readonly = 2") {
		t.Fatalf("as a readonly=1 user: %v, want the limits refused as not in force", err)
	}
}

// TestSQLRuleAsRulesUser runs sql rules as aw_rules, the rules user
// (readonly = 2) of deploy/clickhouse/users.d on 18.16 and of
// deploy/clickhouse/current/users.d (grants.sql's rights) on current
// ClickHouse: the limits are in force, a rule over one fails naming it, and
// DDL is refused.
func TestSQLRuleAsRulesUser(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS auditwatch"); err != nil {
		t.Fatal(err)
	}
	var version string
	if err := e.conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	// n numbers a rule may read on this server: on current ClickHouse
	// aw_rules has no grant on system.numbers (grants.sql gives it its
	// tables only) but may use numbers(n); 18.16 lets every user read
	// system tables, and does not count numbers(n) against max_rows_to_read.
	numbers := func(n int) string { return fmt.Sprintf("numbers(%d)", n) }
	if strings.HasPrefix(version, "18.") {
		numbers = func(n int) string { return fmt.Sprintf("(SELECT number FROM system.numbers LIMIT %d)", n) }
	}
	rulesUser, err := clickhouse.Open(&clickhouse.Options{Addr: []string{testenv.ClickHouseAddr(t)},
		Auth: clickhouse.Auth{Database: "auditwatch", Username: "aw_rules", Password: "aw_rules_dev"}})
	if err != nil {
		t.Fatal(err)
	}
	defer rulesUser.Close()
	e.runner.Engine.SQLConn = rulesUser
	r := mustRule(t, `  - id: numbers
    severity: medium
    schedule: "@every 5m"
    type: sql
    window: 5m
    query: "SELECT toString(number) AS group, number AS count FROM `+numbers(3)+` WHERE {from} < {to}"
`)
	fs, err := e.runner.Engine.Eval(ctx, r, time.Now())
	if err != nil || len(fs) != 2 { // counts 1 and 2 reach the threshold 1
		t.Fatalf("as aw_rules on %s: %d findings, %v", version, len(fs), err)
	}
	e.runner.Engine.SQLLimits = detect.SQLLimits{MaxRowsToRead: 10}
	over := *r
	over.Query = "SELECT toString(number) AS group, number AS count FROM " + numbers(100000) + " WHERE {from} < {to}"
	if _, err := e.runner.Engine.Eval(ctx, &over, time.Now()); err == nil || !strings.Contains(err.Error(), "sql rule exceeded max_rows_to_read = 10") {
		t.Fatalf("over max_rows_to_read as aw_rules on %s: %v", version, err)
	}
	// DDL: 18.16 refuses it for readonly (164, which the engine names);
	// current ClickHouse checks the grants first (497 ACCESS_DENIED).
	ddl := *r
	ddl.Query = "CREATE TABLE auditwatch.aw_rules_probe ENGINE = Memory AS SELECT {from} AS a, {to} AS b"
	_, err = e.runner.Engine.Eval(ctx, &ddl, time.Now())
	var ex *clickhouse.Exception
	switch {
	case !errors.As(err, &ex):
		t.Fatalf("DDL as aw_rules on %s: %v, want a refusal by the server", version, err)
	case ex.Code == 164 && strings.Contains(err.Error(), "rules may only read"):
	case ex.Code == 497 && !strings.HasPrefix(version, "18."):
	default:
		t.Fatalf("DDL as aw_rules on %s: %v, want readonly (164) or, on current ClickHouse, access denied (497)", version, err)
	}
	if n := testenv.Count(t, e.conn, "SELECT count() FROM system.tables WHERE database = 'auditwatch' AND name = 'aw_rules_probe'"); n != 0 {
		t.Fatal("aw_rules created a table")
	}
}
