package chsink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/ingest/chsink"
	"github.com/auditwatch/auditwatch/ingest/event"
	"github.com/auditwatch/auditwatch/ingest/gen"
)

// generated decodes n generated events into rows, numbering their offsets
// 0..n-1.
func generated(tb testing.TB, n int) *event.Rows {
	tb.Helper()
	g, err := gen.New(gen.Config{Seed: 5, Start: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), Duration: 24 * time.Hour, Events: n})
	if err != nil {
		tb.Fatal(err)
	}
	dec := event.NewDecoder(0, 1000*time.Hour)
	rows := &event.Rows{}
	var buf []byte
	if err := g.Run(context.Background(), func(e gen.Event) error {
		buf = e.AppendJSON(buf[:0])
		r, err := dec.Decode(buf, time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC))
		if err != nil {
			return err
		}
		r.KafkaPartition, r.KafkaOffset = 3, int64(rows.Len())
		rows.Append(&r)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return rows
}

// TestWriteInBlocks writes a batch larger than a block (so it goes as
// several blocks of one INSERT) and reads every column of every row back:
// nothing is lost, repeated or shifted between blocks, and the server still
// writes one part per day, as for a single block.
func TestWriteInBlocks(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	ctx := context.Background()
	n := 2*chsink.BlockRows + chsink.BlockRows/2 + 7
	rows := generated(t, n)
	days := map[string]bool{}
	var signed int
	for i := range n {
		days[rows.TS(i).Format("20060102")] = true
		if rows.HasSignatureTS[i] {
			signed++
		}
	}
	if signed == 0 || signed == n {
		t.Fatalf("the generated rows need signature timestamps both set and not set (%d of %d set)", signed, n)
	}
	if err := chsink.New(conn, db).Write(ctx, rows, nil); err != nil {
		t.Fatal(err)
	}
	if parts := testenv.Count(t, conn, "SELECT count() FROM system.parts WHERE database = ? AND table = 'access_log' AND active", db); parts != uint64(len(days)) {
		t.Errorf("%d parts for %d days: the blocks of one insert were not written together", parts, len(days))
	}
	r, err := conn.Query(ctx, fmt.Sprintf(`SELECT toUnixTimestamp(ts) * 1000 + ts_ms, request_id, method, path, route, status, error_code,
client_ip, client_net, key_id, key_id_source, key_fingerprint, key_hint, env, auth_method, oauth_client_id, account_id,
signed, signature_ts, clock_offset_s, user_agent, origin, latency_ms, bytes_in, bytes_out, kafka_partition, kafka_offset
FROM %s.access_log ORDER BY kafka_offset`, db))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := 0
	for r.Next() {
		var (
			ms                                                           uint64
			g                                                            event.Row
			signedByte                                                   uint8
			env, authMethod, method, errorCode, keySource, route, origin string
		)
		if err := r.Scan(&ms, &g.RequestID, &method, &g.Path, &route, &g.Status, &errorCode, &g.ClientIP, &g.ClientNet,
			&g.KeyID, &keySource, &g.KeyFP, &g.KeyHint, &env, &authMethod, &g.OAuthClientID, &g.AccountID,
			&signedByte, &g.SignatureTS, &g.ClockOffsetS, &g.UserAgent, &origin, &g.LatencyMS, &g.BytesIn, &g.BytesOut,
			&g.KafkaPartition, &g.KafkaOffset); err != nil {
			t.Fatal(err)
		}
		g.TS = time.UnixMilli(int64(ms)).UTC()
		g.Method, g.ErrorCode, g.KeySource, g.Env, g.AuthMethod, g.Route, g.Origin = method, errorCode, keySource, env, authMethod, route, origin
		g.Signed = signedByte == 1
		if g.KafkaOffset != int64(got) {
			t.Fatalf("row %d has offset %d", got, g.KafkaOffset)
		}
		want := rows.Row(got)
		if !equalPtr(g.SignatureTS, want.SignatureTS) || !equalPtr(g.ClockOffsetS, want.ClockOffsetS) {
			t.Fatalf("row %d: signature_ts, clock_offset_s %s, %s; want %s, %s", got,
				str(g.SignatureTS), str(g.ClockOffsetS), str(want.SignatureTS), str(want.ClockOffsetS))
		}
		g.SignatureTS, g.ClockOffsetS, want.SignatureTS, want.ClockOffsetS = nil, nil, nil, nil
		if g != want {
			t.Fatalf("row %d:\n got %+v\nwant %+v", got, g, want)
		}
		got++
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("read back %d rows, wrote %d", got, n)
	}
}

func str[T any](p *T) string {
	if p == nil {
		return "NULL"
	}
	return fmt.Sprint(*p)
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
