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

	"github.com/auditwatch/auditwatch/alerts/slack"
	"github.com/auditwatch/auditwatch/alerts/slack/slacktest"
	"github.com/auditwatch/auditwatch/deploy/testenv"
)

const (
	triageBot = "xoxb-1234567890-abcdefghijklmnopqrstuvwx"
	triageApp = "xapp-1-A0AUDIT-1234567890-0123456789abcdef0123456789abcdef"
)

// TestInteractiveConfig: alerts.slack.interactive is on only when enabled
// with an app-level token and a bot token; its mistakes are configuration
// errors that never show a token.
func TestInteractiveConfig(t *testing.T) {
	appFile := filepath.Join(t.TempDir(), "app_token")
	if err := os.WriteFile(appFile, []byte(triageApp+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	allowed := "allowed_usergroups: [S0SECONCALL]"
	tests := []struct {
		name    string
		body    string
		env     map[string]string
		wantOn  bool
		wantErr string
		buttons bool // the notifier adds the buttons
	}{
		{name: "webhook only: nothing changes", body: "", env: map[string]string{"AUDITWATCH_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T1/B1/secretpart"}},
		{name: "bot token without app token: no buttons", body: "", env: map[string]string{"AUDITWATCH_SLACK_TOKEN": triageBot}},
		{name: "app token but not enabled: off", body: "", env: map[string]string{"AUDITWATCH_SLACK_TOKEN": triageBot, "AUDITWATCH_SLACK_APP_TOKEN": triageApp}},
		{name: "enabled, token from the environment", body: "alerts: {slack: {interactive: {enabled: true, " + allowed + "}}}\n",
			env: map[string]string{"AUDITWATCH_SLACK_TOKEN": triageBot, "AUDITWATCH_SLACK_APP_TOKEN": triageApp}, wantOn: true, buttons: true},
		{name: "enabled, token from a file", body: "alerts: {slack: {interactive: {enabled: true, app_token_file: " + appFile + ", allowed_users: [U0ALICE], allowed_channels: [C0SECALERTS]}}}\n",
			env: map[string]string{"AUDITWATCH_SLACK_TOKEN": triageBot}, wantOn: true, buttons: true},
		{name: "enabled without app token", body: "alerts: {slack: {interactive: {enabled: true, " + allowed + "}}}\n",
			env: map[string]string{"AUDITWATCH_SLACK_TOKEN": triageBot}, wantErr: "set the app-level token"},
		{name: "a bot token given as the app token", body: "alerts: {slack: {interactive: {enabled: true, " + allowed + "}}}\n",
			env: map[string]string{"AUDITWATCH_SLACK_TOKEN": triageBot, "AUDITWATCH_SLACK_APP_TOKEN": triageBot}, wantErr: "must start with xapp-"},
		{name: "enabled with a webhook", body: "alerts: {slack: {interactive: {enabled: true, " + allowed + "}}}\n",
			env: map[string]string{"AUDITWATCH_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T1/B1/secretpart", "AUDITWATCH_SLACK_APP_TOKEN": triageApp}, wantErr: "needs a bot token"},
		{name: "nobody allowed", body: "alerts: {slack: {interactive: {enabled: true}}}\n",
			env: map[string]string{"AUDITWATCH_SLACK_TOKEN": triageBot, "AUDITWATCH_SLACK_APP_TOKEN": triageApp}, wantErr: "set allowed_users, allowed_usergroups or allowed_channels"},
		{name: "a handle instead of an id", body: "alerts: {slack: {interactive: {enabled: true, allowed_usergroups: [\"@sec-oncall\"], allowed_users: [alice]}}}\n",
			env: map[string]string{"AUDITWATCH_SLACK_TOKEN": triageBot, "AUDITWATCH_SLACK_APP_TOKEN": triageApp}, wantErr: "allowed_usergroups[0] \"@sec-oncall\": want a Slack user group (S…) id"},
		{name: "unknown key", body: "alerts: {slack: {interactive: {enabled: true, allowed_user: [U0ALICE]}}}\n", wantErr: "allowed_user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"AUDITWATCH_CONFIG", "AUDITWATCH_SLACK_TOKEN", "AUDITWATCH_SLACK_WEBHOOK_URL", "AUDITWATCH_SLACK_APP_TOKEN", "AUDITWATCH_FALLBACK_WEBHOOK_URL"} {
				t.Setenv(k, "")
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg, err := LoadConfig(writeFile(t, tc.body))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				for _, s := range []string{triageBot, triageApp, "secretpart"} {
					if strings.Contains(err.Error(), s) {
						t.Fatalf("error shows a secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Alerts.Slack.Interactive.on(cfg.Alerts.Slack); got != tc.wantOn {
				t.Fatalf("interactive on = %v, want %v", got, tc.wantOn)
			}
			n, closeN, err := newNotifier(cfg.Alerts, &bytes.Buffer{}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer closeN()
			sn, ok := n.(*slack.Notifier)
			if !ok {
				t.Fatalf("notifier %s", n.Name())
			}
			if got := sn.Interactive(); got != tc.buttons {
				t.Errorf("notifier interactive = %v, want %v", got, tc.buttons)
			}
		})
	}
}

// TestStartTriage: with alerts.slack.interactive on, startTriage connects
// over Socket Mode and its stop function disconnects and returns; off, it
// opens no connection.
func TestStartTriage(t *testing.T) {
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	srv := slacktest.NewServer(t)
	for _, k := range []string{"AUDITWATCH_CONFIG", "AUDITWATCH_SLACK_WEBHOOK_URL", "AUDITWATCH_FALLBACK_WEBHOOK_URL"} {
		t.Setenv(k, "")
	}
	t.Setenv("AUDITWATCH_SLACK_TOKEN", triageBot)
	t.Setenv("AUDITWATCH_SLACK_APP_TOKEN", triageApp)
	body := "clickhouse: {database: " + db + "}\nalerts: {slack: {api_url: \"" + srv.APIURL() + "\", allow_custom_api_url: true, interactive: {enabled: %s, allowed_usergroups: [S0SECONCALL]}}}\n"
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	off, err := LoadConfig(writeFile(t, strings.Replace(body, "%s", "false", 1)))
	if err != nil {
		t.Fatal(err)
	}
	startTriage(context.Background(), off, conn, log)()
	time.Sleep(200 * time.Millisecond)
	if n := len(srv.Requests()); n != 0 {
		t.Fatalf("triage off made %d Slack requests", n)
	}

	on, err := LoadConfig(writeFile(t, strings.Replace(body, "%s", "true", 1)))
	if err != nil {
		t.Fatal(err)
	}
	stop := startTriage(context.Background(), on, conn, log)
	if !srv.WaitSocket(1, 10*time.Second) {
		t.Fatalf("no Socket Mode connection; logs:\n%s", logs.String())
	}
	id := srv.SendSlashCommand("/auditwatch", "help", "U0ANYONE", "C0SECALERTS")
	if a, ok := srv.WaitAck(id, 10*time.Second); !ok || !strings.Contains(string(a.Payload), "/auditwatch key") {
		t.Fatalf("help not answered: %s %v", a.Payload, ok)
	}
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return")
	}
	for _, s := range []string{triageBot, triageApp} {
		if strings.Contains(logs.String(), s) {
			t.Fatal("a token was logged")
		}
	}
}
