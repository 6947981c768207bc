// Package retention enforces how long auditwatch keeps data by dropping whole
// daily partitions, which works on every ClickHouse version (18.16 has no
// TTL) and costs nothing at query time.
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/auditwatch/auditwatch/deploy/migrations"
)

// Conn is the part of a clickhouse-go connection the enforcer uses.
type Conn interface {
	Exec(ctx context.Context, query string, args ...any) error
	Select(ctx context.Context, dest any, query string, args ...any) error
}

// Policy maps a table partitioned by day (toYYYYMMDD) or by month (toYYYYMM)
// to the days it keeps; 0 keeps everything.
type Policy map[string]int

// Enforcer drops expired partitions.
type Enforcer struct {
	conn    Conn
	db      string
	policy  Policy
	log     *slog.Logger
	cluster string
}

// SetCluster makes the enforcer work on the schema migrations create for the
// ClickHouse cluster name (docs/cluster.md): it lists the partitions of each
// table's NAME_local tables on every shard (cluster(name, system, parts))
// and drops them with ALTER TABLE NAME_local ON CLUSTER name DROP PARTITION,
// which each shard runs once and its replicas replicate. Every server must
// be up for the drop to finish. "" is a single server.
func (e *Enforcer) SetCluster(name string) { e.cluster = name }

// New returns an Enforcer for database db.
func New(conn Conn, db string, policy Policy, log *slog.Logger) *Enforcer {
	return &Enforcer{conn: conn, db: db, policy: policy, log: log}
}

// Dropped is one partition removed.
type Dropped struct {
	Table     string
	Partition string
	Rows      uint64
}

// Enforce drops, for each table in the policy, the partitions whose data is
// entirely older than the table's days before now: a daily partition once
// its day is, a monthly one once its whole month is.
func (e *Enforcer) Enforce(ctx context.Context, now time.Time) ([]Dropped, error) {
	tables := make([]string, 0, len(e.policy))
	for t := range e.policy {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	var out []Dropped
	for _, table := range tables {
		days := e.policy[table]
		if days <= 0 {
			continue
		}
		cutoff := now.UTC().AddDate(0, 0, -days).Format("20060102")
		var parts []struct {
			Partition string `ch:"partition"`
			Rows      uint64 `ch:"rows"`
		}
		stored, partsFrom, on := table, "system.parts", ""
		if e.cluster != "" {
			stored = table + migrations.LocalSuffix
			partsFrom = fmt.Sprintf("cluster('%s', system, parts)", e.cluster) // one replica of each shard
			on = " ON CLUSTER " + e.cluster
		}
		err := e.conn.Select(ctx, &parts, `SELECT partition, sum(rows) AS rows FROM `+partsFrom+`
			WHERE database = ? AND table = ? AND active GROUP BY partition ORDER BY partition`, e.db, stored)
		if err != nil {
			return out, fmt.Errorf("list partitions of %s.%s: %w", e.db, stored, err)
		}
		for _, p := range parts {
			switch len(p.Partition) {
			case 8: // YYYYMMDD
				if p.Partition >= cutoff {
					continue
				}
			case 6: // YYYYMM: only months that ended before the cutoff day
				if p.Partition >= cutoff[:6] {
					continue
				}
			default:
				continue
			}
			if err := e.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.%s%s DROP PARTITION %s", e.db, stored, on, p.Partition)); err != nil {
				return out, fmt.Errorf("drop partition %s of %s.%s%s: %w", p.Partition, e.db, stored, on, err)
			}
			e.log.Info("dropped expired partition", "table", table, "partition", p.Partition, "rows", p.Rows, "retention_days", days)
			out = append(out, Dropped{Table: table, Partition: p.Partition, Rows: p.Rows})
		}
	}
	return out, nil
}

// Loop enforces the policy now and then every interval until ctx ends,
// logging failures and trying again at the next tick; it returns at once
// when interval is not positive. `auditwatch retention --every` runs it as
// its own job (with the retention user, the only one allowed to drop
// partitions); with retention.in_ingest the ingester runs it too.
func (e *Enforcer) Loop(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := e.Enforce(ctx, time.Now()); err != nil && ctx.Err() == nil {
			e.log.Error("retention failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
