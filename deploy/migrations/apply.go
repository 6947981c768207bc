package migrations

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Conn is the part of a clickhouse-go connection (driver.Conn) Apply uses.
type Conn interface {
	Exec(ctx context.Context, query string, args ...any) error
	Select(ctx context.Context, dest any, query string, args ...any) error
}

// Result reports what Apply did.
type Result struct {
	Applied []Migration // newly applied, in order
	Skipped int         // already applied
}

// Apply creates db if needed and applies every migration not yet recorded in
// db.schema_migrations, in order, recording each after its statements ran.
// A migration already applied with a different checksum is reported, not
// re-run: schema files are append-only.
//
// Migrations loaded for a cluster (Dialect.Cluster) create the database ON
// CLUSTER and keep schema_migrations in a table replicated to every replica
// of a shard (ZooKeeper path /clickhouse/tables/{shard}/DB/schema_migrations),
// so that Apply through any server of the shard sees what was applied. On
// 18.16 the ALTERs of a migration change only the shard of the server Apply
// is connected to (see alterOnCluster): with several shards, apply through
// one server of each shard. Every server must be up: ON CLUSTER statements
// wait for all of them (distributed_ddl_task_timeout, 180 s by default).
func Apply(ctx context.Context, ex Conn, db string, ms []Migration, log *slog.Logger) (Result, error) {
	var res Result
	cluster := ""
	for i, m := range ms {
		if i > 0 && m.Cluster != cluster {
			return res, fmt.Errorf("apply migrations: %04d_%s is for cluster %q, %04d_%s for %q", ms[0].Version, ms[0].Name, cluster, m.Version, m.Name, m.Cluster)
		}
		cluster = m.Cluster
	}
	boot := []string{
		fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s", db),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.schema_migrations
(
    version    UInt32   COMMENT 'Migration number (file NNNN_name.sql)',
    name       String   COMMENT 'Migration name',
    checksum   String   COMMENT 'Checksum of the rendered SQL',
    applied_at DateTime COMMENT 'When it was applied'
)
ENGINE = ReplacingMergeTree ORDER BY version`, db),
	}
	if cluster != "" {
		// Without column comments: 18.16 cannot replicate them (see withoutComments).
		boot = []string{
			fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s ON CLUSTER %s", db, cluster),
			fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.schema_migrations ON CLUSTER %s
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/%s/schema_migrations', '{replica}') ORDER BY version`, db, cluster, db),
		}
	}
	for _, s := range boot {
		if err := ex.Exec(ctx, s); err != nil {
			return res, fmt.Errorf("prepare database %s: %w", db, err)
		}
	}
	applied, err := appliedVersions(ctx, ex, db)
	if err != nil {
		return res, fmt.Errorf("read applied migrations: %w", err)
	}
	for _, m := range ms {
		if sum, ok := applied[m.Version]; ok {
			if sum != m.Checksum {
				log.Warn("applied migration differs from the shipped file", "version", m.Version, "name", m.Name, "applied", sum, "shipped", m.Checksum)
			}
			res.Skipped++
			continue
		}
		start := time.Now()
		for i, s := range m.Statements {
			if err := ex.Exec(ctx, s); err != nil {
				if addColumnDone(s, err) {
					continue // re-run of an ALTER … ADD COLUMN on a server without IF NOT EXISTS
				}
				return res, fmt.Errorf("apply migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if err := ex.Exec(ctx, fmt.Sprintf("INSERT INTO %s.schema_migrations (version, name, checksum, applied_at) SELECT toUInt32(?), ?, ?, now()", db),
			uint32(m.Version), m.Name, m.Checksum); err != nil {
			return res, fmt.Errorf("record migration %04d_%s: %w", m.Version, m.Name, err)
		}
		log.Info("applied migration", "version", m.Version, "name", m.Name, "statements", len(m.Statements), "took", time.Since(start).Round(time.Millisecond))
		res.Applied = append(res.Applied, m)
	}
	return res, nil
}

func appliedVersions(ctx context.Context, c Conn, db string) (map[int]string, error) {
	var rows []struct {
		Version  uint32 `ch:"version"`
		Checksum string `ch:"checksum"`
	}
	if err := c.Select(ctx, &rows, fmt.Sprintf("SELECT version, argMax(checksum, applied_at) AS checksum FROM %s.schema_migrations GROUP BY version", db)); err != nil {
		return nil, err
	}
	out := make(map[int]string, len(rows))
	for _, r := range rows {
		out[int(r.Version)] = r.Checksum
	}
	return out, nil
}

// addColumnDone reports whether err says that the column an ALTER … ADD
// COLUMN statement adds exists already, which makes it idempotent on
// servers without ADD COLUMN IF NOT EXISTS (18.16).
func addColumnDone(stmt string, err error) bool {
	u := strings.ToUpper(stmt)
	return strings.HasPrefix(strings.TrimSpace(u), "ALTER TABLE") && strings.Contains(u, "ADD COLUMN") &&
		strings.Contains(err.Error(), "already exists")
}
