package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditwatch/auditwatch/alerts"
)

// TestNotifierChoice: alerts.notifier auto never falls back to standard
// output silently; console only when configured; the fallback routes are
// checked against the primary notifier at start, without secrets in errors.
func TestNotifierChoice(t *testing.T) {
	const tok = "xoxb-1111111111-2222222222-abcdefghijklmnopqrstuvwx"
	const hook = "https://hooks.slack.com/services/T000/B000/primarysecretpart"
	const fbHook = "https://hooks.slack.com/services/T000/B111/fallbacksecretpart"
	dir := t.TempDir()
	fbFile := filepath.Join(dir, "undelivered.jsonl")
	tests := []struct {
		name        string
		body        string
		env         map[string]string
		wantLoadErr string // LoadConfig fails with this
		wantErr     string // newNotifier fails with this
		wantName    string
		wantTargets []string
	}{
		{name: "auto without credentials is a startup error", body: "alerts: {notifier: auto}\n", wantErr: "set alerts.notifier: console"},
		{name: "default (auto) without credentials is a startup error", body: "", wantErr: "no Slack credentials"},
		{name: "console when configured", body: "alerts: {notifier: console}\n", wantName: "console"},
		{name: "console to a file", body: "alerts: {notifier: console, console_path: " + filepath.Join(dir, "alerts.txt") + "}\n", wantName: "console"},
		{name: "auto with a bot token is slack", body: "alerts: {notifier: auto}\n", env: map[string]string{"AUDITWATCH_SLACK_TOKEN": tok}, wantName: "slack"},
		{name: "auto with a webhook is slack", body: "", env: map[string]string{"AUDITWATCH_SLACK_WEBHOOK_URL": hook}, wantName: "slack"},
		{name: "slack without credentials is a startup error where alerts are delivered", body: "alerts: {notifier: slack}\n", wantErr: "alerts.notifier slack"},
		{name: "every fallback with a bot token", body: "alerts:\n  notifier: slack\n  fallback: {channel: \"#aw-fallback\", file: " + fbFile + "}\n",
			env: map[string]string{"AUDITWATCH_SLACK_TOKEN": tok, "AUDITWATCH_FALLBACK_WEBHOOK_URL": fbHook}, wantName: "slack",
			wantTargets: []string{alerts.FallbackChannel, alerts.FallbackWebhook, alerts.FallbackFile}},
		{name: "fallback channel needs a bot token, not a webhook", body: "alerts: {fallback: {channel: \"#aw-fallback\"}}\n",
			env: map[string]string{"AUDITWATCH_SLACK_WEBHOOK_URL": hook}, wantErr: "needs the Slack notifier with a bot token"},
		{name: "fallback channel with the console", body: "alerts: {notifier: console, fallback: {channel: \"#aw-fallback\"}}\n", wantErr: "alerts.fallback.channel"},
		{name: "fallback webhook is not the primary one", body: "", env: map[string]string{"AUDITWATCH_SLACK_WEBHOOK_URL": hook, "AUDITWATCH_FALLBACK_WEBHOOK_URL": hook},
			wantErr: "the fallback webhook is the primary webhook"},
		{name: "fallback file that cannot be created", body: "alerts: {notifier: console, fallback: {file: " + filepath.Join(dir, "no", "such", "dir.jsonl") + "}}\n",
			wantErr: "alerts.fallback.file"},
		{name: "console with a fallback file", body: "alerts: {notifier: console, fallback: {file: " + fbFile + "}}\n", wantName: "console",
			wantTargets: []string{alerts.FallbackFile}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"AUDITWATCH_CONFIG", "AUDITWATCH_SLACK_TOKEN", "AUDITWATCH_SLACK_WEBHOOK_URL", "AUDITWATCH_FALLBACK_WEBHOOK_URL"} {
				t.Setenv(k, "")
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg, err := LoadConfig(writeFile(t, tc.body))
			if tc.wantLoadErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantLoadErr) {
					t.Fatalf("LoadConfig error %v, want %q", err, tc.wantLoadErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var stdout, logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			n, closeN, err := newNotifier(cfg.Alerts, &stdout, log)
			if err != nil {
				for _, s := range []string{tok, hook, fbHook, "secretpart"} {
					if strings.Contains(err.Error(), s) {
						t.Fatalf("error leaks a secret: %v", err)
					}
				}
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("newNotifier error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer closeN()
			if n.Name() != tc.wantName {
				t.Fatalf("notifier %s, want %s", n.Name(), tc.wantName)
			}
			ts, err := fallbackTargets(cfg.Alerts, n)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, x := range ts {
				names = append(names, x.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.wantTargets, ",") {
				t.Fatalf("fallback targets %v, want %v", names, tc.wantTargets)
			}
			if len(tc.wantTargets) > 0 && strings.Contains(strings.Join(tc.wantTargets, ","), alerts.FallbackFile) {
				if fi, err := os.Stat(fbFile); err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("fallback file: %v %v, want mode 0600", fi, err)
				}
			}
			if strings.Contains(logs.String(), tok) || strings.Contains(logs.String(), "secretpart") {
				t.Fatal("log leaks a secret")
			}
		})
	}
}
