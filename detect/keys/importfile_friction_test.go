package keys

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// TestParseBareList checks that a top-level list of keys (YAML or JSON) reads
// exactly like the same list under "keys:".
func TestParseBareList(t *testing.T) {
	wrapped, err := ParseFile("testdata/good.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(wrapped)
	data, err := os.ReadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The same entries, unindented from under "keys:".
	var bare []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "#") || line == "keys:" {
			continue
		}
		bare = append(bare, strings.TrimPrefix(line, "  "))
	}
	ks, err := Parse("bare.yaml", []byte(strings.Join(bare, "\n")), FormatYAML)
	if err != nil {
		t.Fatalf("bare YAML list: %v", err)
	}
	if got, _ := json.Marshal(ks); string(got) != string(want) {
		t.Errorf("bare YAML list:\n got %s\nwant %s", got, want)
	}

	tests := []struct {
		name, data string
		n          int
		err        string // substring of the error; "" = none
	}{
		{"JSON list", `[{"id":"a","env":"live","created_at":"2025-01-01"},{"id":"b","env":"test","created_at":1736496000}]`, 2, ""},
		{"JSON wrapped", `{"keys":[{"id":"a","env":"live","created_at":"2025-01-01"}]}`, 1, ""},
		{"YAML flow list", "[{id: a, env: live, created_at: 2025-01-01}]\n", 1, ""},
		{"empty list", "[]\n", 0, ""},
		{"entry errors keep positions", "- id: a\n  env: live\n  created_at: 2025-01-01\n- id: b\n  env: prod\n  created_at: 2025-01-01\n", 0,
			`x.yaml:5:8: key "b": env: want live or test, got "prod"`},
		{"unknown field in a bare entry", "- {id: a, env: live, created_at: 2025-01-01, colour: red}\n", 0, `x.yaml:1:46: key "a": unknown field "colour"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, err := Parse("x.yaml", []byte(tt.data), FormatYAML)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || len(ks) != tt.n {
				t.Fatalf("%d keys, %v; want %d", len(ks), err, tt.n)
			}
		})
	}
}

// TestParseEpochSeconds checks epoch seconds in every time field, as YAML
// integers, quoted strings and CSV cells, and the numbers rejected.
func TestParseEpochSeconds(t *testing.T) {
	const sec = 1736496000 // 2025-01-10T08:00:00Z
	want := time.Unix(sec, 0).UTC()
	for _, field := range []string{"created_at", "rotated_at", "expires_at", "last_used_at"} {
		tests := []struct {
			name, format, data string
		}{
			{"yaml integer", FormatYAML, "- {id: a, env: live, created_at: 2025-01-01, " + field + ": 1736496000}\n"},
			{"yaml string", FormatYAML, "- {id: a, env: live, created_at: 2025-01-01, " + field + ": \"1736496000\"}\n"},
			{"yaml fraction", FormatYAML, "- {id: a, env: live, created_at: 2025-01-01, " + field + ": 1736496000.75}\n"},
			{"json number", FormatYAML, `[{"id":"a","env":"live","created_at":"2025-01-01","` + field + `":1736496000}]`},
			{"csv cell", FormatCSV, "id,env,created_at," + field + "\na,live,2025-01-01, 1736496000\n"},
		}
		if field == "created_at" {
			for i := range tests {
				tests[i].data = strings.Replace(tests[i].data, "created_at: 2025-01-01, ", "", 1)
				tests[i].data = strings.Replace(tests[i].data, `"created_at":"2025-01-01",`, "", 1)
				tests[i].data = strings.Replace(tests[i].data, "created_at,created_at", "created_at", 1)
				tests[i].data = strings.Replace(tests[i].data, "2025-01-01, ", "", 1)
			}
		}
		for _, tt := range tests {
			t.Run(field+"/"+tt.name, func(t *testing.T) {
				ks, err := Parse("x."+tt.format, []byte(tt.data), tt.format)
				if err != nil || len(ks) != 1 {
					t.Fatalf("Parse(%q): %d keys, %v", tt.data, len(ks), err)
				}
				k := ks[0]
				got := map[string]*time.Time{"created_at": &k.CreatedAt, "rotated_at": k.RotatedAt, "expires_at": k.ExpiresAt, "last_used_at": k.LastUsedAt}[field]
				if got == nil || !got.Equal(want) || got.Location() != time.UTC {
					t.Errorf("%s = %v, want %v", field, got, want)
				}
			})
		}
	}
	bad := []struct {
		name, value, err string
	}{
		{"zero", "0", `expires_at: 0 as epoch seconds is before 2000`},
		{"date as digits", "20250110", `expires_at: 20250110 as epoch seconds is before 2000`},
		{"milliseconds", "1736496000000", "expires_at: 1736496000000 looks like epoch milliseconds"},
		{"past 2106", "5000000000", "expires_at: 5000000000 is out of range (1970 to 2106)"},
		{"huge", "99999999999999999999999", "expires_at: 99999999999999999999999 is out of range (1970 to 2106)"},
		{"negative", "-5", `expires_at: "-5" is not an RFC 3339 time, a date (2006-01-02) or epoch seconds`},
		{"exponent", "1.7e9", `expires_at: "1.7e9" is not an RFC 3339 time`},
		{"RFC 3339 out of range still says so", "2300-01-01", "expires_at: 2300-01-01 is out of range (1970 to 2106)"},
	}
	for _, tt := range bad {
		t.Run("bad/"+tt.name, func(t *testing.T) {
			data := "- {id: a, env: live, created_at: 2025-01-01, expires_at: \"" + tt.value + "\"}\n"
			_, err := Parse("x.yaml", []byte(data), FormatYAML)
			if err == nil || !strings.Contains(err.Error(), `x.yaml:1:58: key "a": `+tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
}

// TestParseWarnings checks that a rotated_at before created_at is a warning
// with its place and the key's id (never the key), not an error.
func TestParseWarnings(t *testing.T) {
	const apiKey = "bk_live_Warn" + secretMarker + "000000000000000009"
	tests := []struct {
		name, format, data string
		keys               int
		warns              []string
		errs               string // substring of the error; "" = none
	}{
		{"rotated before created", FormatYAML, "keys:\n  - id: key_01A\n    env: live\n    created_at: 2025-06-01\n    rotated_at: 2025-01-01T10:00:00Z\n", 1,
			[]string{`x.yaml:5:17: key "key_01A": rotated_at 2025-01-01T10:00:00Z is before created_at 2025-06-01T00:00:00Z; the key's rotation age counts from created_at`}, ""},
		{"named by fingerprint, not by key", FormatYAML, "- api_key: " + apiKey + "\n  created_at: 1748736000\n  rotated_at: 1735725600\n", 1,
			[]string{`x.yaml:3:15: key "` + "%FP%" + `": rotated_at 2025-01-01T10:00:00Z is before created_at 2025-06-01T00:00:00Z`}, ""},
		{"csv line", FormatCSV, "id,env,created_at,rotated_at\nkey_01A,live,2025-06-01,2025-06-02\nkey_01B,live,2025-06-01,2025-05-31\n", 2,
			[]string{`x.csv:3: key "key_01B": rotated_at 2025-05-31T00:00:00Z is before created_at 2025-06-01T00:00:00Z`}, ""},
		{"same time is fine", FormatYAML, "- {id: a, env: live, created_at: 2025-06-01, rotated_at: 2025-06-01T00:00:00Z}\n", 1, nil, ""},
		{"in file order", FormatYAML, "- {id: b, env: live, created_at: 2025-06-01, rotated_at: 2025-01-01}\n- {id: a, env: live, created_at: 2025-06-01, rotated_at: 2025-01-01}\n", 2,
			[]string{`x.yaml:1:58: key "b"`, `x.yaml:2:58: key "a"`}, ""},
		{"returned with errors too", FormatYAML, "- {id: a, env: live, created_at: 2025-06-01, rotated_at: 2025-01-01}\n- {id: b, env: prod, created_at: 2025-06-01}\n", 0,
			[]string{`x.yaml:1:58: key "a": rotated_at`}, `x.yaml:2:16: key "b": env`},
	}
	fp := "(unset)"
	if ks, err := Parse("fp.yaml", []byte("- {api_key: "+apiKey+", created_at: 2025-01-01}\n"), FormatYAML); err == nil {
		fp = ks[0].Fingerprint
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, warns, err := ParseWithWarnings("x."+tt.format, []byte(tt.data), tt.format)
			if tt.errs == "" && err != nil || tt.errs != "" && (err == nil || !strings.Contains(err.Error(), tt.errs)) {
				t.Fatalf("error %v, want %q", err, tt.errs)
			}
			if len(ks) != tt.keys {
				t.Errorf("%d keys, want %d", len(ks), tt.keys)
			}
			if len(warns) != len(tt.warns) {
				t.Fatalf("warnings:\n%v\nwant %d: %q", warns, len(tt.warns), tt.warns)
			}
			for i, w := range warns {
				if want := strings.ReplaceAll(tt.warns[i], "%FP%", fp); !strings.HasPrefix(w.Error(), want) {
					t.Errorf("warning %d = %q, want it to start with %q", i, w.Error(), want)
				}
				if strings.Contains(w.Error(), secretMarker) {
					t.Errorf("a warning quotes the key: %s", w)
				}
			}
			// Parse gives the same keys and error, without the warnings.
			ks2, err2 := Parse("x."+tt.format, []byte(tt.data), tt.format)
			if len(ks2) != len(ks) || (err2 == nil) != (err == nil) {
				t.Errorf("Parse: %d keys, %v; ParseWithWarnings: %d, %v", len(ks2), err2, len(ks), err)
			}
		})
	}
	// ParseFileWithWarnings reads a file.
	path := t.TempDir() + "/registry.csv"
	if err := os.WriteFile(path, []byte("id,env,created_at,rotated_at\nk,live,1748736000,1735725600\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ks, warns, err := ParseFileWithWarnings(path, "")
	if err != nil || len(ks) != 1 || len(warns) != 1 || !strings.HasPrefix(warns[0].Error(), path+`:2: key "k": rotated_at`) {
		t.Fatalf("ParseFileWithWarnings: %d keys, warnings %v, %v", len(ks), warns, err)
	}
	// The key's rotation age counts from created_at.
	if got := ks[0].LastRotation(); !got.Equal(ks[0].CreatedAt) {
		t.Errorf("LastRotation %v, want created_at %v", got, ks[0].CreatedAt)
	}
}
