package slack

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/alerts/slack/slacktest"
)

func TestNotifyErrors(t *testing.T) {
	type mode int
	const (
		bot mode = iota
		hook
	)
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		mode       mode
		failure    *slacktest.Failure      // queued for the first request
		setup      func(*slacktest.Server) // more setup
		cfg        func(c *Config, srv *slacktest.Server)
		ctx        func() (context.Context, context.CancelFunc)
		code       string
		retry      bool
		retryAfter time.Duration // exact, or ±5s for HTTP dates when negative
		is         error         // errors.Is target
	}{
		{name: "bot 429 Retry-After", mode: bot, failure: ptr(slacktest.RateLimited(7)), code: "rate_limited", retry: true, retryAfter: 7 * time.Second},
		{name: "webhook 429 Retry-After", mode: hook, failure: ptr(slacktest.RateLimited(12)), code: "rate_limited", retry: true, retryAfter: 12 * time.Second},
		{name: "bot 429 without Retry-After", mode: bot, failure: &slacktest.Failure{Status: 429, Error: "ratelimited"}, code: "rate_limited", retry: true},
		{name: "webhook 429 Retry-After date", mode: hook, failure: &slacktest.Failure{Status: 429, RetryAfter: date, Error: "ratelimited"}, code: "rate_limited", retry: true, retryAfter: -90 * time.Second},
		{name: "bot 500", mode: bot, failure: ptr(slacktest.ServerError(500)), code: "http_500", retry: true},
		{name: "bot 503", mode: bot, failure: ptr(slacktest.ServerError(503)), code: "http_503", retry: true},
		{name: "webhook 502", mode: hook, failure: ptr(slacktest.ServerError(502)), code: "http_502", retry: true},
		{name: "bot timeout", mode: bot, failure: ptr(slacktest.Hang(5 * time.Second)), code: "timeout", retry: true, is: context.DeadlineExceeded},
		{name: "webhook timeout", mode: hook, failure: ptr(slacktest.Hang(5 * time.Second)), code: "timeout", retry: true, is: context.DeadlineExceeded},
		{name: "caller's deadline", mode: bot, failure: ptr(slacktest.Hang(5 * time.Second)), code: "timeout", retry: true, is: context.DeadlineExceeded,
			cfg: func(c *Config, _ *slacktest.Server) { c.Timeout = time.Minute },
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 150*time.Millisecond)
			}},
		{name: "caller cancelled", mode: hook, code: "canceled", retry: true, is: context.Canceled,
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			}},
		{name: "bot channel_not_found", mode: bot, failure: ptr(slacktest.SlackError("channel_not_found")), code: "channel_not_found"},
		{name: "bot not_in_channel", mode: bot, failure: ptr(slacktest.SlackError("not_in_channel")), code: "not_in_channel"},
		{name: "bot invalid_auth", mode: bot, setup: func(s *slacktest.Server) { s.RequireToken("xoxb-another-token") }, code: "invalid_auth"},
		{name: "bot token_revoked", mode: bot, failure: ptr(slacktest.SlackError("token_revoked")), code: "token_revoked"},
		{name: "bot missing_scope", mode: bot, failure: ptr(slacktest.SlackError("missing_scope")), code: "missing_scope"},
		{name: "bot internal_error is retried", mode: bot, failure: ptr(slacktest.SlackError("internal_error")), code: "internal_error", retry: true},
		{name: "webhook channel_not_found", mode: hook, failure: ptr(slacktest.SlackError("channel_not_found")), code: "channel_not_found"},
		{name: "webhook revoked", mode: hook, cfg: func(c *Config, s *slacktest.Server) { c.WebhookURL = s.URL() + "/services/T0/B0/gone" }, code: "no_service"},
		{name: "webhook invalid_blocks", mode: hook, failure: ptr(slacktest.SlackError("invalid_blocks")), code: "invalid_blocks"},
		{name: "webhook 4xx without a code", mode: hook, failure: &slacktest.Failure{Status: 403, Body: "<html>Forbidden</html>"}, code: "http_403"},
		{name: "bot answer is not JSON", mode: bot, failure: &slacktest.Failure{Status: 200, Body: "<html>proxy</html>"}, code: "bad_response", retry: true},
		{name: "bot connection refused", mode: bot, cfg: func(c *Config, _ *slacktest.Server) { c.APIURL = closedURL(t) + "/api/" }, code: "network", retry: true},
		{name: "webhook connection refused", mode: hook, cfg: func(c *Config, _ *slacktest.Server) { c.WebhookURL = closedURL(t) + "/services/T0/B0/secret" }, code: "network", retry: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := slacktest.NewServer(t)
			if tt.failure != nil {
				srv.FailNext(1, *tt.failure)
			}
			if tt.setup != nil {
				tt.setup(srv)
			}
			cfg := Config{Token: botToken, APIURL: srv.APIURL(), Timeout: 150 * time.Millisecond}
			if tt.mode == hook {
				cfg = Config{WebhookURL: srv.WebhookURL(), Timeout: 150 * time.Millisecond}
			}
			if tt.cfg != nil {
				tt.cfg(&cfg, srv)
			}
			n, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()

			start := time.Now()
			rc, err := n.Notify(ctx, alertMessage())
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Notify took %s", d)
			}
			if err == nil {
				t.Fatalf("no error (receipt %+v)", rc)
			}
			var de *alerts.DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("err is %T, want *alerts.DeliveryError: %v", err, err)
			}
			if de.Code != tt.code || de.Retry != tt.retry {
				t.Errorf("code %q retry %v, want %q %v (%v)", de.Code, de.Retry, tt.code, tt.retry, err)
			}
			switch {
			case tt.retryAfter < 0:
				if want := -tt.retryAfter; de.RetryAfter < want-5*time.Second || de.RetryAfter > want+time.Second {
					t.Errorf("RetryAfter = %s, want about %s", de.RetryAfter, want)
				}
			case de.RetryAfter != tt.retryAfter:
				t.Errorf("RetryAfter = %s, want %s", de.RetryAfter, tt.retryAfter)
			}
			if retry, after := alerts.Retryable(err); retry != tt.retry || after != de.RetryAfter {
				t.Errorf("alerts.Retryable = %v, %s", retry, after)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(err, %v) = false: %v", tt.is, err)
			}
			if !strings.HasPrefix(err.Error(), tt.code+": slack: ") {
				t.Errorf("message = %q", err.Error())
			}
			mustNotContain(t, "error", err.Error(), botToken, srv.WebhookURL(), cfg.WebhookURL, "hooks.slack.com")
			if tt.mode == hook && cfg.WebhookURL != "" {
				mustNotContain(t, "error", err.Error(), cfg.WebhookURL[strings.LastIndex(cfg.WebhookURL, "/"):])
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// closedURL returns the URL of a port nobody listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestErrorUnwrapsOnlySafeCauses(t *testing.T) {
	srv := slacktest.NewServer(t)
	n := newBot(t, srv)
	srv.FailNext(1, slacktest.SlackError("channel_not_found"))
	_, err := n.Notify(context.Background(), alertMessage())
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != "channel_not_found" {
		t.Errorf("errors.As(SlackErrorResponse) = %v, %+v", errors.As(err, &se), se)
	}
	srv.FailNext(1, slacktest.RateLimited(3))
	_, err = n.Notify(context.Background(), alertMessage())
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 3*time.Second {
		t.Errorf("errors.As(RateLimitedError) = %v", err)
	}

	// A network error's chain quotes the URL: it is not exposed.
	h := newHook(t, srv, func(c *Config) { c.WebhookURL = closedURL(t) + "/services/T0/B0/secretpath" })
	_, err = h.Notify(context.Background(), alertMessage())
	for e := err; e != nil; e = errors.Unwrap(e) {
		mustNotContain(t, "error chain", e.Error(), "secretpath")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, v string
		want    time.Duration
	}{
		{"empty", "", 0},
		{"seconds", "30", 30 * time.Second},
		{"fraction", "1.5", 1500 * time.Millisecond},
		{"zero", "0", 0},
		{"negative", "-3", 0},
		{"date", now.Add(2 * time.Minute).Format(http.TimeFormat), 2 * time.Minute},
		{"past date", now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"garbage", "soon", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRetryAfter(tt.v, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.v, got, tt.want)
			}
		})
	}
}

func TestScrubber(t *testing.T) {
	hook := "https://hooks.slack.com/services/T0AAAA/B0BBBB/abcdefghijklmnopqrstuvwx"
	s := newScrubber(botToken, hook)
	tests := []struct {
		name, in string
		gone     []string
	}{
		{"configured token", "auth failed for " + botToken + " today", []string{botToken, "AbCdEfGh"}},
		{"other tokens", "xoxp-123-456-789abc and xapp-1-A0-123-abc, xoxe.xoxp-1-zzz", []string{"xoxp-123", "xapp-1-A0", "xoxp-1-zzz"}},
		{"configured webhook quoted", `Post "` + hook + `": dial tcp: refused`, []string{"abcdefghijklmnopqrstuvwx", "B0BBBB"}},
		{"other webhook", "see https://hooks.slack.com/services/T1/B2/zzzzzzzzzzzz for", []string{"zzzzzzzzzzzz"}},
		{"webhook without scheme", "hooks.slack.com/services/T1/B2/yyyyyyyyyyyy", []string{"yyyyyyyyyyyy"}},
		{"api key", "ua=curl " + fullKey, []string{fullKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.clean(tt.in)
			mustNotContain(t, "scrubbed", got, tt.gone...)
			if !strings.Contains(got, "[redacted") && !strings.Contains(got, "…") {
				t.Errorf("nothing marked as removed: %q", got)
			}
		})
	}
	if got := s.clean("channel_not_found: post message to #sec-alerts"); got != "channel_not_found: post message to #sec-alerts" {
		t.Errorf("innocent text changed: %q", got)
	}
}
