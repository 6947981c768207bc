package triage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/alerts/slack"
	"github.com/auditwatch/auditwatch/alerts/slack/slacktest"
	"github.com/auditwatch/auditwatch/alerts/triage"
	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/detect/summary"
	"github.com/auditwatch/auditwatch/ingest/chsink"
	"github.com/auditwatch/auditwatch/ingest/event"
	"github.com/auditwatch/auditwatch/ingest/secret"
	"github.com/auditwatch/auditwatch/rules"
)

const (
	botToken = "xoxb-1234567890-abcdefghijklmnopqrstuvwx"
	appToken = "xapp-1-A0AUDIT-1234567890-0123456789abcdef0123456789abcdef"
	fullKey  = "bk_live_Q7w8E9r0T1y2U3i4O5p6A7s8D9f0G1h2"
	keyID    = "key_01HTRIAGE"
	channel  = "#sec-alerts"
	allowed  = "UALLOWED1"  // in AllowedUsers
	groupie  = "UGROUPIE1"  // member of the allowed user group
	nobody   = "UNOBODY01"  // neither
	viewer   = "UVIEWER01"  // anyone in the channel: may acknowledge
	group    = "SSECONCALL" // allowed user group
)

// syncBuffer is a log sink safe for the runner's and the test's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	t      *testing.T
	ctx    context.Context
	conn   driver.Conn
	db     string
	srv    *slacktest.Server
	notif  *slack.Notifier
	as     *alerts.Store
	ts     *triage.Store
	ds     *detect.Store
	logs   *syncBuffer
	log    *slog.Logger
	now    time.Time
	cancel []context.CancelFunc
}

func newEnv(t *testing.T) *env {
	t.Helper()
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	srv := slacktest.NewServer(t)
	srv.RequireToken(botToken)
	srv.SetUsergroup(group, groupie, "UOTHER001")
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n, err := slack.New(slack.Config{Token: botToken, APIURL: srv.APIURL(), HTTPClient: srv.Client(), Timeout: 2 * time.Second, Logger: log, Interactive: true})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: context.Background(), conn: conn, db: db, srv: srv, notif: n, as: alerts.NewStore(conn, db), ts: triage.NewStore(conn, db),
		ds: detect.NewStore(conn, db), logs: logs, log: log, now: time.Now().UTC().Truncate(time.Second)}
	ks := keys.NewStore(conn, db)
	created := e.now.Add(-200 * 24 * time.Hour)
	if err := ks.Upsert(e.ctx, []keys.Key{{ID: keyID, Fingerprint: secret.Fingerprint(fullKey), Hint: secret.Hint(fullKey), Env: "live", AccountID: "acc_42",
		Owner: "Market Makers Ltd", Status: "active", CreatedAt: created}}, keys.SourceImport); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, c := range e.cancel {
			c()
		}
	})
	return e
}

// runner starts a triage runner; it stops when the test ends.
func (e *env) runner() (stop func()) {
	e.t.Helper()
	ks := keys.NewStore(e.conn, e.db)
	r, err := triage.New(triage.Config{AppToken: appToken, BotToken: botToken, APIURL: e.srv.APIURL(), HTTPClient: e.srv.Client(), Timeout: 2 * time.Second,
		AllowedUsers: []string{allowed}, AllowedUsergroups: []string{group}, Logger: e.log, PingInterval: 5 * time.Second},
		triage.Deps{Actions: e.ts, Findings: e.ts, Silences: e.as, Keys: ks, Usage: summary.NewBuilder(e.conn, e.db, ks)})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("runner: %v", err)
			}
		case <-time.After(10 * time.Second):
			e.t.Errorf("runner did not stop within 10s")
		}
	}
	e.cancel = append(e.cancel, stop)
	return stop
}

func (e *env) finding(id, group string, eval time.Time) detect.Finding {
	return detect.Finding{ID: id, RuleID: "burst", RuleName: "Invalid signature burst", RuleType: "threshold", Severity: "high",
		Status: detect.StatusNew, Group: map[string]string{"key_id": group}, GroupKey: "key_id=" + group, KeyID: group, KeyHint: secret.Hint(fullKey),
		EvalTime: eval, WindowStart: eval.Add(-5 * time.Minute), WindowEnd: eval, Value: 50, Threshold: 10,
		Summary: "50 invalid_signature for " + group + " user-agent " + fullKey, Evidence: detect.Evidence{TopClientIPs: []string{"198.51.100.7"}}}
}

func (e *env) save(fs ...detect.Finding) {
	e.t.Helper()
	if err := e.ds.SaveFindings(e.ctx, fs); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) dispatcher() *alerts.Dispatcher {
	lookup := func(id string) *rules.Rule {
		return &rules.Rule{ID: id, Name: "Invalid signature burst", Description: "what it means", Type: "threshold", Severity: "high"}
	}
	return alerts.NewDispatcher(e.as, e.notif, lookup, alerts.Options{Router: alerts.Router{DefaultChannel: channel}, Database: e.db,
		RetryMin: time.Millisecond, CatchupAfter: 24 * time.Hour}, e.log, nil)
}

// alert delivers what is pending and returns the alert message posted.
func (e *env) alert() slacktest.Request {
	e.t.Helper()
	before := len(e.srv.Requests())
	st, err := e.dispatcher().Cycle(e.ctx)
	if err != nil || st.Messages != 1 {
		e.t.Fatalf("cycle: %+v %v", st, err)
	}
	for _, r := range e.srv.Requests()[before:] {
		if r.API == "chat.postMessage" && r.ThreadTS == "" && r.Error == "" {
			return r
		}
	}
	e.t.Fatalf("no alert posted")
	return slacktest.Request{}
}

// posted returns the channel id and ts of an alert post.
func (e *env) posted(post slacktest.Request) (string, string) {
	e.t.Helper()
	ch := e.srv.ChannelID(post.Channel)
	for _, m := range e.srv.Messages() {
		if m.Channel == ch && m.ThreadTS == "" && string(m.Blocks) == string(post.Blocks) {
			return ch, m.TS
		}
	}
	e.t.Fatalf("alert message not kept")
	return "", ""
}

// press builds the block_actions payload of a button of finding id in the
// message ch/ts, pressed by user.
func (e *env) press(ch, ts, user, action, findingID string) map[string]any {
	e.t.Helper()
	m, ok := e.srv.Message(ch, ts)
	if !ok {
		e.t.Fatalf("message %s/%s not found", ch, ts)
	}
	var blocks []any
	if err := json.Unmarshal(m.Blocks, &blocks); err != nil {
		e.t.Fatal(err)
	}
	return map[string]any{
		"type": "block_actions", "api_app_id": "AAUDIT0001", "trigger_id": "trig-" + action + "-" + user,
		"user":      map[string]any{"id": user, "username": "u-" + user, "team_id": "TAUDIT0001"},
		"team":      map[string]any{"id": "TAUDIT0001"},
		"channel":   map[string]any{"id": ch, "name": "sec-alerts"},
		"container": map[string]any{"type": "message", "message_ts": ts, "channel_id": ch, "is_ephemeral": false},
		"message":   map[string]any{"type": "message", "ts": ts, "text": m.Text, "blocks": blocks},
		"actions": []any{map[string]any{"action_id": action, "block_id": slack.ActionBlockPrefix + findingID, "type": "button", "value": findingID,
			"action_ts": fmt.Sprintf("%d.000100", time.Now().UnixNano())}},
	}
}

// submission builds the view_submission payload of the modal v.
func submission(v slacktest.View, user, duration, reason string) map[string]any {
	return map[string]any{
		"type": "view_submission", "api_app_id": "AAUDIT0001",
		"user": map[string]any{"id": user, "team_id": "TAUDIT0001"},
		"team": map[string]any{"id": "TAUDIT0001"},
		"view": map[string]any{"id": v.ID, "type": "modal", "callback_id": v.View["callback_id"], "private_metadata": v.View["private_metadata"], "hash": "h1",
			"state": map[string]any{"values": map[string]any{
				"duration": map[string]any{"duration_select": map[string]any{"type": "static_select", "selected_option": map[string]any{"value": duration}}},
				"reason":   map[string]any{"reason_input": map[string]any{"type": "plain_text_input", "value": reason}},
			}}},
	}
}

func (e *env) send(payload map[string]any) slacktest.Ack {
	e.t.Helper()
	id := e.srv.SendInteractive(payload)
	a, ok := e.srv.WaitAck(id, 15*time.Second)
	if !ok {
		e.t.Fatalf("envelope %s not acknowledged", id)
	}
	return a
}

func (e *env) count(q string, args ...any) uint64 {
	e.t.Helper()
	return testenv.Count(e.t, e.conn, strings.ReplaceAll(q, "DB.", e.db+"."), args...)
}

// blocksText is the text of raw blocks, unescaped.
func blocksText(raw json.RawMessage) string {
	return slacktest.Request{Blocks: raw}.BlocksText()
}

func (e *env) replies(ch, ts, substr string) int {
	n := 0
	for _, r := range e.srv.Replies(ch, ts) {
		if strings.Contains(r.Text, substr) {
			n++
		}
	}
	return n
}

// TestButtonsAndModal: an alert carries the buttons; Acknowledge (anyone)
// records the action and updates the message; an unauthorised silence is
// refused ephemerally with no record; a silence from the modal (a member
// of the allowed group) is stored like the CLI's and suppresses the next
// alert of the group through the real dispatcher; Expected activity closes
// the finding. No payload, log line or record holds the key or a token.
func TestButtonsAndModal(t *testing.T) {
	e := newEnv(t)
	e.runner()
	if !e.srv.WaitSocket(1, 10*time.Second) {
		t.Fatal("the runner did not connect over Socket Mode")
	}
	t0 := e.now.Add(-20 * time.Minute)
	f1 := e.finding("f-burst-1", keyID, t0)
	e.save(f1)
	post := e.alert()
	ch, ts := e.posted(post)

	// The buttons, one row per finding, valued with the finding id.
	var row map[string]any
	for _, b := range post.BlockList() {
		if b["type"] == "actions" && b["block_id"] == slack.ActionBlockPrefix+f1.ID {
			row = b
		}
	}
	if row == nil {
		t.Fatalf("no actions block for %s in %s", f1.ID, post.Blocks)
	}
	var ids []string
	for _, el := range row["elements"].([]any) {
		m := el.(map[string]any)
		if m["value"] != f1.ID {
			t.Errorf("button %v has value %v", m["action_id"], m["value"])
		}
		ids = append(ids, m["action_id"].(string))
	}
	if strings.Join(ids, ",") != strings.Join(slack.ActionIDs, ",") {
		t.Errorf("buttons %v, want %v", ids, slack.ActionIDs)
	}

	// 1. Acknowledge by anyone in the channel.
	e.send(e.press(ch, ts, viewer, slack.ActionAcknowledge, f1.ID))
	if n := e.count("SELECT count() FROM DB.alert_actions WHERE action = 'acknowledge' AND slack_user_id = ? AND finding_id = ? AND rule_id = 'burst' AND group_key = ?",
		viewer, f1.ID, f1.GroupKey); n != 1 {
		t.Fatalf("%d acknowledge records, want 1", n)
	}
	m, _ := e.srv.Message(ch, ts)
	if m.Updates != 1 || !strings.Contains(blocksText(m.Blocks), "Acknowledged by <@"+viewer+">") {
		t.Fatalf("message not updated with the acknowledgement (%d updates): %s", m.Updates, m.Blocks)
	}
	if !strings.Contains(string(m.Blocks), slack.ActionBlockPrefix+f1.ID) {
		t.Errorf("acknowledging removed the buttons")
	}
	if e.replies(ch, ts, "Acknowledged by <@"+viewer+">") != 1 {
		t.Errorf("no acknowledgement note in the thread: %+v", e.srv.Replies(ch, ts))
	}

	// 2. Silence by someone not allowed: refused, nothing recorded.
	e.send(e.press(ch, ts, nobody, slack.ActionSilenceKey, f1.ID))
	e.send(e.press(ch, ts, nobody, slack.ActionResolve, f1.ID))
	refusals := 0
	for _, r := range e.srv.Ephemerals() {
		if r.Form.Get("user") == nobody && strings.Contains(r.Text, "not allowed") {
			refusals++
		}
	}
	if refusals != 2 {
		t.Errorf("%d ephemeral refusals to %s, want 2: %+v", refusals, nobody, e.srv.Ephemerals())
	}
	if n := e.count("SELECT count() FROM DB.alert_actions WHERE slack_user_id = ?", nobody); n != 0 {
		t.Errorf("%d actions recorded for an unauthorised user", n)
	}
	if n := e.count("SELECT count() FROM DB.silences"); n != 0 {
		t.Errorf("%d silences after a refused silence", n)
	}
	if n := e.count("SELECT count() FROM DB.findings FINAL WHERE finding_id = ? AND status = 'new'", f1.ID); n != 1 {
		t.Errorf("a refused resolve changed the finding")
	}

	// 3. "Silence this rule for this key…" by a member of the allowed
	// group: the modal, then its submission.
	e.send(e.press(ch, ts, groupie, slack.ActionSilenceRule, f1.ID))
	views := e.srv.Views()
	if len(views) != 1 || views[0].View["callback_id"] == "" {
		t.Fatalf("views.open: %+v", views)
	}
	// A submission without a reason is answered with the field's error.
	a := e.send(submission(views[0], groupie, "4h", "   "))
	if !strings.Contains(string(a.Payload), `"response_action":"errors"`) || !strings.Contains(string(a.Payload), `"reason"`) {
		t.Fatalf("empty reason: ack payload %s", a.Payload)
	}
	a = e.send(submission(views[0], groupie, "4h", "load test, see CHG-1234; the client sent "+fullKey))
	if len(a.Payload) != 0 {
		t.Errorf("a good submission should close the modal (empty ack), got %s", a.Payload)
	}
	sils, err := e.as.Silences(e.ctx, e.now)
	if err != nil || len(sils) != 1 {
		t.Fatalf("silences: %+v %v", sils, err)
	}
	s := sils[0]
	if s.RuleID != "burst" || s.KeyID != keyID || s.CreatedBy != "slack:"+groupie || !strings.Contains(s.Reason, "CHG-1234") ||
		s.EndsAt.Sub(s.StartsAt) != 4*time.Hour || s.Validate() != nil {
		t.Errorf("silence: %+v", s)
	}
	if n := e.count("SELECT count() FROM DB.alert_actions WHERE action = 'silence_rule' AND slack_user_id = ? AND silence_id = ?", groupie, s.ID); n != 1 {
		t.Errorf("%d silence_rule records with the silence id, want 1", n)
	}
	if e.replies(ch, ts, "silenced") != 1 {
		t.Errorf("no silence note in the thread")
	}

	// The next finding of the group: recorded as silenced, not sent.
	posts := 0
	for _, r := range e.srv.Requests() {
		if r.API == "chat.postMessage" {
			posts++
		}
	}
	e.save(e.finding("f-burst-2", keyID, t0.Add(10*time.Minute)))
	st, err := e.dispatcher().Cycle(e.ctx)
	if err != nil || st.Silenced != 1 || st.Sent != 0 {
		t.Fatalf("next finding: %+v %v", st, err)
	}
	after := 0
	for _, r := range e.srv.Requests() {
		if r.API == "chat.postMessage" {
			after++
		}
	}
	if after != posts {
		t.Errorf("%d messages posted for a silenced finding", after-posts)
	}
	if n := e.count("SELECT count() FROM DB.alert_deliveries WHERE finding_id = 'f-burst-2' AND outcome = 'silenced' AND silence_id = ?", s.ID); n != 1 {
		t.Errorf("the silenced finding is not recorded with the Slack silence")
	}

	// 4. Expected activity on another key's alert: closed, and silenced.
	f3 := e.finding("f-burst-3", "key_01HOTHER", t0.Add(11*time.Minute))
	e.save(f3)
	post3 := e.alert()
	ch3, ts3 := e.posted(post3)
	e.send(e.press(ch3, ts3, allowed, slack.ActionExpected, f3.ID))
	views = e.srv.Views()
	if len(views) != 2 || views[1].View["callback_id"] == views[0].View["callback_id"] {
		t.Fatalf("expected-activity modal: %+v", views)
	}
	e.send(submission(views[1], allowed, "72h", "quarterly reconciliation job"))
	if n := e.count("SELECT count() FROM DB.findings FINAL WHERE finding_id = ? AND status = 'expected'", f3.ID); n != 1 {
		t.Errorf("the finding is not closed as expected")
	}
	sils, _ = e.as.Silences(e.ctx, e.now)
	var exp *alerts.Silence
	for i := range sils {
		if sils[i].KeyID == "key_01HOTHER" {
			exp = &sils[i]
		}
	}
	if exp == nil || exp.RuleID != "burst" || !strings.HasPrefix(exp.Reason, "expected: ") || exp.EndsAt.Sub(exp.StartsAt) != 72*time.Hour {
		t.Errorf("expected-activity silence: %+v", exp)
	}
	if n := e.count("SELECT count() FROM DB.alert_actions WHERE action = 'expected' AND finding_status = 'expected' AND reason = 'quarterly reconciliation job'"); n != 1 {
		t.Errorf("%d expected records, want 1", n)
	}

	// 5. Resolve by an allowed user: finding closed, buttons gone.
	f4 := e.finding("f-burst-4", "key_01HTHIRD", t0.Add(12*time.Minute))
	e.save(f4)
	ch4, ts4 := e.posted(e.alert())
	e.send(e.press(ch4, ts4, allowed, slack.ActionResolve, f4.ID))
	if n := e.count("SELECT count() FROM DB.findings FINAL WHERE finding_id = ? AND status = 'resolved'", f4.ID); n != 1 {
		t.Errorf("the finding is not resolved")
	}
	m4, _ := e.srv.Message(ch4, ts4)
	if strings.Contains(string(m4.Blocks), slack.ActionBlockPrefix+f4.ID) || !strings.Contains(blocksText(m4.Blocks), "Resolved by <@"+allowed+">") {
		t.Errorf("resolved message: %s", m4.Blocks)
	}

	// 6. An events_api envelope is acknowledged (and ignored).
	id := e.srv.SendEventsAPI(map[string]any{"type": "event_callback", "team_id": "TAUDIT0001", "api_app_id": "AAUDIT0001",
		"event": map[string]any{"type": "app_mention", "user": viewer, "text": "hi", "ts": "1.2", "channel": ch}})
	if _, ok := e.srv.WaitAck(id, 10*time.Second); !ok {
		t.Errorf("events_api envelope not acknowledged")
	}

	e.noSecrets()
}

// noSecrets checks what was sent to Slack, acknowledged, logged and
// recorded for the key and the tokens.
func (e *env) noSecrets() {
	e.t.Helper()
	var all strings.Builder
	for _, r := range e.srv.Requests() {
		all.Write(r.Body)
		all.WriteString(r.Path + "\n" + r.Text + "\n" + r.BlocksText() + "\n")
		for _, vs := range r.Form {
			all.WriteString(strings.Join(vs, "\n") + "\n")
		}
	}
	for _, a := range e.srv.Acks() {
		all.Write(a.Payload)
	}
	for _, v := range e.srv.Views() {
		b, _ := json.Marshal(v.View)
		all.Write(b)
	}
	all.WriteString(e.logs.String())
	rows, err := e.conn.Query(e.ctx, "SELECT concat(action_id, finding_id, rule_id, group_key, action, slack_user_id, slack_channel, slack_ts, reason, silence_id) FROM "+e.db+".alert_actions")
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		all.WriteString(s + "\n")
		n++
	}
	rows.Close()
	sils, _ := e.as.Silences(e.ctx, time.Time{})
	for _, s := range sils {
		all.WriteString(s.Reason + s.CreatedBy + "\n")
	}
	text := all.String()
	if n == 0 {
		e.t.Errorf("no action recorded: the secrets check would be vacuous")
	}
	for name, secretText := range map[string]string{"API key": fullKey, "bot token": botToken, "app token": appToken, "app token body": appToken[5:]} {
		if strings.Contains(text, secretText) {
			i := strings.Index(text, secretText)
			e.t.Errorf("the %s appears in what was sent, logged or recorded (…%s…)", name, strings.ReplaceAll(text[max(0, i-60):i], secretText, "[X]"))
		}
	}
	if !strings.Contains(text, secret.Hint(fullKey)) {
		e.t.Errorf("the key's hint is not shown anywhere: masking not exercised")
	}
}

// TestRedeliveryExactlyOnce: the ack of an action is lost with the socket;
// Slack redelivers the envelope on the next connection and the action is
// not done twice — by the same runner (it remembers the envelope) and by a
// new runner (the action is recorded in ClickHouse). A drop right after the
// ack loses nothing either.
func TestRedeliveryExactlyOnce(t *testing.T) {
	e := newEnv(t)
	stop := e.runner()
	if !e.srv.WaitSocket(1, 10*time.Second) {
		t.Fatal("no Socket Mode connection")
	}
	t0 := e.now.Add(-20 * time.Minute)
	f := e.finding("f-redeliver-1", keyID, t0)
	e.save(f)
	ch, ts := e.posted(e.alert())

	// a. Lost ack, same runner: reconnect, redelivery, answered once.
	e.srv.LoseNextAck()
	id := e.srv.SendInteractive(e.press(ch, ts, allowed, slack.ActionSilenceKey, f.ID))
	if !e.srv.WaitSocket(2, 20*time.Second) {
		t.Fatal("the runner did not reconnect after the socket dropped")
	}
	if _, ok := e.srv.WaitAck(id, 20*time.Second); !ok {
		t.Fatal("the redelivered envelope was not acknowledged")
	}
	var env slacktest.Envelope
	for _, x := range e.srv.Envelopes() {
		if x.EnvelopeID == id {
			env = x
		}
	}
	if env.RetryAttempt != 1 {
		t.Fatalf("envelope %s: retry attempt %d, want 1 (redelivered once)", id, env.RetryAttempt)
	}
	if n := e.count("SELECT count() FROM DB.alert_actions WHERE finding_id = ? AND action = 'silence_key'", f.ID); n != 1 {
		t.Errorf("%d silence_key records, want exactly 1", n)
	}
	if n := e.count("SELECT count() FROM DB.silences WHERE key_id = ? AND rule_id = ''", keyID); n != 1 {
		t.Errorf("%d silence rows, want exactly 1", n)
	}
	if n := e.replies(ch, ts, "silenced"); n != 1 {
		t.Errorf("%d thread notes, want 1", n)
	}

	// b. Lost ack, and the runner is replaced (a restart, or another
	// leader): the new runner finds the action recorded.
	e.srv.LoseNextAck()
	id = e.srv.SendInteractive(e.press(ch, ts, allowed, slack.ActionResolve, f.ID))
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		return e.count("SELECT count() FROM DB.alert_actions WHERE finding_id = ? AND action = 'resolve'", f.ID) == 1, "resolve recorded by the first runner"
	})
	if !e.srv.WaitSocket(3, 20*time.Second) {
		t.Fatal("no reconnection after the second drop")
	}
	stop()
	conns := e.srv.Connections()
	e.runner()
	if !e.srv.WaitSocket(conns+1, 10*time.Second) {
		t.Fatal("the second runner did not connect")
	}
	if _, ok := e.srv.WaitAck(id, 20*time.Second); !ok {
		t.Fatal("the redelivered resolve was not acknowledged by the new runner")
	}
	if n := e.count("SELECT count() FROM DB.alert_actions WHERE finding_id = ? AND action = 'resolve'", f.ID); n != 1 {
		t.Errorf("%d resolve records, want exactly 1", n)
	}
	if n := e.replies(ch, ts, "Resolved by"); n != 1 {
		t.Errorf("%d resolve notes in the thread, want 1", n)
	}

	// c. A drop right after the ack: nothing redelivered, nothing lost.
	acks := len(e.srv.Acks())
	id = e.srv.SendInteractive(e.press(ch, ts, viewer, slack.ActionAcknowledge, f.ID))
	if _, ok := e.srv.WaitAck(id, 15*time.Second); !ok {
		t.Fatal("acknowledge not acked")
	}
	conns = e.srv.Connections()
	e.srv.DropSocket()
	if !e.srv.WaitSocket(conns+1, 20*time.Second) {
		t.Fatal("no reconnection after a drop")
	}
	time.Sleep(300 * time.Millisecond)
	if got := len(e.srv.Acks()); got != acks+1 {
		t.Errorf("%d acks after the drop, want %d (nothing redelivered)", got, acks+1)
	}
	if n := e.count("SELECT count() FROM DB.alert_actions WHERE finding_id = ? AND action = 'acknowledge'", f.ID); n != 1 {
		t.Errorf("%d acknowledge records, want 1", n)
	}
	e.noSecrets()
}

// TestSlashCommand: /auditwatch key by id, hint, fingerprint and full key,
// unknown and ambiguous input, silences, help, and the refusal of a user
// not allowed; answers are ephemeral and never hold the key.
func TestSlashCommand(t *testing.T) {
	e := newEnv(t)
	e.runner()
	if !e.srv.WaitSocket(1, 10*time.Second) {
		t.Fatal("no Socket Mode connection")
	}
	// Traffic of the key two hours ago, and an open finding.
	var rows event.Rows
	dec := event.NewDecoder(0, 1000*time.Hour)
	for i := range 30 {
		code := ""
		status := 200
		if i%3 == 0 {
			code, status = "invalid_signature", 401
		}
		raw := fmt.Sprintf(`{"ts":"%s","request_id":"tr-%d","method":"GET","path":"/v1/orders","status":%d,"error_code":"%s","client_ip":"198.51.100.%d","key_id":"%s","api_key":"%s"}`,
			e.now.Add(-2*time.Hour).Format(time.RFC3339), i, status, code, i%4, keyID, fullKey)
		r, err := dec.Decode([]byte(raw), e.now)
		if err != nil {
			t.Fatal(err)
		}
		rows.Append(&r)
	}
	if err := chsink.New(e.conn, e.db).Write(e.ctx, &rows, nil); err != nil {
		t.Fatal(err)
	}
	e.save(e.finding("f-open-1", keyID, e.now.Add(-90*time.Minute)))
	// Two registered keys sharing a hint: ambiguous.
	if err := keys.NewStore(e.conn, e.db).Upsert(e.ctx, []keys.Key{
		{ID: "key_dup_a", Hint: "bk_live_DUPE…0000", Env: "live", Status: "active", CreatedAt: e.now.Add(-24 * time.Hour)},
		{ID: "key_dup_b", Hint: "bk_live_DUPE…0000", Env: "live", Status: "active", CreatedAt: e.now.Add(-24 * time.Hour)},
	}, keys.SourceImport); err != nil {
		t.Fatal(err)
	}
	if err := e.as.AddSilence(e.ctx, alerts.Silence{ID: "sil_cli000000001", RuleID: "other-rule", Reason: "maintenance window", CreatedBy: "alice",
		CreatedAt: e.now, StartsAt: e.now.Add(-time.Minute), EndsAt: e.now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	ask := func(user, text string) string {
		t.Helper()
		id := e.srv.SendSlashCommand("/auditwatch", text, user, "C0SECALERTS")
		a, ok := e.srv.WaitAck(id, 15*time.Second)
		if !ok {
			t.Fatalf("/auditwatch %s: not acknowledged", text)
		}
		var p struct {
			ResponseType string `json:"response_type"`
			Text         string `json:"text"`
		}
		if err := json.Unmarshal(a.Payload, &p); err != nil || p.ResponseType != "ephemeral" {
			t.Fatalf("/auditwatch %s: ack payload %s (%v): want an ephemeral answer", text, a.Payload, err)
		}
		return p.Text
	}
	tests := []struct {
		name, user, text string
		want             []string
		not              []string
	}{
		{"help", nobody, "help", []string{"/auditwatch key", "/auditwatch silences"}, nil},
		{"empty is help", nobody, "", []string{"/auditwatch key"}, nil},
		{"unknown subcommand", allowed, "frobnicate now", []string{"Unknown command `frobnicate`", "/auditwatch key"}, nil},
		{"refused", nobody, "key " + keyID, []string{"not allowed"}, []string{"acc_42", "requests"}},
		{"by id", allowed, "key " + keyID, []string{"Key `" + keyID + "`", secret.Hint(fullKey), "acc_42", "Market Makers Ltd", "status *active*",
			"*Last 24 h*", "30 requests", "*Last 7 d*", "top errors `invalid_signature` 10", "Open findings* (1", "`burst`"}, nil},
		{"by hint (group member)", groupie, "key " + secret.Hint(fullKey), []string{"Key `" + keyID + "`", "30 requests"}, nil},
		{"by fingerprint", allowed, "key " + secret.Fingerprint(fullKey), []string{"Key `" + keyID + "`"}, nil},
		{"by short fingerprint", allowed, "key " + secret.Fingerprint(fullKey)[:16], []string{"Key `" + keyID + "`"}, nil},
		{"full key", allowed, "key " + fullKey, []string{"full API key", "rotate it", "Key `" + keyID + "`"}, nil},
		{"unknown key", allowed, "key bk_live_ZZZZ…9999", []string{"No registered key and no use"}, nil},
		{"ambiguous hint", allowed, "key bk_live_DUPE…0000", []string{"matches 2 registered keys", "key_dup_a", "key_dup_b"}, nil},
		{"key without argument", allowed, "key", []string{"Usage: `/auditwatch key"}, nil},
		{"injection stays text", allowed, "key <!channel>", []string{"&lt;!channel&gt;"}, []string{"<!channel>"}},
		{"silences", groupie, "silences", []string{"1 silence in force", "sil_cli000000001", "rule `other-rule`", "maintenance window", "by alice"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ask(tt.user, tt.text)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("answer lacks %q:\n%s", w, got)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(got, n) {
					t.Errorf("answer holds %q:\n%s", n, got)
				}
			}
			if strings.Contains(got, fullKey) || strings.Contains(got, "panic") || strings.Contains(got, "goroutine") {
				t.Errorf("answer holds the key or a stack trace:\n%s", got)
			}
		})
	}
	// An action is needed for noSecrets' record check.
	ch, ts := e.posted(e.alert())
	e.send(e.press(ch, ts, viewer, slack.ActionAcknowledge, "f-open-1"))
	e.noSecrets()
}
