package slack

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/auditwatch/auditwatch/alerts"
)

// DefaultTimeout bounds each request to Slack when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Config configures a Notifier. Exactly one of Token and WebhookURL is set.
//
// Config's String, GoString and LogValue never show the token or the
// webhook URL, so a Config can be logged.
type Config struct {
	// Token is a bot token (xoxb-…): messages go through chat.postMessage,
	// repeats and resolutions are threaded under the first message and the
	// first message is updated.
	Token string
	// WebhookURL is an incoming webhook (https://hooks.slack.com/services/…):
	// one fixed channel, no threads, no updates, no receipt.
	WebhookURL string
	// APIURL overrides the Web API base URL (default
	// https://slack.com/api/), for tests: slacktest.Server.APIURL().
	APIURL string
	// Timeout bounds each request (default DefaultTimeout).
	Timeout time.Duration
	// HTTPClient sends the requests (default: a new client on
	// http.DefaultTransport). It is not modified.
	HTTPClient *http.Client
	// Logger receives what Notify cannot return: a failed update of the
	// parent message, a thread reply Slack posted outside its thread. Nil
	// discards. Lines never contain credentials.
	Logger *slog.Logger
	// Interactive adds the triage buttons (Acknowledge, Silence key 24 h,
	// Silence rule for this key…, Expected activity, Resolve; see
	// ActionIDs) under each finding of alert messages. Someone must answer
	// them: the Socket Mode runner of alerts/triage, with an app-level
	// token. Bot token only: New refuses it with a webhook.
	Interactive bool
	// OnUpdateError, when set, is called (synchronously, from Notify) with
	// the classified error of a failed update of the parent message, after
	// the reply itself was posted; Notify still succeeds.
	OnUpdateError func(m *alerts.Message, err *alerts.DeliveryError)
}

// New returns a notifier for cfg. It checks cfg without contacting Slack;
// its errors never contain the token or the webhook URL.
func New(cfg Config) (*Notifier, error) {
	cfg.Token = strings.TrimSpace(cfg.Token)
	cfg.WebhookURL = strings.TrimSpace(cfg.WebhookURL)
	switch {
	case cfg.Token == "" && cfg.WebhookURL == "":
		return nil, errors.New("slack: set either a bot token or a webhook url")
	case cfg.Token != "" && cfg.WebhookURL != "":
		return nil, errors.New("slack: set either a bot token or a webhook url, not both")
	case cfg.Interactive && cfg.Token == "":
		return nil, errors.New("slack: interactive alerts need a bot token (a webhook cannot receive button presses)")
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("slack: negative timeout %s", cfg.Timeout)
	}
	if cfg.Token != "" && strings.ContainsAny(cfg.Token, " \t\r\n") {
		return nil, errors.New("slack: the token contains white space")
	}
	if cfg.WebhookURL != "" {
		u, err := url.Parse(cfg.WebhookURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			// url.Parse's error quotes the URL: never return it.
			return nil, errors.New("slack: the webhook url is not an http(s) URL")
		}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	apiURL := cfg.APIURL
	if apiURL == "" {
		apiURL = slack.APIURL
	}
	if !strings.HasSuffix(apiURL, "/") {
		apiURL += "/"
	}

	// The client is copied so its transport can be wrapped: the wrapper
	// notes each answer's status, Retry-After and (for errors) the start of
	// the body, which slack-go discards, for the classification.
	client := &http.Client{}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		client = &c
	}
	base := client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	client.Transport = &probeTransport{base: base}

	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{
		cfg:     cfg,
		client:  client,
		timeout: cfg.Timeout,
		log:     log,
		scrub:   newScrubber(cfg.Token, cfg.WebhookURL),
	}
	if cfg.Token != "" {
		n.api = slack.New(cfg.Token, slack.OptionAPIURL(apiURL), slack.OptionHTTPClient(client))
	}
	return n, nil
}

// String describes c without its secrets.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("slack.Config{")
	switch {
	case c.Token != "":
		fmt.Fprintf(&b, "mode: bot, token: %s", maskToken(c.Token))
		if c.APIURL != "" {
			fmt.Fprintf(&b, ", api_url: %s", c.APIURL)
		}
	case c.WebhookURL != "":
		fmt.Fprintf(&b, "mode: webhook, webhook_url: %s", maskWebhook(c.WebhookURL))
	default:
		b.WriteString("mode: none")
	}
	fmt.Fprintf(&b, ", timeout: %s}", c.Timeout)
	return b.String()
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// LogValue logs c without its secrets.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{slog.Duration("timeout", c.Timeout)}
	switch {
	case c.Token != "":
		attrs = append(attrs, slog.String("mode", "bot"), slog.String("token", maskToken(c.Token)))
	case c.WebhookURL != "":
		attrs = append(attrs, slog.String("mode", "webhook"), slog.String("webhook_url", maskWebhook(c.WebhookURL)))
	}
	return slog.GroupValue(attrs...)
}

// maskToken keeps the token's type ("xoxb-") and nothing else.
func maskToken(tok string) string {
	if i := strings.IndexByte(tok, '-'); i > 0 && i <= 5 {
		return tok[:i+1] + "[redacted]"
	}
	return "[redacted]"
}

// maskWebhook keeps the webhook's scheme and host.
func maskWebhook(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "[redacted]"
	}
	return u.Scheme + "://" + u.Host + "/[redacted]"
}
