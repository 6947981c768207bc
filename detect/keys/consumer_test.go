package keys_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/ingest/chsink"
	"github.com/auditwatch/auditwatch/ingest/secret"
)

var (
	_ keys.Source           = (*kafka.Reader)(nil)
	_ keys.DeadLetterWriter = (*chsink.Sink)(nil)
	_ keys.Applier          = (*keys.Store)(nil)
)

func newReader(brokers []string, topic, group string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, GroupID: group, GroupTopics: []string{topic}, StartOffset: kafka.FirstOffset,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond,
		SessionTimeout: 6 * time.Second, HeartbeatInterval: time.Second,
	})
}

// consume runs a Consumer on a new reader of group until cond holds, then
// stops it and checks that it shut down cleanly.
// Batches of 3 messages make one key change in several writes within a
// second, which the versions must order.
func consume(t *testing.T, store *keys.Store, sink *chsink.Sink, brokers []string, topic, group string, cond func() (bool, string)) keys.ConsumerStats {
	t.Helper()
	r := newReader(brokers, topic, group)
	c := keys.NewConsumer(r, store, sink, keys.ConsumerOptions{MaxBatch: 3, FlushInterval: 200 * time.Millisecond, RetryMin: 50 * time.Millisecond}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	testenv.Eventually(t, 60*time.Second, cond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("close reader: %v", err)
	}
	return c.Stats()
}

func TestConsumerEndToEnd(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	brokers := testenv.Brokers(t)
	topic := testenv.Topic(t, brokers, 1) // one partition: one key's events stay in order
	store := keys.NewStore(conn, db)
	sink := chsink.New(conn, db)
	ctx := context.Background()

	const (
		k1 = "bk_live_Consumer00000000000000000000000001" // created
		k2 = "bk_live_Consumer00000000000000000000000002" // after rotation
		k3 = "bk_live_Consumer00000000000000000000000003" // only in bad messages
		k4 = "bk_test_Consumer00000000000000000000000004" // a key without registry id
	)
	day := func(d int) string {
		return time.Date(2026, 11, d, 9, 0, 0, 0, time.UTC).Format(time.RFC3339)
	}
	msgs := []string{
		`{"type":"created","ts":"` + day(1) + `","key_id":"key_A","api_key":"` + k1 + `","account_id":"acc_1","owner":"desk","allowed_cidrs":["10.0.0.0/8"]}`,
		`{"type":"created","ts":"` + day(1) + `","api_key":"` + k4 + `","account_id":"acc_2"}`,
		`{"type":"rotated","ts":"` + day(2) + `","key_id":"key_A","api_key":"` + k2 + `"}`,
		`this is not json; api_key=` + k3,
		`{"type":"allowlist_changed","ts":"` + day(3) + `","key_id":"key_A","api_key":"` + k3 + `","allowed_cidrs":["10.0.0.0/99"]}`,
		`{"type":"allowlist_changed","ts":"` + day(3) + `","key_id":"key_A","allowed_cidrs":["192.0.2.0/24","2001:db8::1","2001:DB8:1::/48"]}`,
		`{"type":"updated","ts":"` + day(4) + `","api_key":"` + k4 + `","owner":"sandbox"}`,
		`{"type":"revoked","ts":"` + day(5) + `","key_id":"key_A"}`,
	}
	values := make([][]byte, len(msgs))
	for i, m := range msgs {
		values[i] = []byte(m)
	}
	testenv.Produce(t, brokers, topic, values)

	group := testenv.RandomName("keys-")
	events := func() uint64 { return testenv.Count(t, conn, "SELECT count() FROM "+db+".key_events") }
	st := consume(t, store, sink, brokers, topic, group, func() (bool, string) {
		ev, dead := events(), testenv.Count(t, conn, "SELECT count() FROM "+db+".ingest_errors")
		return ev == 6 && dead == 2, fmt.Sprintf("%d/6 key events, %d/2 dead letters", ev, dead)
	})
	if st.Messages != 8 || st.Applied != 6 || st.DeadLetters != 2 {
		t.Errorf("stats %+v, want 8 messages, 6 applied, 2 dead letters", st)
	}

	all, err := store.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, k := range all {
		k.UpdatedAt = time.Time{}
		b, _ := k.MarshalJSON()
		got[k.ID] = string(b)
	}
	fp2, fp4 := secret.Fingerprint(k2), secret.Fingerprint(k4)
	want := map[string]string{
		"key_A": `{"id":"key_A","fingerprint":"` + fp2 + `","hint":"bk_live_Cons…0002","env":"live","account_id":"acc_1","owner":"desk","status":"revoked","created_at":"2026-11-01T09:00:00Z","rotated_at":"2026-11-02T09:00:00Z","allowed_cidrs":["192.0.2.0/24","2001:db8::1/128","2001:db8:1::/48"]}`,
		fp4:     `{"id":"` + fp4 + `","fingerprint":"` + fp4 + `","hint":"bk_test_Cons…0004","env":"test","account_id":"acc_2","owner":"sandbox","status":"active","created_at":"2026-11-01T09:00:00Z","allowed_cidrs":[]}`,
	}
	if len(got) != len(want) {
		t.Fatalf("registry %v, want %d keys", got, len(want))
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("key %s:\n got %s\nwant %s", id, got[id], w)
		}
	}
	var a keys.Key
	for _, k := range all {
		if k.ID == "key_A" {
			a = k
		}
	}
	for ip, allowed := range map[string]bool{"192.0.2.77": true, "10.1.1.1": false, "2001:db8::1": true, "2001:db8::2": false, "2001:db8:1:ffff::9": true} {
		if a.Allows(netip.MustParseAddr(ip)) != allowed {
			t.Errorf("key_A Allows(%s) = %v, want %v", ip, !allowed, allowed)
		}
	}

	// The bad messages are dead letters with their reason, masked.
	var dl []struct {
		Reason string `ch:"reason"`
		Field  string `ch:"field"`
		Topic  string `ch:"topic"`
		Raw    string `ch:"raw"`
		Offset int64  `ch:"offset"`
	}
	if err := conn.Select(ctx, &dl, "SELECT toString(reason) AS reason, field, topic, raw, offset FROM "+db+".ingest_errors ORDER BY offset"); err != nil {
		t.Fatal(err)
	}
	if len(dl) != 2 || dl[0].Reason != "not_json" || dl[0].Offset != 3 || dl[1].Reason != "bad_value" || dl[1].Field != "allowed_cidrs" || dl[1].Topic != topic {
		t.Errorf("dead letters %+v", dl)
	}
	for _, d := range dl {
		if !strings.Contains(d.Raw, "bk_live_Cons…0003") {
			t.Errorf("dead letter raw %q: want the key masked to its hint", d.Raw)
		}
	}
	// History: every applied event, in order, for analysts.
	var hist []struct {
		Type  string `ch:"type"`
		KeyID string `ch:"key_id"`
	}
	if err := conn.Select(ctx, &hist, "SELECT toString(type) AS type, key_id FROM "+db+".key_events WHERE key_id = 'key_A' ORDER BY ts, kafka_offset"); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, h := range hist {
		types = append(types, h.Type)
	}
	if strings.Join(types, ",") != "created,rotated,allowlist_changed,revoked" {
		t.Errorf("key_A history %v", types)
	}
	assertNoSecrets(t, conn, db, k1, k2, k4)
	if strings.Contains(dumpTables(t, conn, db), k3) {
		t.Fatal("the key of a rejected message was stored")
	}

	// Offsets were committed: a new consumer of the group applies only the
	// new event.
	testenv.Produce(t, brokers, topic, [][]byte{[]byte(`{"type":"updated","ts":"` + day(6) + `","key_id":"key_A","owner":"risk"}`)})
	st = consume(t, store, sink, brokers, topic, group, func() (bool, string) {
		n := events()
		return n >= 7, fmt.Sprintf("%d/7 key events", n)
	})
	if n := events(); n != 7 || st.Messages != 1 {
		t.Errorf("after restart: %d key events, %d messages read; want 7 and 1 (nothing redelivered)", n, st.Messages)
	}
	all, err = store.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range all {
		if k.ID == "key_A" && (k.Owner != "risk" || k.Status != keys.StatusRevoked) {
			t.Errorf("key_A after update: owner %s status %s", k.Owner, k.Status)
		}
	}
}

// TestConsumerMergesFingerprintEntry: a key first seen by fingerprint only
// (no registry id) is merged into its registry id when an event names both.
func TestConsumerMergesFingerprintEntry(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	store := keys.NewStore(conn, db)
	ctx := context.Background()
	const k = "bk_live_Adopt0000000000000000000000000001"
	fp := secret.Fingerprint(k)
	for _, raw := range []string{
		`{"type":"created","ts":"2026-11-01T00:00:00Z","api_key":"` + k + `","owner":"unknown"}`,
		`{"type":"updated","ts":"2026-11-02T00:00:00Z","key_id":"key_Z","api_key":"` + k + `","account_id":"acc_9"}`,
	} {
		ev, err := keys.DecodeEvent([]byte(raw), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Apply(ctx, ev); err != nil { // one call each: merging across writes
			t.Fatal(err)
		}
	}
	all, err := store.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].ID != "key_Z" || all[0].Fingerprint != fp || all[0].Owner != "unknown" || all[0].AccountID != "acc_9" {
		t.Fatalf("registry %+v; want only key_Z with the fingerprint entry's fields", all)
	}
	if n := testenv.Count(t, conn, "SELECT count() FROM (SELECT * FROM "+db+".keys FINAL) WHERE deleted = 1 AND key_id = ?", fp); n != 1 {
		t.Fatalf("fingerprint entry not withdrawn (%d tombstones)", n)
	}
}
