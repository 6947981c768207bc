package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	yaml "go.yaml.in/yaml/v3"

	"github.com/auditwatch/auditwatch/deploy/migrations"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/ingest/chsink"
	"github.com/auditwatch/auditwatch/ingest/event"
	"github.com/auditwatch/auditwatch/rules"
)

// TestFile is a rule test file (NAME.test.yaml beside the rules).
type TestFile struct {
	Tests []*RuleTest `yaml:"tests"`
}

// RuleTest is one test case: events and registry keys, a rule evaluated at
// EvalTime, and the findings expected (an empty list asserts that nothing
// fires).
type RuleTest struct {
	Name     string         `yaml:"name"`
	Rule     string         `yaml:"rule"`
	EvalTime time.Time      `yaml:"eval_time"`
	Keys     []yaml.Node    `yaml:"keys"`
	Events   []TestEvent    `yaml:"events"`
	Expect   []Expectation  `yaml:"expect"`
	Line     int            `yaml:"-"`
	extra    map[string]any `yaml:"-"`
}

// TestEvent is an access-log event in the ingest contract's fields, plus At
// (its time relative to the evaluation time, e.g. -3m), Repeat (copies),
// Every (spacing of copies) and ClockOffset (sets signature_ts to ts plus
// this many seconds). "{i}" in a string value becomes the copy's index, so
// copies can differ (e.g. distinct keys).
type TestEvent struct {
	At          string         `yaml:"at"`
	Repeat      int            `yaml:"repeat"`
	Every       string         `yaml:"every"`
	ClockOffset *int64         `yaml:"clock_offset"`
	Fields      map[string]any `yaml:",inline"`
}

// Expectation matches one finding: every Group entry must equal the
// finding's group value; Severity and MinValue are checked when set.
type Expectation struct {
	Group    map[string]string `yaml:"group" json:"group,omitempty"`
	Severity string            `yaml:"severity" json:"severity,omitempty"`
	MinValue *float64          `yaml:"min_value" json:"min_value,omitempty"`
	Status   string            `yaml:"status" json:"status,omitempty"`
}

// contractFields are the event fields a test event may set (the ingest
// contract, docs/event-contract.md). A misspelt field is an error, not
// silently ignored as the ingester would.
var contractFields = map[string]bool{
	"ts": true, "request_id": true, "method": true, "path": true, "status": true, "error_code": true,
	"client_ip": true, "api_key": true, "key_id": true, "auth_method": true, "oauth_client_id": true,
	"env": true, "signed": true, "signature_ts": true, "user_agent": true, "origin": true,
	"latency_ms": true, "bytes_in": true, "bytes_out": true, "account_id": true,
}

// UnmarshalYAML records the test's line.
func (t *RuleTest) UnmarshalYAML(n *yaml.Node) error {
	type plain RuleTest
	t.Line = n.Line
	return strictDecodeTest(n, (*plain)(t))
}

func strictDecodeTest(n *yaml.Node, v any) error {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(n); err != nil {
		return err
	}
	dec := yaml.NewDecoder(&buf)
	dec.KnownFields(true)
	err := dec.Decode(v)
	if te, ok := err.(*yaml.TypeError); ok {
		// Positions are relative to the re-encoded node: re-base them.
		for i, e := range te.Errors {
			var l int
			if _, serr := fmt.Sscanf(e, "line %d:", &l); serr == nil {
				te.Errors[i] = fmt.Sprintf("line %d:%s", l+n.Line-1, strings.SplitN(e, ":", 2)[1])
			}
		}
	}
	return err
}

// TestResult is the outcome of one test case.
type TestResult struct {
	File   string
	Line   int
	Name   string
	Rule   string
	Passed bool
	Errors []string
	Got    []Finding
}

// TestFiles lists the *.test.yaml files in dir.
func TestFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read rules directory: %w", err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && rules.IsTestFile(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// TestRunner runs rule tests against a real ClickHouse server, each case in
// a scratch database it creates and drops.
type TestRunner struct {
	Conn    driver.Conn
	Dialect migrations.Dialect
	Log     *slog.Logger
	// Open connects to a database by name, for sql rules whose unqualified
	// tables resolve in the connection's database.
	Open func(db string) (driver.Conn, error)
	// Inspect, when set, is called with each case's findings while its
	// scratch database still exists; the problems it returns fail the case
	// (e.g. an alert's investigate query that finds nothing).
	Inspect func(ctx context.Context, conn driver.Conn, db string, r *rules.Rule, fs []Finding) []string
}

// RunDir loads the rules of dir and runs every test file in it.
func (tr *TestRunner) RunDir(ctx context.Context, dir string) ([]TestResult, error) {
	set, err := rules.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	files, err := TestFiles(dir)
	if err != nil {
		return nil, err
	}
	var out []TestResult
	for _, f := range files {
		res, err := tr.RunFile(ctx, set, f)
		if err != nil {
			return out, err
		}
		out = append(out, res...)
	}
	return out, nil
}

// RunFile runs the tests of one file against set.
func (tr *TestRunner) RunFile(ctx context.Context, set *rules.Set, file string) ([]TestResult, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read test file: %w", err)
	}
	var tf TestFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var out []TestResult
	for _, t := range tf.Tests {
		res := TestResult{File: file, Line: t.Line, Name: t.Name, Rule: t.Rule}
		r := set.Get(t.Rule)
		switch {
		case r == nil:
			res.Errors = append(res.Errors, fmt.Sprintf("no rule %q", t.Rule))
		case t.EvalTime.IsZero():
			res.Errors = append(res.Errors, "eval_time is required")
		default:
			got, errs := tr.runCase(ctx, file, r, t)
			res.Got, res.Errors = got, errs
		}
		res.Passed = len(res.Errors) == 0
		out = append(out, res)
	}
	return out, nil
}

func (tr *TestRunner) runCase(ctx context.Context, file string, r *rules.Rule, t *RuleTest) ([]Finding, []string) {
	db := fmt.Sprintf("aw_ruletest_%d", time.Now().UnixNano())
	ms, err := migrations.Load(db, tr.Dialect)
	if err != nil {
		return nil, []string{err.Error()}
	}
	if _, err := migrations.Apply(ctx, tr.Conn, db, ms, slog.New(slog.DiscardHandler)); err != nil {
		return nil, []string{"create scratch database: " + err.Error()}
	}
	drop := "DROP DATABASE IF EXISTS " + db
	if tr.Dialect.Cluster != "" {
		drop += " ON CLUSTER " + tr.Dialect.Cluster // every replica's copy
	}
	defer tr.Conn.Exec(context.WithoutCancel(ctx), drop) //nolint:errcheck

	conn := tr.Conn
	if tr.Open != nil {
		c, err := tr.Open(db)
		if err != nil {
			return nil, []string{err.Error()}
		}
		defer c.Close()
		conn = c
	}
	store := keys.NewStore(conn, db)
	if len(t.Keys) > 0 {
		ks, err := parseTestKeys(file, t.Keys, t.EvalTime)
		if err != nil {
			return nil, []string{err.Error()}
		}
		if err := store.Upsert(ctx, ks, "import"); err != nil {
			return nil, []string{"insert keys: " + err.Error()}
		}
	}
	if err := insertEvents(ctx, conn, db, t); err != nil {
		return nil, []string{err.Error()}
	}
	eng := NewEngine(conn, db, store, tr.Log)
	got, err := eng.Eval(ctx, r, t.EvalTime)
	if err != nil {
		return nil, []string{err.Error()}
	}
	for i := range got {
		got[i].Trigger = TriggerTest
	}
	Cooldown(r, got, map[string]Prior{})
	errs := compare(t.Expect, got)
	if tr.Inspect != nil {
		errs = append(errs, tr.Inspect(ctx, conn, db, r, got)...)
	}
	return got, errs
}

// compare matches expectations to findings one to one.
func compare(want []Expectation, got []Finding) []string {
	var errs []string
	used := make([]bool, len(got))
	for i, w := range want {
		found := false
		for j, f := range got {
			if used[j] || !matches(w, f) {
				continue
			}
			used[j], found = true, true
			break
		}
		if !found {
			errs = append(errs, fmt.Sprintf("expected finding %d not found: %s", i+1, describeExpect(w)))
		}
	}
	for j, f := range got {
		if !used[j] {
			errs = append(errs, fmt.Sprintf("unexpected finding: group %s, severity %s, value %g: %s", f.GroupKey, f.Severity, f.Value, f.Summary))
		}
	}
	return errs
}

func matches(w Expectation, f Finding) bool {
	for k, v := range w.Group {
		if f.Group[k] != v {
			return false
		}
	}
	if w.Severity != "" && w.Severity != f.Severity {
		return false
	}
	if w.Status != "" && w.Status != f.Status {
		return false
	}
	if w.MinValue != nil && f.Value < *w.MinValue {
		return false
	}
	return true
}

func describeExpect(w Expectation) string {
	b, _ := json.Marshal(w)
	return string(b)
}

// insertEvents expands the test's events and writes them through the real
// decoder and sink, as the ingester would.
func insertEvents(ctx context.Context, conn driver.Conn, db string, t *RuleTest) error {
	dec := event.NewDecoder(0, 100*365*24*time.Hour)
	var rows event.Rows
	n := 0
	for ei, e := range t.Events {
		copies := max(e.Repeat, 1)
		var every time.Duration
		if e.Every != "" {
			d, err := rules.ParseDuration(e.Every)
			if err != nil {
				return fmt.Errorf("event %d: every: %w", ei+1, err)
			}
			every = d
		}
		base := t.EvalTime.Add(-2 * time.Minute)
		if e.At != "" {
			neg := strings.HasPrefix(e.At, "-")
			d, err := rules.ParseDuration(strings.TrimPrefix(e.At, "-"))
			if err != nil {
				return fmt.Errorf("event %d: at: %w", ei+1, err)
			}
			if neg {
				d = -d
			}
			base = t.EvalTime.Add(d)
		}
		for k := range e.Fields {
			if !contractFields[k] {
				return fmt.Errorf("event %d: unknown field %q (event fields: docs/event-contract.md; also at, repeat, every, clock_offset)", ei+1, k)
			}
		}
		for i := 0; i < copies; i++ {
			m := map[string]any{}
			for k, v := range e.Fields {
				if s, ok := v.(string); ok {
					v = strings.ReplaceAll(s, "{i}", strconv.Itoa(i))
				}
				m[k] = v
			}
			ts := base.Add(time.Duration(i) * every).UTC()
			if _, ok := m["ts"]; !ok {
				m["ts"] = ts.Format(time.RFC3339Nano)
			}
			if e.ClockOffset != nil {
				m["signature_ts"] = ts.Unix() + *e.ClockOffset
				setDefault(m, "signed", true)
			}
			setDefault(m, "request_id", fmt.Sprintf("test-%d-%d-%d", t.Line, ei, i))
			setDefault(m, "method", "GET")
			setDefault(m, "path", "/v1/orders")
			setDefault(m, "client_ip", "203.0.113.10")
			if _, ok := m["status"]; !ok {
				if code, _ := m["error_code"].(string); code != "" {
					m["status"] = 401
				} else {
					m["status"] = 200
				}
			}
			raw, err := json.Marshal(m)
			if err != nil {
				return fmt.Errorf("event %d: %w", ei+1, err)
			}
			row, err := dec.Decode(raw, t.EvalTime)
			if err != nil {
				return fmt.Errorf("event %d copy %d: %w", ei+1, i, err)
			}
			rows.Append(&row)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return chsink.New(conn, db).Write(ctx, &rows, nil)
}

func setDefault(m map[string]any, k string, v any) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

// parseTestKeys reads a test's registry keys, written like an import file's
// entries (see docs/key-registry.md).
func parseTestKeys(file string, nodes []yaml.Node, _ time.Time) ([]keys.Key, error) {
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for i := range nodes {
		seq.Content = append(seq.Content, &nodes[i])
	}
	doc := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "keys"}, seq}}
	data, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("test keys: %w", err)
	}
	ks, err := keys.Parse(file+" (keys)", data, "yaml")
	if err != nil {
		return nil, fmt.Errorf("test keys: %w", err)
	}
	return ks, nil
}
