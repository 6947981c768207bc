package keys

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/auditwatch/auditwatch/ingest/event"
	"github.com/auditwatch/auditwatch/ingest/secret"
)

// Lifecycle event types.
const (
	EventCreated          = "created"
	EventRotated          = "rotated"
	EventRevoked          = "revoked"
	EventExpired          = "expired"
	EventAllowlistChanged = "allowlist_changed"
	EventUpdated          = "updated"
	// EventImported is not a Kafka event type: it marks the key_events rows
	// written by an import.
	EventImported = "imported"
)

// EventTypes lists the lifecycle event types a Kafka message may carry.
var EventTypes = []string{EventCreated, EventRotated, EventRevoked, EventExpired, EventAllowlistChanged, EventUpdated}

// Event is one key lifecycle event, decoded and validated. It never holds a
// full API key: a key in the message is reduced to Fingerprint and Hint.
//
// Empty strings and nil fields were absent from the message, except that a
// non-nil empty AllowedCIDRs means "no allowlist".
type Event struct {
	Type string
	TS   time.Time // UTC, whole seconds
	// KeyID is the registry id; when empty the key is named by Fingerprint.
	KeyID             string
	Fingerprint, Hint string
	Env               string
	AccountID, Owner  string
	ExpiresAt         *time.Time
	AllowedCIDRs      []netip.Prefix
	// Where the event was read from, recorded in key_events.
	Topic     string
	Partition int32
	Offset    int64
}

// maxFuture is how far ahead of the consumer's clock an event may be.
const maxFuture = 24 * time.Hour

// earliest is the earliest event time accepted; older ones are usually
// seconds sent as milliseconds.
var earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// DecodeEvent decodes one lifecycle event message (a JSON object, see
// docs/key-registry.md) read at now. Unknown fields are ignored and null
// counts as absent. It returns an *event.Error classifying the first problem
// (the reasons of the access-log dead letters), whose message never quotes an
// API key.
func DecodeEvent(raw []byte, now time.Time) (Event, error) {
	return DecodeEventWith(raw, now, secret.Fingerprinter{})
}

// DecodeEventWith is [DecodeEvent] fingerprinting a full key in the event
// with fpr: keyed (HMAC) when auditwatch is configured with a
// fingerprint_key_file, so that the registry joins access_log rows
// fingerprinted with the same secret.
func DecodeEventWith(raw []byte, now time.Time, fpr secret.Fingerprinter) (Event, error) {
	var ev Event
	if !utf8.Valid(raw) {
		return ev, reject(event.ReasonInvalidUTF8, "", "message is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ev, reject(event.ReasonNotJSON, "", "message is not a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return ev, reject(event.ReasonNotJSON, "", "invalid JSON: %v", err)
	}
	f := fields(m)
	var err error
	if ev.Type, err = f.str("type"); err != nil {
		return ev, err
	}
	switch ev.Type {
	case "":
		return ev, reject(event.ReasonMissingField, "type", "required")
	case EventCreated, EventRotated, EventRevoked, EventExpired, EventAllowlistChanged, EventUpdated:
	default:
		return ev, reject(event.ReasonBadValue, "type", "unknown event type %s (want created, rotated, revoked, expired, allowlist_changed or updated)", quote(ev.Type))
	}
	if ev.TS, err = f.ts(now); err != nil {
		return ev, err
	}
	var mat material
	for _, s := range []struct {
		name string
		dst  *string
	}{{"key_id", &ev.KeyID}, {"api_key", &mat.apiKey}, {"fingerprint", &mat.fingerprint}, {"hint", &mat.hint},
		{"env", &mat.env}, {"account_id", &ev.AccountID}, {"owner", &ev.Owner}} {
		if *s.dst, err = f.str(s.name); err != nil {
			return ev, err
		}
	}
	for _, c := range []struct {
		field, v string
		noSpace  bool
	}{{"key_id", ev.KeyID, true}, {"account_id", ev.AccountID, false}, {"owner", ev.Owner, false}} {
		if fe := checkText(c.field, c.v, c.noSpace); fe != nil {
			return ev, reject(event.ReasonBadValue, fe.field, "%s", fe.msg)
		}
	}
	var ferrs []fieldError
	ev.Fingerprint, ev.Hint, ev.Env, ferrs = mat.resolve(fpr, false)
	if len(ferrs) > 0 {
		return ev, reject(event.ReasonBadValue, ferrs[0].field, "%s", ferrs[0].msg)
	}
	if ev.ExpiresAt, err = f.time("expires_at"); err != nil {
		return ev, err
	}
	if ev.AllowedCIDRs, err = f.cidrs("allowed_cidrs"); err != nil {
		return ev, err
	}
	switch {
	case ev.KeyID == "" && ev.Fingerprint == "":
		return ev, reject(event.ReasonMissingField, "key_id", "key_id, api_key or fingerprint required")
	case ev.Type == EventRotated && ev.KeyID == "":
		return ev, reject(event.ReasonMissingField, "key_id", "a rotated event needs key_id (api_key is the new key)")
	case ev.Type == EventAllowlistChanged && ev.AllowedCIDRs == nil:
		return ev, reject(event.ReasonMissingField, "allowed_cidrs", "an allowlist_changed event needs allowed_cidrs ([] for no allowlist)")
	}
	return ev, nil
}

func reject(r event.Reason, field, format string, args ...any) *event.Error {
	return &event.Error{Reason: r, Field: field, Msg: secret.Redact(fmt.Sprintf(format, args...))}
}

// fields reads typed values from a JSON object.
type fields map[string]json.RawMessage

// get returns the raw value of name, nil when absent or null.
func (f fields) get(name string) json.RawMessage {
	v, ok := f[name]
	if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return nil
	}
	return v
}

func (f fields) str(name string) (string, error) {
	v := f.get(name)
	if v == nil {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", reject(event.ReasonWrongType, name, "want a string")
	}
	return s, nil
}

func (f fields) ts(now time.Time) (time.Time, error) {
	v := f.get("ts")
	if v == nil {
		return time.Time{}, reject(event.ReasonMissingField, "ts", "required")
	}
	var t time.Time
	if v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return t, reject(event.ReasonWrongType, "ts", "want an RFC 3339 string or epoch milliseconds")
		}
		var err error
		if t, err = parseTime(s); err != nil {
			return t, reject(event.ReasonBadTimestamp, "ts", "%v", err)
		}
	} else {
		ms, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return t, reject(event.ReasonWrongType, "ts", "want an RFC 3339 string or epoch milliseconds")
		}
		if math.IsNaN(ms) || math.Abs(ms) > 1e15 {
			return t, reject(event.ReasonBadTimestamp, "ts", "epoch milliseconds out of range")
		}
		t = time.UnixMilli(int64(ms)).UTC().Truncate(time.Second)
	}
	if t.Before(earliest) {
		return t, reject(event.ReasonBadTimestamp, "ts", "%s is before 2000 (seconds sent as milliseconds?)", t.Format(time.RFC3339))
	}
	if t.After(now.Add(maxFuture)) {
		return t, reject(event.ReasonBadTimestamp, "ts", "%s is more than %s in the future", t.Format(time.RFC3339), maxFuture)
	}
	return t, nil
}

func (f fields) time(name string) (*time.Time, error) {
	s, err := f.str(name)
	if err != nil || s == "" {
		return nil, err
	}
	t, err := parseTime(s)
	if err != nil {
		return nil, reject(event.ReasonBadTimestamp, name, "%v", err)
	}
	return &t, nil
}

// cidrs returns nil when name is absent or null, a non-nil slice otherwise.
func (f fields) cidrs(name string) ([]netip.Prefix, error) {
	v := f.get(name)
	if v == nil {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(v, &list); err != nil {
		return nil, reject(event.ReasonWrongType, name, "want an array of strings")
	}
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		p, err := ParseCIDR(s)
		if err != nil {
			return nil, reject(event.ReasonBadValue, name, "%v", err)
		}
		out = append(out, p)
	}
	return normalizeCIDRs(out), nil
}

// apply returns the state of a key after e, given its current state cur
// (found false: the key is unknown). id is the key's registry identity.
//
//   - created sets the whole row from the event: status active, created_at =
//     ts, never rotated; only the fingerprint, hint and last use are kept from
//     cur when the event has none.
//   - every other type first takes the fields the event carries (env,
//     account_id, owner, expires_at, allowed_cidrs, fingerprint and hint),
//     then: rotated sets rotated_at = ts and replaces the fingerprint and hint
//     with the event's (clearing them when it has none: the old secret is
//     gone); revoked and expired set the status (expired also expires_at =
//     ts when unknown); allowlist_changed and updated change nothing more.
//
// An unknown key starts as active, created at ts.
func (e Event) apply(id string, cur Key, found bool) Key {
	if !found {
		cur = Key{Status: StatusActive, CreatedAt: e.TS}
	}
	k := cur.clone()
	k.ID = id
	if e.Type == EventCreated {
		k = Key{
			ID: id, Fingerprint: e.Fingerprint, Hint: e.Hint, Env: e.Env, AccountID: e.AccountID, Owner: e.Owner,
			Status: StatusActive, CreatedAt: e.TS, ExpiresAt: e.ExpiresAt, AllowedCIDRs: e.AllowedCIDRs,
			LastUsedAt: k.LastUsedAt,
		}
		if k.Fingerprint == "" {
			k.Fingerprint, k.Hint = cur.Fingerprint, cur.Hint
		}
		if k.Env == "" {
			k.Env = cur.Env
		}
		if k.AllowedCIDRs == nil {
			k.AllowedCIDRs = []netip.Prefix{}
		}
		return k
	}
	if e.Env != "" {
		k.Env = e.Env
	}
	if e.AccountID != "" {
		k.AccountID = e.AccountID
	}
	if e.Owner != "" {
		k.Owner = e.Owner
	}
	if e.ExpiresAt != nil {
		t := *e.ExpiresAt
		k.ExpiresAt = &t
	}
	if e.AllowedCIDRs != nil {
		k.AllowedCIDRs = append([]netip.Prefix{}, e.AllowedCIDRs...)
	}
	if e.Fingerprint != "" {
		k.Fingerprint, k.Hint = e.Fingerprint, e.Hint
	}
	switch e.Type {
	case EventRotated:
		ts := e.TS
		k.RotatedAt = &ts
		k.Fingerprint, k.Hint = e.Fingerprint, e.Hint
	case EventRevoked:
		k.Status = StatusRevoked
	case EventExpired:
		k.Status = StatusExpired
		if k.ExpiresAt == nil {
			ts := e.TS
			k.ExpiresAt = &ts
		}
	}
	return k
}

// details returns the JSON recorded in key_events.details: the fields the
// event carried, normalised, without any secret.
func (e Event) details() string {
	d := struct {
		Fingerprint  string     `json:"fingerprint,omitempty"`
		Hint         string     `json:"hint,omitempty"`
		Env          string     `json:"env,omitempty"`
		AccountID    string     `json:"account_id,omitempty"`
		Owner        string     `json:"owner,omitempty"`
		ExpiresAt    *time.Time `json:"expires_at,omitempty"`
		AllowedCIDRs *[]string  `json:"allowed_cidrs,omitempty"`
	}{e.Fingerprint, e.Hint, e.Env, e.AccountID, e.Owner, e.ExpiresAt, nil}
	if e.AllowedCIDRs != nil {
		c := cidrStrings(e.AllowedCIDRs)
		d.AllowedCIDRs = &c
	}
	b, _ := json.Marshal(d)
	return string(b)
}
