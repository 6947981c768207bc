package chsink_test

import (
	"context"
	"testing"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/ingest/chsink"
)

// BenchmarkWrite measures inserting 50,000-row batches (the ingester's
// default) into access_log with the rollups' materialized views in place,
// and with them dropped: the difference is what the rollups cost ingestion
// on the ClickHouse side. Run: make bench-rollup-cost.
func BenchmarkWrite(b *testing.B) {
	conn := testenv.ClickHouse(b)
	rows := generated(b, 50_000)
	for _, tc := range []struct {
		name    string
		rollups bool
	}{{"rollups", true}, {"no-rollups", false}} {
		b.Run(tc.name, func(b *testing.B) {
			db := testenv.ScratchDB(b, conn)
			if !tc.rollups {
				for _, mv := range []string{"key_usage_mv"} {
					if err := conn.Exec(context.Background(), "DROP TABLE "+db+"."+mv); err != nil {
						b.Fatal(err)
					}
				}
			}
			sink := chsink.New(conn, db)
			b.ResetTimer()
			for b.Loop() {
				if err := sink.Write(context.Background(), rows, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows.Len())*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
