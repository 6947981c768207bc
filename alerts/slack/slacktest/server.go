// Package slacktest is a local HTTP server that speaks the parts of the Slack
// Web API (chat.postMessage, chat.update) and of incoming webhooks that
// auditwatch uses, for tests of notifiers and of the alert dispatcher.
//
// It records every request it receives (method, path, credential, parsed
// form or JSON body, channel, thread_ts, ts, text, blocks), keeps the
// messages it accepted so tests can check a message's final state after
// updates, checks Slack's Block Kit limits the way Slack does (≤ 50 blocks,
// header ≤ 150 characters, section text ≤ 3000, text ≤ 40000) and can be
// told to fail the next requests: 429 with Retry-After, 5xx, a Slack error
// such as channel_not_found, or a hang (for client timeouts).
//
// It behaves like Slack where it matters to a notifier:
//
//   - chat.postMessage answers {"ok":true,"channel":"C123","ts":"…"} with
//     increasing timestamps; a channel name ("#sec-alerts") gets an id
//     (C123, then C124, … per new name, see ChannelID), an id is kept.
//   - a reply (thread_ts) to a message that does not exist or was deleted
//     (DeleteMessage) is posted as a new message, and the answer's message
//     has no thread_ts.
//   - a reply with reply_broadcast=true is kept as a broadcast reply
//     (Request.ReplyBroadcast, Message.Broadcast).
//   - chat.update needs a channel id, not a name (channel_not_found), and
//     the ts of a message it holds (message_not_found).
//   - Web API errors are HTTP 200 {"ok":false,"error":"…"}; rate limits are
//     429 with Retry-After; webhooks answer "ok" or an HTTP error status
//     with the error code as plain text (404 no_service for an unknown
//     webhook path, 404 channel_not_found, 400 invalid_blocks, …).
//
// Typical use:
//
//	srv := slacktest.NewServer(t)
//	n, _ := slack.New(slack.Config{Token: "xoxb-test", APIURL: srv.APIURL()})
//	srv.FailNext(1, slacktest.RateLimited(7))
//	_, err := n.Notify(ctx, msg)          // → 429, Retry-After: 7
//	reqs := srv.Requests()                // what was sent, in order
//
// The server is closed by t.Cleanup; hanging requests are released then.
package slacktest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// Request is one request the server received.
type Request struct {
	Method string // HTTP method
	Path   string // URL path, e.g. "/api/chat.postMessage" or "/services/T…/B…/…"
	// API is the Web API method ("chat.postMessage", "chat.update"); empty
	// for webhook requests.
	API     string
	Webhook bool // the request was posted to a webhook path (/services/…)
	// Token is the credential sent with a Web API call: the form field
	// "token" or the Authorization bearer. It is kept out of Form and Body.
	Token string
	// Form holds the form fields of a form-encoded call, without "token";
	// nil for JSON bodies.
	Form url.Values
	// JSON is the decoded JSON body (webhooks, JSON Web API calls); nil for
	// forms.
	JSON map[string]any
	// Body is the raw body as received, with the form "token" field removed.
	Body []byte

	Channel  string // channel field
	TS       string // ts field (chat.update)
	ThreadTS string // thread_ts field
	// ReplyBroadcast is the reply_broadcast field: a thread reply also
	// shown in the channel.
	ReplyBroadcast bool
	Text           string          // text field (the notification fallback)
	Blocks         json.RawMessage // the blocks array as sent; nil when none

	// Status is the HTTP status the server answered (0 while the request
	// is still being answered); Error the Slack error code it answered with
	// ("" on success); ClientGone that the client gave up (a timeout)
	// before the answer.
	Status     int
	Error      string
	ClientGone bool
}

// BlockList decodes Blocks; it returns nil when there are none or they are
// not a JSON array of objects.
func (r Request) BlockList() []map[string]any {
	var bl []map[string]any
	if len(r.Blocks) == 0 || json.Unmarshal(r.Blocks, &bl) != nil {
		return nil
	}
	return bl
}

// BlocksText returns every "text" string inside the blocks (section and
// header texts, context elements, fields, …), one per line, in order. Tests
// use it to check content without depending on the block layout.
func (r Request) BlocksText() string {
	var v any
	if len(r.Blocks) == 0 || json.Unmarshal(r.Blocks, &v) != nil {
		return ""
	}
	var out []string
	collectText(v, &out)
	return strings.Join(out, "\n")
}

func collectText(v any, out *[]string) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			collectText(e, out)
		}
	case map[string]any:
		if s, ok := v["text"].(string); ok {
			*out = append(*out, s)
		} else if t, ok := v["text"].(map[string]any); ok {
			collectText(t, out)
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			if k != "text" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			collectText(v[k], out)
		}
	}
}

// Message is a message the server accepted (posted through the Web API or a
// webhook), in its current state.
type Message struct {
	Channel  string // channel id ("" for webhooks)
	TS       string // its timestamp ("" for webhooks)
	ThreadTS string // the parent's ts, for a thread reply
	// Broadcast: a thread reply that is also shown in the channel
	// (reply_broadcast).
	Broadcast bool
	Text      string
	Blocks    json.RawMessage
	Updates   int  // chat.update calls applied to it
	Webhook   bool // posted through the webhook

	order int // post order
}

// Failure describes how the server answers a request it was told to fail.
// The zero Failure answers normally.
type Failure struct {
	// API limits the failure to requests for this Web API method
	// ("chat.update"), or to webhook requests with "webhook"; empty matches
	// every request.
	API string
	// Channel limits the failure to Web API requests for this channel (as
	// the client names it: "#sec-alerts" or an id), e.g. a channel_not_found
	// for one route while another channel works; empty matches every
	// channel.
	Channel string
	// Delay holds the answer back this long, or until the client gives up
	// or the server closes: a Delay longer than the client's timeout
	// simulates a hanging Slack. After the delay the request is answered
	// as the other fields say (normally when they are zero).
	Delay time.Duration
	// Status is the HTTP status to answer with (429, 500, 503, …). With
	// Error set and Status 0, the Web API answers 200 and webhooks the
	// status Slack uses for that error (404 for channel_not_found, …).
	Status int
	// RetryAfter is the Retry-After header sent with the answer, e.g. "7".
	RetryAfter string
	// Error is a Slack error code. The Web API answers
	// {"ok":false,"error":Error}; webhooks answer the code as plain text.
	Error string
	// Body replaces the answer's body, e.g. an HTML error page.
	Body string
}

// RateLimited answers 429 with Retry-After: seconds (and, for the Web API,
// {"ok":false,"error":"ratelimited"}), as Slack does.
func RateLimited(seconds int) Failure {
	return Failure{Status: http.StatusTooManyRequests, RetryAfter: strconv.Itoa(seconds), Error: "ratelimited"}
}

// ServerError answers status (500, 502, 503, …) with an HTML body, as
// Slack's front end does.
func ServerError(status int) Failure {
	return Failure{Status: status, Body: "<html><body>Internal Server Error</body></html>"}
}

// Hang holds the answer back for d (or until the client gives up), then
// answers normally.
func Hang(d time.Duration) Failure { return Failure{Delay: d} }

// SlackError answers with the Slack error code: 200 {"ok":false,"error":code}
// for the Web API, the code as text with Slack's status for webhooks.
func SlackError(code string) Failure { return Failure{Error: code} }

// Only returns f limited to requests for the Web API method api
// ("chat.update") or, with "webhook", to webhook requests.
func (f Failure) Only(api string) Failure { f.API = api; return f }

// InChannel returns f limited to Web API requests for channel.
func (f Failure) InChannel(channel string) Failure { f.Channel = channel; return f }

// PermanentErrors are the Slack error codes a bot token's chat.postMessage
// answers that no retry fixes; the dispatcher records them as failed and
// hands the findings to its fallback.
var PermanentErrors = []string{"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "missing_scope",
	"channel_not_found", "is_archived", "not_in_channel", "msg_too_long", "invalid_blocks"}

// PermanentWebhookErrors are the errors an incoming webhook answers (with
// the status in webhookStatus) that no retry fixes.
var PermanentWebhookErrors = []string{"no_service", "channel_not_found", "channel_is_archived", "invalid_token", "action_prohibited", "team_disabled"}

type failRule struct {
	f    Failure
	left int
}

// Server is the fake Slack. Its methods are safe for concurrent use.
type Server struct {
	t        testing.TB
	srv      *httptest.Server
	hookPath string
	done     chan struct{}

	mu       sync.Mutex
	reqs     []*Request
	fails    []*failRule
	token    string
	seq      int
	channels map[string]string // name → id
	nextID   int
	msgs     map[string]*Message // channel id + "/" + ts → message
	files    map[string]*File
	hooks    []*Message
	socket   *socketState    // Socket Mode (socket.go)
	tickets  map[string]bool // Socket Mode URLs handed out
}

// NewServer starts a server; t.Cleanup closes it.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		t:        t,
		hookPath: "/services/TAUDIT0001/BWATCH0001/" + rand.Text(),
		done:     make(chan struct{}),
		channels: map[string]string{},
		nextID:   123,
		msgs:     map[string]*Message{},
		files:    map[string]*File{},
		tickets:  map[string]bool{},
		socket:   newSocketState(),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		close(s.done)
		s.DropSocket()
		s.srv.Close()
	})
	return s
}

// URL returns the server's base URL ("http://127.0.0.1:port").
func (s *Server) URL() string { return s.srv.URL }

// APIURL returns the Web API base URL with its trailing slash, for
// slack.OptionAPIURL ("http://127.0.0.1:port/api/").
func (s *Server) APIURL() string { return s.srv.URL + "/api/" }

// WebhookURL returns the incoming webhook URL the server accepts. Its last
// path segment is a secret: a notifier must never print it.
func (s *Server) WebhookURL() string { return s.srv.URL + s.hookPath }

// Client returns an HTTP client for the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// RequireToken makes Web API calls with another token (or none) fail with
// invalid_auth. By default any token is accepted.
func (s *Server) RequireToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// FailNext makes the next n requests that f matches (see Failure.API) fail
// as f says. Calls queue up: the first queued failure that matches a
// request and has requests left applies to it.
func (s *Server) FailNext(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, &failRule{f: f, left: n})
}

// Reset forgets the recorded requests and queued failures (messages and
// channel ids stay).
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs, s.fails = nil, nil
}

// Requests returns a copy of the requests received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.reqs))
	for i, r := range s.reqs {
		out[i] = *r
	}
	return out
}

// WaitRequests waits until at least n requests have been answered and
// returns them all; it fails the test (t.Fatalf, so call it from the test's
// goroutine) after timeout.
func (s *Server) WaitRequests(n int, timeout time.Duration) []Request {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		reqs := s.Requests()
		answered := 0
		for _, r := range reqs {
			if r.Status != 0 || r.ClientGone {
				answered++
			}
		}
		if answered >= n {
			return reqs
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("slacktest: %d of %d requests after %s", answered, n, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ChannelID returns the id the server gives to the channel name (with or
// without "#"), assigning the next one ("C123", "C124", …) to a new name.
// Ids are answered as they are.
func (s *Server) ChannelID(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.channelID(name)
}

var channelIDRe = regexp.MustCompile(`^[CGD][A-Z0-9]{2,}$`)

func (s *Server) channelID(name string) string {
	if channelIDRe.MatchString(name) {
		return name
	}
	name = strings.TrimPrefix(name, "#")
	id, ok := s.channels[name]
	if !ok {
		id = "C" + strconv.Itoa(s.nextID)
		s.nextID++
		s.channels[name] = id
	}
	return id
}

// DeleteMessage deletes the message ts in channel (an id or a name), as a
// person in Slack can: replies to it are then posted as new messages and
// updates fail with message_not_found.
// File is a file uploaded with files.getUploadURLExternal, the upload URL
// and files.completeUploadExternal.
type File struct {
	ID, Name, Title   string
	Data              []byte
	Channel, ThreadTS string // where it was shared
	Comment           string
	Shared            bool
}

// Files returns the files uploaded, shared or not.
func (s *Server) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []File
	for _, f := range s.files {
		out = append(out, *f)
	}
	return out
}

// extractUpload returns the file bytes of an upload body: the first part of
// a multipart form, or the body itself.
func extractUpload(raw []byte, contentType string) []byte {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		return append([]byte{}, raw...)
	}
	mr := multipart.NewReader(bytes.NewReader(raw), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			return nil
		}
		if p.FileName() != "" || p.FormName() == "file" {
			b, _ := io.ReadAll(p)
			return b
		}
	}
}

func (s *Server) DeleteMessage(channel, ts string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.msgs, s.channelID(channel)+"/"+ts)
}

// Message returns the current state of the message ts in channel (an id
// or a name), and whether it exists.
func (s *Server) Message(channel, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.msgs[s.channelID(channel)+"/"+ts]
	if !ok {
		return Message{}, false
	}
	return *m, true
}

// Messages returns every accepted message in the order they were posted:
// Web API messages and replies (with their updates applied) and webhook
// messages.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.msgs {
		out = append(out, *m)
	}
	for _, m := range s.hooks {
		out = append(out, *m)
	}
	sortMessages(out)
	return out
}

// Replies returns the thread replies to the message ts in channel, oldest
// first.
func (s *Server) Replies(channel, ts string) []Message {
	var out []Message
	id := s.ChannelID(channel)
	for _, m := range s.Messages() {
		if !m.Webhook && m.Channel == id && m.ThreadTS == ts {
			out = append(out, m)
		}
	}
	return out
}

func sortMessages(ms []Message) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].order < ms[j].order })
}

// nextTS returns an increasing message timestamp. Caller holds s.mu.
func (s *Server) nextTS() string {
	s.seq++
	return fmt.Sprintf("%d.%06d", 1700000000+s.seq, s.seq%1000000)
}

// Slack's limits (https://api.slack.com/reference/block-kit/blocks).
const (
	maxBlocks      = 50
	maxHeaderText  = 150
	maxSectionText = 3000
	maxText        = 40000
)

var tokenField = regexp.MustCompile(`(^|&)token=[^&]*`)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/socket" {
		s.serveSocket(w, r)
		return
	}
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	req := &Request{Method: r.Method, Path: r.URL.Path}
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/"):
		req.API = strings.TrimPrefix(r.URL.Path, "/api/")
	case strings.HasPrefix(r.URL.Path, "/services/"):
		req.Webhook = true
	case strings.HasPrefix(r.URL.Path, "/upload/"):
		// The upload URL handed out by files.getUploadURLExternal.
		s.mu.Lock()
		id := strings.TrimPrefix(r.URL.Path, "/upload/")
		if f := s.files[id]; f != nil {
			f.Data = extractUpload(raw, r.Header.Get("Content-Type"))
		}
		s.reqs = append(s.reqs, req)
		req.Status = http.StatusOK
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "OK")
		return
	}
	if auth := r.Header.Get("Authorization"); strings.HasPrefix(auth, "Bearer ") {
		req.Token = strings.TrimPrefix(auth, "Bearer ")
	}
	parseErr := parseBody(req, r.Header.Get("Content-Type"), raw)

	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	f := s.failure(req)
	s.mu.Unlock()

	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			s.mu.Lock()
			req.ClientGone = true
			s.mu.Unlock()
			return
		case <-s.done:
			t.Stop()
		}
	}

	var status int
	var body, errCode string
	switch {
	case f.Status != 0 || f.Error != "" || f.Body != "":
		status, body, errCode = s.failAnswer(req, f)
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
	case req.Webhook:
		status, body, errCode = s.webhook(req, parseErr)
	case req.API != "":
		status, body, errCode = s.api(req, parseErr)
	default:
		status, body = http.StatusNotFound, "not found"
	}

	s.mu.Lock()
	req.Status, req.Error = status, errCode
	s.mu.Unlock()

	if strings.HasPrefix(body, "{") {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	} else if strings.HasPrefix(body, "<") {
		w.Header().Set("Content-Type", "text/html")
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// failure returns the queued failure for req, consuming one use of it, or
// the zero Failure. Caller holds s.mu.
func (s *Server) failure(req *Request) Failure {
	for _, fr := range s.fails {
		if fr.left <= 0 {
			continue
		}
		switch {
		case fr.f.API == "":
		case fr.f.API == "webhook" && req.Webhook:
		case fr.f.API == req.API && req.API != "":
		default:
			continue
		}
		if fr.f.Channel != "" && fr.f.Channel != req.Channel {
			continue
		}
		fr.left--
		return fr.f
	}
	return Failure{}
}

// webhookStatus is the HTTP status Slack's webhooks answer with an error.
var webhookStatus = map[string]int{
	"invalid_payload":                   http.StatusBadRequest,
	"invalid_blocks":                    http.StatusBadRequest,
	"no_text":                           http.StatusBadRequest,
	"msg_too_long":                      http.StatusBadRequest,
	"user_not_found":                    http.StatusNotFound,
	"channel_not_found":                 http.StatusNotFound,
	"no_service":                        http.StatusNotFound,
	"no_service_id":                     http.StatusBadRequest,
	"no_team":                           http.StatusBadRequest,
	"invalid_token":                     http.StatusForbidden,
	"action_prohibited":                 http.StatusForbidden,
	"team_disabled":                     http.StatusForbidden,
	"posting_to_general_channel_denied": http.StatusForbidden,
	"channel_is_archived":               http.StatusGone,
	"ratelimited":                       http.StatusTooManyRequests,
}

func (s *Server) failAnswer(req *Request, f Failure) (status int, body, code string) {
	status, code, body = f.Status, f.Error, f.Body
	if req.Webhook {
		if status == 0 {
			status = webhookStatus[code]
			if status == 0 {
				status = http.StatusBadRequest
			}
		}
		if body == "" {
			body = code
		}
		return status, body, code
	}
	if status == 0 {
		status = http.StatusOK
	}
	if body == "" && code != "" {
		body = slackErr(code)
	}
	return status, body, code
}

func slackErr(code string) string {
	b, _ := json.Marshal(map[string]any{"ok": false, "error": code})
	return string(b)
}

// parseBody fills req from a form or JSON body.
func parseBody(req *Request, contentType string, raw []byte) error {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			req.Body = raw
			return err
		}
		if tok := form.Get("token"); tok != "" {
			req.Token = tok
		}
		form.Del("token")
		req.Form = form
		req.Body = tokenField.ReplaceAll(raw, nil)
		req.Channel, req.TS, req.ThreadTS, req.Text = form.Get("channel"), form.Get("ts"), form.Get("thread_ts"), form.Get("text")
		req.ReplyBroadcast = form.Get("reply_broadcast") == "true"
		if b := form.Get("blocks"); b != "" {
			req.Blocks = json.RawMessage(b)
		}
		return nil
	}
	req.Body = raw
	if len(raw) == 0 {
		return nil
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		return err
	}
	req.JSON = body
	str := func(k string) string { v, _ := body[k].(string); return v }
	req.Channel, req.TS, req.ThreadTS, req.Text = str("channel"), str("ts"), str("thread_ts"), str("text")
	req.ReplyBroadcast = body["reply_broadcast"] == true || str("reply_broadcast") == "true"
	if b, ok := body["blocks"]; ok && b != nil {
		req.Blocks, _ = json.Marshal(b)
	}
	return nil
}

// checkMessage applies Slack's payload checks and returns the error code
// Slack would answer, or "".
func checkMessage(req *Request) string {
	if len(req.Blocks) > 0 {
		var blocks []map[string]any
		if err := json.Unmarshal(req.Blocks, &blocks); err != nil {
			return "invalid_blocks"
		}
		if len(blocks) > maxBlocks {
			return "invalid_blocks"
		}
		for _, b := range blocks {
			if !blockOK(b) {
				return "invalid_blocks"
			}
		}
	} else if req.Text == "" {
		return "no_text"
	}
	if utf8.RuneCountInString(req.Text) > maxText {
		return "msg_too_long"
	}
	return ""
}

// blockOK checks the limits of one block.
func blockOK(b map[string]any) bool {
	text := func(v any) (string, string, bool) {
		m, ok := v.(map[string]any)
		if !ok {
			return "", "", false
		}
		s, _ := m["text"].(string)
		t, _ := m["type"].(string)
		if t != "plain_text" && t != "mrkdwn" {
			return "", "", false
		}
		if _, hasEmoji := m["emoji"]; hasEmoji && t == "mrkdwn" {
			return "", "", false
		}
		return s, t, s != ""
	}
	switch b["type"] {
	case "header":
		s, t, ok := text(b["text"])
		return ok && t == "plain_text" && utf8.RuneCountInString(s) <= maxHeaderText
	case "section":
		if b["text"] == nil && b["fields"] == nil {
			return false
		}
		if b["text"] != nil {
			s, _, ok := text(b["text"])
			if !ok || utf8.RuneCountInString(s) > maxSectionText {
				return false
			}
		}
		if fs, ok := b["fields"].([]any); ok {
			if len(fs) > 10 {
				return false
			}
			for _, f := range fs {
				s, _, ok := text(f)
				if !ok || utf8.RuneCountInString(s) > 2000 {
					return false
				}
			}
		}
		return true
	case "context":
		els, ok := b["elements"].([]any)
		if !ok || len(els) == 0 || len(els) > 10 {
			return false
		}
		for _, e := range els {
			if m, ok := e.(map[string]any); ok && (m["type"] == "plain_text" || m["type"] == "mrkdwn") {
				s, _, ok := text(e)
				if !ok || utf8.RuneCountInString(s) > maxSectionText {
					return false
				}
			}
		}
		return true
	case "divider", "actions", "image", "rich_text", "markdown", "table", "input", "file", "video":
		return true
	}
	return false
}

// api answers a Web API call.
func (s *Server) api(req *Request, parseErr error) (int, string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(code string) (int, string, string) { return http.StatusOK, slackErr(code), code }
	if parseErr != nil {
		return fail("invalid_form_data")
	}
	if req.Token == "" {
		return fail("not_authed")
	}
	// An app-level token (xapp-…) is good for apps.connections.open only,
	// and only it is (see socket.go).
	if (req.API == "apps.connections.open") != strings.HasPrefix(req.Token, "xapp-") {
		return fail("not_allowed_token_type")
	}
	if s.token != "" && req.Token != s.token && req.API != "apps.connections.open" {
		return fail("invalid_auth")
	}
	if status, body, code, ok := s.socketAPI(req); ok {
		return status, body, code
	}
	switch req.API {
	case "chat.postMessage":
		if req.Channel == "" {
			return fail("channel_not_found")
		}
		if code := checkMessage(req); code != "" {
			return fail(code)
		}
		ch := s.channelID(req.Channel)
		threadTS := req.ThreadTS
		if _, ok := s.msgs[ch+"/"+threadTS]; !ok {
			// Like Slack, a reply to a message that does not exist (or
			// was deleted) is posted as a new message; the answer's
			// message has no thread_ts.
			threadTS = ""
		}
		ts := s.nextTS()
		s.msgs[ch+"/"+ts] = &Message{Channel: ch, TS: ts, ThreadTS: threadTS, Broadcast: threadTS != "" && req.ReplyBroadcast, Text: req.Text, Blocks: req.Blocks, order: s.seq}
		msg := map[string]any{"type": "message", "text": req.Text, "ts": ts}
		if threadTS != "" {
			msg["thread_ts"] = threadTS
		}
		b, _ := json.Marshal(map[string]any{"ok": true, "channel": ch, "ts": ts, "message": msg})
		return http.StatusOK, string(b), ""
	case "chat.update":
		// Like Slack, chat.update wants a channel id, not a name.
		if !channelIDRe.MatchString(req.Channel) {
			return fail("channel_not_found")
		}
		m, ok := s.msgs[req.Channel+"/"+req.TS]
		if req.TS == "" || !ok {
			return fail("message_not_found")
		}
		if code := checkMessage(req); code != "" {
			return fail(code)
		}
		m.Text, m.Blocks = req.Text, req.Blocks
		m.Updates++
		b, _ := json.Marshal(map[string]any{"ok": true, "channel": req.Channel, "ts": req.TS, "text": req.Text})
		return http.StatusOK, string(b), ""
	case "files.getUploadURLExternal":
		name := req.Form.Get("filename")
		if name == "" || req.Form.Get("length") == "" {
			return fail("invalid_arguments")
		}
		s.seq++
		id := fmt.Sprintf("F%06d", s.seq)
		s.files[id] = &File{ID: id, Name: name}
		b, _ := json.Marshal(map[string]any{"ok": true, "upload_url": s.srv.URL + "/upload/" + id, "file_id": id})
		return http.StatusOK, string(b), ""
	case "files.completeUploadExternal":
		var files []map[string]any
		if err := json.Unmarshal([]byte(req.Form.Get("files")), &files); err != nil || len(files) == 0 {
			return fail("invalid_arguments")
		}
		ch := req.Form.Get("channel_id")
		if ch != "" && !channelIDRe.MatchString(ch) {
			return fail("channel_not_found")
		}
		var out []map[string]any
		for _, fm := range files {
			id, _ := fm["id"].(string)
			f := s.files[id]
			if f == nil || f.Data == nil {
				return fail("file_not_found")
			}
			f.Title, _ = fm["title"].(string)
			f.Channel, f.ThreadTS, f.Comment = ch, req.Form.Get("thread_ts"), req.Form.Get("initial_comment")
			f.Shared = true
			out = append(out, map[string]any{"id": id, "title": f.Title})
		}
		b, _ := json.Marshal(map[string]any{"ok": true, "files": out})
		return http.StatusOK, string(b), ""
	case "auth.test":
		b, _ := json.Marshal(map[string]any{"ok": true, "url": s.srv.URL + "/", "team": "auditwatch", "user": "auditwatch", "team_id": "TAUDIT0001", "user_id": "UAUDIT0001", "bot_id": "BAUDIT0001"})
		return http.StatusOK, string(b), ""
	}
	return fail("unknown_method")
}

// webhook answers an incoming webhook post.
func (s *Server) webhook(req *Request, parseErr error) (int, string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(code string) (int, string, string) { return webhookStatus[code], code, code }
	if req.Path != s.hookPath {
		return fail("no_service")
	}
	if req.Method != http.MethodPost || parseErr != nil || req.JSON == nil {
		return fail("invalid_payload")
	}
	if code := checkMessage(req); code != "" {
		return fail(code)
	}
	s.seq++
	s.hooks = append(s.hooks, &Message{Webhook: true, Text: req.Text, Blocks: req.Blocks, order: s.seq})
	return http.StatusOK, "ok", ""
}
