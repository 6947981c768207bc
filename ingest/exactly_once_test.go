package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/ingest"
	"github.com/auditwatch/auditwatch/ingest/chsink"
)

// failingCommits is a consumer whose offset commits always fail: everything
// it writes is delivered again to the next member of its group.
type failingCommits struct{ *kafka.Reader }

func (failingCommits) CommitMessages(context.Context, ...kafka.Message) error {
	return errors.New("simulated commit failure")
}

// counter returns the value of an unlabelled counter in reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// runUntil runs in until cond holds, then stops it cleanly.
func runUntil(t *testing.T, in *ingest.Ingester, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	testenv.Eventually(t, timeout, cond)
}

// TestRedeliveredMessagesStoredOnce: a consumer writes everything but its
// commits fail (as after a SIGKILL between write and commit, or a broker
// restart); the next member of the group reads it all again. Nothing may
// be stored twice: the rollup equals the distinct requests per key and
// hour, and each dead letter is stored once.
func TestRedeliveredMessagesStoredOnce(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	brokers := testenv.Brokers(t)
	topic := testenv.Topic(t, brokers, 3)
	const n = 12_000
	msgs := events(n, time.Now().UTC().Add(-90*time.Minute).Truncate(time.Second))
	msgs = append(msgs[:n/2:n/2], append(append([][]byte{}, malformed...), msgs[n/2:]...)...)
	testenv.Produce(t, brokers, topic, msgs)
	group := testenv.RandomName("g-")
	opts := ingest.Options{MaxMessageBytes: 256 << 10, MaxRows: 1500, FlushInterval: 200 * time.Millisecond, RetryMin: 50 * time.Millisecond, CommitAttempts: 1}
	stored := func() (bool, string) {
		got := testenv.Count(t, conn, "SELECT uniqExact(request_id) FROM "+db+".access_log")
		dead := testenv.Count(t, conn, "SELECT uniqExact(partition, offset) FROM "+db+".ingest_errors")
		return got == n && dead == uint64(len(malformed)), fmt.Sprintf("%d/%d rows, %d/%d dead letters", got, n, dead, len(malformed))
	}

	r1 := newReader(brokers, topic, group)
	runUntil(t, ingest.New(failingCommits{r1}, chsink.New(conn, db), opts, slog.New(slog.DiscardHandler), nil), 90*time.Second, stored)
	r1.Close()

	reg := prometheus.NewRegistry()
	r2 := newReader(brokers, topic, group)
	defer r2.Close()
	in2 := ingest.New(r2, chsink.New(conn, db), opts, slog.New(slog.DiscardHandler), ingest.NewMetrics(reg))
	runUntil(t, in2, 90*time.Second, func() (bool, string) {
		skipped := counter(t, reg, "auditwatch_ingest_redelivered_skipped_total")
		return skipped >= float64(len(msgs)), fmt.Sprintf("%v of %d redelivered messages skipped", skipped, len(msgs))
	})
	if w := counter(t, reg, "auditwatch_ingest_rows_written_total"); w != 0 {
		t.Errorf("the second consumer wrote %v rows again", w)
	}
	if diff := testenv.RollupMismatches(t, conn, db); len(diff) > 0 {
		t.Fatalf("key_usage differs from access_log in %d key-hours, e.g.\n%s", len(diff), strings.Join(diff[:min(5, len(diff))], "\n"))
	}
	if c := testenv.Count(t, conn, "SELECT count() FROM "+db+".ingest_errors"); c != uint64(len(malformed)) {
		t.Errorf("ingest_errors holds %d rows for %d dead letters", c, len(malformed))
	}
	if c := testenv.Count(t, conn, "SELECT count() FROM "+db+".access_log"); c != n {
		t.Errorf("access_log holds %d rows (before any merge) for %d requests", c, n)
	}
}

// TestRejectedRowsDeadLettered: ClickHouse refuses some rows (here a
// column whose default throws on them, as a type or value error would);
// those rows end in ingest_errors with the server's error, everything else
// is stored once and the offsets move on.
func TestRejectedRowsDeadLettered(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	if err := conn.Exec(context.Background(), "ALTER TABLE "+db+".access_log ADD COLUMN poison UInt8 MATERIALIZED throwIf(request_id LIKE 'poison-%')"); err != nil {
		t.Fatal(err)
	}
	brokers := testenv.Brokers(t)
	topic := testenv.Topic(t, brokers, 2)
	const n = 6_000
	base := time.Now().UTC().Add(-30 * time.Minute).Truncate(time.Second)
	msgs := events(n, base)
	for _, i := range []int{10, 2500, 5999} {
		msgs[i] = []byte(strings.Replace(string(msgs[i]), fmt.Sprintf(`"request_id":"req-%d"`, i), fmt.Sprintf(`"request_id":"poison-%d"`, i), 1))
	}
	testenv.Produce(t, brokers, topic, msgs)
	group := testenv.RandomName("g-")
	reg := prometheus.NewRegistry()
	r := newReader(brokers, topic, group)
	in := ingest.New(r, chsink.New(conn, db), ingest.Options{MaxRows: 4000, FlushInterval: 200 * time.Millisecond, RetryMin: 20 * time.Millisecond},
		slog.New(slog.DiscardHandler), ingest.NewMetrics(reg))
	runUntil(t, in, 90*time.Second, func() (bool, string) {
		got := testenv.Count(t, conn, "SELECT uniqExact(request_id) FROM "+db+".access_log")
		dead := testenv.Count(t, conn, "SELECT count() FROM "+db+".ingest_errors WHERE reason = 'rejected'")
		return got == n-3 && dead == 3, fmt.Sprintf("%d/%d rows, %d/3 rejected", got, n-3, dead)
	})
	r.Close()
	if c := testenv.Count(t, conn, "SELECT count() FROM "+db+".ingest_errors WHERE reason = 'rejected' AND position(error, 'throwIf') + position(error, '395') > 0 AND position(raw, 'poison-') > 0"); c != 3 {
		t.Errorf("%d of 3 rejected dead letters carry the server's error and the row", c)
	}
	if c := testenv.Count(t, conn, "SELECT count() FROM "+db+".access_log WHERE request_id LIKE 'poison-%'"); c != 0 {
		t.Errorf("%d poison rows stored", c)
	}
	if c := testenv.Count(t, conn, "SELECT count() FROM "+db+".access_log"); c != n-3 {
		t.Errorf("access_log holds %d rows, want %d (nothing written twice while isolating)", c, n-3)
	}
	if s := counter(t, reg, "auditwatch_ingest_write_splits_total"); s == 0 {
		t.Error("no split counted")
	}
	if diff := testenv.RollupMismatches(t, conn, db); len(diff) > 0 {
		t.Fatalf("key_usage differs from access_log: %s", strings.Join(diff[:min(5, len(diff))], "\n"))
	}
	// The stream moved: offsets are committed.
	r2 := newReader(brokers, topic, group)
	defer r2.Close()
	fctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	if m, err := r2.FetchMessage(fctx); err == nil {
		t.Fatalf("message at partition %d offset %d was not committed", m.Partition, m.Offset)
	}
}

// TestBatchSpanningManyDays: a batch whose events span more days than one
// insert may cover (the limit set to 2) is written in several inserts and
// nothing is lost or doubled (chsink's TestByPartitions checks that each
// insert stays within the limit).
func TestBatchSpanningManyDays(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	brokers := testenv.Brokers(t)
	topic := testenv.Topic(t, brokers, 1)
	const n = 700
	base := time.Now().UTC().Add(-7 * 24 * time.Hour).Truncate(time.Second)
	msgs := make([][]byte, 0, n)
	for i := range n {
		ev := events(1, base.Add(time.Duration(i%7)*24*time.Hour+time.Duration(i)*time.Second))[0]
		msgs = append(msgs, []byte(strings.Replace(string(ev), `"request_id":"req-0"`, fmt.Sprintf(`"request_id":"day-%d"`, i), 1)))
	}
	testenv.Produce(t, brokers, topic, msgs)
	sink := chsink.New(conn, db)
	sink.SetMaxPartitions(2)
	r := newReader(brokers, topic, testenv.RandomName("g-"))
	defer r.Close()
	in := ingest.New(r, sink, ingest.Options{MaxRows: 10_000, FlushInterval: time.Second}, slog.New(slog.DiscardHandler), nil)
	runUntil(t, in, 60*time.Second, func() (bool, string) {
		got := testenv.Count(t, conn, "SELECT count() FROM "+db+".access_log")
		return got == n, fmt.Sprintf("%d/%d rows", got, n)
	})
	if d := testenv.Count(t, conn, "SELECT uniqExact(toYYYYMMDD(ts)) FROM "+db+".access_log"); d < 7 {
		t.Fatalf("rows span %d days, want ≥7", d)
	}
	if diff := testenv.RollupMismatches(t, conn, db); len(diff) > 0 {
		t.Fatalf("key_usage differs from access_log: %s", strings.Join(diff[:min(5, len(diff))], "\n"))
	}
}
