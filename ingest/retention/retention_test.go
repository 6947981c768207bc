package retention_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/ingest/retention"
)

func TestEnforceDropsOnlyExpiredPartitions(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	days := []int{0, 1, 89, 90, 91, 200} // days before now
	for _, d := range days {
		ts := now.AddDate(0, 0, -d)
		if err := conn.Exec(ctx, "INSERT INTO "+db+".access_log (ts, request_id, method, path, status, client_ip) SELECT toDateTime(?), ?, 'GET', '/', 200, '1.2.3.4'",
			ts.Format("2006-01-02 15:04:05"), ts.Format("r-20060102")); err != nil {
			t.Fatal(err)
		}
	}
	e := retention.New(conn, db, retention.Policy{"access_log": 90, "ingest_errors": 0}, slog.New(slog.DiscardHandler))
	dropped, err := e.Enforce(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	// Kept: days 0, 1, 89, 90 (its day is not over 90 days old yet); dropped: 91, 200.
	if len(dropped) != 2 {
		t.Fatalf("dropped %+v, want the partitions 91 and 200 days old", dropped)
	}
	if n := testenv.Count(t, conn, "SELECT count() FROM "+db+".access_log"); n != 4 {
		t.Fatalf("%d rows left, want 4", n)
	}
	if n := testenv.Count(t, conn, "SELECT count() FROM "+db+".access_log WHERE ts < toDateTime(?)", now.AddDate(0, 0, -90).Format("2006-01-02")+" 00:00:00"); n != 0 {
		t.Fatalf("%d rows older than the retention left", n)
	}
	// Monthly partitions go once their whole month is past the cutoff.
	for _, d := range []string{"2026-07-31", "2026-08-30", "2026-09-15"} {
		if err := conn.Exec(ctx, "INSERT INTO "+db+".findings (finding_id, rule_id, eval_time) SELECT ?, 'r', toDateTime(?)", d, d+" 00:00:00"); err != nil {
			t.Fatal(err)
		}
	}
	em := retention.New(conn, db, retention.Policy{"findings": 90}, slog.New(slog.DiscardHandler))
	dropped, err = em.Enforce(ctx, now) // cutoff 2026-08-29: July goes, August stays
	if err != nil || len(dropped) != 1 || dropped[0].Partition != "202607" {
		t.Fatalf("monthly: dropped %+v, %v", dropped, err)
	}
	// Idempotent.
	if again, err := e.Enforce(ctx, now); err != nil || len(again) != 0 {
		t.Fatalf("second Enforce dropped %v, %v", again, err)
	}
}

func TestEnforceDropsExpiredIngestProgress(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, d := range []int{0, 6, 7, 8, 30} { // days before now
		ts := now.AddDate(0, 0, -d).Format("2006-01-02 15:04:05")
		if err := conn.Exec(ctx, "INSERT INTO "+db+".ingest_progress (written_at, seq, topic, partition, complete_to) SELECT toDateTime(?), ?, 't', 0, toDateTime(?)",
			ts, uint64(d), ts); err != nil {
			t.Fatal(err)
		}
	}
	e := retention.New(conn, db, retention.Policy{"ingest_progress": 7}, slog.New(slog.DiscardHandler))
	dropped, err := e.Enforce(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"20261119": true, "20261028": true} // 8 and 30 days old
	if len(dropped) != len(want) {
		t.Fatalf("dropped %+v, want the partitions 8 and 30 days old", dropped)
	}
	for _, d := range dropped {
		if d.Table != "ingest_progress" || !want[d.Partition] {
			t.Errorf("dropped %+v", d)
		}
	}
	if n := testenv.Count(t, conn, "SELECT count() FROM "+db+".ingest_progress"); n != 3 {
		t.Fatalf("%d rows left, want 3 (0, 6 and 7 days old)", n)
	}
}
