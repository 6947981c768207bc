package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/auditwatch/auditwatch/ingest/retention"
)

func runRetention(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("retention", "Drop daily partitions older than retention.access_log_days,\nretention.ingest_errors_days, retention.ingest_progress_days and the other\nretention.* settings, once. `ingest` also does this every retention.check_interval.", stdout, stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	conn, err := openClickHouse(cfg.ClickHouse.For("retention"))
	if err != nil {
		return err
	}
	defer conn.Close()
	e := retention.New(conn, cfg.ClickHouse.Database, retentionPolicy(cfg.Retention), log)
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
