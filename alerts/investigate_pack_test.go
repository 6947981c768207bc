package alerts_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/deploy/migrations"
	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/rules"
)

// TestInvestigateQueriesReturnTheirRows runs every test case of the default
// pack and, for each finding it produces, the "Investigate" query its alert
// would carry: each must return at least one row of the scratch database the
// case ran in (keys named by registry id or fingerprint alike).
func TestInvestigateQueriesReturnTheirRows(t *testing.T) {
	addr := testenv.ClickHouseAddr(t)
	conn := testenv.Connect(t, addr)
	var version string
	if err := conn.QueryRow(context.Background(), "SELECT version()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	d, err := migrations.DialectFor(version)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	tr := &detect.TestRunner{Conn: conn, Dialect: d, Log: quiet,
		Open: func(db string) (driver.Conn, error) {
			return clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Auth: clickhouse.Auth{Database: db}})
		},
		Inspect: func(ctx context.Context, c driver.Conn, db string, r *rules.Rule, fs []detect.Finding) []string {
			var problems []string
			for _, f := range fs {
				q := alerts.InvestigateQuery(db, r, []detect.Finding{f})
				var n uint64
				if err := c.QueryRow(ctx, "SELECT count() FROM ("+q+")").Scan(&n); err != nil {
					problems = append(problems, fmt.Sprintf("investigate query of %s failed: %v\n%s", f.GroupKey, err, q))
					continue
				}
				checked++
				if n == 0 {
					problems = append(problems, fmt.Sprintf("investigate query of %s returns no rows:\n%s", f.GroupKey, q))
				}
			}
			return problems
		}}
	results, err := tr.RunDir(context.Background(), filepath.Join(testenv.RepoRoot(t), "rules", "pack"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if !r.Passed {
			t.Errorf("%s:%d %s (%s): %s", filepath.Base(r.File), r.Line, r.Name, r.Rule, strings.Join(r.Errors, "; "))
		}
	}
	if checked == 0 {
		t.Fatal("no finding's investigate query was checked")
	}
	t.Logf("%d investigate queries checked", checked)
}
