package rules

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const good = `rules:
  - id: sig-burst
    name: Invalid signature burst
    severity: high
    schedule: "@every 1m"
    type: threshold
    filter:
      error_code: invalid_signature
      status: {gte: 400}
      env: [live, test]
      path: {prefix: /v1/}
    group_by: [key_id]
    window: 5m
    threshold: 50
    cooldown: 30m
    overrides:
      - match: {key_id: key_busy}
        threshold: 500
    exceptions:
      ips: [10.0.0.0/8, "2001:db8::/32", 192.0.2.7]
      keys: [key_test]
  - id: rotation
    severity: medium
    schedule: "0 0 6 * * *"
    type: key_rotation
    max_age: 90d
`

func TestParseGood(t *testing.T) {
	rs, errs := Parse("good.yaml", []byte(good))
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	if len(rs) != 2 {
		t.Fatalf("%d rules", len(rs))
	}
	r := rs[0]
	if r.Window.D() != 5*time.Minute || *r.Threshold != 50 || r.CooldownOrDefault().D() != 30*time.Minute || r.Name != "Invalid signature burst" {
		t.Errorf("fields: %+v", r)
	}
	if got := r.ThresholdFor(map[string]string{"key_id": "key_busy"}); got != 500 {
		t.Errorf("override threshold %v", got)
	}
	if r.ThresholdFor(map[string]string{"key_id": "other"}) != 50 || r.MinThreshold() != 50 {
		t.Error("default threshold")
	}
	if len(r.Filter) != 4 {
		t.Errorf("filter %+v", r.Filter)
	}
	if rs[1].MaxAge.D() != 90*24*time.Hour || rs[1].Name != "rotation" || !rs[1].IsEnabled() {
		t.Errorf("rotation rule %+v", rs[1])
	}
	if rs[1].Sched() == nil {
		t.Error("schedule not parsed")
	}
}

func TestParseReportsEveryErrorWithPosition(t *testing.T) {
	bad := `rules:
  - id: Bad ID
    severity: urgent
    schedule: "every minute"
    type: threshold
    filter:
      colour: red
      status: {gte: abc}
      path: {regex: x}
    group_by: [key_id, nope]
    window: 5 minutes
    threshold: -1
    runbook: not-a-url
    exceptions: {ips: [300.1.1.1]}
    unknown_field: 1
  - id: sql-rule
    severity: low
    schedule: "@every 5m"
    type: sql
    window: 5m
    query: "DROP TABLE access_log"
  - id: sql-rule
    severity: low
    schedule: "@every 5m"
    type: key_rotation
`
	_, errs := Parse("bad.yaml", []byte(bad))
	want := []string{
		`bad.yaml:15:5: unknown field "unknown_field"`,
		`bad.yaml:11:13: invalid duration "5 minutes"`,
		`bad.yaml:2:9: rule "Bad ID": id must be`,
		`bad.yaml:3:15: rule "Bad ID": severity "urgent"`,
		`bad.yaml:4:15: rule "Bad ID": schedule "every minute"`,
		`rule "Bad ID": filter: unknown field "colour"`,
		`rule "Bad ID": filter status: "abc" is not a number`,
		`rule "Bad ID": filter path: unknown operator "regex"`,
		`bad.yaml:10:15: rule "Bad ID": group_by: unknown field "nope"`,
		`rule "Bad ID": threshold rule needs a threshold above 0`,
		`rule "Bad ID": runbook "not-a-url"`,
		`rule "Bad ID": exception "300.1.1.1"`,
		`bad.yaml:21:12: rule "sql-rule": query must be a SELECT`,
		`rule "sql-rule": key_rotation rule needs max_age`,
	}
	joined := strings.Join(errs, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("missing error %q in:\n%s", w, joined)
		}
	}
}

func TestLoadDirAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", good)
	write("a.test.yaml", "not: a rule file") // test files are skipped
	set, err := LoadDir(dir)
	if err != nil || len(set.Rules) != 2 {
		t.Fatalf("LoadDir: %v", err)
	}
	write("b.yaml", strings.Replace(good, "id: rotation", "id: rotation2", 1)) // duplicate sig-burst
	_, err = LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), `rule "sig-burst": id already used at `+filepath.Join(dir, "a.yaml")+":2:9") {
		t.Fatalf("duplicate id not reported: %v", err)
	}
	write("b.yaml", "rules: [")
	if _, err = LoadDir(dir); err == nil || !strings.Contains(err.Error(), "b.yaml:") {
		t.Fatalf("syntax error not reported with its file: %v", err)
	}
}

func TestMoreValidation(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"list for a single-value operator", strings.Replace(good, "status: {gte: 400}", "status: {gte: [400, 500]}", 1), "gte takes one value"},
		{"bad env", strings.Replace(good, "max_age: 90d", "max_age: 90d\n    env: prod", 1), `env "prod"`},
		{"sql override must match group", `rules:
  - id: s
    severity: low
    schedule: "@every 5m"
    type: sql
    window: 5m
    query: "SELECT key_id AS group, count() AS count FROM access_log WHERE ts >= {from} AND ts < {to} GROUP BY key_id"
    overrides: [{match: {key_id: k}, threshold: 5}]
`, `override matches "key_id"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := Parse("x.yaml", []byte(tt.yaml))
			if !strings.Contains(strings.Join(errs, "\n"), tt.want) {
				t.Fatalf("want %q in %v", tt.want, errs)
			}
		})
	}
	if _, err := LoadDir(t.TempDir()); err == nil {
		t.Fatal("an empty rules directory loaded")
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "45d": 45 * 24 * time.Hour, "1d12h": 36 * time.Hour, "5m": 5 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "x", "5 minutes", "-1h", "d"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) accepted", in)
		}
	}
}

func TestEverySchedulesAreAligned(t *testing.T) {
	rs, errs := Parse("x.yaml", []byte(good))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	at := time.Date(2026, 11, 27, 9, 37, 5, 0, time.UTC)
	if got := rs[0].Sched().Next(at); !got.Equal(time.Date(2026, 11, 27, 9, 38, 0, 0, time.UTC)) {
		t.Fatalf("@every 1m after 09:37:05 = %v, want 09:38:00", got)
	}
}

func TestRuleFileHash(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(a, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(good)
	set, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// sha256 of the file bytes, hex: echo -n "$good" | sha256sum
	want := FileHash([]byte(good))
	if len(want) != 64 || set.Hashes[a] != want {
		t.Fatalf("set hash %q, want %q", set.Hashes[a], want)
	}
	for _, r := range set.Rules {
		if r.Hash != want {
			t.Errorf("rule %s hash %q, want the file's %q", r.ID, r.Hash, want)
		}
	}
	write(strings.Replace(good, "keys: [key_test]", "keys: [key_test, key_other]", 1))
	set2, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if h := set2.Get("rotation").Hash; h == want || h != set2.Hashes[a] {
		t.Errorf("after an edit: rule hash %q, old %q, file %q", h, want, set2.Hashes[a])
	}
}

func TestSQLGuard(t *testing.T) {
	tests := []struct {
		name, query, wantErr string
	}{
		{"plain select", "SELECT key_id AS group, count() AS count FROM {db}.access_log WHERE ts >= {from} AND ts < {to} GROUP BY key_id", ""},
		{"settings clause", "SELECT key_id AS group, count() AS count FROM {db}.access_log WHERE ts >= {from} AND ts < {to} GROUP BY key_id SETTINGS max_rows_to_read = 0", "must not set SETTINGS"},
		{"settings lower case", "select 1 as group, 1 as count from {db}.access_log where ts >= {from} and ts < {to} settings readonly=0", "must not set SETTINGS"},
		{"settings in a string is fine", "SELECT path AS group, count() AS count FROM {db}.access_log WHERE ts >= {from} AND ts < {to} AND path = '/v1/settings' GROUP BY path", ""},
		{"settings in a comment is fine", "SELECT path AS group, count() AS count -- no settings here\nFROM {db}.access_log WHERE ts >= {from} AND ts < {to} GROUP BY path", ""},
		{"remote", "SELECT 1 AS group, count() AS count FROM remote('10.0.0.1', default.t) WHERE ts >= {from} AND ts < {to}", "table function remote()"},
		{"url", "SELECT 1 AS group, count() AS count FROM url ('http://x', CSV, 'a String') WHERE {from} < {to}", "table function url()"},
		{"file", "SELECT 1 AS group, count() AS count FROM FILE('x.csv', CSV, 'a String') WHERE {from} < {to}", "table function FILE()"},
		{"url as a column name is fine", "SELECT domain(url) AS group, count() AS count FROM {db}.t WHERE ts >= {from} AND ts < {to} GROUP BY group", ""},
		{"insert", "INSERT INTO {db}.findings SELECT * FROM {db}.findings WHERE {from} < {to}", "must be a SELECT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := "rules:\n  - id: q\n    severity: low\n    schedule: \"@every 5m\"\n    type: sql\n    window: 5m\n    query: " + strconv.Quote(tt.query) + "\n"
			_, errs := Parse("q.yaml", []byte(y))
			got := strings.Join(errs, "\n")
			if tt.wantErr == "" && got != "" {
				t.Fatalf("refused: %s", got)
			}
			if tt.wantErr != "" && !strings.Contains(got, tt.wantErr) {
				t.Fatalf("errors %q, want one containing %q", got, tt.wantErr)
			}
		})
	}
}
