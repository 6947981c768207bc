package retention_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/ingest/retention"
)

// TestEnforceOnCluster: on the cluster schema, expired partitions of the
// replicated NAME_local tables go from every replica, the rest stays on
// every replica, and a second run drops nothing.
func TestEnforceOnCluster(t *testing.T) {
	c := testenv.ClickHouseCluster(t)
	conn := c.ConnectAll(t)
	db := c.ScratchDB(t, conn)
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, d := range []int{0, 1, 89, 90, 91, 200} { // days before now
		ts := now.AddDate(0, 0, -d)
		if err := conn.Exec(ctx, "INSERT INTO "+db+".access_log (ts, request_id, method, path, status, client_ip, key_id) SELECT toDateTime(?), ?, 'GET', '/', 200, '1.2.3.4', 'key_1'",
			ts.Format("2006-01-02 15:04:05"), ts.Format("r-20060102")); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"2026-07-31", "2026-08-30"} {
		if err := conn.Exec(ctx, "INSERT INTO "+db+".findings (finding_id, rule_id, eval_time) SELECT ?, 'r', toDateTime(?)", d, d+" 00:00:00"); err != nil {
			t.Fatal(err)
		}
	}
	// Both replicas hold everything before retention runs.
	for i := range c.Addrs {
		node := c.Node(t, i)
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			rows := testenv.Count(t, node, "SELECT count() FROM "+db+".access_log_local")
			f := testenv.Count(t, node, "SELECT count() FROM "+db+".findings_local")
			return rows == 6 && f == 2, fmt.Sprintf("node %d: %d/6 access_log rows, %d/2 findings before retention", i+1, rows, f)
		})
	}
	e := retention.New(conn, db, retention.Policy{"access_log": 90, "findings": 90, "ingest_errors": 0}, slog.New(slog.DiscardHandler))
	e.SetCluster(c.Name)
	dropped, err := e.Enforce(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, d := range dropped {
		got[d.Table+" "+d.Partition] = true
	}
	want := []string{"access_log 20260828", "access_log 20260511", "findings 202607"} // 91 and 200 days old; July
	if len(dropped) != len(want) {
		t.Fatalf("dropped %+v, want %v", dropped, want)
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("did not drop %s (dropped %+v)", w, dropped)
		}
	}
	cutoff := now.AddDate(0, 0, -90).Format("2006-01-02") + " 00:00:00"
	for i := range c.Addrs {
		node := c.Node(t, i)
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			rows := testenv.Count(t, node, "SELECT count() FROM "+db+".access_log_local")
			old := testenv.Count(t, node, "SELECT count() FROM "+db+".access_log_local WHERE ts < toDateTime(?)", cutoff)
			f := testenv.Count(t, node, "SELECT count() FROM "+db+".findings_local")
			return rows == 4 && old == 0 && f == 1, fmt.Sprintf("node %d's replica: %d access_log rows (want 4), %d older than the cutoff (want 0), %d findings (want 1)", i+1, rows, old, f)
		})
	}
	if again, err := e.Enforce(ctx, now); err != nil || len(again) != 0 {
		t.Fatalf("second Enforce dropped %v, %v", again, err)
	}
}
