package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/alerts/slack/slacktest"
	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/detect/leader"
)

const haToken = "xoxb-ha-test-not-a-real-token"

// haSession is the leader group's session timeout in these tests: the
// broker's minimum (group.min.session.timeout.ms, 6000 ms by default).
const haSession = 6 * time.Second

// haRules is one rule that alerts once per key (cooldown) for 3 invalid
// signatures within 20 s, evaluated every 2 s.
const haRules = `rules:
  - id: ha-burst
    name: HA test burst
    severity: high
    schedule: "@every 2s"
    type: threshold
    filter: {error_code: invalid_signature}
    group_by: [key_id]
    window: 20s
    threshold: 3
    cooldown: 30m
`

// haEnv is a scratch database, a leader group and topic, a Slack server and
// a configuration for detect processes with detect.ha.
type haEnv struct {
	t            *testing.T
	s            *stack
	slack        *slacktest.Server
	group, topic string
	rulesDir     string
}

func newHAEnv(t *testing.T) *haEnv {
	t.Helper()
	e := &haEnv{t: t, s: newStack(t, testenv.ClickHouseAddr(t), 1), slack: slacktest.NewServer(t),
		group: testenv.RandomName("aw-test-detect-"), topic: testenv.RandomName("aw-test-leader-"), rulesDir: t.TempDir()}
	e.slack.RequireToken(haToken)
	if err := os.WriteFile(filepath.Join(e.rulesDir, "ha.yaml"), []byte(haRules), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteTopic(e.s.brokers, e.topic) })
	return e
}

// config writes a configuration whose detect listens on port.
func (e *haEnv) config(port int) string {
	return e.s.config(e.t, freePort(e.t), fmt.Sprintf(`detect:
  rules_dir: %q
  http_listen: "127.0.0.1:%d"
  max_wait: 1s          # no ingester here: windows are evaluated 1 s after their end
  ha: {enabled: true, group_id: %s, topic: %s}
alerts:
  enabled: true
  notifier: slack
  slack: {api_url: %q, allow_custom_api_url: true}
  default_channel: "#sec-alerts"
  poll_interval: 1s
  send_resolved: false
`, e.rulesDir, port, e.group, e.topic, e.slack.APIURL()))
}

// start starts `auditwatch detect` with detect.ha on its own port.
func (e *haEnv) start(name string) *proc {
	e.t.Helper()
	port := freePort(e.t)
	p := &proc{port: port, log: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary, "detect", "--config", e.config(port))
	p.cmd.Env = append(os.Environ(), "AUDITWATCH_SLACK_TOKEN="+haToken)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	e.t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if e.t.Failed() {
			e.t.Logf("detect %s log (port %d, pid %d):\n%s", name, p.port, p.cmd.Process.Pid, tail(p.log.String(), 5000))
		}
	})
	return p
}

// burst stores n invalid signatures of key, now.
func (e *haEnv) burst(key string, n int) {
	e.t.Helper()
	conn := testenv.Connect(e.t, e.s.chAddr)
	err := conn.Exec(context.Background(), "INSERT INTO "+e.s.db+".access_log (ts, request_id, method, path, status, error_code, client_ip, client_net, key_id, key_id_source, env) "+
		"SELECT now(), concat(?, toString(number)), 'POST', '/v1/orders', 401, 'invalid_signature', '203.0.113.9', '203.0.113.0/24', ?, 'registry', 'live' FROM system.numbers LIMIT ?",
		key+"-", key, n)
	if err != nil {
		e.t.Fatal(err)
	}
}

// posts returns, per key, how many chat.postMessage requests named it.
func (e *haEnv) posts(keys ...string) map[string]int {
	out := map[string]int{}
	for _, r := range e.slack.Requests() {
		if r.API != "chat.postMessage" {
			continue
		}
		text := r.Text + "\n" + r.BlocksText()
		for _, k := range keys {
			if strings.Contains(text, k) {
				out[k]++
			}
		}
	}
	return out
}

// readyz returns the status and body of /readyz.
func readyz(port int) (int, string) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// TestDetectHAHandover runs two detect processes with detect.ha: exactly
// one leads (metrics and /readyz say which); SIGKILL of the leader hands
// over to the other within the session timeout plus a heartbeat, which
// delivers what the dead leader had not, and keeps alerting; the Slack
// server receives each alert exactly once across the handover. Then
// `alerts flush` refuses while a detect leads, and flushes as the leader
// when none runs.
func TestDetectHAHandover(t *testing.T) {
	e := newHAEnv(t)
	a := e.start("A")
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		return a.metric("auditwatch_detect_leader") == 1, fmt.Sprintf("A's leader gauge %v", a.metric("auditwatch_detect_leader"))
	})
	b := e.start("B")
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		code, body := readyz(b.port)
		return code == 200 && strings.HasPrefix(body, "standby (leader: auditwatch-detect@"), fmt.Sprintf("B /readyz %d %q", code, body)
	})
	// Exactly one leads: B joining did not move leadership (sticky), and
	// the standby names the leader, whose member id carries A's pid.
	if a.metric("auditwatch_detect_leader") != 1 || b.metric("auditwatch_detect_leader") != 0 {
		t.Fatalf("leader gauges: A %v, B %v; want 1 and 0", a.metric("auditwatch_detect_leader"), b.metric("auditwatch_detect_leader"))
	}
	codeA, bodyA := readyz(a.port)
	_, bodyB := readyz(b.port)
	if codeA != 200 || !strings.HasPrefix(bodyA, "leader (member auditwatch-detect@") || !strings.Contains(bodyA, fmt.Sprintf("/%d-", a.cmd.Process.Pid)) {
		t.Fatalf("A /readyz %d %q: want leader with A's member id", codeA, bodyA)
	}
	if !strings.Contains(bodyB, fmt.Sprintf("/%d-", a.cmd.Process.Pid)) {
		t.Fatalf("B /readyz %q does not name A (pid %d) as the leader", bodyB, a.cmd.Process.Pid)
	}

	// An alert through A.
	e.burst("key_ha_before", 5)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		n := e.posts("key_ha_before")["key_ha_before"]
		return n >= 1, fmt.Sprintf("%d messages for key_ha_before", n)
	})

	// A burst, then the leader dies at once (before or while it handles
	// it), and another burst while no one leads.
	e.burst("key_ha_killed", 5)
	time.Sleep(300 * time.Millisecond)
	killed := time.Now()
	a.kill(t)
	e.burst("key_ha_gap", 5)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return b.metric("auditwatch_detect_leader") == 1, "B leading"
	})
	took := time.Since(killed)
	t.Logf("B leads %.1fs after the SIGKILL of A", took.Seconds())
	// The coordinator drops A after the session timeout; B hears of it at
	// its next heartbeat (a third of it) and joins the new generation.
	if limit := haSession + leader.HeartbeatInterval(haSession) + 3*time.Second; took > limit {
		t.Fatalf("takeover took %s, more than the session timeout + a heartbeat + 3s (%s)", took, limit)
	}
	// The new leader's scheduler loads the rules first: /readyz says so
	// (503 "rules not loaded") for a moment.
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		code, body := readyz(b.port)
		return code == 200 && strings.HasPrefix(body, "leader ("), fmt.Sprintf("B /readyz after takeover: %d %q", code, body)
	})
	if n := b.metric("auditwatch_detect_leader_changes_total"); n != 1 {
		t.Fatalf("B's leader_changes_total %v, want 1", n)
	}

	// B delivers what A had not (within one tick and a delivery), and keeps
	// alerting.
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		p := e.posts("key_ha_killed", "key_ha_gap")
		return p["key_ha_killed"] >= 1 && p["key_ha_gap"] >= 1, fmt.Sprintf("messages after takeover %v", p)
	})
	e.burst("key_ha_after", 5)
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		n := e.posts("key_ha_after")["key_ha_after"]
		return n >= 1, fmt.Sprintf("%d messages for key_ha_after", n)
	})
	time.Sleep(3 * time.Second) // time for any duplicate to arrive

	keys := []string{"key_ha_before", "key_ha_killed", "key_ha_gap", "key_ha_after"}
	got := e.posts(keys...)
	for _, k := range keys {
		if got[k] != 1 {
			t.Errorf("%s: %d Slack messages, want exactly 1 across the handover", k, got[k])
		}
	}
	conn := testenv.Connect(t, e.s.chAddr)
	if n := testenv.Count(t, conn, "SELECT count() FROM "+e.s.db+".alert_deliveries WHERE outcome = 'sent'"); n != uint64(len(keys)) {
		t.Errorf("%d sent deliveries recorded, want %d", n, len(keys))
	}

	// alerts flush refuses while a detect leads, naming it.
	flushCfg := e.config(freePort(t))
	cmd := exec.Command(binary, "alerts", "flush", "--config", flushCfg)
	cmd.Env = append(os.Environ(), "AUDITWATCH_SLACK_TOKEN="+haToken)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "deliver the alerts; not flushing") || !strings.Contains(string(out), fmt.Sprintf("/%d-", b.cmd.Process.Pid)) {
		t.Fatalf("alerts flush while B leads: err %v, output:\n%s", err, out)
	}

	// B stops (SIGTERM leaves the group at once); a finding stored by a
	// one-off run is flushed by `alerts flush` as the group's leader.
	b.stop(t)
	if !strings.Contains(b.log.String(), "left the leader group") {
		t.Fatalf("B did not leave the leader group on SIGTERM")
	}
	e.burst("key_ha_flush", 5)
	// The rows must be inside a window ending query_delay (2s) before now,
	// and stored: on a busy machine that can take longer than the delay.
	time.Sleep(3 * time.Second)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		cmd = exec.Command(binary, "detect", "--config", flushCfg, "--once", "0s")
		cmd.Env = append(os.Environ(), "AUDITWATCH_SLACK_TOKEN="+haToken)
		out, err := cmd.CombinedOutput()
		if err == nil && strings.Contains(string(out), "1 findings alerted") {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("detect --once: %v\n%s", err, out)
		}
	}
	cmd = exec.Command(binary, "alerts", "flush", "--config", flushCfg)
	cmd.Env = append(os.Environ(), "AUDITWATCH_SLACK_TOKEN="+haToken)
	out, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "leading the detect.ha group: flushing") || !strings.Contains(string(out), "1 messages sent for 1 findings") {
		t.Fatalf("alerts flush with no detect running: err %v, output:\n%s", err, out)
	}
	if n := e.posts("key_ha_flush")["key_ha_flush"]; n != 1 {
		t.Fatalf("key_ha_flush: %d Slack messages, want 1", n)
	}
}

// TestDetectHAPausedLeader: a leader paused (SIGSTOP) for longer than the
// session timeout loses leadership to the standby; when it resumes, its
// expired lease keeps it from sending anything (Fence) and it stands by.
// Each alert reaches Slack exactly once.
func TestDetectHAPausedLeader(t *testing.T) {
	e := newHAEnv(t)
	a := e.start("A")
	testenv.Eventually(t, 60*time.Second, func() (bool, string) { return a.metric("auditwatch_detect_leader") == 1, "A leading" })
	b := e.start("B")
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		code, body := readyz(b.port)
		return code == 200 && strings.HasPrefix(body, "standby"), fmt.Sprintf("B /readyz %d %q", code, body)
	})
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.cmd.Process.Signal(syscall.SIGCONT) })
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return b.metric("auditwatch_detect_leader") == 1, "B leading" })
	e.burst("key_pause_1", 5)
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		n := e.posts("key_pause_1")["key_pause_1"]
		return n >= 1, fmt.Sprintf("%d messages for key_pause_1", n)
	})
	// A resumes with timers due and findings pending from its point of view;
	// a burst arrives at once.
	e.burst("key_pause_2", 5)
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		code, body := readyz(a.port)
		return code == 200 && strings.HasPrefix(body, "standby"), fmt.Sprintf("A /readyz %d %q", code, body)
	})
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		n := e.posts("key_pause_2")["key_pause_2"]
		return n >= 1, fmt.Sprintf("%d messages for key_pause_2", n)
	})
	time.Sleep(3 * time.Second)
	got := e.posts("key_pause_1", "key_pause_2")
	for _, k := range []string{"key_pause_1", "key_pause_2"} {
		if got[k] != 1 {
			t.Errorf("%s: %d Slack messages, want exactly 1", k, got[k])
		}
	}
	if a.metric("auditwatch_detect_leader") != 0 || b.metric("auditwatch_detect_leader") != 1 {
		t.Fatalf("after the pause: A %v, B %v; want B alone leading", a.metric("auditwatch_detect_leader"), b.metric("auditwatch_detect_leader"))
	}
	if !strings.Contains(a.log.String(), "leadership ended") {
		t.Fatalf("A did not log the end of its leadership")
	}
}

// TestHAConfigValidation: detect.ha's defaults and what the configuration
// refuses.
func TestHAConfigValidation(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{name: "group shared with ingest", body: "kafka: {group_id: g1}\ndetect: {ha: {enabled: true, group_id: g1}}\n", want: "must differ from kafka.group_id"},
		{name: "topic shared with ingest", body: "kafka: {topic: t1}\ndetect: {ha: {enabled: true, topic: t1}}\n", want: "a topic of its own"},
		{name: "session below the broker minimum", body: "kafka: {session_timeout: 3s}\ndetect: {ha: {enabled: true}}\n", want: "needs at least 6s"},
		{name: "no group", body: "detect: {ha: {enabled: true, group_id: \"\"}}\n", want: "group_id and topic are required"},
		{name: "defaults", body: "detect: {ha: {enabled: true}}\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := LoadConfig(writeFile(t, tc.body))
			if tc.want == "" {
				if err != nil || cfg.Detect.HA.GroupID != "auditwatch-detect" || cfg.Detect.HA.Topic != "auditwatch-detect-leader" {
					t.Fatalf("err %v, ha %+v", err, cfg.Detect.HA)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// deleteTopic deletes a test topic (best effort).
func deleteTopic(brokers []string, topic string) {
	conn, err := kafka.Dial("tcp", brokers[0])
	if err != nil {
		return
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		return
	}
	cc, err := kafka.Dial("tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return
	}
	defer cc.Close()
	_ = cc.DeleteTopics(topic)
}
