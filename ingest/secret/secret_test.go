package secret

import (
	"strings"
	"testing"
)

const liveKey = "bk_live_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"

func TestHint(t *testing.T) {
	tests := []struct {
		name, key, want string
	}{
		{"empty", "", ""},
		{"live key", liveKey, "bk_live_a1b2…o5p6"},
		{"test key", "bk_test_ZZZZ000011112222", "bk_test_ZZZZ…2222"},
		{"short body", "bk_live_abcdefghij", "bk_live_…ij"},
		{"tiny body", "bk_live_abc", "bk_live_…"},
		{"garbage long", "0123456789abcdefXYZ", "0123…fXYZ"},
		{"garbage short", "hunter2", "…"},
		{"already masked", "bk_live_****wxyz", "bk_live_…yz"},
		{"unicode", "ключключключключключ", "ключ…ключ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Hint(tt.key)
			if got != tt.want {
				t.Fatalf("Hint(%q) = %q, want %q", tt.key, got, tt.want)
			}
			if tt.key != "" && len(tt.key) >= 8 && got == tt.key {
				t.Fatalf("Hint returned the key itself")
			}
		})
	}
}

func TestFingerprintAndEnv(t *testing.T) {
	fp := Fingerprint(liveKey)
	if len(fp) != 16 || strings.Contains(liveKey, fp) {
		t.Fatalf("fingerprint %q: want 16 hex digits not taken from the key", fp)
	}
	if fp != Fingerprint(liveKey) || fp == Fingerprint(liveKey+"x") {
		t.Fatal("fingerprint not stable or not distinct")
	}
	if Fingerprint("") != "" {
		t.Fatal("empty key has a fingerprint")
	}
	for key, want := range map[string]string{liveKey: "live", "bk_test_x": "test", "sk_live_x": "", "": ""} {
		if got := Env(key); got != want {
			t.Errorf("Env(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct {
		name, in string
		mustNot  []string
		must     []string
	}{
		{"json field", `{"api_key":"` + liveKey + `","x":1`, []string{liveKey, "c3d4e5"}, []string{`"api_key":"bk_live_a1b2…o5p6"`}},
		{"garbage api_key value", `{"api_key": "supersecretvalue123456", "status": "x"}`, []string{"supersecretvalue123456"}, []string{`"api_key": "supe…3456"`}},
		{"key in free text", "oops " + liveKey + " in text", []string{liveKey}, []string{"bk_live_a1b2…o5p6"}},
		{"bearer", `Authorization: Bearer abcdefghijklmnopqrstuvwxyz`, []string{"abcdefghijklmnopqrstuvwxyz"}, []string{"Bearer abcd…wxyz"}},
		{"truncated json", `{"secret":"` + liveKey[:30], []string{liveKey[:30]}, nil},
		{"hint kept", "bk_live_a1b2…o5p6", nil, []string{"bk_live_a1b2…o5p6"}},
		{"no secrets", `{"path":"/v1/orders"}`, nil, []string{`{"path":"/v1/orders"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Redact(tt.in)
			for _, s := range tt.mustNot {
				if strings.Contains(got, s) {
					t.Errorf("Redact(%q) = %q still contains %q", tt.in, got, s)
				}
			}
			for _, s := range tt.must {
				if !strings.Contains(got, s) {
					t.Errorf("Redact(%q) = %q, want it to contain %q", tt.in, got, s)
				}
			}
		})
	}
}
