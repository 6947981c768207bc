package detect_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/migrations"
	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/ingest/chsink"
	"github.com/auditwatch/auditwatch/ingest/event"
	"github.com/auditwatch/auditwatch/ingest/gen"
	"github.com/auditwatch/auditwatch/rules"
)

// BenchmarkDefaultRules measures each default rule's evaluation at a fixed
// time against a database of AUDITWATCH_BENCH_EVENTS generated events
// (default 10,000,000 over 30 days, with every scenario and the generator's
// key registry). The database (auditwatch_bench_rules_N) is built once and
// reused. Run: make bench-rules (or EVENTS=1000000 make bench-rules).
func BenchmarkDefaultRules(b *testing.B) {
	n := 10_000_000
	if v := os.Getenv("AUDITWATCH_BENCH_EVENTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	conn := testenv.ClickHouse(b)
	ctx := context.Background()
	db := fmt.Sprintf("auditwatch_bench_rules_%d", n)
	start := time.Date(2026, 10, 28, 0, 0, 0, 0, time.UTC)
	g, err := gen.New(gen.Config{Seed: 7, Start: start, Duration: 30 * 24 * time.Hour, Events: n, Scenarios: []string{gen.ScenarioAll}})
	if err != nil {
		b.Fatal(err)
	}
	ks := keys.NewStore(conn, db)
	have := uint64(0)
	_ = conn.QueryRow(ctx, "SELECT count() FROM "+db+".access_log").Scan(&have)
	if have < uint64(n) {
		b.Logf("loading %d events into %s (once)", n, db)
		_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
		var v string
		_ = conn.QueryRow(ctx, "SELECT version()").Scan(&v)
		d, _ := migrations.DialectFor(v)
		ms, err := migrations.Load(db, d)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := migrations.Apply(ctx, conn, db, ms, quiet); err != nil {
			b.Fatal(err)
		}
		sink := chsink.New(conn, db)
		dec := event.NewDecoder(0, 1000*time.Hour)
		var rows event.Rows
		flush := func() {
			if err := sink.Write(ctx, &rows, nil); err != nil {
				b.Fatal(err)
			}
			rows.Reset()
		}
		var buf []byte
		err = g.Run(ctx, func(e gen.Event) error {
			buf = e.AppendJSON(buf[:0])
			r, err := dec.Decode(buf, start.Add(31*24*time.Hour))
			if err != nil {
				return err
			}
			rows.Append(&r)
			if rows.Len() == 200_000 {
				flush()
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		flush()
		var yml bytes.Buffer
		if err := gen.WriteRegistryYAML(&yml, g.RegistryExport()); err != nil {
			b.Fatal(err)
		}
		reg, err := keys.Parse("export.yaml", yml.Bytes(), "yaml")
		if err != nil {
			b.Fatal(err)
		}
		if err := ks.Upsert(ctx, reg, "import"); err != nil {
			b.Fatal(err)
		}
		_ = conn.Exec(ctx, "OPTIMIZE TABLE "+db+".access_log FINAL")
	}
	set, err := rules.LoadDir(filepath.Join(testenv.RepoRoot(b), "rules", "pack"))
	if err != nil {
		b.Fatal(err)
	}
	eng := detect.NewEngine(conn, db, ks, quiet)
	evalAt := start.Add(20*24*time.Hour + 14*time.Hour)
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
