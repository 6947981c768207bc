package event

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/auditwatch/auditwatch/ingest/secret"
)

// stringFields are the JSON string fields of the event contract (every
// string of the wire struct), each of which the fuzz seeds fill with the key.
var stringFields = []string{"request_id", "method", "path", "error_code", "client_ip", "api_key", "key_id", "auth_method",
	"oauth_client_id", "env", "user_agent", "origin", "account_id"}

// FuzzDecode checks that Decode never panics, that every failure is an
// *Error with a known reason, that accepted rows satisfy the contract, and
// that no output — no field of an accepted row, no error message — ever
// contains the full key fed in, whichever field it was put in.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"ts":1795780800123,"request_id":"r","method":"GET","path":"/","status":200,"client_ip":"::1"}`))
	f.Add([]byte(`{"ts":"2026-11-27T10:00:00","request_id":"r","method":"GET","path":"/?a","status":599,"client_ip":"1.2.3.4:80","signature_ts":0}`))
	f.Add([]byte(`{"api_key":"` + fullKey + `"`))
	f.Add([]byte("\xff"))
	f.Add([]byte(`[]`))
	// The key in every string field, as the whole value and inside text.
	for _, field := range stringFields {
		for _, v := range []string{fullKey, "x/" + fullKey + "/y", "Bearer " + fullKey} {
			f.Add([]byte(strings.Replace(good, `"account_id":"acc_9"`, `"account_id":"acc_9","`+field+`":"`+v+`"`, 1)))
		}
	}
	f.Add([]byte(strings.Replace(good, `"user_agent":"brokeret-go/1.4.0"`, `"user_agent":"\u0062k\u005flive_Q7w8E9r0T1y2U3i4O5p6A7s8D9f0G1h2"`, 1)))
	d := NewDecoder(4096, time.Hour)
	d.MaxPast = 90 * 24 * time.Hour
	known := map[Reason]bool{}
	for _, r := range Reasons {
		known[r] = true
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := d.Decode(raw, now)
		if err != nil {
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			if !known[e.Reason] {
				t.Fatalf("unknown reason %q", e.Reason)
			}
			if strings.Contains(e.Error(), fullKey) {
				t.Fatalf("error of reason %s on field %q leaks the key (%s)", e.Reason, e.Field, secret.Hint(fullKey))
			}
			return
		}
		if r.RequestID == "" || r.Method == "" || r.Path == "" || r.ClientIP == "" {
			t.Fatalf("accepted row lacks a required field: %s", show(r))
		}
		if strings.ContainsAny(r.Path, "?#") || r.Status < 100 || r.Status > 599 {
			t.Fatalf("bad path or status: %s", show(r))
		}
		if r.TS.Before(minTS) || r.TS.After(now.Add(time.Hour)) || r.TS.Before(now.Add(-d.MaxPast)) {
			t.Fatalf("ts out of bounds: %v", r.TS)
		}
		for name, s := range rowStrings(r) {
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8 in %s: %q", name, secret.Redact(s))
			}
			if strings.Contains(s, fullKey) {
				t.Fatalf("row field %s holds the full key (%s)", name, secret.Hint(fullKey))
			}
		}
	})
}
