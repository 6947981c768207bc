// Package promrules_test checks the shipped Prometheus alerting rules:
// strict structure, every metric they name is registered by auditwatch's
// code, and promtool accepts them (check rules, and the unit tests in
// auditwatch-rules.test.yml) when promtool is installed.
package promrules_test

import (
	"bytes"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/auditwatch/auditwatch/deploy/prometheus/metricnames"
)

const rulesFile = "auditwatch-rules.yml"

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestRulesNameRegisteredMetrics(t *testing.T) {
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	have := metricnames.Registered()
	if len(have) < 20 {
		t.Fatalf("only %d metrics collected from the code", len(have))
	}
	used := map[string]bool{}
	alertsSeen := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || alertsSeen[r.Alert] {
				t.Errorf("group %s: rule without a name or a duplicate %q", g.Name, r.Alert)
			}
			alertsSeen[r.Alert] = true
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: needs labels.severity and annotations.summary", r.Alert)
			}
			refs := metricnames.Ref.FindAllString(r.Expr, -1)
			if len(refs) == 0 {
				t.Errorf("%s: expr names no auditwatch metric: %s", r.Alert, r.Expr)
			}
			for _, m := range refs {
				used[m] = true
				if !have[m] {
					t.Errorf("%s: metric %s is not registered by auditwatch", r.Alert, m)
				}
			}
		}
	}
	// The alerts the delivery path depends on are there.
	for _, m := range []string{"auditwatch_alerts_delivery_degraded", "auditwatch_alerts_delivery_failures_total",
		"auditwatch_alerts_expired_total", "auditwatch_alerts_fallback_total", "auditwatch_ingest_write_errors_total",
		"auditwatch_detect_incomplete_runs_total"} {
		if !used[m] {
			t.Errorf("no rule on %s", m)
		}
	}
	var list []string
	for m := range used {
		list = append(list, m)
	}
	sort.Strings(list)
	t.Logf("%d rules use %d metrics: %s", len(alertsSeen), len(list), strings.Join(list, ", "))
}

// TestPromtool runs promtool check rules and promtool test rules when
// promtool is installed (Debian: apt-get install prometheus); with CI=true
// it must be.
func TestPromtool(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not installed (apt-get install prometheus)")
		}
		t.Log("promtool not installed: only the Go checks ran (apt-get install prometheus for promtool)")
		return
	}
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", "auditwatch-rules.test.yml"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}
}
