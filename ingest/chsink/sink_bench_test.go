package chsink_test

import (
	"context"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/ingest/chsink"
	"github.com/auditwatch/auditwatch/ingest/event"
	"github.com/auditwatch/auditwatch/ingest/gen"
)

// BenchmarkWrite measures inserting 50,000-row batches (the ingester's
// default) into access_log with the rollups' materialized views in place,
// and with them dropped: the difference is what the rollups cost ingestion
// on the ClickHouse side. Run: make bench-rollup-cost.
func BenchmarkWrite(b *testing.B) {
	conn := testenv.ClickHouse(b)
	g, err := gen.New(gen.Config{Seed: 5, Start: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), Duration: 24 * time.Hour, Events: 50_000})
	if err != nil {
		b.Fatal(err)
	}
	dec := event.NewDecoder(0, 1000*time.Hour)
	var rows event.Rows
	var buf []byte
	if err := g.Run(context.Background(), func(e gen.Event) error {
		buf = e.AppendJSON(buf[:0])
		r, err := dec.Decode(buf, time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC))
		if err != nil {
			return err
		}
		rows.Append(&r)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
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
				if err := sink.Write(context.Background(), &rows, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows.Len())*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
