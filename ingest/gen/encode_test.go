package gen

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestAppendJSONRoundTrip(t *testing.T) {
	base := sampleEvent()
	with := func(f func(*Event)) Event {
		e := base
		f(&e)
		return e
	}
	tests := []struct {
		name string
		ev   Event
		// want is the event encoding/json should decode; zero means ev itself.
		want *Event
		// contains are fragments the JSON must hold; absent ones it must not.
		contains, absent []string
	}{
		{name: "full", ev: base, contains: []string{`{"ts":"2026-11-27T10:00:00.123Z","request_id":`, `"signed":true`, `"latency_ms":1.42`}},
		{name: "minimal omits optional fields",
			ev:       Event{TS: base.TS, RequestID: "r", Method: "GET", Path: "/v1/positions", Status: 200, ClientIP: "::1", AuthMethod: AuthNone},
			contains: []string{`"status":200`, `"signed":false`, `"latency_ms":0`, `"bytes_in":0`},
			absent:   []string{"error_code", "api_key", "key_id", "oauth_client_id", "env", "signature_ts", "user_agent", "origin", "account_id"}},
		{name: "escapes", ev: with(func(e *Event) { e.UserAgent = "a\"b\\c\nd\re\tf\x01g\x1f</script>" }),
			contains: []string{`"user_agent":"a\"b\\c\nd\re\tf\u0001g\u001f</script>"`}},
		{name: "unicode kept", ev: with(func(e *Event) { e.Origin = "https://bücher.example/€😀" }),
			contains: []string{`"origin":"https://bücher.example/€😀"`}},
		{name: "line separators escaped", ev: with(func(e *Event) { e.Path = "/a\u2028b\u2029c" }),
			contains: []string{`"path":"/a\u2028b\u2029c"`}},
		{name: "invalid utf8 replaced", ev: with(func(e *Event) { e.UserAgent = "x\xffy\xc3" }),
			want:     ptr(with(func(e *Event) { e.UserAgent = "x\ufffdy\ufffd" })),
			contains: []string{`"user_agent":"x\ufffdy\ufffd"`}},
		{name: "latency integer", ev: with(func(e *Event) { e.LatencyMS = 250 }), contains: []string{`"latency_ms":250,`}},
		{name: "latency one decimal", ev: with(func(e *Event) { e.LatencyMS = 0.5 }), contains: []string{`"latency_ms":0.5,`}},
		{name: "latency long fraction", ev: with(func(e *Event) { e.LatencyMS = 1.0 / 3 }), contains: []string{`"latency_ms":0.3333333333333333,`}},
		{name: "latency tiny", ev: with(func(e *Event) { e.LatencyMS = 1e-9 }), contains: []string{`"latency_ms":1e-09,`}},
		{name: "latency huge", ev: with(func(e *Event) { e.LatencyMS = 1e22 }), contains: []string{`"latency_ms":1e+22,`}},
		{name: "latency negative", ev: with(func(e *Event) { e.LatencyMS = -2.25 }), contains: []string{`"latency_ms":-2.25,`}},
		{name: "latency NaN written as 0", ev: with(func(e *Event) { e.LatencyMS = math.NaN() }),
			want: ptr(with(func(e *Event) { e.LatencyMS = 0 })), contains: []string{`"latency_ms":0,`}},
		{name: "ts truncated to millis", ev: with(func(e *Event) { e.TS = time.Date(2026, 1, 2, 3, 4, 5, 999999999, time.UTC) }),
			want:     ptr(with(func(e *Event) { e.TS = time.Date(2026, 1, 2, 3, 4, 5, 999e6, time.UTC) })),
			contains: []string{`"ts":"2026-01-02T03:04:05.999Z"`}},
		{name: "ts in another zone converted", ev: with(func(e *Event) { e.TS = time.Date(2026, 1, 1, 0, 30, 0, 0, time.FixedZone("X", 3600)) }),
			contains: []string{`"ts":"2025-12-31T23:30:00.000Z"`}},
		{name: "ts before 1970", ev: with(func(e *Event) { e.TS = time.Date(1969, 12, 31, 23, 59, 59, 1e6, time.UTC) }),
			contains: []string{`"ts":"1969-12-31T23:59:59.001Z"`}},
		{name: "negative numbers", ev: with(func(e *Event) { e.Status, e.BytesIn, e.SignatureTS = -1, -5, -7 }),
			contains: []string{`"status":-1`, `"bytes_in":-5`, `"signature_ts":-7`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tt.ev.AppendJSON([]byte("prefix"))
			if !bytes.HasPrefix(out, []byte("prefix")) {
				t.Fatalf("AppendJSON dropped the buffer's contents")
			}
			out = out[len("prefix"):]
			if !json.Valid(out) {
				t.Fatalf("invalid JSON: %s", out)
			}
			for _, s := range tt.contains {
				if !bytes.Contains(out, []byte(s)) {
					t.Errorf("missing %s in %s", s, out)
				}
			}
			for _, s := range tt.absent {
				if bytes.Contains(out, []byte(`"`+s+`"`)) {
					t.Errorf("field %s present in %s", s, out)
				}
			}
			var got Event
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			// encoding/json HTML-escapes what MarshalJSON returns, so
			// compare the decoder's view of it rather than its bytes.
			viaMarshal, err := json.Marshal(got)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			var fromMarshal Event
			if err := json.Unmarshal(viaMarshal, &fromMarshal); err != nil || !bytes.Equal(fromMarshal.AppendJSON(nil), got.AppendJSON(nil)) {
				t.Errorf("json.Marshal does not round-trip: %s (%v)", viaMarshal, err)
			}
			if again := got.AppendJSON(nil); !bytes.Equal(again, out) && tt.want == nil {
				t.Errorf("re-encoding differs:\n%s\n%s", out, again)
			}
			want := tt.ev
			if tt.want != nil {
				want = *tt.want
			}
			want.TS = want.TS.Truncate(time.Millisecond)
			if !got.TS.Equal(want.TS) {
				t.Errorf("ts = %v, want %v", got.TS, want.TS)
			}
			got.TS, want.TS = time.Time{}, time.Time{}
			if got != want {
				t.Errorf("decoded\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestAppendTimeMatchesFormat(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	lo := time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	hi := time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for range 200_000 {
		ts := time.UnixMilli(lo + r.Int64N(hi-lo))
		got := string(appendTime(nil, ts))
		if want := ts.UTC().Format("2006-01-02T15:04:05.000Z"); got != want {
			t.Fatalf("appendTime(%d) = %s, want %s", ts.UnixMilli(), got, want)
		}
	}
	if got := string(appendTime(nil, time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC))); !strings.HasPrefix(got, "12000-01-01T00:00:00.000") {
		t.Errorf("far future: %s", got)
	}
}

func TestAppendLatencyShortest(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200_000 {
		v := math.Round(r.Float64()*r.Float64()*1e6) / 100
		got := string(appendLatency(nil, v))
		var back float64
		if err := json.Unmarshal([]byte(got), &back); err != nil || back != v {
			t.Fatalf("appendLatency(%v) = %s, decodes to %v (%v)", v, got, back, err)
		}
		want, _ := json.Marshal(v)
		if got != string(want) {
			t.Fatalf("appendLatency(%v) = %s, encoding/json says %s", v, got, want)
		}
	}
}
