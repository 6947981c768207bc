package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/testenv"
)

// TestComponentUsersEndToEnd runs the real commands as the component users
// of deploy/clickhouse/users.d/auditwatch.xml against the 18.16 test server
// (or, on current ClickHouse, those of current/users.d with grants.sql's
// rights), in the auditwatch database those users are limited to: migrate as
// aw_migrate, ingest as aw_ingest (which writes rows and enforces no
// retention), keys import as aw_keys, and retention --every as aw_retention,
// which drops the expired partition and stops cleanly on SIGTERM. Retention
// run as aw_ingest is refused. The shared clickhouse.username is a user that
// does not exist, so a command falling back to it fails.
//
// Every event is dated 2000-01-05, a day no other data has (the SQL-level
// test in deploy/clickhouse uses January 2001, after this test's retention
// cutoff, so the two can run at once), and what the test wrote is removed as
// the default user at the end.
func TestComponentUsersEndToEnd(t *testing.T) {
	addr := testenv.ClickHouseAddr(t)
	brokers := testenv.Brokers(t)
	admin := testenv.Connect(t, addr)
	ctx := context.Background()
	var version string
	if err := admin.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	const db = "auditwatch"
	topic := testenv.Topic(t, brokers, 2)
	marker := testenv.RandomName("aw_priv_e2e_")
	day := time.Date(2000, 1, 5, 0, 0, 0, 0, time.UTC)
	const events = 400
	t.Cleanup(func() {
		for _, q := range []string{
			"ALTER TABLE auditwatch.access_log DROP PARTITION 20000105",
			"ALTER TABLE auditwatch.key_usage DROP PARTITION 200001",
			fmt.Sprintf("ALTER TABLE auditwatch.ingest_progress DELETE WHERE topic = '%s'", topic),
			fmt.Sprintf("ALTER TABLE auditwatch.ingest_errors DELETE WHERE topic = '%s'", topic),
			fmt.Sprintf("ALTER TABLE auditwatch.keys DELETE WHERE key_id = '%s'", marker),
		} {
			if err := admin.Exec(ctx, q); err != nil {
				t.Logf("cleanup: %s: %v", q, err)
			}
		}
	})

	// The component users, from the environment as in a deployment.
	for _, c := range []string{"ingest", "keys", "retention", "migrate"} {
		t.Setenv("AUDITWATCH_CLICKHOUSE_"+strings.ToUpper(c)+"_USERNAME", "aw_"+c)
		t.Setenv("AUDITWATCH_CLICKHOUSE_"+strings.ToUpper(c)+"_PASSWORD", "aw_"+c+"_dev")
	}
	dir := t.TempDir()
	writeCfg := func(name, retention string) string {
		path := filepath.Join(dir, name)
		body := fmt.Sprintf(`log: {level: info, format: text}
clickhouse: {addr: [%q], database: %s, username: aw_no_such_user}
kafka: {brokers: [%s], topic: %s, group_id: %s, max_wait: 100ms, session_timeout: 6s}
ingest: {flush_interval: 300ms, shutdown_timeout: 20s}
retention: %s
http: {listen: "127.0.0.1:%d"}
`, addr, db, strings.Join(brokers, ","), topic, marker, retention, freePort(t))
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// Ingest keeps everything (so 2000 is not too old to store); the
	// retention job keeps access_log and the rollup back to mid-2000, the
	// rest forever, so that it touches nothing but this test's day.
	ingestCfg := writeCfg("ingest.yaml", "{access_log_days: 0, check_interval: 1s}")
	keep := int(time.Since(time.Date(2000, 6, 1, 0, 0, 0, 0, time.UTC)) / (24 * time.Hour))
	retCfg := writeCfg("retention.yaml", fmt.Sprintf("{access_log_days: %d, ingest_errors_days: 0, rollup_days: %d, findings_days: 0, rule_runs_days: 0, ingest_progress_days: 0}", keep, keep))

	run := func(args ...string) (string, error) {
		cmd := exec.Command(binary, args...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("migrate", "--config", ingestCfg); err != nil || !strings.Contains(out, "database auditwatch:") {
		t.Fatalf("migrate as aw_migrate: %v\n%s", err, out)
	}

	p := startIngest(t, ingestCfg, 0)
	if out, err := run("gen", "--config", ingestCfg, "--out", "kafka", "--seed", "11", "--events", fmt.Sprint(events),
		"--scenarios", "none", "--start", day.Format(time.RFC3339), "--duration", "1h"); err != nil {
		t.Fatalf("gen: %v\n%s", err, out)
	}
	countDay := func() uint64 {
		return testenv.Count(t, admin, "SELECT uniqExact(request_id) FROM auditwatch.access_log WHERE toDate(ts) = '2000-01-05'")
	}
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		n := countDay()
		dl := testenv.Count(t, admin, "SELECT count() FROM auditwatch.ingest_errors WHERE topic = ?", topic)
		return n == events, fmt.Sprintf("%d of %d events stored by aw_ingest, %d dead letters", n, events, dl)
	})
	// Retention is not the ingester's job any more: with check_interval 1s
	// it would have run by now if it were.
	time.Sleep(1500 * time.Millisecond)
	p.stop(t)
	if log := p.log.String(); strings.Contains(log, "retention") || strings.Contains(log, "DDL") {
		t.Errorf("ingest log mentions retention or DDL:\n%s", tail(log, 3000))
	}
	if n := testenv.Count(t, admin, "SELECT count() FROM auditwatch.ingest_progress WHERE topic = ?", topic); n == 0 {
		t.Error("aw_ingest wrote no ingest_progress rows")
	}

	keyFile := filepath.Join(dir, "registry.yaml")
	if err := os.WriteFile(keyFile, []byte("- id: "+marker+"\n  env: test\n  created_at: 2025-06-01\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run("keys", "import", keyFile, "--config", ingestCfg); err != nil {
		t.Fatalf("keys import as aw_keys: %v\n%s", err, out)
	}
	if n := testenv.Count(t, admin, "SELECT count() FROM auditwatch.keys WHERE key_id = ?", marker); n != 1 {
		t.Fatalf("keys import as aw_keys stored %d rows, want 1", n)
	}

	// The ingest user may not drop partitions: 18.16 refuses it DDL
	// (allow_ddl = 0); current ClickHouse refuses it the grants retention
	// needs (it is refused system.parts first, then ALTER DELETE).
	refusal := "DDL queries are prohibited"
	if !strings.HasPrefix(version, "18.") {
		refusal = "aw_ingest: Not enough privileges"
	}
	cmd := exec.Command(binary, "retention", "--config", retCfg)
	cmd.Env = append(os.Environ(), "AUDITWATCH_CLICKHOUSE_RETENTION_USERNAME=aw_ingest", "AUDITWATCH_CLICKHOUSE_RETENTION_PASSWORD=aw_ingest_dev")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), refusal) {
		t.Fatalf("retention as aw_ingest on %s: want refused (%s), got %v\n%s", version, refusal, err, out)
	}
	if n := countDay(); n != events {
		t.Fatalf("%d events left after the refused retention, want %d", n, events)
	}

	// The retention job, as aw_retention, until SIGTERM.
	var rlog bytes.Buffer
	job := exec.Command(binary, "retention", "--every", "1h", "--config", retCfg)
	job.Stdout, job.Stderr = &rlog, &rlog
	if err := job.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- job.Wait() }()
	defer func() {
		if job.ProcessState == nil {
			_ = job.Process.Kill()
			<-done
		}
	}()
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		n := countDay()
		return n == 0, fmt.Sprintf("%d events of 2000-01-05 left; retention log:\n%s", n, rlog.String())
	})
	_ = job.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("retention --every exited with %v after SIGTERM\n%s", err, rlog.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("retention --every did not stop within 15s of SIGTERM\n%s", rlog.String())
	}
	for _, want := range []string{"dropped expired partition", "partition=20000105", "retention stopped"} {
		if !strings.Contains(rlog.String(), want) {
			t.Errorf("retention log lacks %q:\n%s", want, rlog.String())
		}
	}
}
