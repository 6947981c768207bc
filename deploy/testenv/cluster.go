package testenv

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/deploy/migrations"
)

// Environment variables naming the test ClickHouse cluster started by
// deploy/services/cluster.sh.
const (
	// EnvCluster lists the native addresses of the cluster's servers, in
	// the order of cluster.sh's nodes (node 1 first), comma-separated.
	EnvCluster = "AUDITWATCH_TEST_CLICKHOUSE_CLUSTER"
	// EnvClusterName is the cluster's name in <remote_servers> (default
	// aw_cluster).
	EnvClusterName = "AUDITWATCH_TEST_CLICKHOUSE_CLUSTER_NAME"
)

// Cluster is the test ClickHouse cluster: one shard, two replicas.
type Cluster struct {
	Name  string
	Addrs []string // node 1 first
}

// ClickHouseCluster returns the test cluster named by the environment. It
// skips the test when AUDITWATCH_TEST_CLICKHOUSE_CLUSTER is unset, and fails
// it under CI (CI=true).
//
// The test holds the cluster alone until it ends: an exclusive lock on a
// file named after the cluster in the temporary directory, across the test
// processes `go test ./...` runs in parallel. Cluster tests stop and start
// servers, which would fail the others, and 18.16's distributed DDL is
// fragile under concurrent migrations (docs/cluster.md).
func ClickHouseCluster(tb testing.TB) Cluster {
	tb.Helper()
	v := need(tb, EnvCluster)
	addrs := strings.Split(v, ",")
	name := os.Getenv(EnvClusterName)
	if name == "" {
		name = "aw_cluster"
	}
	lock := filepath.Join(os.TempDir(), "auditwatch-test-cluster-"+strings.NewReplacer(":", "_", ",", "_", "/", "_").Replace(v)+".lock")
	f, err := os.OpenFile(lock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		tb.Fatalf("open cluster lock: %v", err)
	}
	start := time.Now()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		tb.Fatalf("lock %s: %v", lock, err)
	}
	if waited := time.Since(start); waited > time.Second {
		tb.Logf("waited %s for the test cluster (another test had it)", waited.Round(time.Second))
	}
	tb.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
	return Cluster{Name: name, Addrs: addrs}
}

// Node connects to the cluster's server i (0 for node 1), failing the test
// if it does not answer.
func (c Cluster) Node(tb testing.TB, i int) driver.Conn {
	tb.Helper()
	return Connect(tb, c.Addrs[i])
}

// ConnectAll opens one connection pool over every server of the cluster
// (clickhouse-go tries them in order), as a product component configured
// with the cluster's addresses would, with insert_distributed_sync=1.
func (c Cluster) ConnectAll(tb testing.TB) driver.Conn {
	tb.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        c.Addrs,
		Auth:        clickhouse.Auth{Database: "default", Username: "default"},
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		DialTimeout: 2 * time.Second,
		ReadTimeout: 2 * time.Minute,
		Settings:    clickhouse.Settings{"insert_distributed_sync": 1},
	})
	if err != nil {
		tb.Fatalf("open clickhouse cluster %v: %v", c.Addrs, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Ping(ctx); err != nil {
		tb.Fatalf("clickhouse cluster at %v (%s) unreachable: %v", c.Addrs, EnvCluster, err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// Dialect returns the dialect of the cluster's servers, rendering for the
// cluster.
func (c Cluster) Dialect(tb testing.TB, conn driver.Conn) migrations.Dialect {
	tb.Helper()
	var v string
	if err := conn.QueryRow(context.Background(), "SELECT version()").Scan(&v); err != nil {
		tb.Fatalf("read version: %v", err)
	}
	d, err := migrations.DialectFor(v)
	if err != nil {
		tb.Fatal(err)
	}
	d.Cluster = c.Name
	return d
}

// ScratchDB creates a fresh database on every server of the cluster with the
// cluster schema applied through conn, and drops it ON CLUSTER when the test
// ends (kept if the test failed and AUDITWATCH_TEST_KEEP is set).
func (c Cluster) ScratchDB(tb testing.TB, conn driver.Conn) string {
	tb.Helper()
	db := RandomName("aw_test_")
	ms, err := migrations.Load(db, c.Dialect(tb, conn))
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if _, err := migrations.Apply(ctx, conn, db, ms, slog.New(slog.DiscardHandler)); err != nil {
		tb.Fatalf("migrate %s on cluster %s: %v", db, c.Name, err)
	}
	tb.Cleanup(func() {
		if tb.Failed() && os.Getenv("AUDITWATCH_TEST_KEEP") != "" {
			tb.Logf("keeping database %s", db)
			return
		}
		c.DropDB(tb, conn, db)
	})
	return db
}

// DropDB drops db ON CLUSTER (its replicas leave ZooKeeper), logging a
// failure.
func (c Cluster) DropDB(tb testing.TB, conn driver.Conn, db string) {
	tb.Helper()
	if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" ON CLUSTER "+c.Name); err != nil {
		tb.Logf("drop %s on cluster %s: %v", db, c.Name, err)
	}
}

// Script runs deploy/services/cluster.sh with args (e.g. "stop-node", "1"),
// failing the test on error: how tests stop and restart a replica.
func (c Cluster) Script(tb testing.TB, args ...string) {
	tb.Helper()
	cmd := exec.Command(filepath.Join(RepoRoot(tb), "deploy", "services", "cluster.sh"), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	tb.Logf("cluster.sh %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
}
