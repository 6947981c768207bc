package detect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/rules"
)

func parseRules(t *testing.T, body string) []*rules.Rule {
	t.Helper()
	rs, errs := rules.Parse("r.yaml", []byte(body))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return rs
}

const capRule = `rules:
  - id: many
    name: Many groups
    severity: medium
    schedule: "@every 5m"
    type: sql
    window: 5m
    query: "SELECT toString(number) AS group, number AS count FROM system.numbers WHERE {from} < {to} LIMIT 10"
`

func TestCapFindings(t *testing.T) {
	r := parseRules(t, capRule)[0]
	w := WindowFor(r, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	mk := func(specs ...string) []Finding { // "severity:value:group"
		var fs []Finding
		for _, s := range specs {
			p := strings.Split(s, ":")
			f := newFinding(r, w, map[string]string{"group": p[2]}, nil)
			f.Severity = p[0]
			fmt.Sscan(p[1], &f.Value)
			fs = append(fs, f)
		}
		return fs
	}
	tests := []struct {
		name        string
		in          []Finding
		max         int
		wantKept    []string // group keys kept, in order, without the cap finding
		wantDropped int
		wantCapSev  string // "" when no cap finding
	}{
		{"under the cap", mk("medium:5:a", "medium:6:b"), 3, []string{"group=a", "group=b"}, 0, ""},
		{"at the cap", mk("medium:5:a", "medium:6:b", "medium:1:c"), 3, []string{"group=a", "group=b", "group=c"}, 0, ""},
		{"no cap", mk("medium:5:a", "medium:6:b", "medium:1:c"), -1, []string{"group=a", "group=b", "group=c"}, 0, ""},
		{"over: most severe, then highest value, then group", mk("medium:5:a", "high:1:b", "medium:9:c", "medium:9:d", "low:100:e"), 3,
			[]string{"group=b", "group=c", "group=d"}, 2, "high"},
		{"cap finding takes the highest severity produced", mk("critical:1:a", "medium:2:b"), 1, []string{"group=a"}, 1, "critical"},
		{"low findings still make a high cap finding", mk("low:1:a", "info:2:b", "low:3:c"), 2, []string{"group=c", "group=a"}, 1, "high"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, dropped := capFindings(r, w, tt.in, tt.max)
			if dropped != tt.wantDropped {
				t.Fatalf("dropped %d, want %d", dropped, tt.wantDropped)
			}
			kept := got
			if tt.wantCapSev != "" {
				kept = got[:len(got)-1]
				c := got[len(got)-1]
				if c.GroupKey != fmt.Sprintf("%s=%d", CapGroupField, tt.max) || c.Severity != tt.wantCapSev || c.RuleID != "many" ||
					c.Value != float64(len(tt.in)) || c.Threshold != float64(tt.max) || SeverityRank(c.Severity) < alertRank {
					t.Fatalf("cap finding %+v", c)
				}
				if c.Evidence.Details["produced"] != len(tt.in) || c.Evidence.Details["cap"] != tt.max || c.Evidence.Details["dropped"] != tt.wantDropped {
					t.Errorf("cap evidence %v", c.Evidence.Details)
				}
				if !strings.Contains(c.Summary, fmt.Sprintf("%d findings in one run, over the cap of %d", len(tt.in), tt.max)) {
					t.Errorf("cap summary %q", c.Summary)
				}
				if c.ID == "" || c.ID == kept[0].ID {
					t.Errorf("cap finding id %q", c.ID)
				}
			}
			var keys []string
			for _, f := range kept {
				if f.GroupKey == fmt.Sprintf("%s=%d", CapGroupField, tt.max) {
					t.Fatal("unexpected cap finding")
				}
				keys = append(keys, f.GroupKey)
			}
			if strings.Join(keys, " ") != strings.Join(tt.wantKept, " ") {
				t.Fatalf("kept %v, want %v", keys, tt.wantKept)
			}
		})
	}
	// The cap finding alerts through the cooldown like any other finding.
	got, _ := capFindings(r, w, mk("low:1:a", "low:2:b"), 1)
	if alerts, _, _ := Cooldown(r, got, map[string]Prior{}); alerts != 1 || got[1].Status != StatusNew {
		t.Fatalf("cap finding status %q, alerts %d", got[1].Status, alerts)
	}
}

func TestSQLLimitSettings(t *testing.T) {
	tests := []struct {
		name     string
		limits   SQLLimits
		timeout  time.Duration
		revision uint64
		want     map[string]any
	}{
		{"defaults, old server", SQLLimits{}, 20 * time.Second, 54405, map[string]any{"readonly": 2, "max_execution_time": 20, "max_memory_usage": 1 << 30,
			"max_rows_to_read": 500_000_000, "max_result_rows": 100_000}},
		{"rule timeout capped by the limit", SQLLimits{MaxExecutionTime: 5 * time.Second, MaxRowsToRead: 10}, 30 * time.Second, 54405, map[string]any{"readonly": 2,
			"max_execution_time": 5, "max_memory_usage": 1 << 30, "max_rows_to_read": 10, "max_result_rows": 100_000}},
		{"no rule timeout", SQLLimits{MaxExecutionTime: 7 * time.Second}, 0, 54405, map[string]any{"readonly": 2,
			"max_execution_time": 7, "max_memory_usage": 1 << 30, "max_rows_to_read": 500_000_000, "max_result_rows": 100_000}},
		{"current server gets the overflow modes", SQLLimits{MaxMemoryUsage: 1 << 20, MaxResultRows: 5}, time.Second, 54470, map[string]any{"readonly": 2,
			"max_execution_time": 1, "max_memory_usage": 1 << 20, "max_rows_to_read": 500_000_000, "max_result_rows": 5,
			"result_overflow_mode": "throw", "read_overflow_mode": "throw"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.limits.settings(tt.timeout, tt.revision)
			if fmt.Sprint(map[string]any(got)) != fmt.Sprint(tt.want) {
				t.Fatalf("settings %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLimitError(t *testing.T) {
	s := SQLLimits{MaxRowsToRead: 10}.settings(time.Second, 0)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"rows to read", &clickhouse.Exception{Code: 158, Message: "Limit for rows to read exceeded"}, "sql rule exceeded max_rows_to_read = 10 (detect.sql_rules.max_rows_to_read)"},
		{"result rows", &clickhouse.Exception{Code: 396, Message: "Limit for result exceeded"}, "sql rule exceeded max_result_rows = 100000"},
		{"memory", &clickhouse.Exception{Code: 241, Message: "Memory limit exceeded"}, "sql rule exceeded max_memory_usage = 1073741824"},
		{"timeout", fmt.Errorf("read: %w", &clickhouse.Exception{Code: 159, Message: "Timeout exceeded"}), "sql rule exceeded max_execution_time = 1"},
		{"write refused", &clickhouse.Exception{Code: 164, Message: "Cannot insert into table in readonly mode"}, "sql rule refused: rules may only read"},
		{"other exception unchanged", &clickhouse.Exception{Code: 62, Message: "Syntax error"}, "code: 62, message: Syntax error"},
		{"other error unchanged", errors.New("connection reset"), "connection reset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := limitError(tt.err, s)
			if !strings.HasPrefix(got.Error(), tt.want) {
				t.Fatalf("%q, want it to start with %q", got, tt.want)
			}
			if !errors.Is(got, tt.err) {
				t.Fatal("the ClickHouse error is not wrapped")
			}
		})
	}
}

// fakeSQLConn answers the settings probe with the effective settings of
// a session (what the server made of the settings sent).
type fakeSQLConn struct {
	effective map[string]string
	err       error // the probe's error, if set
	queries   int
}

func (c *fakeSQLConn) ServerVersion() (*driver.ServerVersion, error) {
	return &driver.ServerVersion{Revision: 54405}, nil
}

func (c *fakeSQLConn) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	c.queries++
	if query != settingsProbe {
		return nil, errors.New("unexpected query")
	}
	if c.err != nil {
		return nil, c.err
	}
	r := &fakeRows{}
	for k, v := range c.effective {
		r.rows = append(r.rows, [2]string{k, v})
	}
	return r, nil
}

type fakeRows struct {
	driver.Rows
	rows [][2]string
	i    int
}

func (r *fakeRows) Next() bool { r.i++; return r.i <= len(r.rows) }
func (r *fakeRows) Scan(dest ...any) error {
	*dest[0].(*string), *dest[1].(*string) = r.rows[r.i-1][0], r.rows[r.i-1][1]
	return nil
}
func (r *fakeRows) Close() error { return nil }
func (r *fakeRows) Err() error   { return nil }

func TestLimitsCheck(t *testing.T) {
	s := SQLLimits{MaxRowsToRead: 1000}.settings(10*time.Second, 54405)
	applied := map[string]string{"result_overflow_mode": "throw", "read_overflow_mode": "throw"}
	for k, v := range s {
		applied[k] = fmt.Sprint(v)
	}
	applied["max_rows_to_read"] = "1000000" // the probe's own row limits: it reads system.settings
	applied["max_result_rows"] = "100000"
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range applied {
			m[a] = b
		}
		m[k] = v
		return m
	}
	// What 18.16 does for a user whose profile has readonly = 1: the
	// query's settings are ignored, the profile's stay.
	ignored := map[string]string{"readonly": "1", "max_execution_time": "60", "max_memory_usage": "10000000000", "max_rows_to_read": "0",
		"max_result_rows": "0", "result_overflow_mode": "throw", "read_overflow_mode": "throw"}
	tests := []struct {
		name      string
		effective map[string]string
		wantErr   string
	}{
		{"limits in force", applied, ""},
		{"readonly=1 profile ignores them", ignored, "readonly is \"1\", want 2"},
		{"overflow mode break truncates silently", with("result_overflow_mode", "break"), "result_overflow_mode is \"break\", want throw"},
		{"a limit not applied", with("max_rows_to_read", "0"), "max_rows_to_read is \"0\", want 1000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c limitsCheck
			conn := &fakeSQLConn{effective: tt.effective}
			err := c.verify(context.Background(), conn, s)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := c.verify(context.Background(), conn, s); err != nil || conn.queries != 1 {
					t.Fatalf("second check: %v after %d queries, want no new query", err, conn.queries)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "readonly = 2") {
				t.Fatalf("error %v, want %q and the advice", err, tt.wantErr)
			}
			// A failed check is not remembered: the next run checks again.
			_ = c.verify(context.Background(), conn, s)
			if conn.queries != 2 {
				t.Fatalf("%d probes, want 2", conn.queries)
			}
		})
	}
}

// TestLimitsCheckProbeRefused: current ClickHouse refuses the settings of
// a readonly = 1 user (code 164) where 18.16 ignores them; the check reports
// it as the same "not in force" error with the same advice. A settings
// constraint below the limits (452) is named as such; any other error is
// only wrapped. The ClickHouse error stays wrapped in every case.
func TestLimitsCheckProbeRefused(t *testing.T) {
	s := SQLLimits{}.settings(10*time.Second, 54470)
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{"readonly=1 user on current ClickHouse", &clickhouse.Exception{Code: 164, Name: "READONLY", Message: "Cannot modify 'max_rows_to_read' setting in readonly mode"},
			[]string{"sql rule limits not in force for this ClickHouse user", "give the rules user readonly = 2", "Cannot modify 'max_rows_to_read'"}},
		{"readonly itself refused", fmt.Errorf("read: %w", &clickhouse.Exception{Code: 164, Message: "Cannot modify 'readonly' setting in readonly mode"}),
			[]string{"sql rule limits not in force for this ClickHouse user", "give the rules user readonly = 2"}},
		{"profile constraint below the limits", &clickhouse.Exception{Code: 452, Message: "Setting max_rows_to_read shouldn't be greater than 1000"},
			[]string{"sql rule limits not in force for this ClickHouse user", "constrains them below detect.sql_rules"}},
		{"other readonly error is not about the limits", &clickhouse.Exception{Code: 164, Message: "Cannot execute query in readonly mode"},
			[]string{"check sql rule limits: "}},
		{"connection error", errors.New("connection reset"), []string{"check sql rule limits: connection reset"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c limitsCheck
			conn := &fakeSQLConn{err: tt.err}
			err := c.verify(context.Background(), conn, s)
			if err == nil {
				t.Fatal("a refused probe passed the check")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
			if strings.HasPrefix(tt.want[0], "check sql rule limits") && strings.Contains(err.Error(), "not in force") {
				t.Errorf("%q: an unrelated error reported as limits not in force", err)
			}
			if !errors.Is(err, tt.err) {
				t.Error("the ClickHouse error is not wrapped")
			}
			// Not remembered: the next run checks again.
			_ = c.verify(context.Background(), conn, s)
			if conn.queries != 2 {
				t.Errorf("%d probes, want 2", conn.queries)
			}
		})
	}
}

func TestRuleChanges(t *testing.T) {
	const a = `rules:
  - id: one
    severity: high
    schedule: "@every 1m"
    type: threshold
    group_by: [key_id]
    window: 5m
    threshold: 10
  - id: two
    severity: high
    schedule: "@every 1m"
    type: key_rotation
    max_age: 90d
`
	load := func(body string) *rules.Set {
		rs := parseRules(t, body)
		return &rules.Set{Rules: rs}
	}
	prev := load(a)
	tests := []struct {
		name string
		next string
		want string // "id:old?new?exceptions,overrides,disabled" per change
	}{
		{"unchanged", a, ""},
		{"exception added", strings.Replace(a, "    threshold: 10\n", "    threshold: 10\n    exceptions: {keys: [key_x]}\n", 1), "one:on:e.. two:on:..."},
		{"override added", strings.Replace(a, "    threshold: 10\n", "    threshold: 10\n    overrides: [{match: {key_id: k}, threshold: 1000}]\n", 1), "one:on:.o. two:on:..."},
		{"rule disabled", strings.Replace(a, "    max_age: 90d\n", "    max_age: 90d\n    enabled: false\n", 1), "one:on:... two:on:..d"},
		{"rule removed, one added", strings.Replace(a, "id: two", "id: three", 1), "one:on:... three:-n:... two:o-:..d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, c := range RuleChanges(prev, load(tt.next)) {
				flag := func(b bool, s string) string {
					if b {
						return s
					}
					return "."
				}
				o, n := flag(c.OldHash != "", "o"), flag(c.NewHash != "", "n")
				if o == "." {
					o = "-"
				}
				if n == "." {
					n = "-"
				}
				if c.OldHash == c.NewHash {
					t.Errorf("%s listed with the same hash", c.RuleID)
				}
				got = append(got, c.RuleID+":"+o+n+":"+flag(c.ExceptionsChanged, "e")+flag(c.OverridesChanged, "o")+flag(c.Disabled, "d"))
			}
			if strings.Join(got, " ") != tt.want {
				t.Fatalf("changes %q, want %q", strings.Join(got, " "), tt.want)
			}
		})
	}
	// The log names the rule and both hashes at WARN.
	var buf bytes.Buffer
	next := load(strings.Replace(a, "threshold: 10", "threshold: 99", 1))
	logRuleChanges(slog.New(slog.NewTextHandler(&buf, nil)), RuleChanges(prev, next))
	out := buf.String()
	if !strings.Contains(out, "level=WARN msg=\"rule file changed\" rule=one") || !strings.Contains(out, "old_hash="+prev.Rules[0].Hash) ||
		!strings.Contains(out, "new_hash="+next.Rules[0].Hash) {
		t.Fatalf("log:\n%s", out)
	}
}
