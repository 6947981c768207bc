// Package grafana_test checks the Grafana provisioning of deploy/grafana
// without a Grafana (none installs on the development machines):
//
//   - the dashboards' JSON: unique ids, a valid grid, every panel and target
//     on a data source the provisioning defines, no undefined variable;
//   - every Prometheus expression: it names only metrics auditwatch
//     registers, and promtool parses it (with the rules file and
//     prometheus.yml);
//   - every ClickHouse query, with the ClickHouse data source's macros
//     expanded as the plugin does (pkg/macros of grafana-clickhouse-datasource
//     v4): it runs on the test server (ClickHouse 18.16) over generated
//     traffic and findings and returns rows, and current ClickHouse (chdb)
//     accepts it.
package grafana_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Data source uids and types the dashboards rely on.
const (
	promUID = "auditwatch-prometheus"
	chUID   = "auditwatch-clickhouse"
	chType  = "grafana-clickhouse-datasource"
)

var dashboardFiles = []string{"dashboards/operations.json", "dashboards/security.json"}

type dataSourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID      string         `json:"refId"`
	Datasource *dataSourceRef `json:"datasource"`
	Expr       string         `json:"expr"`
	RawSQL     string         `json:"rawSql"`
	EditorType string         `json:"editorType"`
	QueryType  string         `json:"queryType"`
	Format     *int           `json:"format"`
}

type gridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	GridPos    *gridPos       `json:"gridPos"`
	Datasource *dataSourceRef `json:"datasource"`
	Targets    []target       `json:"targets"`
	Panels     []panel        `json:"panels"` // a collapsed row's panels
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *dataSourceRef  `json:"datasource"`
	Current    struct {
		Value json.RawMessage `json:"value"`
	} `json:"current"`
}

type dashboard struct {
	file       string
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

// all returns the dashboard's panels, rows' nested panels included.
func (d *dashboard) all() []panel {
	var ps []panel
	for _, p := range d.Panels {
		ps = append(ps, p)
		ps = append(ps, p.Panels...)
	}
	return ps
}

// current returns the value the variable has when the dashboard opens.
func (v variable) current() string {
	var s string
	if json.Unmarshal(v.Current.Value, &s) == nil {
		return s
	}
	var ss []string
	if json.Unmarshal(v.Current.Value, &ss) == nil && len(ss) == 1 {
		return ss[0]
	}
	return ""
}

func loadDashboards(t *testing.T) []*dashboard {
	t.Helper()
	var ds []*dashboard
	for _, f := range dashboardFiles {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := &dashboard{file: f}
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(d.all()) < 8 {
			t.Fatalf("%s: only %d panels parsed", f, len(d.all()))
		}
		ds = append(ds, d)
	}
	return ds
}

type provisionedDataSources struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name           string            `yaml:"name"`
		UID            string            `yaml:"uid"`
		Type           string            `yaml:"type"`
		Access         string            `yaml:"access"`
		URL            string            `yaml:"url"`
		IsDefault      bool              `yaml:"isDefault"`
		Editable       bool              `yaml:"editable"`
		JSONData       map[string]any    `yaml:"jsonData"`
		SecureJSONData map[string]string `yaml:"secureJsonData"`
	} `yaml:"datasources"`
}

// dataSources reads the provisioned data sources and returns their types
// by uid.
func dataSources(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("provisioning/datasources/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no provisioning/datasources/*.yaml (%v)", err)
	}
	types := map[string]string{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var p provisionedDataSources
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if p.APIVersion != 1 {
			t.Errorf("%s: apiVersion %d, want 1", f, p.APIVersion)
		}
		for _, ds := range p.Datasources {
			if ds.UID == "" || ds.Name == "" || ds.Type == "" || types[ds.UID] != "" {
				t.Errorf("%s: data source %q: needs a name, a type and a unique uid", f, ds.Name)
			}
			types[ds.UID] = ds.Type
			if ds.Type == chType {
				for _, k := range []string{"host", "port", "protocol", "username", "defaultDatabase"} {
					if ds.JSONData[k] == nil {
						t.Errorf("%s: %s: jsonData.%s missing", f, ds.Name, k)
					}
				}
				if ds.JSONData["protocol"] != "native" {
					t.Errorf("%s: %s: protocol %v, want native", f, ds.Name, ds.JSONData["protocol"])
				}
				if ds.JSONData["username"] != "aw_analyst" {
					t.Errorf("%s: %s: user %v, want the read-only aw_analyst", f, ds.Name, ds.JSONData["username"])
				}
				// The password comes from the environment, never from the file.
				if pw := ds.SecureJSONData["password"]; !regexp.MustCompile(`^\$\{[A-Z0-9_]+\}$`).MatchString(pw) {
					t.Errorf("%s: %s: secureJsonData.password must be an environment variable reference ${VAR}", f, ds.Name)
				}
			}
		}
	}
	if types[promUID] != "prometheus" || types[chUID] != chType {
		t.Fatalf("provisioning must define %s (prometheus) and %s (%s); has %v", promUID, chUID, chType, types)
	}
	return types
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[a-z]+)?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// Grafana's own variables the dashboards may use (the ClickHouse plugin's
// macros are checked where they are expanded).
var builtins = map[string]bool{"__rate_interval": true, "__interval": true, "__range": true, "__interval_ms": true}

func TestDashboardStructure(t *testing.T) {
	types := dataSources(t)
	uids := map[string]bool{}
	for _, d := range loadDashboards(t) {
		t.Run(d.file, func(t *testing.T) {
			if d.UID == "" || d.Title == "" || uids[d.UID] {
				t.Errorf("needs a title and a unique uid (uid %q)", d.UID)
			}
			uids[d.UID] = true
			vars := map[string]bool{}
			for _, v := range d.Templating.List {
				if v.Name == "" || vars[v.Name] {
					t.Errorf("variable without a name or defined twice: %q", v.Name)
				}
				vars[v.Name] = true
				if v.Datasource != nil && types[v.Datasource.UID] == "" {
					t.Errorf("variable %s: data source uid %q is not provisioned", v.Name, v.Datasource.UID)
				}
				if v.Type != "query" && v.current() == "" {
					t.Errorf("variable %s: no current value", v.Name)
				}
			}
			ids := map[int]bool{}
			var boxes []panel
			for _, p := range d.all() {
				name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
				if p.ID <= 0 || ids[p.ID] {
					t.Errorf("%s: id missing or not unique", name)
				}
				ids[p.ID] = true
				if p.Title == "" || p.Type == "" {
					t.Errorf("%s: needs a title and a type", name)
				}
				g := p.GridPos
				if g == nil || g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
					t.Errorf("%s: gridPos %+v outside the 24-column grid", name, g)
					continue
				}
				boxes = append(boxes, p)
				if p.Type == "row" {
					continue
				}
				if p.Datasource == nil || types[p.Datasource.UID] == "" || types[p.Datasource.UID] != p.Datasource.Type {
					t.Errorf("%s: data source %+v is not a provisioned uid with its type", name, p.Datasource)
				}
				if len(p.Targets) == 0 {
					t.Errorf("%s: no targets", name)
				}
				refs := map[string]bool{}
				for _, tg := range p.Targets {
					if tg.RefID == "" || refs[tg.RefID] {
						t.Errorf("%s: target refId %q missing or repeated", name, tg.RefID)
					}
					refs[tg.RefID] = true
					if tg.Datasource == nil || types[tg.Datasource.UID] != tg.Datasource.Type {
						t.Errorf("%s %s: data source %+v is not provisioned", name, tg.RefID, tg.Datasource)
						continue
					}
					query := tg.Expr
					switch tg.Datasource.UID {
					case promUID:
						if tg.Expr == "" || tg.RawSQL != "" {
							t.Errorf("%s %s: a Prometheus target needs expr (and no rawSql)", name, tg.RefID)
						}
					case chUID:
						query = tg.RawSQL
						if tg.RawSQL == "" || tg.EditorType != "sql" || tg.Format == nil {
							t.Errorf("%s %s: a ClickHouse target needs rawSql, editorType sql and a format", name, tg.RefID)
						}
						if strings.Contains(tg.RawSQL, ";") {
							t.Errorf("%s %s: one statement per target, no ';'", name, tg.RefID)
						}
					}
					for _, m := range varRef.FindAllStringSubmatch(query, -1) {
						v := m[1] + m[2]
						if !vars[v] && !builtins[v] && !strings.HasPrefix(v, "__") {
							t.Errorf("%s %s: variable $%s is not defined by the dashboard", name, tg.RefID, v)
						}
					}
				}
			}
			// Panels must not overlap.
			for i := range boxes {
				for j := i + 1; j < len(boxes); j++ {
					a, b := boxes[i].GridPos, boxes[j].GridPos
					if a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H {
						t.Errorf("panels %d and %d overlap (%+v, %+v)", boxes[i].ID, boxes[j].ID, *a, *b)
					}
				}
			}
		})
	}
}

// TestDashboardsCoverTheIssue checks that the panels the issue asks for are
// there: each metric or table named below is used by some panel.
func TestDashboardsCoverTheIssue(t *testing.T) {
	used := map[string]string{}
	for _, d := range loadDashboards(t) {
		for _, p := range d.all() {
			for _, tg := range p.Targets {
				used[d.UID] += "\n" + tg.Expr + tg.RawSQL
			}
		}
	}
	want := map[string][]string{
		"auditwatch-operations": {
			"auditwatch_ingest_messages_read_total", "auditwatch_ingest_rows_written_total", // ingest rate
			"auditwatch_ingest_consumer_lag_messages",         // lag
			"auditwatch_ingest_dead_letters_total",            // dead letters
			"auditwatch_ingest_write_errors_total",            // write errors
			"auditwatch_ingest_batch_write_seconds_bucket",    // batch latency
			"auditwatch_detect_rule_runs_total",               // detect runs
			"auditwatch_detect_rule_run_seconds_bucket",       // rule durations
			"auditwatch_alerts_deliveries_total",              // deliveries
			"auditwatch_alerts_delivery_failures_total",       // failed deliveries
			"auditwatch_ingest_last_commit_timestamp_seconds", // stuck
			"auditwatch_ingest_partition_complete_to_seconds", // watermark
		},
		"auditwatch-security": {
			".findings FINAL", "GROUP BY time, severity", "GROUP BY time, rule_id", // findings by rule and severity over time
			"status IN (401, 403)",            // authentication failures
			"'ip_not_whitelisted'",            // allowlist violations
			"'invalid_api_key'",               // enumeration sources
			".keys FINAL", "${rotation_days}", // keys overdue for rotation
		},
	}
	for uid, needles := range want {
		for _, n := range needles {
			if !strings.Contains(used[uid], n) {
				t.Errorf("dashboard %s: no panel uses %s", uid, n)
			}
		}
	}
}

// chQuery is one ClickHouse panel query.
type chQuery struct {
	name       string // dashboard uid, panel title and refId
	sql        string // as in the dashboard
	timeSeries bool   // format 0: the first column must be the time
}

func clickHouseQueries(t *testing.T) ([]chQuery, map[string]string) {
	t.Helper()
	vars := map[string]string{}
	var qs []chQuery
	for _, d := range loadDashboards(t) {
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				vars[v.Name] = v.current()
			}
		}
		for _, p := range d.all() {
			for _, tg := range p.Targets {
				if tg.Datasource != nil && tg.Datasource.UID == chUID {
					qs = append(qs, chQuery{name: fmt.Sprintf("%s/%s/%s", d.UID, p.Title, tg.RefID), sql: tg.RawSQL,
						timeSeries: tg.Format != nil && *tg.Format == 0})
				}
			}
		}
	}
	if len(qs) < 8 {
		t.Fatalf("only %d ClickHouse queries found", len(qs))
	}
	return qs, vars
}

// macroEnv is what Grafana and the ClickHouse data source know when they
// run a query: the time range, the interval and the variables' values.
type macroEnv struct {
	from, to time.Time
	interval time.Duration
	vars     map[string]string
}

var macroCall = regexp.MustCompile(`\$__([A-Za-z_]+)(\(([^()]*)\))?`)

// expand substitutes the dashboard's variables (Grafana does this first),
// then the ClickHouse data source's macros as its pkg/macros does, and
// fails on anything it does not know.
func (e macroEnv) expand(q string) (string, error) {
	var errs []string
	q = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z][A-Za-z0-9_]*)`).ReplaceAllStringFunc(q, func(m string) string {
		name := strings.Trim(m, "${}")
		v, ok := e.vars[name]
		if !ok {
			errs = append(errs, "unknown variable "+m)
		}
		return v
	})
	dt := func(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
	dt64 := func(t time.Time) string { return fmt.Sprintf("fromUnixTimestamp64Milli(%d)", t.UnixMilli()) }
	date := func(t time.Time) string { return fmt.Sprintf("toDate('%s')", t.UTC().Format("2006-01-02")) }
	secs := int(math.Max(e.interval.Seconds(), 1))
	ms := int(math.Max(float64(e.interval.Milliseconds()), 1))
	q = macroCall.ReplaceAllStringFunc(q, func(m string) string {
		sm := macroCall.FindStringSubmatch(m)
		name, hasArgs := sm[1], sm[2] != ""
		var args []string
		if hasArgs {
			for _, a := range strings.Split(sm[3], ",") {
				args = append(args, strings.TrimSpace(a))
			}
		}
		need := func(n int) bool {
			if len(args) != n {
				errs = append(errs, fmt.Sprintf("%s: %d arguments, want %d", m, len(args), n))
				return false
			}
			return true
		}
		switch name {
		case "fromTime":
			return dt(e.from)
		case "toTime":
			return dt(e.to)
		case "fromTime_ms":
			return dt64(e.from)
		case "toTime_ms":
			return dt64(e.to)
		case "interval_s":
			return fmt.Sprint(secs)
		case "timeFilter":
			if need(1) {
				return fmt.Sprintf("%s >= %s AND %s <= %s", args[0], dt(e.from), args[0], dt(e.to))
			}
		case "timeFilter_ms":
			if need(1) {
				return fmt.Sprintf("%s >= %s AND %s <= %s", args[0], dt64(e.from), args[0], dt64(e.to))
			}
		case "dateFilter":
			if need(1) {
				return fmt.Sprintf("%s >= %s AND %s <= %s", args[0], date(e.from), args[0], date(e.to))
			}
		case "dateTimeFilter", "dt":
			if need(2) {
				return fmt.Sprintf("(%s >= %s AND %s <= %s) AND (%s >= %s AND %s <= %s)",
					args[0], date(e.from), args[0], date(e.to), args[1], dt(e.from), args[1], dt(e.to))
			}
		case "timeInterval":
			if need(1) {
				return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %d second)", args[0], secs)
			}
		case "timeInterval_ms":
			if need(1) {
				return fmt.Sprintf("toStartOfInterval(toDateTime64(%s, 3), INTERVAL %d millisecond)", args[0], ms)
			}
		default:
			errs = append(errs, "unknown macro "+m)
		}
		return m
	})
	if strings.Contains(q, "$") && len(errs) == 0 {
		errs = append(errs, "a $ is left after expansion")
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return q, fmt.Errorf("expand: %s", strings.Join(errs, "; "))
	}
	return q, nil
}

func TestMacroExpansion(t *testing.T) {
	env := macroEnv{
		from:     time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC),
		to:       time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC),
		interval: 300 * time.Second,
		vars:     map[string]string{"database": "db1", "n": "90"},
	}
	tests := []struct {
		name, in, want string
		err            bool
	}{
		{"time filter and variables", "SELECT 1 FROM ${database}.t WHERE $__timeFilter(ts) AND a > $n",
			"SELECT 1 FROM db1.t WHERE ts >= toDateTime(1795737600) AND ts <= toDateTime(1795824000) AND a > 90", false},
		{"from, to, interval", "$__fromTime $__toTime $__interval_s", "toDateTime(1795737600) toDateTime(1795824000) 300", false},
		{"time interval", "$__timeInterval(ts)", "toStartOfInterval(toDateTime(ts), INTERVAL 300 second)", false},
		{"date filter", "$__dateFilter(d)", "d >= toDate('2026-11-27') AND d <= toDate('2026-11-28')", false},
		{"ms", "$__fromTime_ms", "fromUnixTimestamp64Milli(1795737600000)", false},
		{"unknown variable", "SELECT $nope", "", true},
		{"unknown macro", "SELECT $__nope(x)", "", true},
		{"wrong arguments", "$__timeFilter(a, b)", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := env.expand(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("expand(%q) error %v, want error %v", tc.in, err, tc.err)
			}
			if !tc.err && got != tc.want {
				t.Errorf("expand(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}
