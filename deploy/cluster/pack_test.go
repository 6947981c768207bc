package cluster_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/rules"
)

// TestDefaultRulePackOnCluster runs every case shipped beside the default
// rules (what `auditwatch rules test rules/pack` does) with each case's
// scratch database created by the cluster migrations: events and keys are
// inserted through the Distributed tables, rules read through them (FINAL,
// joins with keys, the key_usage rollup filled by the view on the local
// tables).
func TestDefaultRulePackOnCluster(t *testing.T) {
	c := testenv.ClickHouseCluster(t)
	conn := c.ConnectAll(t)
	dialect := c.Dialect(t, conn)
	start := time.Now().UnixNano()
	t.Cleanup(func() { dropRuleTestDBs(t, c, start) })

	dir := filepath.Join(testenv.RepoRoot(t), "rules", "pack")
	set, err := rules.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// One case at a time: 18.16's DDL worker is not safe with many ON
	// CLUSTER statements of several databases in flight (docs/cluster.md).
	tr := &detect.TestRunner{Conn: conn, Dialect: dialect, Log: slog.New(slog.DiscardHandler),
		Open: func(db string) (driver.Conn, error) {
			return clickhouse.Open(&clickhouse.Options{Addr: c.Addrs, Auth: clickhouse.Auth{Database: db},
				Settings: clickhouse.Settings{"insert_distributed_sync": 1}})
		}}
	results, err := tr.RunDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 30 {
		t.Fatalf("%d cases ran, want the whole pack (35 at the time of writing)", len(results))
	}
	covered := map[string][2]int{}
	passed := 0
	for _, r := range results {
		cv := covered[r.Rule]
		if len(r.Got) > 0 {
			cv[0]++
		} else {
			cv[1]++
		}
		covered[r.Rule] = cv
		if !r.Passed {
			t.Errorf("%s:%d %s: %s", filepath.Base(r.File), r.Line, r.Name, strings.Join(r.Errors, "; "))
		} else {
			passed++
		}
	}
	for _, r := range set.Rules {
		if cv := covered[r.ID]; cv[0] == 0 || cv[1] == 0 {
			t.Errorf("rule %s: %d cases with findings and %d without on the cluster; want both", r.ID, cv[0], cv[1])
		}
	}
	t.Logf("%d of %d cases passed on cluster %s", passed, len(results), c.Name)
}

// dropRuleTestDBs drops ON CLUSTER the scratch databases this test's
// runners created (aw_ruletest_<unix nanoseconds>, from start on): the
// runner drops them on the server it is connected to only.
func dropRuleTestDBs(t *testing.T, c testenv.Cluster, start int64) {
	for i := range c.Addrs {
		node := c.Node(t, i)
		var dbs []struct {
			Name string `ch:"name"`
		}
		if err := node.Select(context.Background(), &dbs, "SELECT name FROM system.databases WHERE name LIKE 'aw\\_ruletest\\_%'"); err != nil {
			t.Logf("list scratch databases: %v", err)
			continue
		}
		for _, d := range dbs {
			if ns, err := strconv.ParseInt(strings.TrimPrefix(d.Name, "aw_ruletest_"), 10, 64); err == nil && ns >= start {
				c.DropDB(t, node, d.Name)
			}
		}
	}
}
