package secret

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

var hex16 = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestFingerprinter(t *testing.T) {
	secretA := []byte("0123456789abcdef0123456789abcdef")
	secretB := []byte("fedcba9876543210fedcba9876543210")
	plain := Fingerprinter{}
	a, a2, b := NewFingerprinter(secretA), NewFingerprinter(append([]byte(nil), secretA...)), NewFingerprinter(secretB)

	if plain.Keyed() || !a.Keyed() || NewFingerprinter(nil).Keyed() {
		t.Fatal("Keyed: want false for the zero value and an empty secret, true with a secret")
	}
	if got := plain.Fingerprint(liveKey); got != Fingerprint(liveKey) {
		t.Fatalf("plain Fingerprinter %q differs from Fingerprint %q", got, Fingerprint(liveKey))
	}
	fa := a.Fingerprint(liveKey)
	if !hex16.MatchString(fa) {
		t.Fatalf("keyed fingerprint %q: want 16 lower-case hex digits", fa)
	}
	if fa == Fingerprint(liveKey) {
		t.Fatal("keyed fingerprint equals the plain one")
	}
	if fa != a.Fingerprint(liveKey) || fa != a2.Fingerprint(liveKey) {
		t.Fatal("keyed fingerprint not stable for the same secret")
	}
	if fa == b.Fingerprint(liveKey) {
		t.Fatal("two secrets give the same fingerprint")
	}
	if fa == a.Fingerprint(liveKey+"x") {
		t.Fatal("two keys give the same keyed fingerprint")
	}
	if a.Fingerprint("") != "" {
		t.Fatal("empty key has a keyed fingerprint")
	}
	// Known answer: HMAC-SHA256("0123…cdef" ×2, "hunter2"), first 8 bytes
	// (python3 -c 'import hmac,hashlib; print(hmac.new(b"0123456789abcdef"*2, b"hunter2", hashlib.sha256).hexdigest()[:16])').
	if got, want := a.Fingerprint("hunter2"), "3920d54ec70f500e"; got != want {
		t.Errorf("HMAC known answer: got %s, want %s", got, want)
	}
	if a.Check() == "" || a.Check() != a2.Check() || a.Check() == b.Check() || plain.Check() != "" {
		t.Fatalf("Check: %q %q %q %q", a.Check(), a2.Check(), b.Check(), plain.Check())
	}
	if strings.Contains(a.Check(), string(secretA[:4])) {
		t.Fatal("Check reveals the secret")
	}

	// The secret is copied: changing the caller's slice changes nothing.
	s := append([]byte(nil), secretA...)
	c := NewFingerprinter(s)
	s[0] = 'X'
	if c.Fingerprint(liveKey) != fa {
		t.Fatal("Fingerprinter depends on the caller's slice")
	}

	// Safe for concurrent use (run with -race).
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 200 {
				if got := a.Fingerprint(liveKey); got != fa {
					t.Errorf("goroutine %d: %s, want %s", i, got, fa)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestLoadFingerprintKey(t *testing.T) {
	const content = "k3y-0f-the-auditwatch-fingerprints-2026"
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name     string
		path     string
		want     string // key, when no error
		errPart  string
		warnPart string
	}{
		{"trimmed", write("ok", "  "+content+"\n", 0o400), content, "", ""},
		{"group readable warns", write("wide", content, 0o644), content, "", "readable by group or others"},
		{"owner only: no warning", write("tight", content+"\r\n", 0o600), content, "", ""},
		{"empty", write("empty", "", 0o600), "", "empty", ""},
		{"white space only", write("blank", " \n\t\n", 0o600), "", "empty", ""},
		{"too short", write("short", "hunter2\n", 0o600), "", "want at least 16", ""},
		{"missing", filepath.Join(dir, "nope"), "", "no such file", ""},
		{"directory", dir, "", "not a regular file", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, warn, err := LoadFingerprintKey(tt.path)
			if tt.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errPart) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.errPart)
				}
				if key != nil {
					t.Fatal("key returned with an error")
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatal("error quotes the file's content")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(key) != tt.want {
				t.Fatalf("key of %d bytes, want the trimmed content (%d bytes)", len(key), len(tt.want))
			}
			if (warn != "") != (tt.warnPart != "") || !strings.Contains(warn, tt.warnPart) {
				t.Fatalf("warning %q, want %q", warn, tt.warnPart)
			}
			if strings.Contains(warn, content) {
				t.Fatal("warning quotes the secret")
			}
		})
	}
}

func TestCredential(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" = not a credential
	}{
		{liveKey, liveKey},
		{"  " + liveKey + "\n", liveKey},
		{"bk_test_abcd", "bk_test_abcd"},
		{"bk_live_abc", ""},            // no body to speak of
		{"bk_live_a1b2…o5p6", ""},      // a hint
		{"key_01JSAQBFKGFCDXVKGX", ""}, // an id
		{"acc_" + liveKey, ""},         // mentions a key: masked, not replaced
		{"Bearer abcdefghijklmnop", "Bearer abcdefghijklmnop"},
		{"bearer\t" + liveKey, "bearer\t" + liveKey},
		{"Bearer ab", ""},
		{"Bearer two tokens", ""},
		{"Bearerabcdefgh", ""},
		{"my key " + liveKey, ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, ok := Credential(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("Credential(%q) = %q, %v; want %q", Hint(tt.in), Hint(got), ok, Hint(tt.want))
		}
	}
}

func TestMask(t *testing.T) {
	tests := []struct {
		name, in string
		mustNot  []string
		must     string
	}{
		{"plain text untouched", "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101", nil, "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101"},
		{"key in user agent", "brokeret-go/1.4 " + liveKey, []string{liveKey}, "brokeret-go/1.4 bk_live_a1b2…o5p6"},
		{"key in path segment", "/v1/keys/" + liveKey + "/usage", []string{liveKey}, "/v1/keys/bk_live_a1b2…o5p6/usage"},
		{"bearer any case", "curl BeArEr abcdefghijklmnopqrstuvwxyz", []string{"abcdefghijklmnopqrstuvwxyz"}, "curl BeArEr abcd…wxyz"},
		{"json credential field", `{"token":"abcdefghijklmnopqrst"}`, []string{"abcdefghijklmnopqrst"}, `{"token":"abcd…qrst"}`},
		{"hint kept", "bk_live_a1b2…o5p6", nil, "bk_live_a1b2…o5p6"},
		{"bearer word at the end", "a bearer", nil, "a bearer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Mask(tt.in)
			for _, s := range tt.mustNot {
				if strings.Contains(got, s) {
					t.Fatalf("Mask kept %q: %q", Hint(s), got)
				}
			}
			if got != tt.must {
				t.Fatalf("Mask(…) = %q, want %q", got, tt.must)
			}
			if got != Redact(tt.in) {
				t.Fatalf("Mask %q differs from Redact %q", got, Redact(tt.in))
			}
		})
	}
	ua := "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
	if n := testing.AllocsPerRun(100, func() { _ = Mask(ua) }); n != 0 {
		t.Errorf("Mask of ordinary text allocates %v times; the cheap check should return it as is", n)
	}
}

func TestRedactEscapedKey(t *testing.T) {
	// bk_live_… spelled with JSON escapes: \u005f is '_', \u0062 is 'b'.
	escaped := `{"user_agent":"\u0062k\u005flive_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6","x":"\u0022q\u0022"}`
	got := Redact(escaped)
	if strings.Contains(got, "a1b2c3d4e5f6g7h8i9j0") {
		t.Fatalf("escaped key kept: %s", got)
	}
	if !strings.Contains(got, `bk_live_a1b2…o5p6`) || !strings.Contains(got, `\u0022q\u0022`) {
		t.Fatalf("Redact(%s) = %s: want the key hinted and other escapes kept", escaped, got)
	}
}

func BenchmarkMask(b *testing.B) {
	for _, tt := range []struct{ name, s string }{
		{"sdk_user_agent", "brokeret-go/1.4.0"},
		{"browser_user_agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"},
		{"path", "/v1/accounts/acc_5lppzYo7Xuva/positions"},
		{"key_in_user_agent", "brokeret-go/1.4.0 " + liveKey},
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Mask(tt.s)
			}
		})
	}
}

// TestMaskerFor checks that the per-message shortcut masks every string
// decoded from a message exactly as Redact does.
func TestMaskerFor(t *testing.T) {
	msgs := []string{
		`{"user_agent":"brokeret-go/1.4.0","path":"/v1/orders"}`,
		`{"user_agent":"curl ` + liveKey + `","path":"/v1/keys/` + liveKey + `/usage"}`,
		`{"user_agent":"x Bearer abcdefghijklmnopqrstuvwxyz"}`,
		`{"origin":"BEARER   abcdefghijklmnop","error_code":"e"}`,
		`{"user_agent":"\"token\":\"abcdefghijklmnopqrst\""}`,
		`{"user_agent":"\u0062k\u005flive_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"}`,
		`{"user_agent":"a \\ b","key_id":"` + liveKey + `"}`,
		`{"api_key":"` + liveKey + `","user_agent":"brokeret-go/1.4"}`,
		`{"api_key":"` + liveKey + `","user_agent":"brokeret-go/1.4 ` + liveKey + `"}`,
	}
	for _, raw := range msgs {
		var fields map[string]string
		if err := json.Unmarshal([]byte(raw), &fields); err != nil {
			t.Fatal(err)
		}
		m := MaskerFor([]byte(raw))
		for name, v := range fields {
			if name == "api_key" {
				continue // never stored: the caller fingerprints it
			}
			if got, want := m.Mask(v), Redact(v); got != want {
				t.Errorf("%s of %s: Masker.Mask = %q, Redact = %q", name, Redact(raw), got, want)
			}
		}
	}
	for _, tt := range []struct {
		raw  string
		mode uint8
	}{
		{msgs[0], maskNothing},
		{`{"api_key":"` + liveKey + `","user_agent":"x"}`, maskNothing},
		{`{"api_key" :  "` + liveKey + `","unknown":{"api_key":"bk_test_abcd"}}`, maskNothing},
		{`{"API_KEY":"` + liveKey + `"}`, maskQuick}, // decoders may match names in any case
		{`{"x_api_key":"` + liveKey + `"}`, maskQuick},
		{`{"api_key":"` + liveKey + `","key_id":"` + liveKey + `"}`, maskQuick},
		{`{"api_key":"x` + liveKey + `"}`, maskQuick},
		{msgs[1], maskQuick},
		{msgs[2], maskThorough},
		{msgs[4], maskThorough},
	} {
		if got := MaskerFor([]byte(tt.raw)).mode; got != tt.mode {
			t.Errorf("MaskerFor(%s): mode %d, want %d", Redact(tt.raw), got, tt.mode)
		}
	}
}
