package slack

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/alerts/slack/slacktest"
)

// TestNoSecretsLeak sends a message with a full API key planted in every
// free-text field, through both modes, on the success path and on failures,
// and fails if any request body, error or log line holds the key, the token
// or the webhook URL.
func TestNoSecretsLeak(t *testing.T) {
	srv := slacktest.NewServer(t)
	log, logs := newLogger()
	var errs []string
	collect := func(err error) {
		if err != nil {
			errs = append(errs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		}
	}
	bot := newBot(t, srv, func(c *Config) {
		c.Logger, c.Timeout = log, 200*time.Millisecond
		c.OnUpdateError = func(_ *alerts.Message, err *alerts.DeliveryError) { collect(err) }
	})
	hook := newHook(t, srv, func(c *Config) { c.Logger, c.Timeout = log, 200*time.Millisecond })
	deadHook := newHook(t, srv, func(c *Config) { c.WebhookURL = closedURL(t) + "/services/T0/B0/deadhooksecret" })
	ctx := context.Background()

	// Success: alert, repeat with update, resolution, through both modes.
	first, err := bot.Notify(ctx, leakyMessage())
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{alerts.KindRepeat, alerts.KindResolved} {
		m := leakyMessage()
		m.Kind, m.ThreadTS, m.UpdateTS = kind, first.TS, first.TS
		_, err := bot.Notify(ctx, m)
		collect(err)
		_, err = hook.Notify(ctx, m)
		collect(err)
	}
	_, err = hook.Notify(ctx, leakyMessage())
	collect(err)

	// Failures: each mode, each class; an update that fails (logged).
	for _, f := range []slacktest.Failure{
		slacktest.Hang(2 * time.Second), slacktest.ServerError(500), slacktest.RateLimited(1),
		slacktest.SlackError("invalid_auth"), slacktest.SlackError("channel_not_found"),
		{Status: 400, Body: "bad request for " + fullKey + " via " + srv.WebhookURL() + " " + botToken},
	} {
		for _, n := range []*Notifier{bot, hook} {
			srv.FailNext(1, f)
			_, err := n.Notify(ctx, leakyMessage())
			if err == nil {
				t.Errorf("no error with failure %+v", f)
			}
			collect(err)
		}
	}
	_, err = deadHook.Notify(ctx, leakyMessage())
	collect(err)
	srv.FailNext(1, slacktest.Hang(2*time.Second).Only("chat.update"))
	m := leakyMessage()
	m.Kind, m.ThreadTS, m.UpdateTS = alerts.KindRepeat, first.TS, first.TS
	_, err = bot.Notify(ctx, m)
	collect(err)

	// Configs printed and logged.
	for _, cfg := range []Config{bot.cfg, hook.cfg} {
		errs = append(errs, fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg))
		log.Info("config", "slack", cfg)
	}

	secrets := []string{fullKey, fullKey[8:], botToken, "AbCdEfGhIjKlMnOpQrStUvWx",
		srv.WebhookURL(), srv.WebhookURL()[strings.LastIndex(srv.WebhookURL(), "/")+1:], "deadhooksecret"}

	reqs := srv.WaitRequests(len(srv.Requests()), 5*time.Second)
	if len(reqs) < 20 {
		t.Fatalf("only %d requests", len(reqs))
	}
	for i, r := range reqs {
		mustNotContain(t, fmt.Sprintf("request %d (%s%s) body", i, r.API, map[bool]string{true: "webhook"}[r.Webhook]),
			string(r.Body), secrets...)
		mustNotContain(t, fmt.Sprintf("request %d text", i), r.Text, secrets...)
		mustNotContain(t, fmt.Sprintf("request %d blocks", i), r.BlocksText(), secrets...)
	}
	// The key was rendered as its hint, not dropped.
	mustContain(t, "first request", reqs[0].BlocksText(), keyHint, "python-requests/2.31 "+keyHint)
	if len(errs) < 12 {
		t.Fatalf("only %d error strings collected", len(errs))
	}
	for _, e := range errs {
		mustNotContain(t, "error", e, secrets...)
	}
	mustContain(t, "log", logs.String(), "update of the parent message failed", "token=xoxb-[redacted]")
	for _, line := range strings.Split(logs.String(), "\n") {
		mustNotContain(t, "log line", line, secrets...)
	}
}

func TestConfigNeverShowsSecrets(t *testing.T) {
	hook := "https://hooks.slack.com/services/T0AAAA/B0BBBB/abcdefghijklmnopqrstuvwx"
	for _, cfg := range []Config{{Token: botToken}, {WebhookURL: hook}} {
		var b strings.Builder
		slog.New(slog.NewJSONHandler(&b, nil)).Info("cfg", "slack", cfg)
		for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%s", cfg), b.String()} {
			mustNotContain(t, "config", s, botToken, "AbCdEf", "abcdefghijklmnopqrstuvwx", "B0BBBB")
		}
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
		webhook bool
	}{
		{name: "token", cfg: Config{Token: botToken}},
		{name: "token with newline from a file", cfg: Config{Token: botToken + "\n"}},
		{name: "webhook", cfg: Config{WebhookURL: "https://hooks.slack.com/services/T0/B0/secretsecret"}, webhook: true},
		{name: "neither", cfg: Config{}, wantErr: "set either a bot token or a webhook url"},
		{name: "both", cfg: Config{Token: botToken, WebhookURL: "https://hooks.slack.com/services/T0/B0/secretsecret"}, wantErr: "not both"},
		{name: "token with space", cfg: Config{Token: "xoxb-12 34"}, wantErr: "white space"},
		{name: "webhook not a URL", cfg: Config{WebhookURL: "hooks.slack.com/services/T0/B0/secretsecret"}, wantErr: "not an http(s) URL"},
		{name: "webhook bad URL", cfg: Config{WebhookURL: "https://hooks.slack.com/%zz/secretsecret"}, wantErr: "not an http(s) URL"},
		{name: "negative timeout", cfg: Config{Token: botToken, Timeout: -time.Second}, wantErr: "negative timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				mustNotContain(t, "error", err.Error(), "secretsecret", "AbCdEf")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.Webhook() != tt.webhook || n.timeout != DefaultTimeout {
				t.Errorf("Webhook() = %v, timeout %s", n.Webhook(), n.timeout)
			}
		})
	}
}
