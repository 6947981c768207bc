package main

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/deploy/migrations"
)

// openClickHouse connects over the native protocol (the HTTP protocol does
// not work with 18.16 servers) with "default" as the session database. It
// does not contact the server.
func openClickHouse(cfg ClickHouseConfig) (driver.Conn, error) {
	return openClickHouseDB(cfg, "default")
}

// openClickHouseDB connects with db as the session database, so that
// unqualified table names (in analysts' sql rules) resolve there. With
// cfg.TLS it speaks TLS (see tlsConfig); an unusable CA, certificate or key
// file is an error here, before any connection.
func openClickHouseDB(cfg ClickHouseConfig, db string) (driver.Conn, error) {
	opts := &clickhouse.Options{
		Addr:         cfg.Addr,
		Auth:         clickhouse.Auth{Database: db, Username: cfg.Username, Password: cfg.Password},
		Compression:  &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		DialTimeout:  cfg.DialTimeout,
		ReadTimeout:  cfg.ReadTimeout,
		MaxOpenConns: cfg.MaxOpenConns,
		MaxIdleConns: cfg.MaxOpenConns,
	}
	if cfg.Cluster != "" {
		// Inserts into the Distributed tables return once the shards have
		// the rows, not when they are queued for sending (docs/cluster.md).
		opts.Settings = clickhouse.Settings{"insert_distributed_sync": 1}
	}
	tc, err := tlsConfig(cfg.TLS, cfg.TLSFiles)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	opts.TLS = tc
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %v: %w", cfg.Addr, err)
	}
	if cfg.Cluster != "" {
		return clusterConn{Conn: conn, cluster: cfg.Cluster}, nil
	}
	return conn, nil
}

// clusterName matches clickhouse.cluster: empty, or a name usable unquoted
// in ON CLUSTER and Distributed(…).
var clusterName = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)?$`)

// clusterConn is a connection to a server of the ClickHouse cluster named by
// clickhouse.cluster: migrate renders the cluster schema for it wherever the
// connection was opened (migrate, ingest --migrate, detect --migrate, …).
type clusterConn struct {
	driver.Conn
	cluster string
}

// clusterOf returns the cluster conn was opened for ("" for a single server).
func clusterOf(conn driver.Conn) string {
	if c, ok := conn.(clusterConn); ok {
		return c.cluster
	}
	return ""
}

// waitClickHouse pings until the server answers or ctx ends, logging each
// failure.
func waitClickHouse(ctx context.Context, conn driver.Conn, log *slog.Logger) error {
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := conn.Ping(ctx)
		if err == nil {
			return nil
		}
		log.Warn("clickhouse not reachable; retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for clickhouse: %w", err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// serverDialect reads the server version and returns its SQL dialect.
func serverDialect(ctx context.Context, conn driver.Conn) (migrations.Dialect, string, error) {
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return migrations.Dialect{}, "", fmt.Errorf("read clickhouse version: %w", err)
	}
	d, err := migrations.DialectFor(v)
	return d, v, err
}

// migrate applies the schema to the configured database: the cluster schema
// (ON CLUSTER, Replicated and Distributed tables) when conn was opened with
// clickhouse.cluster set.
func migrate(ctx context.Context, conn driver.Conn, db string, log *slog.Logger) (migrations.Result, error) {
	d, v, err := serverDialect(ctx, conn)
	if err != nil {
		return migrations.Result{}, err
	}
	d.Cluster = clusterOf(conn)
	ms, err := migrations.Load(db, d)
	if err != nil {
		return migrations.Result{}, err
	}
	log.Info("migrating", "server_version", v, "database", db, "low_cardinality", d.LowCardinality, "cluster", d.Cluster)
	return migrations.Apply(ctx, conn, db, ms, log)
}
