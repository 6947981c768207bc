package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/ingest"
	"github.com/auditwatch/auditwatch/ingest/chsink"
	"github.com/auditwatch/auditwatch/ingest/event"
)

// fullKey returns a distinct full secret for request i.
func fullKey(i int) string { return fmt.Sprintf("bk_live_%032d", i*7919) }

func events(n int, base time.Time) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"ts":"%s","request_id":"req-%d","method":"GET","path":"/v1/orders?x=%d","status":200,"client_ip":"203.0.113.%d","api_key":"%s","signed":true,"signature_ts":%d}`,
			base.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), i, i, i%250, fullKey(i%50), base.Unix())
	}
	return out
}

var malformed = [][]byte{
	[]byte(`not json at all ` + fullKey(1)),
	[]byte(`{"ts":"2026-11-27T10:00:00Z","request_id":"bad-1","method":"GET","path":"/","status":"200","client_ip":"1.2.3.4","api_key":"` + fullKey(2) + `"}`),
	[]byte(`{"ts":"2026-11-27T10:00:00Z","method":"GET","path":"/","status":200,"client_ip":"1.2.3.4"}`),
	[]byte("{\"request_id\":\"\xff\xfe\"}"),
	[]byte(`{"ts":12,"request_id":"bad-2","method":"GET","path":"/","status":200,"client_ip":"1.2.3.4"}`),
	[]byte(`{"ts":"2026-11-27T10:00:00Z","request_id":"big","pad":"` + strings.Repeat("x", 300<<10) + `"}`),
}

func newReader(brokers []string, topic, group string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, GroupID: group, GroupTopics: []string{topic}, StartOffset: kafka.FirstOffset,
		MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond, QueueCapacity: 5000,
		SessionTimeout: 6 * time.Second, HeartbeatInterval: time.Second,
	})
}

// flakySink fails its first n writes, like a ClickHouse outage.
type flakySink struct {
	ingest.Sink
	failures atomic.Int32
}

func (f *flakySink) Write(ctx context.Context, rows *event.Rows, dead []event.DeadLetter) error {
	if f.failures.Add(-1) >= 0 {
		return errors.New("simulated outage")
	}
	return f.Sink.Write(ctx, rows, dead)
}

func TestIngestEndToEnd(t *testing.T) {
	tests := []struct {
		name     string
		n        int
		failures int32
	}{
		{"all arrive once, malformed dead-lettered", 30_000, 0},
		{"sink failures retried, nothing lost", 5_000, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := testenv.ClickHouse(t)
			db := testenv.ScratchDB(t, conn)
			brokers := testenv.Brokers(t)
			topic := testenv.Topic(t, brokers, 4)
			base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
			msgs := events(tt.n, base)
			msgs = append(msgs[:tt.n/2:tt.n/2], append(append([][]byte{}, malformed...), msgs[tt.n/2:]...)...)
			testenv.Produce(t, brokers, topic, msgs)

			group := testenv.RandomName("g-")
			r := newReader(brokers, topic, group)
			sink := &flakySink{Sink: chsink.New(conn, db)}
			sink.failures.Store(tt.failures)
			in := ingest.New(r, sink, ingest.Options{MaxMessageBytes: 256 << 10, MaxRows: 4000, FlushInterval: 200 * time.Millisecond, RetryMin: 50 * time.Millisecond},
				slog.New(slog.DiscardHandler), nil)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- in.Run(ctx) }()

			testenv.Eventually(t, 90*time.Second, func() (bool, string) {
				got := testenv.Count(t, conn, "SELECT uniqExact(request_id) FROM "+db+".access_log")
				dead := testenv.Count(t, conn, "SELECT count() FROM "+db+".ingest_errors")
				return got == uint64(tt.n) && dead == uint64(len(malformed)), fmt.Sprintf("%d/%d rows, %d/%d dead letters", got, tt.n, dead, len(malformed))
			})
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			r.Close()

			if dup := testenv.Count(t, conn, "SELECT count() FROM "+db+".access_log FINAL"); dup != uint64(tt.n) {
				t.Errorf("FINAL count %d, want %d", dup, tt.n)
			}
			// Reasons recorded, keys masked in raw text.
			reasons := testenv.Count(t, conn, "SELECT uniqExact(reason) FROM "+db+".ingest_errors")
			if reasons < 5 {
				t.Errorf("dead letters carry %d distinct reasons, want ≥5", reasons)
			}
			for i := 0; i < 50; i++ {
				k := fullKey(i)
				for _, q := range []string{
					"SELECT count() FROM " + db + ".access_log WHERE position(concat(key_hint, key_id, key_fingerprint, path, user_agent), ?) > 0",
					"SELECT count() FROM " + db + ".ingest_errors WHERE position(concat(raw, error, message_key), ?) > 0",
				} {
					if n := testenv.Count(t, conn, q, k); n != 0 {
						t.Fatalf("full key stored in ClickHouse: %q matched %d rows", q, n)
					}
				}
			}
			// Derived columns are right.
			if n := testenv.Count(t, conn, "SELECT count() FROM "+db+".access_log WHERE path != '/v1/orders' OR env != 'live' OR key_id_source != 'fingerprint' OR clock_offset_s IS NULL OR client_net NOT LIKE '203.0.113.0/24'"); n != 0 {
				t.Errorf("%d rows with wrong derived columns", n)
			}
			// Offsets were committed: a new member of the group finds nothing left.
			r2 := newReader(brokers, topic, group)
			defer r2.Close()
			fctx, fcancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer fcancel()
			if m, err := r2.FetchMessage(fctx); err == nil {
				t.Fatalf("message at partition %d offset %d was not committed", m.Partition, m.Offset)
			}
		})
	}
}
