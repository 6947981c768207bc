package event

import (
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

const fullKey = "bk_live_Q7w8E9r0T1y2U3i4O5p6A7s8D9f0G1h2"

const good = `{"ts":"2026-11-27T11:59:58.250Z","request_id":"req_1","method":"post","path":"/v1/orders?symbol=AAPL",` +
	`"status":401,"error_code":"invalid_signature","client_ip":"::ffff:203.0.113.7","api_key":"` + fullKey + `",` +
	`"signed":true,"signature_ts":1795780498,"user_agent":"brokeret-go/1.4.0","latency_ms":12.5,"bytes_in":120,"bytes_out":80,` +
	`"account_id":"acc_9","unknown_field":{"nested":[1,2]}}`

func TestDecodeGood(t *testing.T) {
	d := NewDecoder(0, 0)
	r, err := d.Decode([]byte(good), now)
	if err != nil {
		t.Fatal(err)
	}
	want := Row{
		TS: time.Date(2026, 11, 27, 11, 59, 58, 250e6, time.UTC), RequestID: "req_1", Method: "POST", Path: "/v1/orders", Route: "/v1/orders",
		Status: 401, ErrorCode: "invalid_signature", ClientIP: "203.0.113.7", ClientNet: "203.0.113.0/24",
		KeySource: "fingerprint", KeyHint: "bk_live_Q7w8…G1h2", Env: "live", AuthMethod: "api_key", AccountID: "acc_9",
		Signed: true, UserAgent: "brokeret-go/1.4.0", LatencyMS: 12.5, BytesIn: 120, BytesOut: 80,
	}
	if r.KeyFP == "" || r.KeyID != r.KeyFP || len(r.KeyFP) != 16 {
		t.Fatalf("key identity: id %q fp %q", r.KeyID, r.KeyFP)
	}
	if r.SignatureTS == nil || *r.SignatureTS != 1795780498 || r.ClockOffsetS == nil || int64(*r.ClockOffsetS) != 1795780498-r.TS.Unix() {
		t.Fatalf("signature ts/offset: %v %v", r.SignatureTS, r.ClockOffsetS)
	}
	r.KeyID, r.KeyFP, r.SignatureTS, r.ClockOffsetS = "", "", nil, nil
	if r != want {
		t.Fatalf("row\n got %+v\nwant %+v", r, want)
	}
}

func TestDecodeVariants(t *testing.T) {
	base := func(extra string) string {
		return `{"request_id":"r","method":"GET","path":"/v1/x","status":200,"client_ip":"2001:db8:1:2::5"` + extra + `}`
	}
	tests := []struct {
		name  string
		in    string
		check func(t *testing.T, r Row)
	}{
		{"epoch ms", base(`,"ts":1795780800123`), func(t *testing.T, r Row) {
			if r.TS != time.UnixMilli(1795780800123).UTC() {
				t.Errorf("ts %v", r.TS)
			}
		}},
		{"no offset means UTC", base(`,"ts":"2026-11-27T10:00:00"`), func(t *testing.T, r Row) {
			if r.TS != time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC) {
				t.Errorf("ts %v", r.TS)
			}
		}},
		{"offset converted", base(`,"ts":"2026-11-27T11:00:00+01:00"`), func(t *testing.T, r Row) {
			if r.TS != time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC) {
				t.Errorf("ts %v", r.TS)
			}
		}},
		{"ipv6 network", base(`,"ts":"2026-11-27T10:00:00Z"`), func(t *testing.T, r Row) {
			if r.ClientNet != "2001:db8:1::/48" || r.ClientIP != "2001:db8:1:2::5" {
				t.Errorf("ip %q net %q", r.ClientIP, r.ClientNet)
			}
		}},
		{"key_id wins, env from prefix", base(`,"ts":"2026-11-27T10:00:00Z","key_id":"key_7","api_key":"bk_test_abcdefghijklmnopqrstuv"`), func(t *testing.T, r Row) {
			if r.KeyID != "key_7" || r.KeySource != "registry" || r.Env != "test" || r.KeyFP == "" {
				t.Errorf("%+v", r)
			}
		}},
		{"oauth inferred", base(`,"ts":"2026-11-27T10:00:00Z","oauth_client_id":"app_1"`), func(t *testing.T, r Row) {
			if r.AuthMethod != "oauth" || r.KeyID != "" {
				t.Errorf("%+v", r)
			}
		}},
		{"nulls are absent", base(`,"ts":"2026-11-27T10:00:00Z","signature_ts":null,"error_code":null,"latency_ms":null`), func(t *testing.T, r Row) {
			if r.SignatureTS != nil || r.ErrorCode != "" {
				t.Errorf("%+v", r)
			}
		}},
		{"ip with port", strings.Replace(base(`,"ts":"2026-11-27T10:00:00Z"`), `"2001:db8:1:2::5"`, `"198.51.100.4:4431"`, 1), func(t *testing.T, r Row) {
			if r.ClientIP != "198.51.100.4" {
				t.Errorf("ip %q", r.ClientIP)
			}
		}},
	}
	d := NewDecoder(0, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := d.Decode([]byte(tt.in), now)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, r)
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	set := func(field, value string) string {
		// replace or drop a field of the good event
		i := strings.Index(good, `"`+field+`":`)
		if i < 0 {
			t.Fatalf("no field %s", field)
		}
		j := i + len(field) + 3
		depth, inStr := 0, false
		for ; j < len(good); j++ {
			c := good[j]
			if inStr {
				if c == '\\' {
					j++
				} else if c == '"' {
					inStr = false
				}
				continue
			}
			if c == '"' {
				inStr = true
			} else if c == '{' || c == '[' {
				depth++
			} else if c == '}' || c == ']' {
				if depth == 0 {
					break
				}
				depth--
			} else if c == ',' && depth == 0 {
				break
			}
		}
		if value == "" {
			out := good[:i] + good[j:]
			out = strings.Replace(out, ",,", ",", 1)
			return strings.Replace(strings.Replace(out, "{,", "{", 1), ",}", "}", 1)
		}
		return good[:i] + `"` + field + `":` + value + good[j:]
	}
	tests := []struct {
		name   string
		in     string
		reason Reason
		field  string
	}{
		{"empty", ``, ReasonNotJSON, ""},
		{"not json", `GET /v1/orders 200`, ReasonNotJSON, ""},
		{"json array", `[1,2]`, ReasonNotJSON, ""},
		{"truncated", good[:60], ReasonNotJSON, ""},
		{"invalid utf8", "{\"request_id\":\"\xff\xfe\"}", ReasonInvalidUTF8, ""},
		{"too large", `{"x":"` + strings.Repeat("a", 2<<20) + `"}`, ReasonTooLarge, ""},
		{"missing ts", set("ts", ""), ReasonMissingField, "ts"},
		{"missing request_id", set("request_id", ""), ReasonMissingField, "request_id"},
		{"missing status", set("status", ""), ReasonMissingField, "status"},
		{"missing client_ip", set("client_ip", ""), ReasonMissingField, "client_ip"},
		{"status as string", set("status", `"401"`), ReasonWrongType, "status"},
		{"status float", set("status", `401.5`), ReasonWrongType, "status"},
		{"status out of range", set("status", `9000`), ReasonBadValue, "status"},
		{"signed as string", set("signed", `"yes"`), ReasonWrongType, "signed"},
		{"bytes negative", set("bytes_in", `-5`), ReasonWrongType, "bytes_in"},
		{"ts as object", set("ts", `{"a":1}`), ReasonWrongType, "ts"},
		{"ts garbage string", set("ts", `"yesterday"`), ReasonBadTimestamp, "ts"},
		{"ts in seconds", set("ts", `1795780800`), ReasonBadTimestamp, "ts"},
		{"ts year 1970", set("ts", `"1970-01-01T00:00:00Z"`), ReasonBadTimestamp, "ts"},
		{"ts far future", set("ts", `"2036-01-01T00:00:00Z"`), ReasonBadTimestamp, "ts"},
		{"bad ip", set("client_ip", `"999.1.1.1"`), ReasonBadValue, "client_ip"},
		{"bad method", set("method", `"GET /x"`), ReasonBadValue, "method"},
		{"bad env", set("api_key", `"x","env":"prod"`), ReasonBadValue, "env"},
		{"api_key as number", set("api_key", `12345`), ReasonWrongType, "api_key"},
	}
	d := NewDecoder(1<<20, 24*time.Hour)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.Decode([]byte(tt.in), now)
			if err == nil {
				t.Fatalf("accepted %q", tt.in)
			}
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("error %T %v is not *Error", err, err)
			}
			if e.Reason != tt.reason || e.Field != tt.field {
				t.Fatalf("got %s/%q (%v), want %s/%q", e.Reason, e.Field, e, tt.reason, tt.field)
			}
			if strings.Contains(e.Error(), fullKey) || strings.Contains(e.Error(), fullKey[8:20]) {
				t.Fatalf("error leaks the key: %v", e)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	d := NewDecoder(0, 0)
	raw := []byte(good)
	b.Run("owned", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.Decode(raw, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The ingester's path: the row borrows the scratch and is appended
	// (copied) into the batch's columns.
	b.Run("borrowed+append", func(b *testing.B) {
		var s Scratch
		var rows Rows
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			r, err := d.DecodeBorrowed(&s, raw, now)
			if err != nil {
				b.Fatal(err)
			}
			if rows.Len() == 10_000 {
				rows.Reset()
			}
			rows.Append(&r)
		}
	})
}
