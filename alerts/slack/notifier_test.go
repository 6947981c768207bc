package slack

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/alerts/slack/slacktest"
)

func newBot(t *testing.T, srv *slacktest.Server, edit ...func(*Config)) *Notifier {
	t.Helper()
	cfg := Config{Token: botToken, APIURL: srv.APIURL(), Timeout: 2 * time.Second}
	for _, e := range edit {
		e(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newHook(t *testing.T, srv *slacktest.Server, edit ...func(*Config)) *Notifier {
	t.Helper()
	cfg := Config{WebhookURL: srv.WebhookURL(), Timeout: 2 * time.Second}
	for _, e := range edit {
		e(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNotifyBotAlert(t *testing.T) {
	srv := slacktest.NewServer(t)
	srv.RequireToken(botToken)
	n := newBot(t, srv)
	if n.Name() != "slack" || n.Webhook() {
		t.Errorf("Name() = %q, Webhook() = %v", n.Name(), n.Webhook())
	}

	m := alertMessage()
	rc, err := n.Notify(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if want := (alerts.Receipt{Channel: "C123", TS: r.TS}); rc.Channel != "C123" || rc.TS == "" {
		t.Errorf("receipt = %+v, want %+v with a ts", rc, want)
	}
	if msg, ok := srv.Message("C123", rc.TS); !ok || msg.Text != r.Text {
		t.Errorf("the receipt does not name the posted message: %+v", msg)
	}
	_, wantText := Render(m)
	checks := []struct{ name, got, want string }{
		{"method", r.Method, http.MethodPost},
		{"api", r.API, "chat.postMessage"},
		{"token", r.Token, botToken},
		{"channel", r.Channel, "#sec-alerts"},
		{"thread_ts", r.ThreadTS, ""},
		{"text", r.Text, wantText},
		{"unfurl_links", r.Form.Get("unfurl_links"), "false"},
		{"unfurl_media", r.Form.Get("unfurl_media"), "false"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	mustContain(t, "text", r.Text, "[CRITICAL] Invalid signature burst on one key", "<!subteam^S0123ABC>", "(+4 more)")
	mustContain(t, "blocks", r.BlocksText(),
		":red_circle: CRITICAL", "Invalid signature burst on one key", // severity, rule name
		keyHint, "`key_01HXYZ`", // key hint, key id
		"`203.0.113.7`", "`req_7f3a9c01`", // top IP, sample request id
		"FROM access_log WHERE key_id = 'key_01HXYZ'", // the query
	)
	if len(r.BlockList()) != 11 {
		t.Errorf("%d blocks, want 11", len(r.BlockList()))
	}
}

func TestNotifyBotThread(t *testing.T) {
	srv := slacktest.NewServer(t)
	var updateErrs []*alerts.DeliveryError
	n := newBot(t, srv, func(c *Config) {
		c.OnUpdateError = func(_ *alerts.Message, err *alerts.DeliveryError) { updateErrs = append(updateErrs, err) }
	})
	ctx := context.Background()

	first, err := n.Notify(ctx, alertMessage())
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		kind       string
		wantReply  []string
		wantParent []string
	}{
		{"repeat", alerts.KindRepeat,
			[]string{":repeat: *Still happening* — alerted 2 times so far", "*950* (threshold 20)"},
			[]string{":red_circle: CRITICAL", ":repeat: *Still happening* — alerted 2 times so far", "Updates are in the thread.", "*Value* 950 vs threshold 20"}},
		{"resolved", alerts.KindResolved,
			[]string{":white_check_mark: *Resolved* — no match since 2026-11-27 12:04:50 UTC."},
			[]string{":white_check_mark: RESOLVED — Invalid signature burst on one key", "(was CRITICAL)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.Reset()
			m := alertMessage()
			m.Kind, m.Repeats, m.Mention = tt.kind, 2, ""
			m.Channel = "#sec-alerts" // a name: the update must use the id Slack answered
			m.ThreadTS, m.UpdateTS = first.TS, first.TS
			m.Findings[0].Value = 950
			rc, err := n.Notify(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			reqs := srv.Requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want a post and an update", len(reqs))
			}
			post, upd := reqs[0], reqs[1]
			if post.API != "chat.postMessage" || post.ThreadTS != first.TS || post.Channel != "#sec-alerts" {
				t.Errorf("post: api %s thread_ts %q channel %q", post.API, post.ThreadTS, post.Channel)
			}
			if rc.Channel != "C123" || rc.TS == "" || rc.TS == first.TS {
				t.Errorf("receipt = %+v, want the reply's", rc)
			}
			if upd.API != "chat.update" || upd.Channel != "C123" || upd.TS != first.TS || upd.Status != 200 || upd.Error != "" {
				t.Errorf("update: api %s channel %q ts %q → %d %q", upd.API, upd.Channel, upd.TS, upd.Status, upd.Error)
			}
			mustContain(t, "reply", post.BlocksText(), tt.wantReply...)
			parent, _ := srv.Message("C123", first.TS)
			mustContain(t, "parent", (slacktest.Request{Blocks: parent.Blocks}).BlocksText(), tt.wantParent...)
			if replies := srv.Replies("C123", first.TS); len(replies) == 0 || replies[len(replies)-1].TS != rc.TS {
				t.Errorf("the reply is not in the thread: %+v", replies)
			}
		})
	}
	if len(updateErrs) != 0 {
		t.Errorf("update errors: %v", updateErrs)
	}
}

func TestNotifyBotUpdateFails(t *testing.T) {
	tests := []struct {
		name     string
		failure  slacktest.Failure
		wantCode string
	}{
		{"server error", slacktest.ServerError(500).Only("chat.update"), "http_500"},
		{"message gone", slacktest.SlackError("message_not_found").Only("chat.update"), "message_not_found"},
		{"rate limited", slacktest.RateLimited(30).Only("chat.update"), "rate_limited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := slacktest.NewServer(t)
			log, logs := newLogger()
			var got []*alerts.DeliveryError
			n := newBot(t, srv, func(c *Config) {
				c.Logger = log
				c.OnUpdateError = func(_ *alerts.Message, err *alerts.DeliveryError) { got = append(got, err) }
			})
			first, err := n.Notify(context.Background(), alertMessage())
			if err != nil {
				t.Fatal(err)
			}
			srv.FailNext(1, tt.failure)
			m := alertMessage()
			m.Kind, m.ThreadTS, m.UpdateTS = alerts.KindRepeat, first.TS, first.TS
			rc, err := n.Notify(context.Background(), m)
			if err != nil {
				t.Fatalf("Notify failed although the reply was posted: %v", err)
			}
			if rc.TS == "" || rc.TS == first.TS {
				t.Errorf("receipt = %+v, want the reply's", rc)
			}
			if len(got) != 1 || got[0].Code != tt.wantCode {
				t.Fatalf("OnUpdateError got %v, want one %s", got, tt.wantCode)
			}
			mustContain(t, "log", logs.String(), "update of the parent message failed", "code="+tt.wantCode, "rule=invalid-signature-burst")
		})
	}
}

func TestNotifyBotNoChannel(t *testing.T) {
	srv := slacktest.NewServer(t)
	n := newBot(t, srv)
	m := alertMessage()
	m.Channel = ""
	_, err := n.Notify(context.Background(), m)
	var de *alerts.DeliveryError
	if !errors.As(err, &de) || de.Code != "no_channel" || de.Retry {
		t.Fatalf("err = %#v, want a no_channel error not retried", err)
	}
	if _, err := n.Notify(context.Background(), nil); err == nil {
		t.Error("nil message accepted")
	}
	if len(srv.Requests()) != 0 {
		t.Errorf("requests were sent: %d", len(srv.Requests()))
	}
}

func TestNotifyWebhook(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(m *alerts.Message)
		wantText []string
		wantBody []string
	}{
		{
			name:     "alert",
			edit:     func(m *alerts.Message) {},
			wantText: []string{"<!subteam^S0123ABC> [CRITICAL] Invalid signature burst on one key: 184 invalid_signature"},
			wantBody: []string{":red_circle: CRITICAL — Invalid signature burst on one key", keyHint, "`203.0.113.7`", "`req_7f3a9c01`", "FROM access_log"},
		},
		{
			name: "repeat says so",
			edit: func(m *alerts.Message) {
				m.Kind, m.Repeats, m.ThreadTS, m.UpdateTS = alerts.KindRepeat, 3, "1700000001.000001", "1700000001.000001"
			},
			wantText: []string{"[CRITICAL] Invalid signature burst on one key: still happening: "},
			wantBody: []string{":repeat: *Still happening* — alerted 3 times so far", "This repeats an earlier alert.", "Invalid signature burst on one key", "`req_7f3a9c01`"},
		},
		{
			name: "resolution says so",
			edit: func(m *alerts.Message) {
				m.Kind, m.ThreadTS, m.UpdateTS = alerts.KindResolved, "1700000001.000001", "1700000001.000001"
			},
			wantText: []string{"[CRITICAL] Invalid signature burst on one key: resolved, no match since 2026-11-27 12:04:50 UTC"},
			wantBody: []string{":white_check_mark: RESOLVED — Invalid signature burst on one key", ":white_check_mark: *Resolved*"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := slacktest.NewServer(t)
			n := newHook(t, srv)
			if !n.Webhook() {
				t.Error("Webhook() = false")
			}
			m := alertMessage()
			tt.edit(m)
			rc, err := n.Notify(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if rc != (alerts.Receipt{}) {
				t.Errorf("receipt = %+v, want empty", rc)
			}
			reqs := srv.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if !r.Webhook || r.Method != http.MethodPost || r.Status != 200 {
				t.Errorf("request: webhook %v method %s status %d", r.Webhook, r.Method, r.Status)
			}
			if r.Channel != "" || r.ThreadTS != "" || r.JSON["unfurl_links"] != false {
				t.Errorf("payload: channel %q thread_ts %q unfurl_links %v", r.Channel, r.ThreadTS, r.JSON["unfurl_links"])
			}
			mustContain(t, "text", r.Text, tt.wantText...)
			mustContain(t, "blocks", r.BlocksText(), tt.wantBody...)
			if msgs := srv.Messages(); len(msgs) != 1 || !msgs[0].Webhook {
				t.Errorf("messages = %+v", msgs)
			}
		})
	}
}

func TestNotifyLimitsAcceptedBySlack(t *testing.T) {
	// The fake checks Slack's limits as Slack does; a huge message must pass.
	srv := slacktest.NewServer(t)
	for _, n := range []*Notifier{newBot(t, srv), newHook(t, srv)} {
		m := alertMessage()
		long := strings.Repeat("<&>", 3000)
		m.RuleName, m.Description, m.Query = long, long, long
		for range 100 {
			f := finding("key_x", "203.0.113.7", 1)
			f.Summary = long
			m.Findings = append(m.Findings, f)
		}
		m.TotalGroups = 1000
		if _, err := n.Notify(context.Background(), m); err != nil {
			t.Errorf("webhook=%v: %v", n.Webhook(), err)
		}
	}
}

func TestNotifyBotParentDeleted(t *testing.T) {
	srv := slacktest.NewServer(t)
	log, logs := newLogger()
	var updateErrs []*alerts.DeliveryError
	n := newBot(t, srv, func(c *Config) {
		c.Logger = log
		c.OnUpdateError = func(_ *alerts.Message, err *alerts.DeliveryError) { updateErrs = append(updateErrs, err) }
	})
	first, err := n.Notify(context.Background(), alertMessage())
	if err != nil {
		t.Fatal(err)
	}
	srv.DeleteMessage(first.Channel, first.TS)
	m := alertMessage()
	m.Kind, m.ThreadTS, m.UpdateTS = alerts.KindRepeat, first.TS, first.TS
	rc, err := n.Notify(context.Background(), m)
	if err != nil {
		t.Fatalf("the reply failed: %v", err)
	}
	if rc.TS == "" {
		t.Error("no receipt")
	}
	if len(updateErrs) != 1 || updateErrs[0].Code != "message_not_found" || updateErrs[0].Retry {
		t.Errorf("update errors %v, want one message_not_found", updateErrs)
	}
	mustContain(t, "log", logs.String(), "thread reply was posted outside its thread", "thread_ts="+first.TS)
}

func TestPostReportUploadsFilesIntoTheThread(t *testing.T) {
	srv := slacktest.NewServer(t)
	n, err := New(Config{Token: "xoxb-test-token", APIURL: srv.APIURL(), HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	html := []byte("<html>report</html>")
	err = n.PostReport(context.Background(), "#sec-review", "*API key usage review*", []alerts.Attachment{{Name: "usage-24h.html", Title: "Usage 24h", Data: html}})
	if err != nil {
		t.Fatal(err)
	}
	var post *slacktest.Request
	for _, r := range srv.Requests() {
		if r.API == "chat.postMessage" {
			r := r
			post = &r
		}
	}
	if post == nil || post.Channel != "#sec-review" || !strings.Contains(post.Text, "usage review") {
		t.Fatalf("digest post: %+v", post)
	}
	files := srv.Files()
	if len(files) != 1 || !files[0].Shared || string(files[0].Data) != string(html) || files[0].Name != "usage-24h.html" || files[0].ThreadTS == "" || files[0].Channel == "" {
		t.Fatalf("uploaded files: %+v", files)
	}
}
