package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditwatch/auditwatch/deploy/testenv"
)

// TestKeysImportCommand imports a bare YAML list with epoch-second times
// and a rotated_at before created_at through the command: the keys are
// imported, the warning is on stderr with its place and the key's id, and
// no output holds the full key.
func TestKeysImportCommand(t *testing.T) {
	addr := testenv.ClickHouseAddr(t)
	db := testenv.ScratchDB(t, testenv.Connect(t, addr))
	dir := t.TempDir()
	cfg := filepath.Join(dir, "auditwatch.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("clickhouse: {addr: [%q], database: %s}\n", addr, db)), 0o600); err != nil {
		t.Fatal(err)
	}
	const apiKey = "bk_live_CmdTest0000000000000000000000000001"
	file := filepath.Join(dir, "registry.yaml")
	body := `- id: key_01SWAPPED
  api_key: ` + apiKey + `
  created_at: 1748736000
  rotated_at: "1735725600"
- id: key_01FINE
  env: test
  created_at: 2025-06-01
`
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, step := range []struct {
		args   []string
		stdout string
	}{
		{[]string{"keys", "import", file, "--dry-run", "--config", cfg}, "would import 2 keys from " + file + ": 2 new, 0 changed, 0 unchanged (1 warning on stderr)"},
		{[]string{"keys", "import", file, "--config", cfg}, "imported 2 keys from " + file + ": 2 new, 0 changed, 0 unchanged (1 warning on stderr)"},
	} {
		var out, errOut bytes.Buffer
		if code := run(ctx, step.args, &out, &errOut); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", step.args, code, out.String(), errOut.String())
		}
		if got := strings.TrimSpace(out.String()); got != step.stdout {
			t.Errorf("%v: stdout %q, want %q", step.args, got, step.stdout)
		}
		want := "warning: " + file + `:4:15: key "key_01SWAPPED": rotated_at 2025-01-01T10:00:00Z is before created_at 2025-06-01T00:00:00Z`
		if !strings.HasPrefix(errOut.String(), want) || strings.Count(errOut.String(), "\n") != 1 {
			t.Errorf("%v: stderr %q, want one line starting %q", step.args, errOut.String(), want)
		}
		if strings.Contains(out.String()+errOut.String(), "CmdTest0000") {
			t.Errorf("%v: output holds the full key", step.args)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(ctx, []string{"keys", "list", "--config", cfg}, &out, &errOut); code != 0 {
		t.Fatalf("keys list: exit %d\n%s", code, errOut.String())
	}
	for _, want := range []string{"key_01SWAPPED", "bk_live_CmdT…0001", "2025-06-01", "key_01FINE", "2 keys"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("keys list lacks %q:\n%s", want, out.String())
		}
	}

	// A file with an error: the warning still shows, nothing is imported.
	if err := os.WriteFile(file, []byte(body+"- {id: key_01BAD, env: prod, created_at: 2025-06-01}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	if code := run(ctx, []string{"keys", "import", file, "--config", cfg}, &out, &errOut); code != 1 {
		t.Fatalf("bad file: exit %d, want 1\n%s", code, errOut.String())
	}
	for _, want := range []string{"warning: " + file + `:4:15: key "key_01SWAPPED"`, file + `:8:24: key "key_01BAD": env: want live or test`, "1 problem; nothing imported"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}
}
