package migrations_test

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/auditwatch/auditwatch/deploy/migrations"
	"github.com/auditwatch/auditwatch/deploy/testenv"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"two statements", "CREATE A;\n-- comment;\nCREATE B\n  (x);\n", []string{"CREATE A", "CREATE B\n  (x)"}},
		{"semicolon inside a line", "SELECT 'a;b' AS x;\n", []string{"SELECT 'a;b' AS x"}},
		{"trailing statement without semicolon", "A;\nB", []string{"A", "B"}},
		{"only comments", "-- x\n-- y;\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := migrations.Split(tt.in)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("Split = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadDialects(t *testing.T) {
	old, err := migrations.Load("auditwatch", migrations.Dialect{})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := migrations.Load("auditwatch", migrations.Current)
	if err != nil {
		t.Fatal(err)
	}
	oldSQL, curSQL := joinAll(old), joinAll(cur)
	if strings.Contains(oldSQL, "LowCardinality") || strings.Contains(oldSQL, "{{") {
		t.Error("18.16 dialect contains LowCardinality or an unrendered template")
	}
	if !strings.Contains(curSQL, "LowCardinality(String)") {
		t.Error("current dialect does not use LowCardinality")
	}
	if _, err := migrations.Load("bad-name; DROP", migrations.Current); err == nil {
		t.Error("accepted an invalid database name")
	}
	for _, v := range []struct {
		version string
		lc      bool
	}{{"18.16.1", false}, {"19.17.4", false}, {"24.8.4.13", true}, {"26.9.2.1", true}} {
		d, err := migrations.DialectFor(v.version)
		if err != nil || d.LowCardinality != v.lc {
			t.Errorf("DialectFor(%s) = %+v, %v", v.version, d, err)
		}
	}
}

func joinAll(ms []migrations.Migration) string {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteString(";\n")
		}
		b.WriteString(strings.Join(m.Statements, ";\n"))
	}
	return b.String()
}

// TestApplyIdempotent applies the schema to the real (18.16) server twice.
func TestApplyIdempotent(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn) // first application
	ms, err := migrations.Load(db, migrations.Dialect{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := migrations.Apply(context.Background(), conn, db, ms, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 0 || res.Skipped != len(ms) {
		t.Fatalf("second Apply: applied %d, skipped %d; want 0 and %d", len(res.Applied), res.Skipped, len(ms))
	}
	// Every column of every table is documented.
	n := testenv.Count(t, conn, "SELECT count() FROM system.columns WHERE database = ? AND comment = '' AND table IN (SELECT name FROM system.tables WHERE database = ? AND engine != 'MaterializedView')", db, db)
	if n != 0 {
		t.Fatalf("%d columns without a comment", n)
	}
}

// TestCurrentDialectOnChdb runs the current-dialect DDL through chdb, an
// in-process build of current ClickHouse, then inserts and reads a row.
func TestCurrentDialectOnChdb(t *testing.T) {
	root := testenv.RepoRoot(t)
	testenv.NeedChdb(t)
	ms, err := migrations.Load("auditwatch", migrations.Current)
	if err != nil {
		t.Fatal(err)
	}
	sql := "CREATE DATABASE IF NOT EXISTS auditwatch;\n" + joinAll(ms) + ";\n"
	cmd := exec.Command("python3", filepath.Join(root, "deploy", "chdb", "run_sql.py"), "--format", "TSV",
		"--query", "INSERT INTO auditwatch.access_log (ts, request_id, method, path, status, client_ip, key_id, env) VALUES (now(), 'r1', 'GET', '/v1/x', 200, '1.2.3.4', 'key_1', 'live')",
		"--query", "SELECT uniqExact(request_id) FROM auditwatch.access_log FINAL WHERE ts >= now() - 60",
		"--query", "SELECT count() FROM system.columns WHERE database = 'auditwatch' AND comment = '' AND table IN (SELECT name FROM system.tables WHERE database = 'auditwatch' AND engine != 'MaterializedView')")
	cmd.Stdin = strings.NewReader(sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chdb rejected the current-dialect schema: %v\n%s", err, out)
	}
	lines := strings.Fields(string(out))
	if !strings.Contains(string(out), "statements OK") || len(lines) < 2 || lines[len(lines)-2] != "1" || lines[len(lines)-1] != "0" {
		t.Fatalf("want the row read back once and no undocumented column; chdb said:\n%s", out)
	}
	t.Logf("%s", out)
}

// TestAnalystIsReadOnly checks the documented grants on the 18.16 server
// started by deploy/services/clickhouse.sh: the analyst reads, cannot write.
func TestAnalystIsReadOnly(t *testing.T) {
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
	var one uint8
	if err := analyst.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("analyst cannot SELECT: %v", err)
	}
	err = analyst.Exec(ctx, "CREATE TABLE auditwatch.analyst_probe (a UInt8) ENGINE = Memory")
	if err == nil {
		_ = admin.Exec(ctx, "DROP TABLE auditwatch.analyst_probe")
		t.Fatal("analyst could create a table")
	}
	// 18.16 refuses it as readonly (164); current ClickHouse, whose
	// aw_analyst has grants.sql's rights (deploy/clickhouse/current), checks
	// the missing grant first (497 ACCESS_DENIED).
	if !strings.Contains(err.Error(), "164") && !strings.Contains(strings.ToLower(err.Error()), "readonly") && !strings.Contains(err.Error(), "code: 497") {
		t.Fatalf("want a readonly error (code 164) or, on current ClickHouse, access denied (497), got %v", err)
	}
}

// TestRuleHashMigrationRerun applies the statements of 0011 (rule_runs
// rule_hash and findings_dropped) again on a migrated database, as after an
// interrupted run, and checks the columns are there and documented.
func TestRuleHashMigrationRerun(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	ms, err := migrations.Load(db, migrations.Dialect{})
	if err != nil {
		t.Fatal(err)
	}
	var m11 *migrations.Migration
	for i := range ms {
		if ms[i].Version == 11 {
			m11 = &ms[i]
		}
	}
	if m11 == nil || m11.Name != "rule_runs_rule_hash" {
		t.Fatalf("migration 0011_rule_runs_rule_hash not found")
	}
	again := []migrations.Migration{{Version: 9011, Name: "rerun_0011", Statements: m11.Statements, Checksum: "x"}}
	if _, err := migrations.Apply(context.Background(), conn, db, again, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("0011 run again: %v", err)
	}
	for _, col := range []string{"rule_hash", "findings_dropped"} {
		if n := testenv.Count(t, conn, "SELECT count() FROM system.columns WHERE database = ? AND table = 'rule_runs' AND name = ? AND comment != ''", db, col); n != 1 {
			t.Errorf("rule_runs.%s: %d documented columns, want 1", col, n)
		}
	}
}
