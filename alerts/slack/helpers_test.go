package slack

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/alerts/slack/slacktest"
	"github.com/auditwatch/auditwatch/detect"
)

// Secrets the tests plant and then look for.
const (
	fullKey  = "bk_live_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6" // bk_live_ + 32 characters
	keyHint  = "bk_live_A1b2…O5p6"
	botToken = "xoxb-1111111111-2222222222-AbCdEfGhIjKlMnOpQrStUvWx"
)

var evalTime = time.Date(2026, 11, 27, 12, 6, 0, 0, time.UTC)

// finding returns a finding of the invalid-signature rule for one key.
func finding(keyID, ip string, value float64) detect.Finding {
	first, last := evalTime.Add(-5*time.Minute-50*time.Second), evalTime.Add(-70*time.Second)
	return detect.Finding{
		ID: "f-" + keyID, RuleID: "invalid-signature-burst", RuleName: "Invalid signature burst on one key",
		RuleType: "threshold", Severity: "critical", Status: detect.StatusNew,
		Group: map[string]string{"key_id": keyID}, GroupKey: "key_id=" + keyID,
		KeyID: keyID, KeyHint: keyHint, AccountID: "acc_42",
		EvalTime: evalTime, WindowStart: evalTime.Add(-6 * time.Minute), WindowEnd: evalTime.Add(-time.Minute),
		Value: value, Threshold: 20,
		Summary: "Invalid signature burst on one key: 184 invalid_signature in 5m (threshold 20) for key_id " + keyID,
		Evidence: detect.Evidence{
			Requests:         uint64(value),
			TopClientIPs:     []string{ip, "198.51.100.2"},
			TopErrorCodes:    []string{"invalid_signature"},
			SampleRequestIDs: []string{"req_7f3a9c01", "req_8b1d2e02"},
			FirstSeen:        &first, LastSeen: &last,
			Details: map[string]any{"owner": "Market Makers Ltd", "env": "live"},
		},
		Runbook: "https://runbooks.example/invalid-signature",
	}
}

// alertMessage is a critical alert with two findings listed of five groups.
func alertMessage() *alerts.Message {
	return &alerts.Message{
		Kind: alerts.KindAlert, Channel: "#sec-alerts",
		RuleID: "invalid-signature-burst", RuleName: "Invalid signature burst on one key",
		Severity:    "critical",
		Description: "Many requests with a bad HMAC signature on one key: a leaked key being tried, or a broken client.",
		Runbook:     "https://runbooks.example/invalid-signature?team=sec&v=2",
		Mention:     "<!subteam^S0123ABC>",
		Env:         "live",
		Findings:    []detect.Finding{finding("key_01HXYZ", "203.0.113.7", 184), finding("key_01HABC", "192.0.2.55", 40)},
		TotalGroups: 5,
		Query:       "SELECT ts, request_id, client_ip, error_code FROM access_log WHERE key_id = 'key_01HXYZ' AND ts >= '2026-11-27 12:00:00' AND ts < '2026-11-27 12:05:00' ORDER BY ts LIMIT 100",
		EvalTime:    evalTime,
	}
}

// leakyMessage is alertMessage with the full key planted in every free-text
// field a finding or a rule can carry.
func leakyMessage() *alerts.Message {
	m := alertMessage()
	m.Description += " Example: " + fullKey
	m.Query += " -- " + fullKey
	f := &m.Findings[0]
	f.Summary += " ua=python-requests/2.31 (key " + fullKey + ")"
	f.KeyHint = fullKey // a detector bug: the hint is the key
	f.Group["user_agent"] = "curl/8.0 " + fullKey
	f.Evidence.Details["user_agent"] = "python-requests/2.31 " + fullKey
	f.Evidence.Details["path"] = "/v1/orders?api_key=" + fullKey
	f.Evidence.SampleRequestIDs = append(f.Evidence.SampleRequestIDs, fullKey)
	f.Evidence.TopErrorCodes = append(f.Evidence.TopErrorCodes, `{"api_key":"`+fullKey+`"}`)
	return m
}

// blocksText returns the texts of blocks, one per line (see
// slacktest.Request.BlocksText).
func blocksText(t *testing.T, blocks []slack.Block) string {
	t.Helper()
	return slacktest.Request{Blocks: blocksJSON(t, blocks)}.BlocksText()
}

func blocksJSON(t *testing.T, blocks []slack.Block) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(blocks)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// logBuffer is a slog text logger writing to a buffer.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// mustContain fails unless s contains every one of subs.
func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

// mustNotContain fails if s contains any of subs.
func mustNotContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if sub != "" && strings.Contains(s, sub) {
			t.Errorf("%s contains %q:\n%s", what, sub, s)
		}
	}
}
