package event

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDecode checks that Decode never panics, that every failure is an
// *Error with a known reason, that accepted rows satisfy the contract, and
// that no output ever contains the full key fed in.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"ts":1795780800123,"request_id":"r","method":"GET","path":"/","status":200,"client_ip":"::1"}`))
	f.Add([]byte(`{"ts":"2026-11-27T10:00:00","request_id":"r","method":"GET","path":"/?a","status":599,"client_ip":"1.2.3.4:80","signature_ts":0}`))
	f.Add([]byte(`{"api_key":"` + fullKey + `"`))
	f.Add([]byte("\xff"))
	f.Add([]byte(`[]`))
	d := NewDecoder(4096, time.Hour)
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
				t.Fatalf("error leaks key: %v", e)
			}
			return
		}
		if r.RequestID == "" || r.Method == "" || r.Path == "" || r.ClientIP == "" {
			t.Fatalf("accepted row lacks a required field: %+v", r)
		}
		if strings.ContainsAny(r.Path, "?#") || r.Status < 100 || r.Status > 599 {
			t.Fatalf("bad path or status: %+v", r)
		}
		if r.TS.Before(minTS) || r.TS.After(now.Add(time.Hour)) {
			t.Fatalf("ts out of bounds: %v", r.TS)
		}
		for _, s := range []string{r.Path, r.UserAgent, r.Origin, r.ErrorCode, r.KeyHint} {
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8 in %q", s)
			}
		}
		if strings.Contains(r.KeyHint, fullKey) || strings.Contains(r.KeyID, fullKey) {
			t.Fatalf("row holds the full key: %+v", r)
		}
	})
}
