package ingest_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/ingest"
	"github.com/auditwatch/auditwatch/ingest/chsink"
)

// clusterSink returns a sink and progress writer for the cluster schema.
func clusterSink(conn driver.Conn, db string) (*chsink.Sink, *chsink.ProgressWriter) {
	s := chsink.New(conn, db)
	s.SetCluster(true)
	p := chsink.NewProgressWriter(conn, db)
	p.SetCluster(true)
	return s, p
}

// checkClusterCounts asserts, on every server of the cluster, that the
// Distributed access_log and each server's own replica hold n distinct
// requests, n rows after FINAL, the dead letters once, and a rollup equal
// to the distinct requests per key and hour.
func checkClusterCounts(t *testing.T, c testenv.Cluster, db string, n, dead uint64) {
	t.Helper()
	for i := range c.Addrs {
		node := c.Node(t, i)
		for _, tbl := range []string{"access_log_local", "key_usage_local", "ingest_errors_local"} {
			if err := node.Exec(context.Background(), "SYSTEM SYNC REPLICA "+db+"."+tbl); err != nil {
				t.Fatalf("node %d: sync %s: %v", i+1, tbl, err)
			}
		}
		// SYNC REPLICA on 18.16 may return before the newest log entries
		// reached the queue: poll the replica's own table.
		testenv.Eventually(t, 60*time.Second, func() (bool, string) {
			local := testenv.Count(t, node, "SELECT uniqExact(request_id) FROM "+db+".access_log_local")
			final := testenv.Count(t, node, "SELECT count() FROM "+db+".access_log_local FINAL")
			dl := testenv.Count(t, node, "SELECT count() FROM "+db+".ingest_errors_local FINAL")
			return local == n && final == n && dl == dead, fmt.Sprintf("node %d's replica: %d distinct requests, %d rows FINAL (want %d), %d dead letters (want %d)", i+1, local, final, n, dl, dead)
		})
		if got := testenv.Count(t, node, "SELECT uniqExact(request_id) FROM "+db+".access_log"); got != n {
			t.Errorf("node %d: access_log (Distributed) holds %d distinct requests, want %d", i+1, got, n)
		}
		if got := testenv.Count(t, node, "SELECT count() FROM "+db+".access_log FINAL"); got != n {
			t.Errorf("node %d: access_log (Distributed) FINAL holds %d rows, want %d", i+1, got, n)
		}
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			diff := testenv.RollupMismatches(t, node, db)
			return len(diff) == 0, fmt.Sprintf("node %d: key_usage differs from access_log in %d key-hours, e.g. %s", i+1, len(diff), strings.Join(diff[:min(3, len(diff))], "; "))
		})
	}
}

// TestClusterIngestExactlyOnce ingests through the cluster (the ingester
// connected to both servers): every request is stored once, visible through
// either server; a consumer whose commits fail hands everything to a
// second one, which finds it all stored (through the Distributed table) and
// writes nothing again.
func TestClusterIngestExactlyOnce(t *testing.T) {
	c := testenv.ClickHouseCluster(t)
	conn := c.ConnectAll(t)
	db := c.ScratchDB(t, conn)
	brokers := testenv.Brokers(t)
	topic := testenv.Topic(t, brokers, 3)
	const n = 9_000
	msgs := events(n, time.Now().UTC().Add(-90*time.Minute).Truncate(time.Second))
	msgs = append(msgs[:n/2:n/2], append(append([][]byte{}, malformed...), msgs[n/2:]...)...)
	testenv.Produce(t, brokers, topic, msgs)
	group := testenv.RandomName("g-")
	opts := ingest.Options{MaxMessageBytes: 256 << 10, MaxRows: 1500, FlushInterval: 200 * time.Millisecond, RetryMin: 50 * time.Millisecond, CommitAttempts: 1}

	sink, progress := clusterSink(conn, db)
	opts.Progress = progress
	r1 := newReader(brokers, topic, group)
	runUntil(t, ingest.New(failingCommits{r1}, sink, opts, slog.New(slog.DiscardHandler), nil), 120*time.Second, func() (bool, string) {
		got := testenv.Count(t, conn, "SELECT uniqExact(request_id) FROM "+db+".access_log")
		dead := testenv.Count(t, conn, "SELECT uniqExact(partition, offset) FROM "+db+".ingest_errors")
		return got == n && dead == uint64(len(malformed)), fmt.Sprintf("%d/%d rows, %d/%d dead letters", got, n, dead, len(malformed))
	})
	r1.Close()

	reg := prometheus.NewRegistry()
	r2 := newReader(brokers, topic, group)
	defer r2.Close()
	sink2, _ := clusterSink(conn, db)
	runUntil(t, ingest.New(r2, sink2, opts, slog.New(slog.DiscardHandler), ingest.NewMetrics(reg)), 120*time.Second, func() (bool, string) {
		skipped := counter(t, reg, "auditwatch_ingest_redelivered_skipped_total")
		return skipped >= float64(len(msgs)), fmt.Sprintf("%v of %d redelivered messages skipped", skipped, len(msgs))
	})
	if w := counter(t, reg, "auditwatch_ingest_rows_written_total"); w != 0 {
		t.Errorf("the second consumer wrote %v rows again", w)
	}
	if got := testenv.Count(t, conn, "SELECT count() FROM "+db+".access_log"); got != n {
		t.Errorf("access_log holds %d rows (before any merge) for %d requests", got, n)
	}
	if got := testenv.Count(t, conn, "SELECT count() FROM "+db+".ingest_progress WHERE rows > 0"); got == 0 {
		t.Error("no progress rows written through the cluster")
	}
	checkClusterCounts(t, c, db, n, uint64(len(malformed)))
}

// TestClusterReplicaStoppedMidStream stops one of the two servers (the one
// the ingester connects to first) while events are being produced and
// ingested, produces more while it is down, starts it again and produces
// the rest: the ingester goes on through the other server, nothing is lost
// or stored twice, and the restarted replica catches up (on both servers:
// the same distinct requests, rows after FINAL and rollup).
func TestClusterReplicaStoppedMidStream(t *testing.T) {
	c := testenv.ClickHouseCluster(t)
	conn := c.ConnectAll(t)
	db := c.ScratchDB(t, conn)
	n2 := c.Node(t, 1)
	brokers := testenv.Brokers(t)
	topic := testenv.Topic(t, brokers, 2)
	const n, chunk = 20_000, 500
	msgs := events(n, time.Now().UTC().Add(-2*time.Hour).Truncate(time.Second))

	sink, progress := clusterSink(conn, db)
	reg := prometheus.NewRegistry()
	r := newReader(brokers, topic, testenv.RandomName("g-"))
	defer r.Close()
	in := ingest.New(r, sink, ingest.Options{MaxRows: 500, FlushInterval: 100 * time.Millisecond, RetryMin: 50 * time.Millisecond,
		RetryMax: 500 * time.Millisecond, Progress: progress}, slog.New(slog.DiscardHandler), ingest.NewMetrics(reg))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	storedOn := func(node driver.Conn) uint64 {
		return testenv.Count(t, node, "SELECT uniqExact(request_id) FROM "+db+".access_log")
	}

	var atStop, whileDown uint64
	stopped := false
	t.Cleanup(func() {
		if stopped {
			c.Script(t, "start-node", "1")
		}
	})
	for i := 0; i < n; i += chunk {
		testenv.Produce(t, brokers, topic, msgs[i:i+chunk])
		time.Sleep(100 * time.Millisecond)
		switch {
		case atStop == 0 && storedOn(n2) >= n/8:
			atStop = storedOn(n2)
			c.Script(t, "stop-node", "1") // mid-stream: messages produced and not yet written
			stopped = true
		case stopped && i >= n*3/4:
			whileDown = storedOn(n2)
			c.Script(t, "start-node", "1")
			stopped = false
		}
	}
	testenv.Eventually(t, 120*time.Second, func() (bool, string) {
		got := storedOn(conn)
		return got == n, fmt.Sprintf("%d/%d requests stored", got, n)
	})
	t.Logf("stored when node 1 stopped: %d, when it started again: %d, at the end: %d; write errors: %v",
		atStop, whileDown, n, counter(t, reg, "auditwatch_ingest_write_errors_total"))
	if atStop == 0 || atStop >= n*3/4 || whileDown <= atStop || whileDown >= n {
		t.Fatalf("node 1 was not down mid-stream (stored %d at the stop, %d at the restart, of %d)", atStop, whileDown, n)
	}
	checkClusterCounts(t, c, db, n, 0)
}
