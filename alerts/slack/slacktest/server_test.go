package slacktest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// post sends a form to the Web API method and returns the status, the
// Retry-After header and the decoded answer.
func post(t *testing.T, s *Server, method string, form url.Values) (int, string, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(s.APIURL()+method, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var ans map[string]any
	_ = json.Unmarshal(body, &ans)
	return resp.StatusCode, resp.Header.Get("Retry-After"), ans
}

func postHook(t *testing.T, s *Server, u, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const blocks = `[{"type":"header","text":{"type":"plain_text","text":"HIGH — rule"}},{"type":"section","text":{"type":"mrkdwn","text":"*hello*"}}]`

func TestWebAPI(t *testing.T) {
	s := NewServer(t)
	form := url.Values{"token": {"xoxb-t"}, "channel": {"#sec"}, "text": {"hi"}, "blocks": {blocks}}
	_, _, a1 := post(t, s, "chat.postMessage", form)
	_, _, a2 := post(t, s, "chat.postMessage", form)
	if a1["ok"] != true || a1["channel"] != "C123" || a2["channel"] != "C123" {
		t.Fatalf("answers %v %v", a1, a2)
	}
	ts1, ts2 := a1["ts"].(string), a2["ts"].(string)
	if ts1 == "" || ts2 <= ts1 {
		t.Errorf("timestamps %q %q do not increase", ts1, ts2)
	}
	if id := s.ChannelID("other"); id != "C124" {
		t.Errorf("second channel id %s", id)
	}

	// A thread reply and an update of the parent.
	reply := url.Values{"token": {"xoxb-t"}, "channel": {"#sec"}, "text": {"again"}, "thread_ts": {ts1}}
	if _, _, a := post(t, s, "chat.postMessage", reply); a["ok"] != true || a["message"].(map[string]any)["thread_ts"] != ts1 {
		t.Errorf("reply answer %v", a)
	}
	upd := url.Values{"token": {"xoxb-t"}, "channel": {"C123"}, "ts": {ts1}, "text": {"edited"}, "blocks": {blocks}}
	if _, _, a := post(t, s, "chat.update", upd); a["ok"] != true || a["ts"] != ts1 {
		t.Errorf("update answer %v", a)
	}
	if m, ok := s.Message("#sec", ts1); !ok || m.Text != "edited" || m.Updates != 1 {
		t.Errorf("message after update: %+v", m)
	}
	if r := s.Replies("C123", ts1); len(r) != 1 || r[0].Text != "again" {
		t.Errorf("replies %+v", r)
	}
	if ms := s.Messages(); len(ms) != 3 || ms[0].TS != ts1 || ms[2].ThreadTS != ts1 {
		t.Errorf("messages %+v", ms)
	}
	// A reply to a deleted message becomes a new message.
	s.DeleteMessage("#sec", ts2)
	orphan := url.Values{"token": {"xoxb-t"}, "channel": {"#sec"}, "text": {"orphan"}, "thread_ts": {ts2}}
	if _, _, a := post(t, s, "chat.postMessage", orphan); a["ok"] != true || a["message"].(map[string]any)["thread_ts"] != nil {
		t.Errorf("orphan reply answer %v", a)
	}
	defer func() {
		if _, ok := s.Message("C123", ts2); ok {
			t.Error("deleted message still there")
		}
	}()

	reqs := s.Requests()
	if len(reqs) != 5 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.API != "chat.postMessage" || r.Token != "xoxb-t" || r.Channel != "#sec" || r.Text != "hi" || r.Status != 200 || r.Form.Has("token") {
		t.Errorf("request %+v", r)
	}
	if strings.Contains(string(r.Body), "xoxb-t") || !strings.Contains(string(r.Body), "channel=") {
		t.Errorf("body %q", r.Body)
	}
	if got := r.BlocksText(); got != "HIGH — rule\n*hello*" {
		t.Errorf("BlocksText = %q", got)
	}
	if len(r.BlockList()) != 2 {
		t.Errorf("BlockList = %v", r.BlockList())
	}
	if reqs[2].ThreadTS != ts1 || reqs[3].API != "chat.update" || reqs[3].TS != ts1 {
		t.Errorf("thread / update requests %+v %+v", reqs[2], reqs[3])
	}
}

func TestWebAPIErrors(t *testing.T) {
	s := NewServer(t)
	s.RequireToken("xoxb-good")
	_, _, a := post(t, s, "chat.postMessage", url.Values{"token": {"xoxb-good"}, "channel": {"#a"}, "text": {"x"}})
	ts := a["ts"].(string)
	many := make([]string, 51)
	for i := range many {
		many[i] = `{"type":"divider"}`
	}
	tests := []struct {
		name, method string
		form         url.Values
		want         string
	}{
		{"bad token", "chat.postMessage", url.Values{"token": {"xoxb-bad"}, "channel": {"#a"}, "text": {"x"}}, "invalid_auth"},
		{"no token", "chat.postMessage", url.Values{"channel": {"#a"}, "text": {"x"}}, "not_authed"},
		{"no channel", "chat.postMessage", url.Values{"token": {"xoxb-good"}, "text": {"x"}}, "channel_not_found"},
		{"no text", "chat.postMessage", url.Values{"token": {"xoxb-good"}, "channel": {"#a"}}, "no_text"},
		{"51 blocks", "chat.postMessage", url.Values{"token": {"xoxb-good"}, "channel": {"#a"}, "blocks": {"[" + strings.Join(many, ",") + "]"}}, "invalid_blocks"},
		{"long header", "chat.postMessage", url.Values{"token": {"xoxb-good"}, "channel": {"#a"},
			"blocks": {`[{"type":"header","text":{"type":"plain_text","text":"` + strings.Repeat("h", 151) + `"}}]`}}, "invalid_blocks"},
		{"long section", "chat.postMessage", url.Values{"token": {"xoxb-good"}, "channel": {"#a"},
			"blocks": {`[{"type":"section","text":{"type":"mrkdwn","text":"` + strings.Repeat("s", 3001) + `"}}]`}}, "invalid_blocks"},
		{"emoji on mrkdwn", "chat.postMessage", url.Values{"token": {"xoxb-good"}, "channel": {"#a"},
			"blocks": {`[{"type":"section","text":{"type":"mrkdwn","text":"x","emoji":true}}]`}}, "invalid_blocks"},
		{"text too long", "chat.postMessage", url.Values{"token": {"xoxb-good"}, "channel": {"#a"}, "text": {strings.Repeat("t", 40001)}}, "msg_too_long"},
		{"update by channel name", "chat.update", url.Values{"token": {"xoxb-good"}, "channel": {"#a"}, "ts": {ts}, "text": {"x"}}, "channel_not_found"},
		{"update of unknown ts", "chat.update", url.Values{"token": {"xoxb-good"}, "channel": {"C123"}, "ts": {"9.9"}, "text": {"x"}}, "message_not_found"},
		{"unknown method", "chat.delete", url.Values{"token": {"xoxb-good"}}, "unknown_method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, a := post(t, s, tt.method, tt.form)
			if status != 200 || a["ok"] != false || a["error"] != tt.want {
				t.Errorf("→ %d %v, want 200 %s", status, a, tt.want)
			}
			reqs := s.Requests()
			if last := reqs[len(reqs)-1]; last.Error != tt.want {
				t.Errorf("recorded error %q", last.Error)
			}
		})
	}
}

func TestFailNext(t *testing.T) {
	s := NewServer(t)
	form := url.Values{"token": {"xoxb-t"}, "channel": {"#a"}, "text": {"x"}}
	s.FailNext(2, RateLimited(7))
	s.FailNext(1, ServerError(503))
	s.FailNext(1, SlackError("channel_not_found").Only("chat.update"))
	s.FailNext(1, SlackError("invalid_token").Only("webhook"))

	type answer struct {
		status     int
		retryAfter string
		err        any
	}
	var got []answer
	for range 4 {
		st, ra, a := post(t, s, "chat.postMessage", form)
		got = append(got, answer{st, ra, a["error"]})
	}
	want := []answer{{429, "7", "ratelimited"}, {429, "7", "ratelimited"}, {503, "", nil}, {200, "", nil}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("answers %v, want %v", got, want)
	}
	// The chat.update failure waited for a chat.update.
	_, _, a := post(t, s, "chat.update", url.Values{"token": {"xoxb-t"}, "channel": {"C123"}, "ts": {"1.1"}})
	if a["error"] != "channel_not_found" {
		t.Errorf("update answer %v", a)
	}
	// Webhook failures answer a status and the code as text.
	if st, body := postHook(t, s, s.WebhookURL(), `{"text":"x"}`); st != 403 || body != "invalid_token" {
		t.Errorf("webhook → %d %q", st, body)
	}
	if st, body := postHook(t, s, s.WebhookURL(), `{"text":"x"}`); st != 200 || body != "ok" {
		t.Errorf("webhook → %d %q", st, body)
	}
	s.Reset()
	if len(s.Requests()) != 0 {
		t.Error("Reset kept requests")
	}
}

func TestHang(t *testing.T) {
	s := NewServer(t)
	s.FailNext(1, Hang(10*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.WebhookURL(), strings.NewReader(`{"text":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("no timeout")
	}
	reqs := s.WaitRequests(1, 5*time.Second)
	if !reqs[0].ClientGone || time.Since(start) > 5*time.Second {
		t.Errorf("request %+v", reqs[0])
	}
	// A short hang answers normally afterwards.
	s.FailNext(1, Hang(50*time.Millisecond))
	if st, body := postHook(t, s, s.WebhookURL(), `{"text":"x"}`); st != 200 || body != "ok" {
		t.Errorf("webhook → %d %q", st, body)
	}
}

func TestWebhook(t *testing.T) {
	s := NewServer(t)
	if !strings.HasPrefix(s.WebhookURL(), s.URL()+"/services/") {
		t.Errorf("webhook url %s", s.WebhookURL())
	}
	tests := []struct {
		name, url, body string
		status          int
		answer          string
	}{
		{"blocks and text", s.WebhookURL(), `{"text":"fallback","blocks":` + blocks + `}`, 200, "ok"},
		{"wrong path", s.URL() + "/services/T0/B0/nope", `{"text":"x"}`, 404, "no_service"},
		{"not JSON", s.WebhookURL(), `text=x`, 400, "invalid_payload"},
		{"nothing to say", s.WebhookURL(), `{}`, 400, "no_text"},
		{"bad blocks", s.WebhookURL(), `{"blocks":[{"type":"header","text":{"type":"mrkdwn","text":"x"}}]}`, 400, "invalid_blocks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := postHook(t, s, tt.url, tt.body)
			if st != tt.status || body != tt.answer {
				t.Errorf("→ %d %q, want %d %q", st, body, tt.status, tt.answer)
			}
		})
	}
	r := s.Requests()[0]
	if !r.Webhook || r.API != "" || r.Text != "fallback" || r.JSON["text"] != "fallback" || r.BlocksText() != "HIGH — rule\n*hello*" {
		t.Errorf("request %+v", r)
	}
	if ms := s.Messages(); len(ms) != 1 || !ms[0].Webhook || ms[0].Text != "fallback" {
		t.Errorf("messages %+v", ms)
	}
}

func TestWebAPIJSON(t *testing.T) {
	s := NewServer(t)
	req, _ := http.NewRequest(http.MethodPost, s.APIURL()+"chat.postMessage",
		strings.NewReader(`{"channel":"C999","text":"hi","blocks":`+blocks+`}`))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", "Bearer xoxb-json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r := s.Requests()[0]
	if r.Token != "xoxb-json" || r.Channel != "C999" || r.Form != nil || r.JSON["text"] != "hi" || r.Status != 200 || r.Error != "" {
		t.Errorf("request %+v", r)
	}
	if _, ok := s.Message("C999", s.Messages()[0].TS); !ok {
		t.Error("message not kept under its channel id")
	}
}
