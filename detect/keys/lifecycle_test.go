package keys

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/ingest/event"
	"github.com/auditwatch/auditwatch/ingest/secret"
)

const (
	liveKey1 = "bk_live_LifeCycle000000000000000000000001"
	liveKey2 = "bk_live_LifeCycle000000000000000000000002"
)

var decodeNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func TestDecodeEvent(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string // Event as JSON, for success
	}{
		{"created with full key", `{"type":"created","ts":"2026-11-27T10:00:00.5Z","key_id":"key_1","api_key":"` + liveKey1 + `","account_id":"acc_1","owner":"desk","expires_at":"2027-11-27","allowed_cidrs":["10.1.2.3/8","192.0.2.1"],"unknown":{"x":1}}`,
			`{"Type":"created","TS":"2026-11-27T10:00:00Z","KeyID":"key_1","Fingerprint":"` + secret.Fingerprint(liveKey1) + `","Hint":"bk_live_Life…0001","Env":"live","AccountID":"acc_1","Owner":"desk","ExpiresAt":"2027-11-27T00:00:00Z","AllowedCIDRs":["10.0.0.0/8","192.0.2.1/32"],"Topic":"","Partition":0,"Offset":0}`},
		{"revoked by fingerprint, epoch ms", `{"type":"revoked","ts":1795780800000,"fingerprint":"ABCDEF0123456789"}`,
			`{"Type":"revoked","TS":"2026-11-27T12:00:00Z","KeyID":"","Fingerprint":"abcdef0123456789","Hint":"","Env":"","AccountID":"","Owner":"","ExpiresAt":null,"AllowedCIDRs":null,"Topic":"","Partition":0,"Offset":0}`},
		{"allowlist cleared", `{"type":"allowlist_changed","ts":"2026-11-27T10:00:00Z","key_id":"key_1","allowed_cidrs":[],"env":null}`,
			`{"Type":"allowlist_changed","TS":"2026-11-27T10:00:00Z","KeyID":"key_1","Fingerprint":"","Hint":"","Env":"","AccountID":"","Owner":"","ExpiresAt":null,"AllowedCIDRs":[],"Topic":"","Partition":0,"Offset":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := DecodeEvent([]byte(tt.raw), decodeNow)
			if err != nil {
				t.Fatalf("DecodeEvent: %v", err)
			}
			b, _ := json.Marshal(ev)
			if string(b) != tt.want {
				t.Fatalf("got  %s\nwant %s", b, tt.want)
			}
		})
	}
}

func TestDecodeEventRejects(t *testing.T) {
	ok := `"ts":"2026-11-27T10:00:00Z","key_id":"key_1"`
	tests := []struct {
		name   string
		raw    string
		reason event.Reason
		field  string
	}{
		{"invalid utf8", "{\"type\":\"\xff\"}", event.ReasonInvalidUTF8, ""},
		{"not an object", `["created"]`, event.ReasonNotJSON, ""},
		{"broken json with key", `{"type":"created","api_key":"` + liveKey1, event.ReasonNotJSON, ""},
		{"no type", `{` + ok + `}`, event.ReasonMissingField, "type"},
		{"unknown type", `{"type":"deleted",` + ok + `}`, event.ReasonBadValue, "type"},
		{"type not a string", `{"type":1,` + ok + `}`, event.ReasonWrongType, "type"},
		{"no ts", `{"type":"revoked","key_id":"key_1"}`, event.ReasonMissingField, "ts"},
		{"bad ts", `{"type":"revoked","ts":"yesterday","key_id":"key_1"}`, event.ReasonBadTimestamp, "ts"},
		{"ts in seconds", `{"type":"revoked","ts":1795780800,"key_id":"key_1"}`, event.ReasonBadTimestamp, "ts"},
		{"ts far in the future", `{"type":"revoked","ts":"2027-01-01T00:00:00Z","key_id":"key_1"}`, event.ReasonBadTimestamp, "ts"},
		{"ts an object", `{"type":"revoked","ts":{},"key_id":"key_1"}`, event.ReasonWrongType, "ts"},
		{"no key", `{"type":"revoked","ts":"2026-11-27T10:00:00Z"}`, event.ReasonMissingField, "key_id"},
		{"rotated without key_id", `{"type":"rotated","ts":"2026-11-27T10:00:00Z","api_key":"` + liveKey2 + `"}`, event.ReasonMissingField, "key_id"},
		{"allowlist_changed without list", `{"type":"allowlist_changed",` + ok + `}`, event.ReasonMissingField, "allowed_cidrs"},
		{"bad cidr", `{"type":"allowlist_changed",` + ok + `,"allowed_cidrs":["10.0.0.0/40"]}`, event.ReasonBadValue, "allowed_cidrs"},
		{"cidrs not strings", `{"type":"allowlist_changed",` + ok + `,"allowed_cidrs":[1]}`, event.ReasonWrongType, "allowed_cidrs"},
		{"bad env", `{"type":"updated",` + ok + `,"env":"prod"}`, event.ReasonBadValue, "env"},
		{"env contradicts key", `{"type":"created",` + ok + `,"env":"test","api_key":"` + liveKey1 + `"}`, event.ReasonBadValue, "env"},
		{"masked api_key", `{"type":"created",` + ok + `,"api_key":"bk_live_Life…0001"}`, event.ReasonBadValue, "api_key"},
		{"fingerprint mismatch", `{"type":"created",` + ok + `,"api_key":"` + liveKey1 + `","fingerprint":"0000000000000000"}`, event.ReasonBadValue, "fingerprint"},
		{"key in key_id", `{"type":"revoked","ts":"2026-11-27T10:00:00Z","key_id":"` + liveKey1 + `"}`, event.ReasonBadValue, "key_id"},
		{"key in owner", `{"type":"updated",` + ok + `,"owner":"team ` + liveKey1 + `"}`, event.ReasonBadValue, "owner"},
		{"bad expires_at", `{"type":"updated",` + ok + `,"expires_at":"soon"}`, event.ReasonBadTimestamp, "expires_at"},
		{"api_key not a string", `{"type":"created",` + ok + `,"api_key":123}`, event.ReasonWrongType, "api_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeEvent([]byte(tt.raw), decodeNow)
			e, isErr := err.(*event.Error)
			if !isErr {
				t.Fatalf("DecodeEvent error %v (%T), want *event.Error", err, err)
			}
			if e.Reason != tt.reason || e.Field != tt.field {
				t.Fatalf("got %s field %q (%v), want %s field %q", e.Reason, e.Field, err, tt.reason, tt.field)
			}
			for _, k := range []string{liveKey1, liveKey2} {
				if strings.Contains(err.Error(), k) {
					t.Fatalf("error quotes the key: %v", err)
				}
			}
		})
	}
}

func mustEvent(t *testing.T, raw string) Event {
	t.Helper()
	ev, err := DecodeEvent([]byte(raw), decodeNow)
	if err != nil {
		t.Fatalf("DecodeEvent(%s): %v", raw, err)
	}
	return ev
}

// applyAll applies events to an in-memory registry as Store.Apply does.
func applyAll(t *testing.T, start []Key, raws ...string) *registry {
	t.Helper()
	reg := newRegistry(start)
	for _, raw := range raws {
		e := mustEvent(t, raw)
		id := e.KeyID
		if id == "" {
			id = e.Fingerprint
			if other, ok := reg.byFP[e.Fingerprint]; ok {
				id = other
			}
		}
		c, found := reg.byID[id]
		reg.put(e.apply(id, c, found))
	}
	return reg
}

func TestApplyEvents(t *testing.T) {
	fp1, fp2 := secret.Fingerprint(liveKey1), secret.Fingerprint(liveKey2)
	created := `{"type":"created","ts":"2026-01-01T00:00:00Z","key_id":"key_1","api_key":"` + liveKey1 + `","account_id":"acc_1","owner":"desk","allowed_cidrs":["10.0.0.0/8"]}`
	tests := []struct {
		name   string
		events []string
		want   string // stateJSON of key_1
	}{
		{"created", []string{created},
			`{"id":"key_1","fingerprint":"` + fp1 + `","hint":"bk_live_Life…0001","env":"live","account_id":"acc_1","owner":"desk","status":"active","created_at":"2026-01-01T00:00:00Z","allowed_cidrs":["10.0.0.0/8"]}`},
		{"rotated with new key", []string{created, `{"type":"rotated","ts":"2026-04-01T00:00:00Z","key_id":"key_1","api_key":"` + liveKey2 + `"}`},
			`{"id":"key_1","fingerprint":"` + fp2 + `","hint":"bk_live_Life…0002","env":"live","account_id":"acc_1","owner":"desk","status":"active","created_at":"2026-01-01T00:00:00Z","rotated_at":"2026-04-01T00:00:00Z","allowed_cidrs":["10.0.0.0/8"]}`},
		{"rotated without key forgets the old fingerprint", []string{created, `{"type":"rotated","ts":"2026-04-01T00:00:00Z","key_id":"key_1"}`},
			`{"id":"key_1","env":"live","account_id":"acc_1","owner":"desk","status":"active","created_at":"2026-01-01T00:00:00Z","rotated_at":"2026-04-01T00:00:00Z","allowed_cidrs":["10.0.0.0/8"]}`},
		{"allowlist changed then cleared", []string{created,
			`{"type":"allowlist_changed","ts":"2026-02-01T00:00:00Z","key_id":"key_1","allowed_cidrs":["2001:db8::/32","192.0.2.1"]}`,
			`{"type":"updated","ts":"2026-02-02T00:00:00Z","key_id":"key_1","owner":"risk"}`,
			`{"type":"allowlist_changed","ts":"2026-02-03T00:00:00Z","key_id":"key_1","allowed_cidrs":[]}`},
			`{"id":"key_1","fingerprint":"` + fp1 + `","hint":"bk_live_Life…0001","env":"live","account_id":"acc_1","owner":"risk","status":"active","created_at":"2026-01-01T00:00:00Z","allowed_cidrs":[]}`},
		{"revoked by fingerprint", []string{created, `{"type":"revoked","ts":"2026-03-01T00:00:00Z","api_key":"` + liveKey1 + `"}`},
			`{"id":"key_1","fingerprint":"` + fp1 + `","hint":"bk_live_Life…0001","env":"live","account_id":"acc_1","owner":"desk","status":"revoked","created_at":"2026-01-01T00:00:00Z","allowed_cidrs":["10.0.0.0/8"]}`},
		{"expired sets expires_at", []string{created, `{"type":"expired","ts":"2026-03-01T00:00:00Z","key_id":"key_1"}`},
			`{"id":"key_1","fingerprint":"` + fp1 + `","hint":"bk_live_Life…0001","env":"live","account_id":"acc_1","owner":"desk","status":"expired","created_at":"2026-01-01T00:00:00Z","expires_at":"2026-03-01T00:00:00Z","allowed_cidrs":["10.0.0.0/8"]}`},
		{"unknown key revoked", []string{`{"type":"revoked","ts":"2026-03-01T00:00:00Z","key_id":"key_1"}`},
			`{"id":"key_1","status":"revoked","created_at":"2026-03-01T00:00:00Z","allowed_cidrs":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := applyAll(t, nil, tt.events...)
			k, ok := reg.byID["key_1"]
			if !ok || len(reg.byID) != 1 {
				t.Fatalf("registry %v, want key_1 only", reg.byID)
			}
			if got := stateJSON(k); got != tt.want {
				t.Fatalf("state\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestApplyTwiceIsHarmless replays a sequence on its own result: redelivery
// after a failed commit must not change the state.
func TestApplyTwiceIsHarmless(t *testing.T) {
	seq := []string{
		`{"type":"created","ts":"2026-01-01T00:00:00Z","key_id":"key_1","api_key":"` + liveKey1 + `","allowed_cidrs":["10.0.0.0/8"]}`,
		`{"type":"rotated","ts":"2026-04-01T00:00:00Z","key_id":"key_1","api_key":"` + liveKey2 + `"}`,
		`{"type":"allowlist_changed","ts":"2026-04-02T00:00:00Z","key_id":"key_1","allowed_cidrs":["192.0.2.0/24"]}`,
		`{"type":"expired","ts":"2026-05-01T00:00:00Z","key_id":"key_1"}`,
	}
	once := applyAll(t, nil, seq...)
	twice := applyAll(t, []Key{once.byID["key_1"]}, seq...)
	if a, b := stateJSON(once.byID["key_1"]), stateJSON(twice.byID["key_1"]); a != b {
		t.Fatalf("applied twice:\n%s\nonce:\n%s", b, a)
	}
}

func TestEventDetailsHaveNoSecret(t *testing.T) {
	e := mustEvent(t, `{"type":"created","ts":"2026-01-01T00:00:00Z","key_id":"key_1","api_key":"`+liveKey1+`","allowed_cidrs":[]}`)
	d := e.details()
	if strings.Contains(d, liveKey1) || !strings.Contains(d, `"allowed_cidrs":[]`) || !strings.Contains(d, secret.Fingerprint(liveKey1)) {
		t.Fatalf("details %s", d)
	}
	if d := mustEvent(t, `{"type":"revoked","ts":"2026-01-01T00:00:00Z","key_id":"key_1"}`).details(); d != `{}` {
		t.Fatalf("details of a bare event: %s", d)
	}
}
