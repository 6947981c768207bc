package grafana_test

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/auditwatch/auditwatch/deploy/testenv"
)

// TestComposeMountsTheProvisioning checks that docker-compose.yml's grafana
// and prometheus services mount these files where the provisioning and
// prometheus.yml expect them, and that their secrets are required.
func TestComposeMountsTheProvisioning(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	mounts := func(service string) map[string]string { // container path -> host path
		m := map[string]string{}
		for _, v := range f.Services[service].Volumes {
			parts := strings.Split(v, ":")
			if len(parts) >= 2 {
				m[parts[1]] = parts[0]
			}
		}
		return m
	}

	g, ok := f.Services["grafana"]
	if !ok {
		t.Fatal("no grafana service")
	}
	if !strings.HasPrefix(g.Image, "grafana/grafana:") || !strings.Contains(g.Environment["GF_INSTALL_PLUGINS"], "grafana-clickhouse-datasource") {
		t.Errorf("grafana: image %q, GF_INSTALL_PLUGINS %q: want grafana/grafana with grafana-clickhouse-datasource", g.Image, g.Environment["GF_INSTALL_PLUGINS"])
	}
	for _, k := range []string{"GF_SECURITY_ADMIN_PASSWORD", "AW_CLICKHOUSE_ANALYST_PASSWORD"} {
		if v := g.Environment[k]; !strings.HasPrefix(v, "${") || !strings.Contains(v, ":?") {
			t.Errorf("grafana: %s must be a required variable (${VAR:?…}), is %q", k, v)
		}
	}
	gm := mounts("grafana")
	if gm["/etc/grafana/provisioning"] != "./deploy/grafana/provisioning" {
		t.Errorf("grafana: provisioning not mounted at /etc/grafana/provisioning (%v)", g.Volumes)
	}
	// The dashboards directory is mounted where the dashboard provider reads.
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	pr, err := os.ReadFile("provisioning/dashboards/auditwatch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(pr, &prov); err != nil || len(prov.Providers) != 1 {
		t.Fatalf("provisioning/dashboards/auditwatch.yaml: %v (%d providers)", err, len(prov.Providers))
	}
	if dir := prov.Providers[0].Options.Path; gm[dir] != "./deploy/grafana/dashboards" {
		t.Errorf("grafana: the provider reads %s, but compose mounts %v", dir, g.Volumes)
	}
	// The ClickHouse data source reads the analyst password from Grafana's
	// environment, under the name compose sets.
	ds, err := os.ReadFile("provisioning/datasources/auditwatch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ds), "${AW_CLICKHOUSE_ANALYST_PASSWORD}") {
		t.Error("the ClickHouse data source does not read ${AW_CLICKHOUSE_ANALYST_PASSWORD}, which compose sets")
	}

	p, ok := f.Services["prometheus"]
	if !ok {
		t.Fatal("no prometheus service")
	}
	pm := mounts("prometheus")
	if pm["/etc/prometheus/prometheus.yml"] != "./deploy/prometheus/prometheus.yml" {
		t.Errorf("prometheus: deploy/prometheus/prometheus.yml not mounted at /etc/prometheus/prometheus.yml (%v)", p.Volumes)
	}
	cfg, err := os.ReadFile("../prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var pc struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	if err := yaml.Unmarshal(cfg, &pc); err != nil || len(pc.RuleFiles) == 0 {
		t.Fatalf("prometheus.yml: rule_files: %v", err)
	}
	for _, rf := range pc.RuleFiles {
		if host := pm[rf]; path.Base(host) != path.Base(rf) || !strings.HasPrefix(host, "./deploy/prometheus/") {
			t.Errorf("prometheus.yml loads %s, which compose does not mount from deploy/prometheus (%v)", rf, p.Volumes)
		}
	}
	for name, s := range map[string][]string{"grafana": g.Ports, "prometheus": p.Ports} {
		if len(s) == 0 {
			t.Errorf("%s publishes no port", name)
		}
		for _, port := range s {
			if !strings.HasPrefix(port, "127.0.0.1:") {
				t.Errorf("%s: port %q not bound to 127.0.0.1", name, port)
			}
		}
	}
}
