// Package docker_test checks the compose stack statically (no Docker engine
// runs on the development machines): passwords required, ports bound to
// 127.0.0.1, one ClickHouse user per auditwatch service.
package docker_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/auditwatch/auditwatch/deploy/testenv"
)

type service struct {
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
}

func loadCompose(t *testing.T) (map[string]service, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]service `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(f.Services) < 8 {
		t.Fatalf("%d services parsed, want kafka, clickhouse, migrate, ingest, detect, keys, retention, gen", len(f.Services))
	}
	return f.Services, string(b)
}

var interpolation = regexp.MustCompile(`\$\{([A-Z0-9_]+)(:?[-?+])?([^}]*)\}`)

func TestComposePasswordsAreRequired(t *testing.T) {
	services, raw := loadCompose(t)
	optional := map[string]bool{"AUDITWATCH_SLACK_TOKEN": true, "AUDITWATCH_SLACK_WEBHOOK_URL": true}
	for _, m := range interpolation.FindAllStringSubmatch(raw, -1) {
		name, op := m[1], m[2]
		if optional[name] {
			if m[3] != "" {
				t.Errorf("${%s}: an optional secret must default to empty, not %q", name, m[3])
			}
			continue
		}
		if op != ":?" || m[3] == "" {
			t.Errorf("${%s%s%s}: every variable must be required with a message (${VAR:?set VAR …}), no fallback", name, op, m[3])
		}
	}
	for name, s := range services {
		for k, v := range s.Environment {
			if strings.Contains(k, "PASSWORD") && !strings.HasPrefix(v, "${") {
				t.Errorf("%s: %s is a literal, not a required variable", name, k)
			}
		}
	}
}

func TestComposePortsBoundToLocalhost(t *testing.T) {
	services, _ := loadCompose(t)
	n := 0
	for name, s := range services {
		for _, p := range s.Ports {
			n++
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s: port %q is published on every interface; bind it to 127.0.0.1", name, p)
			}
		}
	}
	if n < 5 {
		t.Fatalf("%d published ports found, want at least 5 (kafka, clickhouse ×2, ingest, detect)", n)
	}
}

func TestComposeEachServiceHasItsOwnUser(t *testing.T) {
	services, _ := loadCompose(t)
	want := map[string][]string{
		"migrate": {"MIGRATE"}, "ingest": {"INGEST"}, "detect": {"DETECT", "RULES"},
		"keys": {"KEYS"}, "retention": {"RETENTION"},
	}
	ch := services["clickhouse"]
	for name, comps := range want {
		s, ok := services[name]
		if !ok {
			t.Errorf("no %s service", name)
			continue
		}
		if _, ok := s.Environment["AUDITWATCH_CLICKHOUSE_USERNAME"]; ok {
			t.Errorf("%s sets the shared AUDITWATCH_CLICKHOUSE_USERNAME; it must use its component user", name)
		}
		for _, c := range comps {
			user := s.Environment["AUDITWATCH_CLICKHOUSE_"+c+"_USERNAME"]
			if user != "aw_"+strings.ToLower(c) {
				t.Errorf("%s: AUDITWATCH_CLICKHOUSE_%s_USERNAME = %q, want aw_%s", name, c, user, strings.ToLower(c))
			}
			pw := s.Environment["AUDITWATCH_CLICKHOUSE_"+c+"_PASSWORD"]
			// The same variable must give the password grants.sh creates the user with.
			if created := ch.Environment["AW_"+c+"_PASSWORD"]; pw == "" || created != pw {
				t.Errorf("%s: password %q differs from the one clickhouse's grants.sh uses (%q)", name, pw, created)
			}
		}
	}
	if cmd := strings.Join(services["retention"].Command, " "); !strings.HasPrefix(cmd, "retention --every ") {
		t.Errorf("retention service runs %q, want the long-running retention --every job", cmd)
	}
	var grantsSh, grantsSQLInInit bool
	for _, v := range ch.Volumes {
		grantsSh = grantsSh || strings.HasPrefix(v, "./deploy/clickhouse/grants.sh:/docker-entrypoint-initdb.d/")
		grantsSQLInInit = grantsSQLInInit || strings.HasPrefix(v, "./deploy/clickhouse/grants.sql:/docker-entrypoint-initdb.d/")
	}
	if !grantsSh || grantsSQLInInit {
		t.Errorf("clickhouse must run grants.sh at first start and must not run the grants.sql template as is (volumes %v)", ch.Volumes)
	}
}
