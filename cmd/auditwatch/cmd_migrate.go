package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/deploy/migrations"
)

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", "Create the ClickHouse database and tables, or upgrade them. Safe to run again.", stdout, stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	print := fs.String("print", "", "print the DDL for a dialect instead of applying it: 18 (ClickHouse 18.16) or current")
	wait := fs.Duration("wait", 60*time.Second, "how long to wait for ClickHouse to answer")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *print != "" {
		d := migrations.Current
		switch *print {
		case "current":
		case "18":
			d = migrations.Dialect{}
		default:
			return fmt.Errorf("--print %q: want 18 or current", *print)
		}
		d.Cluster = cfg.ClickHouse.Cluster
		ms, err := migrations.Load(cfg.ClickHouse.Database, d)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "CREATE DATABASE IF NOT EXISTS %s;\n", cfg.ClickHouse.Database)
		for _, m := range ms {
			fmt.Fprintf(stdout, "-- %04d_%s\n%s;\n", m.Version, m.Name, strings.Join(m.Statements, ";\n"))
		}
		return nil
	}
	log := newLogger(cfg.Log, stderr)
	conn, err := openMigrate(cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer conn.Close()
	wctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	if err := waitClickHouse(wctx, conn, log); err != nil {
		return err
	}
	res, err := migrate(ctx, conn, cfg.ClickHouse.Database, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database %s: %d migrations applied, %d already present\n", cfg.ClickHouse.Database, len(res.Applied), res.Skipped)
	return nil
}

// openMigrate connects as the migrate user (clickhouse.users.migrate, else
// the shared user) with no session database: the server's default applies
// (no database check on 18.16), so a user limited to the auditwatch
// database can connect before that database exists. Migrations name every
// table with its database.
func openMigrate(cfg ClickHouseConfig) (driver.Conn, error) {
	return openClickHouseDB(cfg.For("migrate"), "")
}

// migrateAs applies the schema as the migrate user, waiting for ClickHouse
// to answer (until ctx ends); `ingest --migrate` and `keys consume
// --migrate` use it so that their own users need no DDL rights.
func migrateAs(ctx context.Context, cfg ClickHouseConfig, log *slog.Logger) error {
	conn, err := openMigrate(cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := waitClickHouse(ctx, conn, log); err != nil {
		return err
	}
	if _, err := migrate(ctx, conn, cfg.Database, log); err != nil {
		return fmt.Errorf("migrate as %s: %w", cfg.For("migrate").Username, err)
	}
	return nil
}
