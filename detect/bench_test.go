package detect_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/deploy/testenv/benchdata"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/rules"
)

// BenchmarkDefaultRules measures each default rule's evaluation at a fixed
// time against a database of AUDITWATCH_BENCH_EVENTS generated events
// (default 10,000,000 over 30 days, with every scenario and the generator's
// key registry), built once by benchdata.Load and reused.
// Run: make bench-rules (or EVENTS=1000000 make bench-rules).
func BenchmarkDefaultRules(b *testing.B) {
	n := 10_000_000
	if v := os.Getenv("AUDITWATCH_BENCH_EVENTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	conn := testenv.ClickHouse(b)
	ctx := context.Background()
	db := benchdata.Load(b, conn, n)
	set, err := rules.LoadDir(filepath.Join(testenv.RepoRoot(b), "rules", "pack"))
	if err != nil {
		b.Fatal(err)
	}
	eng := detect.NewEngine(conn, db, keys.NewStore(conn, db), quiet)
	evalAt := benchdata.Start.Add(20*24*time.Hour + 14*time.Hour)
	for _, r := range set.Rules {
		b.Run(r.ID, func(b *testing.B) {
			var found int
			for b.Loop() {
				fs, err := eng.Eval(ctx, r, evalAt)
				if err != nil {
					b.Fatal(err)
				}
				found = len(fs)
			}
			b.ReportMetric(float64(found), "findings")
		})
	}
}
