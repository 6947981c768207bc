package summary_test

import (
	"context"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/deploy/testenv/benchdata"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/detect/summary"
)

// BenchmarkSummary builds (and renders as HTML) each period's report over a
// database of AUDITWATCH_BENCH_EVENTS generated events (default 10M over 30
// days; built once by benchdata.Load). Run: make bench-summary.
func BenchmarkSummary(b *testing.B) {
	n := 10_000_000
	if v := os.Getenv("AUDITWATCH_BENCH_EVENTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	conn := testenv.ClickHouse(b)
	db := benchdata.Load(b, conn, n)
	bld := summary.NewBuilder(conn, db, keys.NewStore(conn, db))
	for _, period := range []string{"24h", "7d", "30d"} {
		b.Run(period, func(b *testing.B) {
			var keysN int
			for b.Loop() {
				r, err := bld.Build(context.Background(), summary.Options{Period: period, To: benchdata.End})
				if err != nil {
					b.Fatal(err)
				}
				if err := summary.Render(io.Discard, r, "html"); err != nil {
					b.Fatal(err)
				}
				keysN = len(r.Keys)
			}
			b.ReportMetric(float64(keysN), "keys")
		})
	}
}
