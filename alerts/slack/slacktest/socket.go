package slacktest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Socket Mode.
//
// The server speaks Socket Mode the way Slack does for an app with
// socket_mode_enabled: apps.connections.open, called with an app-level
// token (xapp-…), answers a ws:// URL of this server; a WebSocket client
// that connects to it gets a "hello" envelope, WebSocket pings every
// PingInterval, and the envelopes a test sends (SendInteractive,
// SendSlashCommand, SendEventsAPI, SendEnvelope). The client acknowledges an
// envelope by writing {"envelope_id": …, "payload": …}; the server records
// each acknowledgement (Acks, WaitAck). An envelope that was not
// acknowledged when its connection closed is sent again on the next
// connection, with retry_attempt increased and retry_reason "timeout", as
// Slack redelivers. DropSocket closes the connection from the server's side
// (the client should reconnect through apps.connections.open), and
// LoseNextAck makes the server drop the next acknowledgement it receives and
// close the connection, as if the acknowledgement never arrived.
//
// Web API calls made with an app-level token other than
// apps.connections.open fail with not_allowed_token_type, and
// apps.connections.open fails the same way with any other token: a client
// mixing up its tokens is caught.

// PingInterval is how often the server pings a Socket Mode connection.
const PingInterval = 500 * time.Millisecond

// Ack is an acknowledgement the server received over Socket Mode.
type Ack struct {
	EnvelopeID string
	// Payload is the acknowledgement's payload (a slash command's
	// ephemeral answer, a view submission's response_action); nil when
	// none.
	Payload json.RawMessage
	At      time.Time
}

// Envelope is an envelope the server sent over Socket Mode.
type Envelope struct {
	EnvelopeID   string
	Type         string // interactive, slash_commands, events_api, hello
	Payload      json.RawMessage
	RetryAttempt int
	Connection   int // connection number it was (last) sent on, from 1
}

// View is a modal opened with views.open.
type View struct {
	TriggerID string
	ID        string
	View      map[string]any // the view as sent
}

// socketState is the Socket Mode part of Server; guarded by Server.mu.
type socketState struct {
	conns      int               // connections accepted so far
	open       []*websocket.Conn // open connections, oldest first; envelopes go to the newest
	writeMu    sync.Mutex        // serialises writes to conn
	sent       []*Envelope
	acks       []Ack
	acked      map[string]bool
	loseAck    int
	members    map[string][]string // channel id → user ids (conversations.members)
	usergroups map[string][]string // usergroup id → user ids (usergroups.users.list)
	views      []View
	appToken   string // required app-level token; "" accepts any xapp-
	ephemeral  []Request
	wake       chan struct{} // closed and replaced on every ack and connection
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func newSocketState() *socketState {
	return &socketState{acked: map[string]bool{}, members: map[string][]string{}, usergroups: map[string][]string{}, wake: make(chan struct{})}
}

// sock returns the Socket Mode state (set once in NewServer).
func (s *Server) sock() *socketState { return s.socket }

// notify wakes the waiters. Caller holds s.mu.
func (st *socketState) notify() {
	close(st.wake)
	st.wake = make(chan struct{})
}

// serveSocket upgrades a request for /socket to a Socket Mode connection.
func (s *Server) serveSocket(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ok := s.tickets[r.URL.Query().Get("ticket")]
	s.mu.Unlock()
	if !ok {
		http.Error(w, "invalid ticket", http.StatusUnauthorized)
		return
	}
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.mu.Lock()
	st := s.sock()
	st.conns++
	n := st.conns
	st.open = append(st.open, c)
	var resend []*Envelope
	for _, e := range st.sent {
		if !st.acked[e.EnvelopeID] && e.Type != "hello" {
			e.RetryAttempt++
			e.Connection = n
			resend = append(resend, e)
		}
	}
	st.notify()
	s.mu.Unlock()

	hello := map[string]any{"type": "hello", "num_connections": 1,
		"connection_info": map[string]any{"app_id": "AAUDIT0001"},
		"debug_info":      map[string]any{"host": "slacktest", "approximate_connection_time": 18060}}
	if s.write(c, hello) != nil {
		return
	}
	for _, e := range resend {
		if s.write(c, envelopeJSON(e, "timeout")) != nil {
			return
		}
	}
	done := make(chan struct{})
	go s.pinger(c, done)
	defer close(done)
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			s.mu.Lock()
			st.open = slices.DeleteFunc(st.open, func(o *websocket.Conn) bool { return o == c })
			st.notify()
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		var a struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(data, &a) != nil || a.EnvelopeID == "" {
			continue
		}
		s.mu.Lock()
		if st.loseAck > 0 {
			st.loseAck--
			s.mu.Unlock()
			_ = c.Close() // the ack is lost with the connection
			continue
		}
		if len(a.Payload) == 0 || string(a.Payload) == "null" {
			a.Payload = nil
		}
		st.acks = append(st.acks, Ack{EnvelopeID: a.EnvelopeID, Payload: a.Payload, At: time.Now()})
		st.acked[a.EnvelopeID] = true
		st.notify()
		s.mu.Unlock()
	}
}

func (s *Server) pinger(c *websocket.Conn, done chan struct{}) {
	t := time.NewTicker(PingInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-s.done:
			return
		case <-t.C:
			s.sock().writeMu.Lock()
			err := c.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second))
			s.sock().writeMu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

func (s *Server) write(c *websocket.Conn, v any) error {
	s.mu.Lock()
	st := s.sock()
	s.mu.Unlock()
	st.writeMu.Lock()
	defer st.writeMu.Unlock()
	_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	return c.WriteJSON(v)
}

func envelopeJSON(e *Envelope, retryReason string) map[string]any {
	m := map[string]any{"envelope_id": e.EnvelopeID, "type": e.Type, "payload": e.Payload,
		"accepts_response_payload": e.Type != "events_api", "retry_attempt": e.RetryAttempt, "retry_reason": ""}
	if e.RetryAttempt > 0 {
		m["retry_reason"] = retryReason
	}
	return m
}

// WaitSocket waits until the n-th Socket Mode connection (from 1) was
// accepted and is open, and reports whether it was within timeout.
func (s *Server) WaitSocket(n int, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		st := s.sock()
		ok, wake := st.conns >= n && len(st.open) > 0, st.wake
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-wake:
		case <-deadline.C:
			return false
		}
	}
}

// Connections returns how many Socket Mode connections were accepted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sock().conns
}

// OpenSockets returns how many Socket Mode connections are open now. Like
// Slack, the server accepts several (an app may hold up to 10); a test of
// a single answering process checks that this stays 1.
func (s *Server) OpenSockets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sock().open)
}

// SendEnvelope sends an envelope of type typ ("interactive",
// "slash_commands", "events_api") with payload (marshalled to JSON) on the
// newest open connection and returns its envelope id. With no connection open,
// the envelope waits for the next one. It fails the test only when payload
// cannot be marshalled.
func (s *Server) SendEnvelope(typ string, payload any) string {
	raw, err := json.Marshal(payload)
	if err != nil {
		s.t.Errorf("slacktest: marshal %s payload: %v", typ, err)
		return ""
	}
	s.mu.Lock()
	st := s.sock()
	s.seq++
	e := &Envelope{EnvelopeID: fmt.Sprintf("env-%04d-%s", s.seq, randHex(4)), Type: typ, Payload: raw, Connection: st.conns}
	st.sent = append(st.sent, e)
	var c *websocket.Conn
	if len(st.open) > 0 {
		c = st.open[len(st.open)-1]
	}
	s.mu.Unlock()
	if c != nil {
		_ = s.write(c, envelopeJSON(e, ""))
	}
	return e.EnvelopeID
}

// SendInteractive sends an interactive envelope (block_actions,
// view_submission, …) with payload.
func (s *Server) SendInteractive(payload any) string { return s.SendEnvelope("interactive", payload) }

// SendEventsAPI sends an events_api envelope with payload (an
// event_callback).
func (s *Server) SendEventsAPI(payload any) string { return s.SendEnvelope("events_api", payload) }

// SendSlashCommand sends a slash_commands envelope: command ("/auditwatch"),
// text, and the user and channel it was typed by and in.
func (s *Server) SendSlashCommand(command, text, userID, channelID string) string {
	return s.SendEnvelope("slash_commands", map[string]string{
		"token": "verification-token-unused", "team_id": "TAUDIT0001", "team_domain": "auditwatch",
		"channel_id": channelID, "channel_name": "sec-alerts", "user_id": userID, "user_name": "user-" + userID,
		"command": command, "text": text, "api_app_id": "AAUDIT0001",
		"response_url": s.srv.URL + "/commands/response", "trigger_id": "trig-" + randHex(6),
	})
}

// DropSocket closes every open Socket Mode connection from the server's
// side; unacknowledged envelopes are sent again on the next connection.
func (s *Server) DropSocket() {
	s.mu.Lock()
	open := append([]*websocket.Conn(nil), s.sock().open...)
	s.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
}

// RequireAppToken makes apps.connections.open fail with invalid_auth for
// another app-level token. By default any xapp- token is accepted.
func (s *Server) RequireAppToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sock().appToken = token
}

// LoseNextAck makes the server discard the next acknowledgement it receives
// and close that connection: the client's ack never arrives and the
// envelope is redelivered on the next connection.
func (s *Server) LoseNextAck() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sock().loseAck++
}

// Acks returns the acknowledgements received, in order.
func (s *Server) Acks() []Ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Ack(nil), s.sock().acks...)
}

// Envelopes returns the envelopes sent (hello excluded), in order, each in
// its latest state (RetryAttempt).
func (s *Server) Envelopes() []Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Envelope
	for _, e := range s.sock().sent {
		out = append(out, *e)
	}
	return out
}

// WaitAck waits for the acknowledgement of envelope id.
func (s *Server) WaitAck(id string, timeout time.Duration) (Ack, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		st := s.sock()
		wake := st.wake
		for _, a := range st.acks {
			if a.EnvelopeID == id {
				s.mu.Unlock()
				return a, true
			}
		}
		s.mu.Unlock()
		select {
		case <-wake:
		case <-deadline.C:
			return Ack{}, false
		}
	}
}

// SetChannelMembers sets the members conversations.members answers for
// channel (an id).
func (s *Server) SetChannelMembers(channel string, users ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sock().members[channel] = users
}

// SetUsergroup sets the members usergroups.users.list answers for the user
// group id (S…).
func (s *Server) SetUsergroup(id string, users ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sock().usergroups[id] = users
}

// Views returns the modals opened with views.open, in order.
func (s *Server) Views() []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]View(nil), s.sock().views...)
}

// socketAPI answers the Web API methods of Socket Mode and triage:
// apps.connections.open, views.open, chat.postEphemeral,
// conversations.members and usergroups.users.list. ok is false for other
// methods. Caller holds s.mu.
func (s *Server) socketAPI(req *Request) (status int, body, code string, ok bool) {
	fail := func(code string) (int, string, string, bool) { return http.StatusOK, slackErr(code), code, true }
	good := func(v map[string]any) (int, string, string, bool) {
		v["ok"] = true
		b, _ := json.Marshal(v)
		return http.StatusOK, string(b), "", true
	}
	st := s.sock()
	switch req.API {
	case "apps.connections.open":
		if !strings.HasPrefix(req.Token, "xapp-") {
			return fail("not_allowed_token_type")
		}
		if st.appToken != "" && req.Token != st.appToken {
			return fail("invalid_auth")
		}
		ticket := randHex(8)
		s.tickets[ticket] = true
		u := "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/socket?" + url.Values{"ticket": {ticket}}.Encode()
		return good(map[string]any{"url": u})
	case "views.open":
		var view map[string]any
		raw := req.Form.Get("view")
		trigger := req.Form.Get("trigger_id")
		if req.JSON != nil {
			view, _ = req.JSON["view"].(map[string]any)
			trigger, _ = req.JSON["trigger_id"].(string)
		} else if json.Unmarshal([]byte(raw), &view) != nil {
			return fail("invalid_arguments")
		}
		if trigger == "" {
			return fail("invalid_trigger_id")
		}
		if view == nil || view["type"] != "modal" {
			return fail("invalid_arguments")
		}
		s.seq++
		id := fmt.Sprintf("V%06d", s.seq)
		st.views = append(st.views, View{TriggerID: trigger, ID: id, View: view})
		view["id"] = id
		return good(map[string]any{"view": view})
	case "chat.postEphemeral":
		if req.Channel == "" {
			return fail("channel_not_found")
		}
		if req.Form.Get("user") == "" && (req.JSON == nil || req.JSON["user"] == nil) {
			return fail("user_not_in_channel")
		}
		if code := checkMessage(req); code != "" {
			return fail(code)
		}
		st.ephemeral = append(st.ephemeral, *req)
		return good(map[string]any{"message_ts": s.nextTS()})
	case "conversations.members":
		ch := req.Form.Get("channel")
		m, found := st.members[ch]
		if !found {
			return fail("channel_not_found")
		}
		return good(map[string]any{"members": m, "response_metadata": map[string]any{"next_cursor": ""}})
	case "usergroups.users.list":
		g := req.Form.Get("usergroup")
		m, found := st.usergroups[g]
		if !found {
			return fail("no_such_subteam")
		}
		return good(map[string]any{"users": m})
	}
	return 0, "", "", false
}

// Ephemerals returns the chat.postEphemeral calls accepted, in order
// (Request.Form holds "user").
func (s *Server) Ephemerals() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.sock().ephemeral...)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
