package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/alerts/slack"
	"github.com/auditwatch/auditwatch/alerts/slack/slacktest"
	"github.com/auditwatch/auditwatch/deploy/testenv"
)

// lockedBuffer is a process log written by exec's copier and read by the
// test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const triageRules = `rules:
  - id: triage-burst
    name: Triage test burst
    severity: high
    schedule: "@every 2s"
    type: threshold
    filter: {error_code: invalid_signature}
    group_by: [key_id]
    window: 20s
    threshold: 3
    cooldown: 30m
`

// TestDetectTriageHA runs two `auditwatch detect` processes with detect.ha
// and alerts.slack.interactive against the local Slack: only the leader
// opens the Socket Mode connection; its alert carries the buttons; an
// Acknowledge press is recorded in alert_actions; after SIGKILL of the
// leader the new leader connects and answers a Resolve press. Neither
// process logs a token.
func TestDetectTriageHA(t *testing.T) {
	s := newStack(t, testenv.ClickHouseAddr(t), 1)
	srv := slacktest.NewServer(t)
	srv.RequireToken(triageBot)
	group, topic := testenv.RandomName("aw-test-triage-"), testenv.RandomName("aw-test-triage-leader-")
	t.Cleanup(func() { deleteTopic(s.brokers, topic) })
	rulesDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(rulesDir, "r.yaml"), []byte(triageRules), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func(name string) (*exec.Cmd, *lockedBuffer, chan error) {
		t.Helper()
		port := freePort(t)
		cfg := s.config(t, freePort(t), fmt.Sprintf(`detect:
  rules_dir: %q
  http_listen: "127.0.0.1:%d"
  max_wait: 1s
  ha: {enabled: true, group_id: %s, topic: %s}
alerts:
  enabled: true
  notifier: slack
  slack:
    api_url: %q
    allow_custom_api_url: true
    interactive: {enabled: true, allowed_users: [U0ALLOWED]}
  default_channel: "#sec-alerts"
  poll_interval: 1s
  send_resolved: false
`, rulesDir, port, group, topic, srv.APIURL()))
		log := &lockedBuffer{}
		cmd := exec.Command(binary, "detect", "--config", cfg)
		cmd.Env = append(os.Environ(), "AUDITWATCH_SLACK_TOKEN="+triageBot, "AUDITWATCH_SLACK_APP_TOKEN="+triageApp)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				<-done
			}
			if t.Failed() {
				t.Logf("detect %s log:\n%s", name, tail(log.String(), 5000))
			}
			for _, tok := range []string{triageBot, triageApp, triageApp[5:]} {
				if strings.Contains(log.String(), tok) {
					t.Errorf("detect %s logged a token", name)
				}
			}
		})
		return cmd, log, done
	}
	conn := testenv.Connect(t, s.chAddr)
	burst := func(key string) {
		t.Helper()
		if err := conn.Exec(context.Background(), "INSERT INTO "+s.db+".access_log (ts, request_id, method, path, status, error_code, client_ip, client_net, key_id, key_id_source, env) "+
			"SELECT now(), concat(?, toString(number)), 'POST', '/v1/orders', 401, 'invalid_signature', '203.0.113.9', '203.0.113.0/24', ?, 'registry', 'live' FROM system.numbers LIMIT 5",
			key+"-", key); err != nil {
			t.Fatal(err)
		}
	}
	// alert waits for the alert naming key and returns its channel, ts and
	// finding id.
	alert := func(key string) (string, string, string) {
		t.Helper()
		var ch, ts, fid string
		testenv.Eventually(t, 60*time.Second, func() (bool, string) {
			for _, m := range srv.Messages() {
				var blocks []map[string]any
				_ = json.Unmarshal(m.Blocks, &blocks)
				if m.ThreadTS != "" || !strings.Contains(string(m.Blocks), key) {
					continue
				}
				for _, b := range blocks {
					if id, ok := b["block_id"].(string); ok && strings.HasPrefix(id, slack.ActionBlockPrefix) {
						ch, ts, fid = m.Channel, m.TS, strings.TrimPrefix(id, slack.ActionBlockPrefix)
						return true, ""
					}
				}
			}
			return false, "no alert with buttons for " + key
		})
		return ch, ts, fid
	}
	press := func(ch, ts, user, action, fid string) {
		t.Helper()
		m, _ := srv.Message(ch, ts)
		var blocks []any
		_ = json.Unmarshal(m.Blocks, &blocks)
		id := srv.SendInteractive(map[string]any{
			"type": "block_actions", "trigger_id": "trig-1", "user": map[string]any{"id": user}, "channel": map[string]any{"id": ch},
			"container": map[string]any{"type": "message", "message_ts": ts, "channel_id": ch},
			"message":   map[string]any{"ts": ts, "text": m.Text, "blocks": blocks},
			"actions": []any{map[string]any{"action_id": action, "block_id": slack.ActionBlockPrefix + fid, "type": "button", "value": fid,
				"action_ts": fmt.Sprint(time.Now().UnixNano())}},
		})
		if _, ok := srv.WaitAck(id, 30*time.Second); !ok {
			t.Fatalf("%s press not acknowledged", action)
		}
	}
	count := func(q string, args ...any) uint64 {
		return testenv.Count(t, conn, strings.ReplaceAll(q, "DB.", s.db+"."), args...)
	}

	a, _, aDone := start("A")
	if !srv.WaitSocket(1, 60*time.Second) {
		t.Fatal("the first detect did not connect over Socket Mode")
	}
	_, bLog, _ := start("B")
	// B joins the leader group as a standby: it opens no connection (A
	// reconnects when the group's generation changes, one connection at a
	// time).
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return strings.Contains(bLog.String(), "standing by"), "B is not standing by"
	})
	time.Sleep(3 * time.Second)
	if n := srv.OpenSockets(); n != 1 || strings.Contains(bLog.String(), "slack triage: answering") {
		t.Fatalf("%d Socket Mode connections open with one leader and one standby (B started triage: %v), want 1",
			n, strings.Contains(bLog.String(), "slack triage: answering"))
	}

	burst("key_triage_1")
	ch, ts, fid := alert("key_triage_1")
	press(ch, ts, "U0VIEWER", slack.ActionAcknowledge, fid)
	if n := count("SELECT count() FROM DB.alert_actions WHERE finding_id = ? AND action = 'acknowledge' AND slack_user_id = 'U0VIEWER'", fid); n != 1 {
		t.Fatalf("%d acknowledge records, want 1", n)
	}

	// The leader dies: the standby takes over and answers.
	_ = a.Process.Signal(syscall.SIGKILL)
	<-aDone
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		return strings.Contains(bLog.String(), "slack triage: answering") && srv.OpenSockets() == 1, "the new leader did not connect over Socket Mode"
	})
	press(ch, ts, "U0ALLOWED", slack.ActionResolve, fid)
	if n := count("SELECT count() FROM DB.findings FINAL WHERE finding_id = ? AND status = 'resolved'", fid); n != 1 {
		t.Errorf("the finding is not resolved by the new leader")
	}
	if n := count("SELECT count() FROM DB.alert_actions WHERE finding_id = ?", fid); n != 2 {
		t.Errorf("%d actions recorded, want 2", n)
	}
}
