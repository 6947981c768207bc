package grafana_test

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/auditwatch/auditwatch/deploy/migrations"
	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/deploy/testenv/benchdata"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/ingest/gen"
	"github.com/auditwatch/auditwatch/rules"
)

// TestClickHouseQueriesOnServer runs every ClickHouse panel query of the
// dashboards, macros and variables expanded, on the test server
// (AUDITWATCH_TEST_CLICKHOUSE, ClickHouse 18.16) against a scratch database
// holding six generated hours of traffic with every incident scenario, the
// generator's key registry, and the default rule pack's findings over them. Each query must succeed with readonly=1 (as the analyst user runs
// it), return rows, and a time series must start with a DateTime column.
func TestClickHouseQueriesOnServer(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)

	start := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	end := start.Add(6 * time.Hour)
	began := time.Now()
	benchdata.Ingest(t, conn, db, gen.Config{Seed: 11, Start: start, Duration: end.Sub(start), Events: 60_000,
		Scenarios: []string{gen.ScenarioAll}, ScenarioStart: start.Add(time.Hour)})

	ingested := time.Since(began)
	// The default pack over those hours, coarsely (each rule steps by its
	// window), its findings stored as detect stores them.
	pack, err := rules.LoadDir(filepath.Join(testenv.RepoRoot(t), "rules", "pack"))
	if err != nil {
		t.Fatal(err)
	}
	engine := detect.NewEngine(conn, db, keys.NewStore(conn, db), quiet)
	engine.RegistryTTL = time.Hour
	res, err := detect.Backtest(ctx, engine, pack, detect.BacktestOptions{From: start, To: end, StepWindow: true,
		Keep: 1 << 20, PostureAtEnd: true})
	if err != nil {
		t.Fatal(err)
	}
	var fs []detect.Finding
	for _, r := range res {
		fs = append(fs, r.Findings...)
	}
	if len(fs) == 0 {
		t.Fatal("the default pack found nothing in the generated hours: the findings panels would show nothing")
	}
	if err := detect.NewStore(conn, db).SaveFindings(ctx, fs); err != nil {
		t.Fatal(err)
	}
	t.Logf("scratch database %s: %d events (ingested in %s), %d keys, %d findings of %d rules (in %s)", db,
		testenv.Count(t, conn, "SELECT count() FROM "+db+".access_log"), ingested.Round(time.Millisecond),
		testenv.Count(t, conn, "SELECT count() FROM "+db+".keys"), len(fs), len(res), (time.Since(began) - ingested).Round(time.Millisecond))

	qs, vars := clickHouseQueries(t)
	vars["database"] = db
	env := macroEnv{from: start, to: end, interval: 300 * time.Second, vars: vars}
	roCtx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"readonly": 1}))
	for _, q := range qs {
		t.Run(q.name, func(t *testing.T) {
			sql, err := env.expand(q.sql)
			if err != nil {
				t.Fatalf("%v\n%s", err, q.sql)
			}
			rows, err := conn.Query(roCtx, sql)
			if err != nil {
				t.Fatalf("ClickHouse refused the query: %v\n%s", err, sql)
			}
			defer rows.Close()
			cols := rows.ColumnTypes()
			if q.timeSeries && (len(cols) < 2 || cols[0].DatabaseTypeName() != "DateTime") {
				t.Errorf("a time series must start with a DateTime column; columns %v", columnTypes(cols))
			}
			n := 0
			for rows.Next() {
				n++
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("reading the answer: %v\n%s", err, sql)
			}
			if n == 0 {
				t.Errorf("no rows over the generated hours: the panel would be empty\n%s", sql)
			}
			t.Logf("%d rows, columns %v", n, columnTypes(cols))
		})
	}
	// Negative control: the plugin's $__timeInterval expands to
	// toStartOfInterval, which 18.16 lacks. That is why the panels bucket
	// time with intDiv and $__interval_s, and it shows the check can fail.
	t.Run("negative control: $__timeInterval", func(t *testing.T) {
		var version string
		if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
			t.Fatal(err)
		}
		sql, err := env.expand("SELECT $__timeInterval(ts) AS time, count() FROM ${database}.access_log WHERE $__timeFilter(ts) GROUP BY time")
		if err != nil {
			t.Fatal(err)
		}
		err = conn.Exec(roCtx, sql)
		switch old := strings.HasPrefix(version, "18."); {
		case old && err == nil:
			t.Fatalf("ClickHouse %s ran toStartOfInterval; the dashboards could use $__timeInterval", version)
		case !old && err != nil:
			t.Fatalf("ClickHouse %s: %v", version, err)
		}
		t.Logf("ClickHouse %s: %v", version, err)
	})
}

func columnTypes[T interface {
	Name() string
	DatabaseTypeName() string
}](cols []T) string {
	var s []string
	for _, c := range cols {
		s = append(s, c.Name()+" "+c.DatabaseTypeName())
	}
	return strings.Join(s, ", ")
}

// TestClickHouseQueriesOnChdb runs every ClickHouse panel query, expanded,
// through chdb (current ClickHouse, in-process) on the current-dialect
// schema with a few rows: the queries must work on current servers too.
func TestClickHouseQueriesOnChdb(t *testing.T) {
	root := testenv.RepoRoot(t)
	testenv.NeedChdb(t)
	const db = "auditwatch"
	ms, err := migrations.Load(db, migrations.Current)
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("CREATE DATABASE IF NOT EXISTS " + db + ";\n")
	for _, m := range ms {
		for _, s := range m.Statements {
			script.WriteString(s + "\n;\n")
		}
	}
	// One row of each kind the panels read.
	now := time.Now().UTC()
	script.WriteString(`INSERT INTO auditwatch.access_log (ts, request_id, method, path, status, error_code, client_ip, client_net, key_id, key_fingerprint, key_hint, env, account_id)
VALUES (now() - 60, 'r1', 'GET', '/v1/x', 401, 'invalid_api_key', '203.0.113.7', '203.0.113.0/24', 'fp1', 'fp1', 'bk_live_…', 'live', 'acc1'),
       (now() - 60, 'r2', 'GET', '/v1/x', 403, 'ip_not_whitelisted', '203.0.113.8', '203.0.113.0/24', 'key_1', 'fp2', 'bk_live_…', 'live', 'acc1')
;
INSERT INTO auditwatch.keys (key_id, key_hint, status, created_at, updated_at, allowed_cidrs) VALUES ('key_1', 'bk_live_…', 'active', now() - 200 * 86400, now(), ['10.0.0.0/8'])
;
INSERT INTO auditwatch.findings (finding_id, rule_id, rule_type, severity, status, group_key, key_id, eval_time, summary) VALUES ('f1', 'request-outside-allowlist', 'ip_allowlist', 'high', 'new', 'key_id=key_1', 'key_1', now() - 60, 's')
;
`)
	qs, vars := clickHouseQueries(t)
	vars["database"] = db
	env := macroEnv{from: now.Add(-time.Hour), to: now, interval: 60 * time.Second, vars: vars}
	args := []string{filepath.Join(root, "deploy", "chdb", "run_sql.py"), "--format", "TSV"}
	for _, q := range qs {
		sql, err := env.expand(q.sql)
		if err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
		// One line per answer: the query's name, then its row count.
		args = append(args, "--query", "SELECT '"+strings.ReplaceAll(q.name, "'", "")+"', count() FROM ("+sql+")")
	}
	cmd := exec.Command("python3", args...)
	cmd.Stdin = strings.NewReader(script.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chdb (current ClickHouse) refused a panel query: %v\n%s", err, out)
	}
	for _, q := range qs {
		if !strings.Contains(string(out), strings.ReplaceAll(q.name, "'", "")+"\t") {
			t.Errorf("%s: no answer from chdb", q.name)
		}
	}
	t.Logf("chdb:\n%s", out)
}
