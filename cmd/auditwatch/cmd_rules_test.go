package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRulesValidateCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	pack := filepath.Join("..", "..", "rules", "pack")
	if code := run(context.Background(), []string{"rules", "validate", pack}, &out, &errOut); code != 0 {
		t.Fatalf("shipped pack: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "OK") {
		t.Fatalf("output %q", out.String())
	}

	dir := t.TempDir()
	bad := "rules:\n  - id: a\n    severity: urgent\n    schedule: \"@every 1m\"\n    type: threshold\n    window: 5m\n    threshold: 3\n    bogus: 1\n"
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"rules", "validate", dir}, &out, &errOut); code != 1 {
		t.Fatalf("broken rules: exit %d, want 1", code)
	}
	for _, want := range []string{"bad.yaml:8:5: unknown field \"bogus\"", "bad.yaml:3:15: rule \"a\": severity \"urgent\""} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in:\n%s", want, out.String())
		}
	}
	if code := run(context.Background(), []string{"rules", "validate"}, &out, &errOut); code != 2 {
		t.Fatalf("no directory: exit %d, want 2", code)
	}
}
