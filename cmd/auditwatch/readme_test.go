package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEConfigBlocks keeps the README's configuration examples true:
// every ```yaml block of README.md that is configuration (its first key is
// a section of Config) loads with LoadConfig — unknown keys are errors there,
// so a renamed or invented setting fails this test.
func TestREADMEConfigBlocks(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{"log": true, "clickhouse": true, "kafka": true, "ingest": true, "retention": true, "http": true,
		"detect": true, "alerts": true, "summary": true, "keys": true}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(raw), -1)
	checked := 0
	for i, b := range blocks {
		body := b[1]
		first := strings.TrimSpace(strings.SplitN(strings.TrimLeft(body, "\n"), ":", 2)[0])
		if !sections[first] {
			continue
		}
		checked++
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadConfig(p); err != nil {
			t.Errorf("README yaml block %d (%s…): %v", i+1, first, err)
		}
	}
	if checked < 3 {
		t.Fatalf("only %d configuration blocks found in README.md", checked)
	}
}
