package migrations_test

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/migrations"
	"github.com/auditwatch/auditwatch/deploy/testenv"
)

// TestSingleServerRenderingUnchanged: cluster support must not change one
// byte of the single-server schema, or every installed database would see
// its applied migrations differ from the shipped ones. The checksums are
// those of the rendered files before cluster support (commit 99c7f95).
func TestSingleServerRenderingUnchanged(t *testing.T) {
	want := map[bool][]string{
		false: {"45fcdcab8bc54eee", "d84c0b168ee1fdc9", "b6dc78fdfd3c9155", "43b211be9b71d668", "c0259c9caa7decfb", "d16c5e5a0ef05d8c",
			"6e12abaa52c6e77f", "269e622e327b72bc", "ca59f9feaf89f7a9", "ac000064acd45ec7", "4fa2d32576b474a4"},
		true: {"0ad699dbaed2bb31", "858e529ab236b081", "14671d653aa66e76", "43b211be9b71d668", "ffb75a3dae1414cd", "d16c5e5a0ef05d8c",
			"08b8576dc42ac65d", "269e622e327b72bc", "ca59f9feaf89f7a9", "63b27d5a4fb54298", "fc146ce2703f21bc"},
	}
	for _, d := range []migrations.Dialect{{}, migrations.Current} {
		ms, err := migrations.Load("auditwatch", d)
		if err != nil {
			t.Fatal(err)
		}
		for i, sum := range want[d.LowCardinality] {
			if i >= len(ms) {
				t.Fatalf("low_cardinality=%v: %d migrations, want at least %d", d.LowCardinality, len(ms), len(want[d.LowCardinality]))
			}
			if ms[i].Checksum != sum || ms[i].Cluster != "" {
				t.Errorf("low_cardinality=%v: %04d_%s renders with checksum %s (cluster %q), want %s as before cluster support",
					d.LowCardinality, ms[i].Version, ms[i].Name, ms[i].Checksum, ms[i].Cluster, sum)
			}
		}
	}
}

// TestClusterRendering checks the cluster schema's shape: every statement
// runs ON CLUSTER, every table's data is in a Replicated engine under
// NAME_local, NAME is Distributed over it, views read and write the local
// tables.
func TestClusterRendering(t *testing.T) {
	for _, d := range []migrations.Dialect{{Cluster: "c1"}, {LowCardinality: true, Cluster: "c1"}} {
		ms, err := migrations.Load("awdb", d)
		if err != nil {
			t.Fatal(err)
		}
		created := map[string]bool{}
		distributed := map[string]bool{}
		for _, m := range ms {
			if m.Cluster != "c1" {
				t.Errorf("%04d: Cluster = %q", m.Version, m.Cluster)
			}
			for _, s := range m.Statements {
				first := strings.SplitN(s, "\n", 2)[0]
				alter := strings.HasPrefix(first, "ALTER TABLE")
				// 18.16: ALTERs run on one replica and replicate (alterOnCluster).
				if wantOn := !alter || d.LowCardinality; strings.Contains(first, " ON CLUSTER c1") != wantOn {
					t.Errorf("%04d_%s: ON CLUSTER is %v, want %v: %s", m.Version, m.Name, !wantOn, wantOn, first)
				}
				if strings.Contains(s, "{{") {
					t.Errorf("%04d_%s: unrendered template: %s", m.Version, m.Name, first)
				}
				if m := regexp.MustCompile(`^CREATE TABLE IF NOT EXISTS awdb\.(\w+)_local ON CLUSTER c1$`).FindStringSubmatch(first); m != nil {
					created[m[1]] = true
					if !regexp.MustCompile(`ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{shard\}/awdb/` + m[1] + `_local', '\{replica\}'`).MatchString(s) {
						t.Errorf("table %s_local is not replicated:\n%s", m[1], s)
					}
				}
				if m := regexp.MustCompile(`^CREATE TABLE IF NOT EXISTS awdb\.(\w+) ON CLUSTER c1 AS awdb\.(\w+)_local$`).FindStringSubmatch(first); m != nil {
					if m[1] != m[2] || !strings.Contains(s, "ENGINE = Distributed(c1, awdb, "+m[1]+"_local, ") {
						t.Errorf("bad distributed table: %s", s)
					}
					distributed[m[1]] = true
				}
				if strings.HasPrefix(first, "CREATE MATERIALIZED VIEW") {
					if !regexp.MustCompile(` TO awdb\.\w+_local AS$`).MatchString(first) || !regexp.MustCompile(`\nFROM awdb\.access_log_local\n`).MatchString(s) {
						t.Errorf("view does not read and write local tables: %s", s)
					}
				}
				if alter && !regexp.MustCompile(`^ALTER TABLE awdb\.\w+_local `).MatchString(first) {
					t.Errorf("ALTER not of a local table: %s", first)
				}
				if alter && !d.LowCardinality && strings.Contains(first, " COMMENT COLUMN ") {
					t.Errorf("18.16 cluster schema comments a column (18.16 cannot replicate comments): %s", first)
				}
			}
		}
		for tbl := range created {
			if !distributed[tbl] {
				t.Errorf("%s_local has no Distributed table %s", tbl, tbl)
			}
		}
		if len(created) < 10 {
			t.Errorf("only %d tables created", len(created))
		}
	}
	if _, err := migrations.Load("awdb", migrations.Dialect{Cluster: "bad name"}); err == nil {
		t.Error("accepted an invalid cluster name")
	}
}

// TestClusterApply applies the cluster schema through node 1 of the test
// cluster: both servers hold the same tables, a second application through
// either server applies nothing, and a row inserted through the Distributed
// table on node 1 is in node 2's replica (and its rollup).
func TestClusterApply(t *testing.T) {
	c := testenv.ClickHouseCluster(t)
	n1, n2 := c.Node(t, 0), c.Node(t, 1)
	db := c.ScratchDB(t, n1)
	ctx := context.Background()
	tables := func(conn interface {
		Select(context.Context, any, string, ...any) error
	}) string {
		var rows []struct {
			Name   string `ch:"name"`
			Engine string `ch:"engine"`
		}
		if err := conn.Select(ctx, &rows, "SELECT name, engine FROM system.tables WHERE database = ? ORDER BY name", db); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, r := range rows {
			b.WriteString(r.Name + " " + r.Engine + "\n")
		}
		return b.String()
	}
	t1, t2 := tables(n1), tables(n2)
	if t1 != t2 {
		t.Fatalf("the servers hold different tables:\nnode 1:\n%snode 2:\n%s", t1, t2)
	}
	for _, want := range []string{"access_log Distributed", "access_log_local ReplicatedReplacingMergeTree", "key_usage_local ReplicatedAggregatingMergeTree",
		"key_usage_mv MaterializedView", "rule_runs_local ReplicatedMergeTree", "schema_migrations ReplicatedReplacingMergeTree"} {
		if !strings.Contains(t1, want+"\n") {
			t.Errorf("missing %q in\n%s", want, t1)
		}
	}
	if strings.Contains(t1, "key_ip_daily") || strings.Contains(t1, "key_usage_hourly") {
		t.Errorf("tables dropped by 0008 still exist:\n%s", t1)
	}
	// Columns added by later migrations reached the Distributed tables.
	if n := testenv.Count(t, n2, "SELECT count() FROM system.columns WHERE database = ? AND table = 'rule_runs' AND name IN ('rule_hash', 'findings_dropped', 'window_start')", db); n != 3 {
		t.Errorf("rule_runs (Distributed) on node 2 has %d of the 3 columns added by 0010/0011", n)
	}
	d := c.Dialect(t, n1)
	for i, conn := range []struct {
		name string
		c    migrations.Conn
	}{{"node 1", n1}, {"node 2", n2}} {
		ms, err := migrations.Load(db, d)
		if err != nil {
			t.Fatal(err)
		}
		res, err := migrations.Apply(ctx, conn.c, db, ms, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("apply again through %s: %v", conn.name, err)
		}
		if len(res.Applied) != 0 || res.Skipped != len(ms) {
			t.Fatalf("apply %d through %s: applied %d, skipped %d; want 0 and %d", i+2, conn.name, len(res.Applied), res.Skipped, len(ms))
		}
	}
	if t1b := tables(n1); t1b != t1 {
		t.Errorf("a no-op apply changed the tables:\n%s\nthen\n%s", t1, t1b)
	}
	if err := n1.Exec(ctx, "INSERT INTO "+db+".access_log (ts, request_id, key_id, route) SELECT toDateTime('2026-01-02 03:04:05'), 'r1', 'key_1', '/v1/x' FROM system.numbers LIMIT 2"); err != nil {
		t.Fatal(err)
	}
	if err := n2.Exec(ctx, "SYSTEM SYNC REPLICA "+db+".access_log_local"); err != nil {
		t.Fatal(err)
	}
	if err := n2.Exec(ctx, "SYSTEM SYNC REPLICA "+db+".key_usage_local"); err != nil {
		t.Fatal(err)
	}
	// SYSTEM SYNC REPLICA on 18.16 may return before the replica pulled the
	// new log entry into its queue: poll.
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		rows := testenv.Count(t, n2, "SELECT count() FROM "+db+".access_log_local FINAL WHERE request_id = 'r1'")
		reqs := testenv.Count(t, n2, "SELECT toUInt64(countMerge(requests)) FROM "+db+".key_usage_local WHERE key_id = 'key_1'")
		return rows == 1 && reqs == 2, fmt.Sprintf("node 2's replica holds %d rows of r1 (FINAL; want 1), its rollup %d requests of key_1 (want the 2 rows inserted)", rows, reqs)
	})
}

// TestClusterDialectOnChdb parses the current-dialect cluster schema with
// chdb (current ClickHouse; it has no ZooKeeper, so it cannot run it).
func TestClusterDialectOnChdb(t *testing.T) {
	root := testenv.RepoRoot(t)
	testenv.NeedChdb(t)
	ms, err := migrations.Load("auditwatch", migrations.Dialect{LowCardinality: true, Cluster: "aw_cluster"})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("python3", filepath.Join(root, "deploy", "chdb", "run_sql.py"), "--parse-only")
	cmd.Stdin = strings.NewReader(joinAll(ms) + ";\n")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "statements parsed OK") {
		t.Fatalf("chdb does not parse the current-dialect cluster schema: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
