package ingest_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/ingest"
	"github.com/auditwatch/auditwatch/ingest/chsink"
)

// TestIngestProgressEndToEnd runs the ingester against real Kafka and
// ClickHouse and checks ingest_progress: per partition, complete_to covers
// every event produced to it, the partition ends caught up, the batch rows
// count every message, and heartbeats keep coming while idle.
func TestIngestProgressEndToEnd(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	brokers := testenv.Brokers(t)
	const partitions, n = 4, 6_000
	topic := testenv.Topic(t, brokers, partitions)
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	testenv.Produce(t, brokers, topic, events(n, base))

	group := testenv.RandomName("g-")
	r := newReader(brokers, topic, group)
	defer r.Close()
	in := ingest.New(r, chsink.New(conn, db), ingest.Options{
		MaxRows: 1000, FlushInterval: 200 * time.Millisecond,
		Progress: chsink.NewProgressWriter(conn, db), ProgressInterval: 200 * time.Millisecond,
		Topic: topic, Group: group, Instance: "test-host:1",
	}, slog.New(slog.DiscardHandler), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	testenv.Eventually(t, 90*time.Second, func() (bool, string) {
		got := testenv.Count(t, conn, "SELECT uniqExact(request_id) FROM "+db+".access_log")
		return got == n, fmt.Sprintf("%d/%d rows", got, n)
	})

	type produced struct {
		Partition int32     `ch:"kafka_partition"`
		MaxTS     time.Time `ch:"max_ts"`
		Rows      uint64    `ch:"rows"`
	}
	var want []produced
	if err := conn.Select(context.Background(), &want, "SELECT kafka_partition, max(ts) AS max_ts, uniqExact(request_id) AS rows FROM "+db+
		".access_log GROUP BY kafka_partition ORDER BY kafka_partition"); err != nil {
		t.Fatal(err)
	}
	if len(want) != partitions {
		t.Fatalf("events landed in %d partitions, want %d", len(want), partitions)
	}
	for _, p := range want {
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			var last struct {
				CompleteTo time.Time `ch:"complete_to"`
				CaughtUp   uint8     `ch:"caught_up"`
				Rows       uint64    `ch:"rows"`
				Others     uint64    `ch:"others"`
			}
			err := conn.QueryRow(context.Background(), `SELECT argMax(complete_to, seq) AS complete_to, argMax(caught_up, seq) AS caught_up,
				sum(rows) AS rows, countIf(consumer_group != ? OR ingester != 'test-host:1') AS others
				FROM `+db+`.ingest_progress WHERE topic = ? AND partition = ?`, group, topic, p.Partition).ScanStruct(&last)
			if err != nil {
				return false, err.Error()
			}
			ok := !last.CompleteTo.Before(p.MaxTS) && last.CaughtUp == 1 && last.Rows >= p.Rows && last.Others == 0
			return ok, fmt.Sprintf("partition %d: latest complete_to %s (greatest event %s), caught_up %d, %d rows reported of %d, %d rows of another group or ingester",
				p.Partition, last.CompleteTo, p.MaxTS, last.CaughtUp, last.Rows, p.Rows, last.Others)
		})
	}

	// Idle now: heartbeats (rows = 0) keep arriving for every partition, each
	// caught up and complete to about the time it was written.
	mark := uint64(time.Now().UnixNano())
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		got := testenv.Count(t, conn, `SELECT count() FROM (SELECT partition FROM `+db+`.ingest_progress
			WHERE seq > ? AND rows = 0 AND caught_up = 1 AND complete_to >= written_at - 2 AND partition >= 0
			GROUP BY partition HAVING count() >= 3)`, mark)
		return got == partitions, fmt.Sprintf("%d of %d partitions with 3 heartbeats since the data was in", got, partitions)
	})
}
