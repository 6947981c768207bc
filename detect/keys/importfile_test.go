package keys

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// secretMarker is in every full key of the bad test files; no error may
// contain it.
const secretMarker = "Secret0000"

func TestParseGoodFiles(t *testing.T) {
	// Both files describe the same four keys.
	want := []string{
		`{"id":"key_01ALPHA","fingerprint":"dd32c318d1685611","hint":"bk_live_Alph…0001","env":"live","account_id":"acc_1","owner":"quant-desk","status":"active","created_at":"2025-01-10T08:00:00Z","rotated_at":"2026-10-01T10:00:00Z","expires_at":"2027-01-10T00:00:00Z","last_used_at":"2026-11-26T23:00:00Z","allowed_cidrs":["192.0.2.7/32","198.51.100.0/24","2001:db8:10::/48"]}`,
		`{"id":"key_01BRAVO","fingerprint":"0123456789abcdef","hint":"bk_test_Brav…0002","env":"test","account_id":"acc_2","owner":"sandbox","status":"active","created_at":"2025-06-01T00:00:00Z","allowed_cidrs":[]}`,
		`{"id":"696ed30220e5291a","fingerprint":"696ed30220e5291a","hint":"bk_live_Char…0003","env":"live","account_id":"acc_1","owner":"legacy","status":"revoked","created_at":"2024-01-01T00:00:00Z","allowed_cidrs":[]}`,
		`{"id":"key_01DELTA","fingerprint":"fedcba9876543210","env":"live","account_id":"acc_3","owner":"treasury","status":"expired","created_at":"2024-03-01T09:30:00Z","expires_at":"2025-03-01T00:00:00Z","allowed_cidrs":["10.0.0.0/8","172.16.0.0/12"]}`,
	}
	for _, file := range []string{"testdata/good.yaml", "testdata/good.csv"} {
		t.Run(file, func(t *testing.T) {
			ks, err := ParseFile(file, "")
			if err != nil {
				t.Fatalf("ParseFile: %v", err)
			}
			if len(ks) != len(want) {
				t.Fatalf("%d keys, want %d", len(ks), len(want))
			}
			for i, k := range ks {
				b, _ := json.Marshal(k)
				if string(b) != want[i] {
					t.Errorf("key %d:\n got %s\nwant %s", i, b, want[i])
				}
				if strings.Contains(string(b), "Alpha0000") || strings.Contains(string(b), "Charlie0000") {
					t.Errorf("key %d holds the full key: %s", i, b)
				}
			}
		})
	}
}

func TestParseBadFiles(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"testdata/bad.yaml", []string{
			`testdata/bad.yaml:5:5: key "key_01ALPHA": unknown field "colour" (want one of id, api_key, fingerprint, hint, env, account_id, owner, status, created_at, rotated_at, expires_at, last_used_at, allowed_cidrs)`,
			`testdata/bad.yaml:6:21: key "key_01ALPHA": allowed_cidrs: "10.0.0.0/33" is not a CIDR or IP address`,
			`testdata/bad.yaml:8:10: key "key_01BRAVO": env: want live or test, got "prod"`,
			`testdata/bad.yaml:9:13: key "key_01BRAVO": status: want active, revoked or expired, got "paused"`,
			`testdata/bad.yaml:10:17: key "key_01BRAVO": created_at: "10/01/2025" is not an RFC 3339 time, a date (2006-01-02) or epoch seconds`,
			`testdata/bad.yaml:11:5: key #3: env: required (live or test): no bk_live_/bk_test_ key prefix to derive it from`,
			`testdata/bad.yaml:11:5: key #3: id, api_key or fingerprint required`,
			`testdata/bad.yaml:13:5: key "key_01ALPHA": duplicate key (also at line 2)`,
			`testdata/bad.yaml:18:10: key "key_01ECHO": env: test contradicts the key prefix (live)`,
			`testdata/bad.yaml:19:18: key "key_01ECHO": fingerprint: does not match api_key bk_live_Secr…0002`,
			`testdata/bad.yaml:21:9: key #6: id: contains something that looks like an API key`,
			`testdata/bad.yaml:25:11: key "key_01FOXTROT": hint: looks like a full key, not a masked hint; give the key as api_key instead`,
			`testdata/bad.yaml:27:17: key "key_01FOXTROT": expires_at: 2300-01-01 is out of range (1970 to 2106)`,
			`testdata/bad.yaml:28:17: key "key_01FOXTROT": rotated_at: want a single value`,
		}},
		{"testdata/bad.csv", []string{
			`testdata/bad.csv:2: key "key_01ALPHA": allowed_cidrs: "10.0.0.0/33" is not a CIDR or IP address`,
			`testdata/bad.csv:3: key "key_01BRAVO": env: want live or test, got "prod"`,
			`testdata/bad.csv:3: key "key_01BRAVO": status: want active, revoked or expired, got "paused"`,
			`testdata/bad.csv:3: key "key_01BRAVO": created_at: "10/01/2025" is not an RFC 3339 time, a date (2006-01-02) or epoch seconds`,
			`testdata/bad.csv:4: key #3: id, api_key or fingerprint required`,
			`testdata/bad.csv:5: key "key_01CHARLIE": 4 fields, the header has 6`,
			`testdata/bad.csv:6: key "key_01ALPHA": duplicate key (also at line 2)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ks, err := ParseFile(tt.file, "")
			if ks != nil {
				t.Errorf("ParseFile returned %d keys with errors; want none (all or nothing)", len(ks))
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("ParseFile error %v (%T), want an ErrorList", err, err)
			}
			got := strings.Split(list.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if strings.Contains(err.Error(), secretMarker) {
				t.Errorf("an error quotes a full key:\n%s", err)
			}
		})
	}
}

func TestParseStructure(t *testing.T) {
	tests := []struct {
		name, format, data string
		want               string // substring of the error; "" = no error
		n                  int    // keys on success
	}{
		{"empty yaml", "yaml", "", "empty file", 0},
		{"scalar document", "yaml", "just text\n", "1:1: want a list of keys, or a mapping with a keys list", 0},
		{"bare list of non-mappings", "yaml", "- a\n- b\n", "1:3: key #1: want a mapping of fields", 0},
		{"unknown top-level field", "yaml", "keys: []\nversion: 2\n", `2:1: unknown field "version" (want keys)`, 0},
		{"keys not a list", "yaml", "keys: {id: x}\n", "1:7: keys: want a list of keys", 0},
		{"entry not a mapping", "yaml", "keys:\n  - just-a-string\n", "2:5: key #1: want a mapping of fields", 0},
		{"syntax error has a line", "yaml", "keys:\n  - id: a\n   bad: [\n", "x.yaml:", 0},
		{"duplicate field", "yaml", "keys:\n  - {id: a, env: live, created_at: 2025-01-01, env: test}\n", "field env given twice (first at line 2)", 0},
		{"empty keys list", "yaml", "keys: []\n", "", 0},
		{"null keys", "yaml", "keys:\n", "", 0},
		{"JSON is YAML", "yaml", `{"keys":[{"id":"a","env":"live","created_at":"2025-01-01"}]}`, "", 1},
		{"alias", "yaml", "keys:\n  - &a {id: a, env: live, created_at: 2025-01-01, allowed_cidrs: [10.0.0.1]}\n  - {id: b, env: live, created_at: 2025-01-01}\n", "", 2},
		{"masked api_key", "yaml", "keys:\n  - {id: a, api_key: bk_live_abcd…wxyz, created_at: 2025-01-01}\n", "api_key: is masked", 0},
		{"same key twice", "yaml", "keys:\n  - {id: a, fingerprint: 0123456789abcdef, env: live, created_at: 2025-01-01}\n  - {id: b, fingerprint: 0123456789abcdef, env: live, created_at: 2025-01-01}\n", `same API key (fingerprint 0123456789abcdef) as key "a"`, 0},
		{"bad fingerprint", "yaml", "keys:\n  - {id: a, fingerprint: xyz, env: live, created_at: 2025-01-01}\n", "2:26: key \"a\": fingerprint: want 16 hex digits", 0},
		{"empty csv", "csv", "", "empty file", 0},
		{"unknown csv column", "csv", "id,colour\n", `x.csv:1: unknown column "colour"`, 0},
		{"duplicate csv column", "csv", "id,env,ENV\n", "x.csv:1: column env given twice", 0},
		{"csv header only", "csv", "\xef\xbb\xbfid,env,created_at\n", "", 0},
		{"csv quote error", "csv", "id,env,created_at\na,live,\"2025\n", "x.csv:", 0},
		{"csv multi-line field keeps line numbers", "csv", "id,owner,env,created_at\na,\"two\nlines\",live,2025-01-01\nb,x,prod,2025-01-01\n", "x.csv:4: key \"b\": env", 0},
		{"unknown format", "toml", "", "want yaml or csv", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "x." + tt.format
			ks, err := Parse(name, []byte(tt.data), tt.format)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if len(ks) != tt.n {
					t.Fatalf("%d keys, want %d", len(ks), tt.n)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseFileFormat(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/registry.txt"
	if err := os.WriteFile(path, []byte("id,env,created_at\na,live,2025-01-01\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFile(path, ""); err == nil || !strings.Contains(err.Error(), "cannot tell the format") {
		t.Fatalf("ParseFile without format: %v", err)
	}
	if ks, err := ParseFile(path, FormatCSV); err != nil || len(ks) != 1 {
		t.Fatalf("ParseFile csv: %v, %d keys", err, len(ks))
	}
}
