package slacktest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/auditwatch/auditwatch/alerts/slack/slacktest"
)

func call(t *testing.T, srv *slacktest.Server, method, token string, form url.Values) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.APIURL()+method, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: %s", method, b)
	}
	return out
}

type frame struct {
	Type         string          `json:"type"`
	EnvelopeID   string          `json:"envelope_id"`
	Payload      json.RawMessage `json:"payload"`
	RetryAttempt int             `json:"retry_attempt"`
	RetryReason  string          `json:"retry_reason"`
}

func dial(t *testing.T, srv *slacktest.Server) *websocket.Conn {
	t.Helper()
	open := call(t, srv, "apps.connections.open", "xapp-1-A1-2-secret", nil)
	u, _ := open["url"].(string)
	if open["ok"] != true || !strings.HasPrefix(u, "ws://") {
		t.Fatalf("apps.connections.open: %v", open)
	}
	c, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *websocket.Conn) frame {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var f frame
	if err := c.ReadJSON(&f); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSocketMode(t *testing.T) {
	srv := slacktest.NewServer(t)
	// Tokens are checked by type.
	if r := call(t, srv, "apps.connections.open", "xoxb-bot", nil); r["error"] != "not_allowed_token_type" {
		t.Errorf("apps.connections.open with a bot token: %v", r)
	}
	if r := call(t, srv, "chat.postMessage", "xapp-1-A1-2-secret", url.Values{"channel": {"#x"}, "text": {"hi"}}); r["error"] != "not_allowed_token_type" {
		t.Errorf("chat.postMessage with an app token: %v", r)
	}
	// A ws URL from an unknown ticket is refused.
	if _, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL(), "http")+"/socket?ticket=nope", nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("dial with a bad ticket: %v", err)
	}

	c := dial(t, srv)
	if f := read(t, c); f.Type != "hello" {
		t.Fatalf("first frame %+v, want hello", f)
	}
	if !srv.WaitSocket(1, time.Second) {
		t.Fatal("connection not seen")
	}
	id := srv.SendSlashCommand("/auditwatch", "help", "U1", "C1")
	f := read(t, c)
	if f.EnvelopeID != id || f.Type != "slash_commands" || !strings.Contains(string(f.Payload), `"command":"/auditwatch"`) {
		t.Fatalf("envelope %+v", f)
	}
	if err := c.WriteJSON(map[string]any{"envelope_id": id, "payload": map[string]string{"text": "ok"}}); err != nil {
		t.Fatal(err)
	}
	a, ok := srv.WaitAck(id, 2*time.Second)
	if !ok || !strings.Contains(string(a.Payload), `"text":"ok"`) {
		t.Fatalf("ack %+v %v", a, ok)
	}

	// A lost ack: the envelope comes again on the next connection.
	srv.LoseNextAck()
	id2 := srv.SendInteractive(map[string]any{"type": "block_actions"})
	if f := read(t, c); f.EnvelopeID != id2 || f.RetryAttempt != 0 {
		t.Fatalf("envelope %+v", f)
	}
	_ = c.WriteJSON(map[string]any{"envelope_id": id2})
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, _, err := c.ReadMessage(); err == nil {
		t.Fatal("the connection stayed open after the lost ack")
	}
	if _, ok := srv.WaitAck(id2, 200*time.Millisecond); ok {
		t.Fatal("a lost ack was recorded")
	}
	c2 := dial(t, srv)
	if f := read(t, c2); f.Type != "hello" {
		t.Fatalf("first frame %+v, want hello", f)
	}
	f = read(t, c2)
	if f.EnvelopeID != id2 || f.RetryAttempt != 1 || f.RetryReason != "timeout" {
		t.Fatalf("redelivery %+v", f)
	}
	_ = c2.WriteJSON(map[string]any{"envelope_id": id2})
	if _, ok := srv.WaitAck(id2, 2*time.Second); !ok {
		t.Fatal("redelivered envelope not acked")
	}
	if srv.Connections() != 2 {
		t.Errorf("%d connections, want 2", srv.Connections())
	}

	// Web API methods of triage.
	srv.SetUsergroup("S1", "U1", "U2")
	srv.SetChannelMembers("C1", "U3")
	if r := call(t, srv, "usergroups.users.list", "xoxb-bot", url.Values{"usergroup": {"S1"}}); r["ok"] != true || len(r["users"].([]any)) != 2 {
		t.Errorf("usergroups.users.list: %v", r)
	}
	if r := call(t, srv, "usergroups.users.list", "xoxb-bot", url.Values{"usergroup": {"S9"}}); r["error"] != "no_such_subteam" {
		t.Errorf("unknown group: %v", r)
	}
	if r := call(t, srv, "conversations.members", "xoxb-bot", url.Values{"channel": {"C1"}}); r["ok"] != true || len(r["members"].([]any)) != 1 {
		t.Errorf("conversations.members: %v", r)
	}
	if r := call(t, srv, "chat.postEphemeral", "xoxb-bot", url.Values{"channel": {"C1"}, "user": {"U1"}, "text": {"no"}}); r["ok"] != true {
		t.Errorf("chat.postEphemeral: %v", r)
	}
	if e := srv.Ephemerals(); len(e) != 1 || e[0].Form.Get("user") != "U1" || e[0].Text != "no" {
		t.Errorf("ephemerals %+v", e)
	}
	view := `{"type":"modal","callback_id":"cb","title":{"type":"plain_text","text":"T"},"blocks":[]}`
	if r := call(t, srv, "views.open", "xoxb-bot", url.Values{"trigger_id": {"tr1"}, "view": {view}}); r["ok"] != true {
		t.Errorf("views.open: %v", r)
	}
	if r := call(t, srv, "views.open", "xoxb-bot", url.Values{"view": {view}}); r["error"] != "invalid_trigger_id" {
		t.Errorf("views.open without trigger: %v", r)
	}
	if v := srv.Views(); len(v) != 1 || v[0].TriggerID != "tr1" || v[0].View["callback_id"] != "cb" || v[0].ID == "" {
		t.Errorf("views %+v", v)
	}
}
