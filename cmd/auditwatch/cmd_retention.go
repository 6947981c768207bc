package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/auditwatch/auditwatch/ingest/retention"
)

func runRetention(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("retention", "Drop daily and monthly partitions older than retention.access_log_days,\n"+
		"retention.ingest_errors_days, retention.ingest_progress_days and the other\n"+
		"retention.* settings: once, or with --every as a long-running job until\n"+
		"SIGINT/SIGTERM. Connects as the retention user (clickhouse.users.retention),\n"+
		"the only component that needs the right to drop partitions.", stdout, stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	every := fs.Duration("every", 0, "run until stopped, enforcing now and then at this interval (e.g. 1h); 0 = once")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *every < 0 {
		return fmt.Errorf("--every %s: must not be negative", *every)
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	conn, err := openClickHouseDB(cfg.ClickHouse.For("retention"), cfg.ClickHouse.Database)
	if err != nil {
		return err
	}
	defer conn.Close()
	e := retention.New(conn, cfg.ClickHouse.Database, retentionPolicy(cfg.Retention), log)
	e.SetCluster(cfg.ClickHouse.Cluster)
	if *every > 0 {
		if err := waitClickHouse(ctx, conn, log); err != nil {
			return err
		}
		log.Info("enforcing retention", "every", *every, "database", cfg.ClickHouse.Database)
		e.Loop(ctx, *every)
		log.Info("retention stopped")
		return nil
	}
	dropped, err := e.Enforce(ctx, time.Now())
	for _, d := range dropped {
		fmt.Fprintf(stdout, "dropped %s partition %s (%d rows)\n", d.Table, d.Partition, d.Rows)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d partitions dropped\n", len(dropped))
	return nil
}

// retentionPolicy is the configured retention of every table, ingest_progress
// (retention.ingest_progress_days) included.
func retentionPolicy(r RetentionConfig) retention.Policy {
	p := retention.Policy(r.policy())
	if _, ok := p["ingest_progress"]; !ok {
		p["ingest_progress"] = r.ProgressDays
	}
	return p
}
