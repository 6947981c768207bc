package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/detect/summary"
)

func runSummary(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("summary", "Per-key usage review over a period, compared with the period before, read from the\nkey_usage rollup, the key registry and the findings: alerted findings, and signals (info or\nlow findings, recorded and never alerted on their own) counted by rule.\nKeys that need a person come first.", stdout, stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	period := fs.String("period", "24h", "24h, 7d or 30d")
	key := fs.String("key", "", "only this key (registry id or fingerprint)")
	format := fs.String("format", "table", "table, md, csv, json or html")
	out := fs.String("out", "", "write to this file instead of standard output")
	at := fs.String("to", "0s", "end of the period: RFC 3339 or relative (rounded down to the hour)")
	send := fs.String("send", "", "deliver now as a schedule would: write the files (--formats) to summary.out_dir and post the digest to this channel")
	formats := fs.String("formats", "html,csv", "with --send: the files to write and attach")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	to, err := parseStart(*at, time.Now())
	if err != nil {
		return err
	}
	conn, err := openClickHouseDB(cfg.ClickHouse.For("detect"), cfg.ClickHouse.Database)
	if err != nil {
		return err
	}
	defer conn.Close()
	b := summary.NewBuilder(conn, cfg.ClickHouse.Database, keys.NewStore(conn, cfg.ClickHouse.Database))
	if *send != "" {
		log := newLogger(cfg.Log, stderr)
		n, closeN, err := newNotifier(cfg.Alerts, stdout, log)
		if err != nil {
			return err
		}
		defer closeN()
		poster, _ := n.(alerts.ReportPoster)
		d := &summary.Deliverer{Builder: b, Poster: poster, OutDir: cfg.Summary.OutDir, Log: log}
		paths, err := d.Deliver(ctx, summary.Schedule{Period: *period, Formats: strings.Split(*formats, ","), Channel: *send}, to)
		for _, p := range paths {
			fmt.Fprintln(stderr, "wrote", p)
		}
		return err
	}
	rep, err := b.Build(ctx, summary.Options{Period: *period, To: to, KeyID: *key})
	if err != nil {
		return err
	}
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("write summary: %w", err)
		}
		defer f.Close()
		w = f
	}
	if err := summary.Render(w, rep, *format); err != nil {
		return err
	}
	if *out != "" {
		fmt.Fprintf(stderr, "summary of %d keys (%d flagged, %d with signals) written to %s\n", rep.Totals.Keys, rep.Totals.FlaggedKeys, rep.Totals.SignalKeys, *out)
	}
	return nil
}
