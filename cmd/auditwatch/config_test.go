package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/ingest/secret"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "empty file gives defaults", body: "", check: func(t *testing.T, c Config) {
			if c.Kafka.Topic != "gateway-access-logs" || c.Ingest.BatchMaxRows != 50_000 || c.Retention.AccessLogDays != 90 {
				t.Errorf("defaults not applied: %+v", c)
			}
		}},
		{name: "values and durations", body: "ingest: {flush_interval: 250ms, batch_max_rows: 10}\nkafka: {brokers: [a:1, b:2]}\n", check: func(t *testing.T, c Config) {
			if c.Ingest.FlushInterval != 250*time.Millisecond || c.Ingest.BatchMaxRows != 10 || len(c.Kafka.Brokers) != 2 {
				t.Errorf("%+v", c)
			}
		}},
		{name: "unknown key rejected with its line", body: "kafka:\n  topic: x\n  topik: y\n", wantErr: "line 3"},
		{name: "bad start offset", body: "kafka: {start_offset: middle}\n", wantErr: "kafka.start_offset"},
		{name: "env overrides and secrets", body: "clickhouse: {password: fromfile}\n",
			env: map[string]string{"AUDITWATCH_CLICKHOUSE_PASSWORD": "s3cret", "AUDITWATCH_KAFKA_BROKERS": "x:1, y:2"},
			check: func(t *testing.T, c Config) {
				if c.ClickHouse.Password != "s3cret" || strings.Join(c.Kafka.Brokers, ",") != "x:1,y:2" {
					t.Errorf("%+v", c)
				}
			}},
		{name: "component users from file and environment", body: "clickhouse:\n  username: aw_admin\n  users:\n    ingest: {username: aw_ingest, password: p1}\n    detect: {username: aw_detect}\n",
			env: map[string]string{"AUDITWATCH_CLICKHOUSE_DETECT_PASSWORD": "p2", "AUDITWATCH_CLICKHOUSE_RULES_USERNAME": "aw_rules", "AUDITWATCH_CLICKHOUSE_RULES_PASSWORD": "p3"},
			check: func(t *testing.T, c Config) {
				for comp, want := range map[string]string{"ingest": "aw_ingest/p1", "detect": "aw_detect/p2", "rules": "aw_rules/p3", "keys": "aw_admin/"} {
					u := c.ClickHouse.For(comp)
					if got := u.Username + "/" + u.Password; got != want {
						t.Errorf("For(%s) = %s, want %s", comp, got, want)
					}
					if u.Users != nil {
						t.Errorf("For(%s) keeps the other users' credentials", comp)
					}
				}
			}},
		{name: "unknown component user", body: "clickhouse: {users: {ingester: {username: x}}}\n", wantErr: "clickhouse.users.ingester: unknown component"},
		{name: "component user without name", body: "clickhouse: {users: {detect: {password: x}}}\n", wantErr: "clickhouse.users.detect: username is required"},
		{name: "client certificate without key", body: "kafka: {tls: true, tls_cert_file: /c.pem}\n", wantErr: "kafka: tls_cert_file and tls_key_file go together"},
		{name: "tls files", body: "clickhouse: {tls: true, tls_ca_file: /ca.pem, tls_cert_file: /c.pem, tls_key_file: /k.pem}\n", check: func(t *testing.T, c Config) {
			if f := c.ClickHouse.TLSFiles; f.CAFile != "/ca.pem" || f.CertFile != "/c.pem" || f.KeyFile != "/k.pem" {
				t.Errorf("%+v", f)
			}
		}},
		{name: "slack api_url refused without allow_custom_api_url", body: "alerts: {slack: {api_url: 'https://slack.example.net/api/'}}\n", wantErr: "allow_custom_api_url"},
		{name: "slack api_url allowed explicitly", body: "alerts: {slack: {api_url: 'http://127.0.0.1:1/api/', allow_custom_api_url: true}}\n", check: func(t *testing.T, c Config) {
			if c.Alerts.Slack.APIURL == "" {
				t.Error("api_url dropped")
			}
		}},
		{name: "negative sql rule limit", body: "detect: {sql_rules: {max_rows_to_read: -1}}\n", wantErr: "detect.sql_rules"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := LoadConfig(writeFile(t, tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestPasswordFile(t *testing.T) {
	pw := writeFile(t, "from-a-file\n")
	c, err := LoadConfig(writeFile(t, "clickhouse: {password_file: "+pw+"}\n"))
	if err != nil || c.ClickHouse.Password != "from-a-file" {
		t.Fatalf("password %q, err %v", c.ClickHouse.Password, err)
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), []string{c.name, "--help"}, &out, &errOut)
			if code != 0 || !strings.Contains(out.String(), "Usage: auditwatch "+c.name) && c.name != "version" {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
			}
		})
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"nope"}, &out, &out); code != 2 {
		t.Fatalf("unknown command exit %d, want 2", code)
	}
}

func TestGenStdoutDeterministic(t *testing.T) {
	gen := func() string {
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"gen", "--events", "200", "--seed", "5", "--start", "2026-11-27T00:00:00Z", "--duration", "1h", "--malformed", "3"}, &out, &errOut)
		if code != 0 {
			t.Fatalf("gen exit %d: %s", code, errOut.String())
		}
		return out.String()
	}
	a, b := gen(), gen()
	if a != b {
		t.Fatal("same flags gave different output")
	}
	if n := strings.Count(a, "\n"); n < 203 {
		t.Fatalf("%d lines, want ≥ 203 (200 events, scenarios, 3 malformed)", n)
	}
}

func TestIngestMaxPast(t *testing.T) {
	tests := []struct {
		name, body string
		want       time.Duration // effective max_past
		wantErr    string
	}{
		{name: "default is the access-log retention", body: "", want: 90 * 24 * time.Hour},
		{name: "follows the retention", body: "retention: {access_log_days: 30}\n", want: 30 * 24 * time.Hour},
		{name: "retention forever: no limit", body: "retention: {access_log_days: 0}\n", want: 0},
		{name: "shorter than the retention", body: "ingest: {max_past: 168h}\n", want: 7 * 24 * time.Hour},
		{name: "set with retention forever", body: "ingest: {max_past: 720h}\nretention: {access_log_days: 0}\n", want: 30 * 24 * time.Hour},
		{name: "longer than the retention", body: "ingest: {max_past: 2400h}\n", wantErr: "longer than retention.access_log_days (90 days"},
		{name: "negative", body: "ingest: {max_past: -1h}\n", wantErr: "ingest.max_past: -1h0m0s"},
		{name: "too short (a unit slip)", body: "ingest: {max_past: 90s}\n", wantErr: "want 1h or more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadConfig(writeFile(t, tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.maxPast(); got != tt.want {
				t.Fatalf("max_past %s, want %s", got, tt.want)
			}
		})
	}
}

func TestFingerprintKeyFile(t *testing.T) {
	const secretText = "a-server-side-fingerprint-secret-42"
	keyFile := func(body string, mode os.FileMode) string {
		p := filepath.Join(t.TempDir(), "fp.key")
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		body    func() string // config file
		env     func() map[string]string
		keyed   bool
		warn    string
		wantErr string
	}{
		{name: "none: plain fingerprints", body: func() string { return "" }},
		{name: "from the file, trimmed", body: func() string { return "keys: {fingerprint_key_file: " + keyFile(secretText+"\n", 0o400) + "}\n" }, keyed: true},
		{name: "from the environment", body: func() string { return "" },
			env: func() map[string]string {
				return map[string]string{"AUDITWATCH_FINGERPRINT_KEY_FILE": keyFile(secretText, 0o600)}
			}, keyed: true},
		{name: "readable by others warns", body: func() string { return "keys: {fingerprint_key_file: " + keyFile(secretText, 0o644) + "}\n" }, keyed: true, warn: "readable by group or others"},
		{name: "empty file refused", body: func() string { return "keys: {fingerprint_key_file: " + keyFile("\n", 0o600) + "}\n" }, wantErr: "keys.fingerprint_key_file: fingerprint key file"},
		{name: "missing file refused", body: func() string { return "keys: {fingerprint_key_file: /nonexistent/fp.key}\n" }, wantErr: "no such file"},
		{name: "short secret refused", body: func() string { return "keys: {fingerprint_key_file: " + keyFile("hunter2", 0o600) + "}\n" }, wantErr: "want at least 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != nil {
				for k, v := range tt.env() {
					t.Setenv(k, v)
				}
			}
			c, err := LoadConfig(writeFile(t, tt.body()))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatal("the error quotes the secret")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fp := c.Keys.fingerprinter()
			if fp.Keyed() != tt.keyed {
				t.Fatalf("keyed = %v, want %v", fp.Keyed(), tt.keyed)
			}
			if tt.keyed && fp.Fingerprint("bk_live_x") != secret.NewFingerprinter([]byte(secretText)).Fingerprint("bk_live_x") {
				t.Fatal("the fingerprinter does not use the file's trimmed content")
			}
			if (c.Keys.keyFileWarning != "") != (tt.warn != "") || !strings.Contains(c.Keys.keyFileWarning, tt.warn) {
				t.Fatalf("warning %q, want %q", c.Keys.keyFileWarning, tt.warn)
			}
			// What is logged at startup: whether keyed and the check
			// value, never the secret.
			var logBuf bytes.Buffer
			c.Keys.logState(slog.New(slog.NewTextHandler(&logBuf, nil)))
			if strings.Contains(logBuf.String(), secretText) {
				t.Fatal("the secret was logged")
			}
			if tt.keyed != strings.Contains(logBuf.String(), "key_check="+fp.Check()) {
				t.Fatalf("log %q: want the key check exactly when keyed", logBuf.String())
			}
		})
	}
}
