package grafana_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/auditwatch/auditwatch/deploy/prometheus/metricnames"
)

type promExpr struct{ name, expr string }

func prometheusExprs(t *testing.T) []promExpr {
	t.Helper()
	var es []promExpr
	for _, d := range loadDashboards(t) {
		for _, v := range d.Templating.List {
			if v.Datasource != nil && v.Datasource.UID == promUID {
				var q struct {
					Query string `json:"query"`
				}
				if err := json.Unmarshal(v.Query, &q); err != nil || q.Query == "" {
					t.Fatalf("%s: variable %s: query %s: %v", d.file, v.Name, v.Query, err)
				}
				// label_values(selector, label): the selector is an expression.
				m := regexp.MustCompile(`^label_values\((.+),\s*[a-z_]+\)$`).FindStringSubmatch(q.Query)
				if m == nil {
					t.Fatalf("%s: variable %s: want label_values(selector, label), got %s", d.file, v.Name, q.Query)
				}
				es = append(es, promExpr{d.UID + "/$" + v.Name, m[1]})
			}
		}
		for _, p := range d.all() {
			for _, tg := range p.Targets {
				if tg.Datasource != nil && tg.Datasource.UID == promUID {
					es = append(es, promExpr{fmt.Sprintf("%s/%s/%s", d.UID, p.Title, tg.RefID), tg.Expr})
				}
			}
		}
	}
	if len(es) < 20 {
		t.Fatalf("only %d Prometheus expressions found", len(es))
	}
	return es
}

func TestPrometheusPanelsUseRegisteredMetrics(t *testing.T) {
	have := metricnames.Registered()
	if len(have) < 20 {
		t.Fatalf("only %d metrics collected from the code", len(have))
	}
	used := map[string]bool{}
	for _, e := range prometheusExprs(t) {
		refs := metricnames.Ref.FindAllString(e.expr, -1)
		if len(refs) == 0 && !strings.Contains(e.expr, "up{") {
			t.Errorf("%s: names no auditwatch metric: %s", e.name, e.expr)
		}
		for _, m := range refs {
			used[m] = true
			if !have[m] {
				t.Errorf("%s: metric %s is not registered by auditwatch", e.name, m)
			}
		}
	}
	t.Logf("the operations dashboard uses %d series names; auditwatch registers %d (histograms counted with _bucket, _sum, _count)", len(used), len(have))
}

// grafanaVars are the values the expressions are checked with: the
// dashboard variable and Grafana's interval variables.
var grafanaVars = strings.NewReplacer(`$instance`, `.*`, `$__rate_interval`, `1m`, `$__interval`, `1m`, `$__range`, `1h`)

func promtool(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not installed (apt-get install prometheus)")
		}
		t.Skip("promtool not installed (apt-get install prometheus); CI=true makes this a failure")
	}
	return bin
}

// TestPrometheusPanelsParse writes every panel expression into a rules file
// as a recording rule and has promtool check it: promtool parses each
// expression with Prometheus's own parser.
func TestPrometheusPanelsParse(t *testing.T) {
	bin := promtool(t)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	exprs := prometheusExprs(t)
	for i, e := range exprs {
		rules = append(rules, rule{Record: fmt.Sprintf("grafana:panel_%d", i), Expr: grafanaVars.Replace(e.expr)})
	}
	doc := map[string]any{"groups": []any{map[string]any{"name": "grafana-panels", "rules": rules}}}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "panels.yml")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := exec.Command(bin, "check", "rules", file).CombinedOutput()
	if err != nil {
		// Name the panels promtool refused.
		for i, e := range exprs {
			if strings.Contains(string(res), fmt.Sprintf("%q", fmt.Sprintf("grafana:panel_%d", i))) {
				t.Errorf("%s: %s", e.name, e.expr)
			}
		}
		t.Fatalf("promtool check rules (the panels' expressions): %v\n%s", err, res)
	}
	if !strings.Contains(string(res), fmt.Sprintf("%d rules found", len(exprs))) {
		t.Fatalf("promtool did not check the %d expressions:\n%s", len(exprs), res)
	}
	t.Logf("promtool: %s", strings.TrimSpace(string(res)))

	// A broken expression is refused (the check can fail).
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("groups:\n  - name: g\n    rules:\n      - record: x\n        expr: sum(rate(auditwatch_ingest_rows_written_total[5m])\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err := exec.Command(bin, "check", "rules", bad).CombinedOutput(); err == nil {
		t.Fatalf("promtool accepted an unbalanced expression:\n%s", res)
	}
}

// TestPrometheusConfig checks deploy/prometheus/prometheus.yml with
// promtool, its rule file pointed at the repository's rules, and that it
// scrapes the ports the compose config serves metrics on.
func TestPrometheusConfig(t *testing.T) {
	raw, err := os.ReadFile("../prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{`"ingest:9464"`, `"detect:9465"`, "/etc/prometheus/rules/auditwatch-rules.yml"} {
		if !strings.Contains(string(raw), target) {
			t.Errorf("prometheus.yml does not name %s", target)
		}
	}
	bin := promtool(t)
	rules, err := filepath.Abs("../prometheus/auditwatch-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "prometheus.yml")
	local := strings.ReplaceAll(string(raw), "/etc/prometheus/rules/auditwatch-rules.yml", rules)
	if err := os.WriteFile(cfg, []byte(local), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := exec.Command(bin, "check", "config", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config prometheus.yml: %v\n%s", err, res)
	}
	if !strings.Contains(string(res), "SUCCESS") {
		t.Fatalf("promtool check config said:\n%s", res)
	}
	t.Logf("promtool check config:\n%s", res)
}
