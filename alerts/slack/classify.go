package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/slack-go/slack"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/ingest/secret"
)

// transientSlackErrors are Slack API errors worth retrying.
var transientSlackErrors = map[string]bool{
	"ratelimited":         true,
	"rate_limited":        true,
	"internal_error":      true,
	"fatal_error":         true,
	"service_unavailable": true,
	"request_timeout":     true,
}

// errorCodeRe matches a Slack error code ("channel_not_found"), as webhooks
// answer it in their body.
var errorCodeRe = regexp.MustCompile(`^[a-z][a-z0-9_]{1,63}$`)

// classify turns the error of one request into an *alerts.DeliveryError
// whose message is scrubbed of credentials. ctx is the caller's context (not
// the request's, which has the timeout), what names the request.
func (n *Notifier) classify(ctx context.Context, what string, err error, p *probe) *alerts.DeliveryError {
	status, retryAfter, body := p.get()
	de := &alerts.DeliveryError{Retry: true}

	var rl *slack.RateLimitedError
	var sc slack.StatusCodeError
	var se slack.SlackErrorResponse
	var ne net.Error
	var se2 *json.SyntaxError
	switch {
	case errors.As(err, &rl):
		de.Code, de.RetryAfter = "rate_limited", rl.RetryAfter
	case status == http.StatusTooManyRequests:
		// 429 without a Retry-After slack-go could read (none, or a date).
		de.Code, de.RetryAfter = "rate_limited", parseRetryAfter(retryAfter, time.Now())
	case errors.As(err, &sc) || (status != 0 && status != http.StatusOK):
		if status == 0 {
			status = sc.Code
		}
		de.Code = "http_" + strconv.Itoa(status)
		if status < 500 && status != http.StatusRequestTimeout {
			de.Retry = false
			// Webhooks answer their error as a word in the body.
			if c := strings.TrimSpace(body); errorCodeRe.MatchString(c) {
				de.Code = c
				de.Retry = transientSlackErrors[c]
			}
		}
	case errors.As(err, &se):
		de.Code = se.Err
		if !errorCodeRe.MatchString(de.Code) {
			de.Code = "slack_error"
		}
		de.Retry = transientSlackErrors[se.Err]
	case errors.Is(ctx.Err(), context.Canceled):
		de.Code = "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		de.Code = "timeout"
	case errors.As(err, &se2):
		de.Code = "bad_response" // not JSON: a proxy's page, a truncated answer
	case isNetwork(err):
		de.Code = "network"
	default:
		de.Code = "error"
	}
	msg := fmt.Sprintf("slack: %s: %v", what, err)
	if status != 0 && status != http.StatusOK && !strings.Contains(msg, strconv.Itoa(status)) {
		msg += fmt.Sprintf(" (HTTP %d)", status)
	}
	if c := strings.TrimSpace(body); errorCodeRe.MatchString(c) && !strings.Contains(msg, c) {
		msg += ": " + c
	}
	de.Err = &scrubbedError{msg: n.scrub.clean(msg), cause: safeCause(err)}
	return de
}

// isNetwork reports whether err is a failure to reach Slack or a broken
// connection.
func isNetwork(err error) bool {
	var ue *url.Error
	var oe *net.OpError
	var de *net.DNSError
	return errors.As(err, &ue) || errors.As(err, &oe) || errors.As(err, &de) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// scrubbedError is an error whose message went through the scrubber. It
// unwraps only to causes that cannot hold a secret (the original chain may
// quote the webhook URL).
type scrubbedError struct {
	msg   string
	cause error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.cause }

// safeCause returns the part of err's chain that callers may inspect and
// that holds no secret: context errors and slack-go's typed errors.
func safeCause(err error) error {
	var rl *slack.RateLimitedError
	var sc slack.StatusCodeError
	var se slack.SlackErrorResponse
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.As(err, &rl):
		return rl
	case errors.As(err, &sc):
		return sc
	case errors.As(err, &se):
		return slack.SlackErrorResponse{Err: se.Err}
	}
	return nil
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return 0
}

// scrubber removes credentials from text.
type scrubber struct {
	tokens, hooks []string // literal forms of the token and the webhook URL
}

var (
	// slackTokenRe matches Slack tokens of every kind.
	slackTokenRe = regexp.MustCompile(`xox[abposre]-[^\s"'<>]+|xapp-[^\s"'<>]+`)
	// hookURLRe matches Slack webhook URLs, with or without scheme.
	hookURLRe = regexp.MustCompile(`(?:https?://)?hooks\.slack(?:-gov)?\.com/[^\s"'<>]+`)
)

func newScrubber(token, webhookURL string) *scrubber {
	s := &scrubber{}
	add := func(list *[]string, v string) {
		if len(v) >= 8 {
			*list = append(*list, v)
		}
	}
	add(&s.tokens, token)
	add(&s.tokens, url.QueryEscape(token))
	add(&s.hooks, webhookURL)
	if u, err := url.Parse(webhookURL); err == nil && webhookURL != "" {
		// The forms net/http may quote it in: re-encoded, without
		// password, host and path, path alone.
		add(&s.hooks, u.String())
		add(&s.hooks, u.Redacted())
		add(&s.hooks, u.Host+u.EscapedPath())
		add(&s.hooks, u.EscapedPath())
		add(&s.hooks, u.Path)
		add(&s.hooks, u.RawQuery)
	}
	return s
}

// clean returns text without the configured token and webhook URL, without
// anything shaped like a Slack token or webhook URL, and with API keys
// masked (secret.Redact).
func (s *scrubber) clean(text string) string {
	for _, l := range s.hooks {
		text = strings.ReplaceAll(text, l, "[redacted-webhook-url]")
	}
	for _, l := range s.tokens {
		text = strings.ReplaceAll(text, l, "[redacted-token]")
	}
	text = slackTokenRe.ReplaceAllString(text, "[redacted-token]")
	text = hookURLRe.ReplaceAllString(text, "[redacted-webhook-url]")
	return secret.Redact(text)
}

// probe records what slack-go does not pass on about an answer: its status,
// Retry-After and the start of an error body.
type probe struct {
	mu         sync.Mutex
	status     int
	retryAfter string
	body       string
}

func (p *probe) get() (int, string, string) {
	if p == nil {
		return 0, "", ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, p.retryAfter, p.body
}

type probeKey struct{}

// probeTransport fills the probe found in a request's context.
type probeTransport struct {
	base http.RoundTripper
}

// maxProbeBody is how much of an error body is kept.
const maxProbeBody = 256

func (t *probeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	p, _ := req.Context().Value(probeKey{}).(*probe)
	if p == nil || resp == nil {
		return resp, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status, p.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	if resp.StatusCode != http.StatusOK && resp.Body != nil {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
		p.body = string(head)
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	}
	return resp, err
}
