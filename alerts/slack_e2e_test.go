package alerts_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/alerts/slack"
	"github.com/auditwatch/auditwatch/alerts/slack/slacktest"
	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/rules"
)

const token = "xoxb-1234567890-abcdefghijklmnopqrstuvwx"

// TestSlackEndToEnd drives the dispatcher through the real Slack notifier
// against a local server speaking the Slack Web API: a grouped, routed
// alert; a 429 with Retry-After and 500s retried; a Slack outage across a
// restart; a threaded repeat that updates the first message; a resolution
// in the thread; and no key or token in anything sent or logged.
func TestSlackEndToEnd(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	srv := slacktest.NewServer(t)
	srv.RequireToken(token)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n, err := slack.New(slack.Config{Token: token, APIURL: srv.APIURL(), HTTPClient: srv.Client(), Timeout: 500 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	disp := func() *alerts.Dispatcher {
		return alerts.NewDispatcher(e.as, n, func(string) *rules.Rule { return nil }, alerts.Options{Router: e.router, Database: e.db,
			RetryMin: 10 * time.Millisecond, RetryMax: 2 * time.Second, SendResolved: true, CatchupAfter: 24 * time.Hour}, log, nil)
	}

	t0 := e.now.Add(-90 * time.Minute)
	e.save(e.finding("burst", "critical", "k1", t0, 50), e.finding("burst", "critical", "k2", t0, 70))
	e.run("burst", t0)

	// 1. Rate limited once (Retry-After: 1) then a 500, then accepted.
	srv.FailNext(1, slacktest.RateLimited(1))
	srv.FailNext(1, slacktest.ServerError(500))
	start := time.Now()
	st, err := disp().Cycle(ctx)
	if err != nil || st.Messages != 1 || st.Sent != 2 {
		t.Fatalf("first cycle: %+v %v", st, err)
	}
	if time.Since(start) < time.Second {
		t.Fatalf("Retry-After: 1 not honoured (cycle took %s)", time.Since(start))
	}
	reqs := srv.Requests()
	post := reqs[len(reqs)-1]
	if post.API != "chat.postMessage" || post.Channel != "#sec-critical" || !strings.Contains(post.Text, "<!subteam^S1>") {
		t.Fatalf("alert post: %+v", post)
	}
	blocks := string(post.Blocks)
	for _, want := range []string{"Rule burst", "k1", "k2", "198.51.100.7", "req-1", "access_log"} {
		if !strings.Contains(blocks, want) {
			t.Errorf("blocks lack %q", want)
		}
	}
	parentTS := ""
	if ms := testenv.Count(t, testenv.ClickHouse(t), "SELECT count() FROM "+e.db+".alert_deliveries WHERE outcome = 'sent' AND slack_ts != ''"); ms != 2 {
		t.Fatalf("%d sent deliveries with a Slack ts, want 2", ms)
	}
	conn := testenv.ClickHouse(t)
	if err := conn.QueryRow(ctx, "SELECT any(slack_ts) FROM "+e.db+".alert_deliveries WHERE outcome = 'sent'").Scan(&parentTS); err != nil {
		t.Fatal(err)
	}

	// 2. Slack down for a whole cycle (500s and a timeout), then a restart:
	// the repeat is delivered by the new dispatcher, threaded.
	e.save(e.finding("burst", "critical", "k1", t0.Add(40*time.Minute), 90))
	e.run("burst", t0.Add(40*time.Minute))
	srv.FailNext(2, slacktest.ServerError(503))
	srv.FailNext(1, slacktest.Hang(2*time.Second))
	st, err = disp().Cycle(ctx)
	if err != nil || st.Retrying != 1 || st.Sent != 0 {
		t.Fatalf("outage cycle: %+v %v", st, err)
	}
	st, err = disp().Cycle(ctx) // "restarted"
	if err != nil || st.Sent != 1 {
		t.Fatalf("after outage: %+v %v", st, err)
	}
	var reply, update *slacktest.Request
	for _, r := range srv.Requests() {
		r := r
		if r.Status == 200 && r.Error == "" && r.API == "chat.postMessage" && r.ThreadTS != "" {
			reply = &r
		}
		if r.Status == 200 && r.Error == "" && r.API == "chat.update" {
			update = &r
		}
	}
	if reply == nil || reply.ThreadTS != parentTS {
		t.Fatalf("repeat not posted in the thread %s: %+v", parentTS, reply)
	}
	if update == nil || update.TS != parentTS {
		t.Fatalf("first message not updated: %+v", update)
	}

	// 3. The condition clears: a resolution in the thread.
	e.run("burst", t0.Add(50*time.Minute))
	st, err = disp().Cycle(ctx)
	if err != nil || st.Resolved < 1 {
		t.Fatalf("resolution: %+v %v", st, err)
	}
	last := srv.Requests()
	var resolved bool
	for _, r := range last {
		if r.API == "chat.postMessage" && r.ThreadTS == parentTS && strings.Contains(strings.ToLower(r.Text+string(r.Blocks)), "resolved") {
			resolved = true
		}
	}
	if !resolved {
		t.Fatal("no resolution note in the thread")
	}

	// 4. Nothing sent, logged or recorded holds a key or the token.
	for _, r := range srv.Requests() {
		body := string(r.Body) + r.Text + string(r.Blocks)
		if strings.Contains(body, fullKey) || strings.Contains(body, token) {
			t.Fatalf("request to %s leaks a secret", r.Path)
		}
	}
	if strings.Contains(logs.String(), fullKey) || strings.Contains(logs.String(), token) {
		t.Fatal("logs leak a secret")
	}
	if n := testenv.Count(t, conn, "SELECT count() FROM "+e.db+".alert_deliveries WHERE position(error, 'xoxb-') > 0 OR position(error, ?) > 0", fullKey); n != 0 {
		t.Fatal("delivery records leak a secret")
	}
	// Every attempt is recorded, with the failure classes.
	if n := testenv.Count(t, conn, "SELECT count() FROM "+e.db+".alert_deliveries WHERE outcome = 'retry' AND code IN ('http_503', 'timeout', 'http_500', 'rate_limited')"); n == 0 {
		t.Fatal("failed attempts not recorded with their code")
	}
}

// TestSlackEscalationAndCatchup drives the dispatcher through the Slack
// notifier: an escalation goes into the incident's thread, broadcast to the
// channel with the critical route's mention, and the first message takes
// the new severity; findings delivered long after their evaluation are one
// message per rule.
func TestSlackEscalationAndCatchup(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.router.Routes = append(e.router.Routes, alerts.Route{Severities: []string{"high"}, Channel: "#sec-alerts"})
	srv := slacktest.NewServer(t)
	n, err := slack.New(slack.Config{Token: token, APIURL: srv.APIURL(), HTTPClient: srv.Client(), Timeout: time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	d := alerts.NewDispatcher(e.as, n, func(string) *rules.Rule { return nil }, alerts.Options{Router: e.router, Database: e.db,
		RetryMin: 10 * time.Millisecond, SendResolved: true}, quiet, nil)

	e.save(e.finding("burst", "high", "k1", e.now.Add(-3*time.Minute), 50))
	if _, err := d.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 || reqs[0].Channel != "#sec-alerts" {
		t.Fatalf("first alert: %+v", reqs)
	}
	ch := srv.ChannelID("#sec-alerts")
	parent := srv.Messages()[0].TS

	esc := e.finding("burst", "critical", "k1", e.now.Add(-time.Minute), 500)
	esc.EscalatedFrom = "high"
	e.save(esc)
	srv.Reset()
	st, err := d.Cycle(ctx)
	if err != nil || st.Escalations != 1 {
		t.Fatalf("%+v %v", st, err)
	}
	reqs = srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want the reply and the update", len(reqs))
	}
	post, upd := reqs[0], reqs[1]
	if post.API != "chat.postMessage" || post.Channel != ch || post.ThreadTS != parent || !post.ReplyBroadcast {
		t.Fatalf("escalation reply: api %s channel %s thread %q broadcast %v", post.API, post.Channel, post.ThreadTS, post.ReplyBroadcast)
	}
	if !strings.Contains(post.Text, "<!subteam^S1>") || !strings.Contains(post.Text, "escalated from high to critical") {
		t.Errorf("escalation text: %s", post.Text)
	}
	if upd.API != "chat.update" || upd.TS != parent {
		t.Fatalf("parent not updated: %+v", upd)
	}
	pm, _ := srv.Message(ch, parent)
	if bt := (slacktest.Request{Blocks: pm.Blocks}).BlocksText(); !strings.Contains(bt, "CRITICAL") || !strings.Contains(bt, "Escalated from HIGH to CRITICAL") {
		t.Errorf("parent after escalation:\n%s", bt)
	}
	if rs := srv.Replies(ch, parent); len(rs) != 1 || !rs[0].Broadcast {
		t.Errorf("thread: %+v", rs)
	}

	// Twelve findings of one rule replayed two hours late: one message.
	srv.Reset()
	var old []detect.Finding
	for i := range 12 {
		old = append(old, e.finding("enum", "high", fmt.Sprintf("e%d", i%4), e.now.Add(-2*time.Hour+time.Duration(i)*time.Minute), float64(i)))
	}
	e.save(old...)
	st, err = d.Cycle(ctx)
	if err != nil || st.Folded != 12 || st.Messages != 1 {
		t.Fatalf("catch-up: %+v %v", st, err)
	}
	reqs = srv.Requests()
	if len(reqs) != 1 || reqs[0].ThreadTS != "" || !strings.Contains(reqs[0].BlocksText(), "While detect was down or catching up: 12 findings of Rule enum between") {
		t.Fatalf("catch-up message: %+v", reqs)
	}
	if n := testenv.Count(t, testenv.ClickHouse(t), "SELECT count() FROM "+e.db+".alert_deliveries WHERE kind = 'catchup' AND outcome = 'sent' AND slack_ts = ?", srv.Messages()[len(srv.Messages())-1].TS); n != 12 {
		t.Fatalf("%d catch-up records with the message's ts, want 12", n)
	}
}
