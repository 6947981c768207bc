package event

import (
	"strings"
	"testing"
)

// BenchmarkDecodeEvents decodes typical and key-bearing events: the cost of
// masking every free-text field (a cheap check, then the regular
// expressions only when a field may hold a key) and of keyed fingerprints.
func BenchmarkDecodeEvents(b *testing.B) {
	browser := `{"ts":"2026-11-27T11:59:58.250Z","request_id":"req_01JSAQBFKGFCDXVKGX04VC81C7","method":"GET","path":"/v1/accounts/acc_5lppzYo7Xuva/positions?limit=50",` +
		`"status":200,"client_ip":"198.51.100.23","api_key":"` + fullKey + `","key_id":"key_01JSAQBFKGFCDXVKGX04VC81C7","signed":true,"signature_ts":1795780498,` +
		`"user_agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",` +
		`"origin":"https://dashboard.brokeret.example","latency_ms":8.25,"bytes_in":0,"bytes_out":5120,"account_id":"acc_5lppzYo7Xuva"}`
	tests := []struct {
		name, raw string
		fpKey     []byte
	}{
		{"sdk", good, nil},
		{"browser", browser, nil},
		{"key_in_user_agent", strings.Replace(good, `"brokeret-go/1.4.0"`, `"brokeret-go/1.4.0 `+fullKey+`"`, 1), nil},
		{"key_as_key_id", strings.Replace(good, `"api_key":`, `"key_id":`, 1), nil},
		{"sdk_keyed_fingerprint", good, []byte("an-auditwatch-fingerprint-secret-0001")},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			d := NewDecoder(0, 0)
			d.FingerprintKey = tt.fpKey
			raw := []byte(tt.raw)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Decode(raw, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
