// Package benchdata loads large generated datasets into ClickHouse for
// benchmarks: events through the real decoder and sink (so the rollups'
// materialized views fill as in production) and the generator's key
// registry. A dataset is built once per database name and reused.
package benchdata

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/deploy/migrations"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/ingest/chsink"
	"github.com/auditwatch/auditwatch/ingest/event"
	"github.com/auditwatch/auditwatch/ingest/gen"
)

// Start is the first instant of every dataset: 30 days before End.
var (
	Start = time.Date(2026, 10, 28, 0, 0, 0, 0, time.UTC)
	End   = Start.Add(30 * 24 * time.Hour)
)

// Load makes sure database auditwatch_bench_N holds n generated events over
// the 30 days from Start (every scenario, seed 7) and the registry, and
// returns its name.
func Load(tb testing.TB, conn driver.Conn, n int) string {
	tb.Helper()
	ctx := context.Background()
	db := fmt.Sprintf("auditwatch_bench_%d", n)
	var have uint64
	_ = conn.QueryRow(ctx, "SELECT count() FROM "+db+".access_log").Scan(&have)
	var rollup uint64
	_ = conn.QueryRow(ctx, "SELECT count() FROM "+db+".key_usage").Scan(&rollup)
	if have >= uint64(n) && rollup > 0 {
		return db
	}
	tb.Logf("loading %d events into %s (once)", n, db)
	_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		tb.Fatal(err)
	}
	d, err := migrations.DialectFor(v)
	if err != nil {
		tb.Fatal(err)
	}
	ms, err := migrations.Load(db, d)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := migrations.Apply(ctx, conn, db, ms, slog.New(slog.DiscardHandler)); err != nil {
		tb.Fatal(err)
	}
	Ingest(tb, conn, db, gen.Config{Seed: 7, Start: Start, Duration: End.Sub(Start), Events: n, Scenarios: []string{gen.ScenarioAll}})
	for _, t := range []string{"access_log", "key_usage"} {
		_ = conn.Exec(ctx, "OPTIMIZE TABLE "+db+"."+t+" FINAL")
	}
	return db
}

// Ingest generates the events of cfg into database db (which has the
// schema) through the real decoder and sink, so the rollups fill as in
// production, imports the generator's key registry, and returns the
// generator (for its incidents).
func Ingest(tb testing.TB, conn driver.Conn, db string, cfg gen.Config) *gen.Generator {
	tb.Helper()
	ctx := context.Background()
	g, err := gen.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	sink := chsink.New(conn, db)
	dec := event.NewDecoder(0, 100*365*24*time.Hour)
	now := cfg.Start.Add(cfg.Duration).Add(24 * time.Hour)
	var rows event.Rows
	flush := func() {
		if err := sink.Write(ctx, &rows, nil); err != nil {
			tb.Fatal(err)
		}
		rows.Reset()
	}
	var buf []byte
	if err := g.Run(ctx, func(e gen.Event) error {
		buf = e.AppendJSON(buf[:0])
		r, err := dec.Decode(buf, now)
		if err != nil {
			return err
		}
		rows.Append(&r)
		if rows.Len() == 200_000 {
			flush()
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	flush()
	var yml bytes.Buffer
	if err := gen.WriteRegistryYAML(&yml, g.RegistryExport()); err != nil {
		tb.Fatal(err)
	}
	reg, err := keys.Parse("export.yaml", yml.Bytes(), "yaml")
	if err != nil {
		tb.Fatal(err)
	}
	if err := keys.NewStore(conn, db).Upsert(ctx, reg, "import"); err != nil {
		tb.Fatal(err)
	}
	return g
}
