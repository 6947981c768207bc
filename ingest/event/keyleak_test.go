package event

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/ingest/secret"
)

// rowStrings returns every string field of r by name (reflection, so a
// field added to Row is checked too), with the pointers' values.
func rowStrings(r Row) map[string]string {
	out := map[string]string{}
	v := reflect.ValueOf(r)
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if f.Kind() == reflect.String {
			out[v.Type().Field(i).Name] = f.String()
		}
	}
	return out
}

// show prints r for a failure message with anything key-like masked: tests
// print hints, never keys.
func show(r Row) string { return secret.Redact(fmt.Sprintf("%+v", r)) }

// leaks returns the names of r's fields that contain s.
func leaks(r Row, s string) []string {
	var names []string
	for name, v := range rowStrings(r) {
		if strings.Contains(v, s) {
			names = append(names, name)
		}
	}
	return names
}

const otherKey = "bk_test_Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp"

// event returns a valid event with extra JSON fields appended.
func eventWith(extra string) string {
	return `{"ts":"2026-11-27T11:59:58Z","request_id":"req_k","method":"GET","path":"/v1/orders","status":401,"client_ip":"203.0.113.7"` + extra + `}`
}

func TestDecodeMasksKeysInEveryField(t *testing.T) {
	bearer := "Bearer Zq8Lm2Nv4Bx6Cz1Ak3Sj5Dh7Fg9"
	tests := []struct {
		name   string
		extra  string
		secret string // must appear in no field
		check  func(t *testing.T, r Row)
	}{
		{"api_key", `,"api_key":"` + fullKey + `"`, fullKey, nil},
		{"request_id", `,"request_id":"req-` + fullKey + `"`, fullKey, func(t *testing.T, r Row) {
			if r.RequestID != "req-bk_live_Q7w8…G1h2" {
				t.Errorf("request_id %q", r.RequestID)
			}
		}},
		{"path segment", `,"path":"/v1/keys/` + fullKey + `/usage"`, fullKey, func(t *testing.T, r Row) {
			if r.Path != "/v1/keys/bk_live_Q7w8…G1h2/usage" || r.Route != "/v1/keys/{id}/usage" {
				t.Errorf("path %q route %q", r.Path, r.Route)
			}
		}},
		{"query string", `,"path":"/v1/x?api_key=` + fullKey + `"`, fullKey, nil},
		{"error_code", `,"error_code":"` + fullKey + `"`, fullKey, nil},
		{"user_agent", `,"user_agent":"curl/8.5 ` + fullKey + `"`, fullKey, func(t *testing.T, r Row) {
			if r.UserAgent != "curl/8.5 bk_live_Q7w8…G1h2" {
				t.Errorf("user_agent %q", r.UserAgent)
			}
		}},
		{"user_agent bearer", `,"user_agent":"x ` + bearer + `"`, bearer[7:], nil},
		{"origin", `,"origin":"https://` + fullKey + `.example"`, fullKey, nil},
		{"key crossing the user_agent limit", `,"user_agent":"` + strings.Repeat("a", maxUserAgent-30) + fullKey + `"`, fullKey[:20], func(t *testing.T, r Row) {
			if len(r.UserAgent) > maxUserAgent {
				t.Errorf("user_agent of %d bytes", len(r.UserAgent))
			}
		}},
		{"escaped key", `,"user_agent":"\u0062k\u005flive_Q7w8E9r0T1y2U3i4O5p6A7s8D9f0G1h2"`, fullKey, nil},
		{"key_id is a key", `,"key_id":"` + fullKey + `"`, fullKey, func(t *testing.T, r Row) {
			fp := secret.Fingerprint(fullKey)
			if r.KeyID != fp || r.KeySource != "fingerprint" || r.KeyFP != fp || r.KeyHint != "bk_live_Q7w8…G1h2" || r.Env != "live" || r.AuthMethod != "api_key" {
				t.Errorf("want the key in key_id to be the presented key: %s", show(r))
			}
		}},
		{"key_id is the api_key", `,"api_key":"` + fullKey + `","key_id":" ` + fullKey + `"`, fullKey, func(t *testing.T, r Row) {
			if fp := secret.Fingerprint(fullKey); r.KeyID != fp || r.KeyFP != fp || r.KeySource != "fingerprint" {
				t.Errorf("%s", show(r))
			}
		}},
		{"key_id is another key", `,"api_key":"` + fullKey + `","key_id":"` + otherKey + `"`, otherKey, func(t *testing.T, r Row) {
			if r.KeyID != secret.Fingerprint(otherKey) || r.KeyFP != secret.Fingerprint(fullKey) || r.KeySource != "fingerprint" || r.Env != "live" {
				t.Errorf("want key_id = fingerprint of the key_id key, key_fingerprint of api_key: %s", show(r))
			}
			if len(leaks(r, fullKey)) > 0 {
				t.Errorf("api_key leaked: %v", leaks(r, fullKey))
			}
		}},
		{"key_id is a bearer value", `,"key_id":"` + bearer + `"`, bearer[7:], func(t *testing.T, r Row) {
			if r.KeyID != secret.Fingerprint(bearer) || r.KeyHint != secret.Hint(bearer) || r.Env != "" {
				t.Errorf("%s", show(r))
			}
		}},
		{"key_id mentions a key", `,"api_key":"` + otherKey + `","key_id":"key_7/` + fullKey + `"`, fullKey, func(t *testing.T, r Row) {
			if r.KeyID != "key_7/bk_live_Q7w8…G1h2" || r.KeySource != "registry" || r.KeyFP != secret.Fingerprint(otherKey) {
				t.Errorf("want a masked registry id: %s", show(r))
			}
		}},
		{"key_id is a hint", `,"key_id":"bk_live_Q7w8…G1h2"`, fullKey, func(t *testing.T, r Row) {
			if r.KeyID != "bk_live_Q7w8…G1h2" || r.KeySource != "registry" || r.KeyFP != "" {
				t.Errorf("a hint is no key: %s", show(r))
			}
		}},
		{"account_id is a key", `,"account_id":"` + fullKey + `"`, fullKey, func(t *testing.T, r Row) {
			fp := secret.Fingerprint(fullKey)
			if r.AccountID != "bk_live_Q7w8…G1h2" || r.KeyFP != fp || r.KeyID != fp || r.KeySource != "fingerprint" || r.Env != "live" {
				t.Errorf("want account_id = hint and the key presented: %s", show(r))
			}
		}},
		{"account_id is a key, api_key another", `,"api_key":"` + otherKey + `","account_id":"` + fullKey + `"`, fullKey, func(t *testing.T, r Row) {
			if r.AccountID != "bk_live_Q7w8…G1h2" || r.KeyFP != secret.Fingerprint(otherKey) || r.Env != "test" {
				t.Errorf("%s", show(r))
			}
		}},
		{"oauth_client_id is a key", `,"oauth_client_id":"` + fullKey + `"`, fullKey, func(t *testing.T, r Row) {
			if r.OAuthClientID != "bk_live_Q7w8…G1h2" || r.KeyFP != secret.Fingerprint(fullKey) || r.AuthMethod != "oauth" {
				t.Errorf("%s", show(r))
			}
		}},
		{"oauth_client_id mentions a key", `,"oauth_client_id":"app:` + fullKey + `"`, fullKey, func(t *testing.T, r Row) {
			if r.OAuthClientID != "app:bk_live_Q7w8…G1h2" || r.KeyFP != "" {
				t.Errorf("%s", show(r))
			}
		}},
		{"key_id wins over account_id", `,"key_id":"` + otherKey + `","account_id":"` + fullKey + `"`, fullKey, func(t *testing.T, r Row) {
			if r.KeyFP != secret.Fingerprint(otherKey) || r.KeyID != r.KeyFP || r.AccountID != "bk_live_Q7w8…G1h2" {
				t.Errorf("%s", show(r))
			}
		}},
	}
	d := NewDecoder(0, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := d.Decode([]byte(eventWith(tt.extra)), now)
			if err != nil {
				t.Fatal(err)
			}
			if l := leaks(r, tt.secret); len(l) > 0 {
				t.Fatalf("fields %v hold the secret %s", l, secret.Hint(tt.secret))
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestDecodeIdentifiersUntouched(t *testing.T) {
	// Ordinary values pass through unchanged (and without a regex: see
	// BenchmarkDecode).
	r, err := NewDecoder(0, 0).Decode([]byte(eventWith(`,"key_id":"key_01JSAQBFKGFCDXVKGX04VC81C7","account_id":"acc_5lppzYo7Xuva","oauth_client_id":"app_9","user_agent":"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0","origin":"https://app.example.com","error_code":"ip_not_whitelisted"`)), now)
	if err != nil {
		t.Fatal(err)
	}
	if r.KeyID != "key_01JSAQBFKGFCDXVKGX04VC81C7" || r.KeySource != "registry" || r.AccountID != "acc_5lppzYo7Xuva" || r.OAuthClientID != "app_9" ||
		r.UserAgent != "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0" || r.Origin != "https://app.example.com" || r.ErrorCode != "ip_not_whitelisted" {
		t.Fatalf("%s", show(r))
	}
}

func TestDecodeMaxPast(t *testing.T) {
	d := NewDecoder(0, 0)
	d.MaxPast = 90 * 24 * time.Hour
	tests := []struct {
		name string
		ts   time.Time
		ok   bool
	}{
		{"recent", now.Add(-time.Hour), true},
		{"just inside", now.Add(-d.MaxPast + time.Second), true},
		{"just outside", now.Add(-d.MaxPast - time.Second), false},
		{"a year old", now.AddDate(-1, 0, 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := strings.Replace(eventWith(`,"api_key":"`+fullKey+`"`), "2026-11-27T11:59:58Z", tt.ts.Format(time.RFC3339), 1)
			_, err := d.Decode([]byte(raw), now)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			e, ok := err.(*Error)
			if !ok || e.Reason != ReasonTooOld || e.Field != "ts" {
				t.Fatalf("got %v, want too_old on ts", err)
			}
			if !strings.Contains(e.Error(), "2160h0m0s in the past") || strings.Contains(e.Error(), fullKey) {
				t.Fatalf("message %q", e.Error())
			}
		})
	}
	// Without MaxPast only the year-2000 floor applies.
	if _, err := NewDecoder(0, 0).Decode([]byte(strings.Replace(eventWith(""), "2026-11-27", "2016-11-27", 1)), now); err != nil {
		t.Fatalf("MaxPast 0 rejected an old event: %v", err)
	}
}

func TestDecodeKeyedFingerprint(t *testing.T) {
	secretKey := []byte("an-auditwatch-fingerprint-secret-0001")
	keyed := NewDecoder(0, 0)
	keyed.FingerprintKey = secretKey
	plain := NewDecoder(0, 0)
	fpr := secret.NewFingerprinter(secretKey)
	for _, tt := range []struct{ name, extra string }{
		{"api_key", `,"api_key":"` + fullKey + `"`},
		{"key_id is the key", `,"key_id":"` + fullKey + `"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rk, err := keyed.Decode([]byte(eventWith(tt.extra)), now)
			if err != nil {
				t.Fatal(err)
			}
			rp, err := plain.Decode([]byte(eventWith(tt.extra)), now)
			if err != nil {
				t.Fatal(err)
			}
			if rk.KeyFP != fpr.Fingerprint(fullKey) || rk.KeyID != rk.KeyFP {
				t.Fatalf("keyed decoder: fp %q id %q, want the HMAC fingerprint %q", rk.KeyFP, rk.KeyID, fpr.Fingerprint(fullKey))
			}
			if rp.KeyFP != secret.Fingerprint(fullKey) || rk.KeyFP == rp.KeyFP {
				t.Fatalf("plain %q, keyed %q: want SHA-256 without a secret and a different value with one", rp.KeyFP, rk.KeyFP)
			}
			if rk.KeyHint != rp.KeyHint {
				t.Fatalf("hints differ: %q %q", rk.KeyHint, rp.KeyHint)
			}
		})
	}
}
