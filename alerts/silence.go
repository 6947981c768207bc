package alerts

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/ingest/secret"
	"github.com/auditwatch/auditwatch/rules"
)

// Silence mutes matching findings for a while: they are still recorded,
// not sent.
type Silence struct {
	ID        string    `json:"id"`
	RuleID    string    `json:"rule_id,omitempty"`   // empty: any rule
	KeyID     string    `json:"key_id,omitempty"`    // registry id or fingerprint; empty: any key
	ClientIP  string    `json:"client_ip,omitempty"` // address or CIDR; empty: any
	Reason    string    `json:"reason"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	Expired   bool      `json:"expired"`
}

// NewSilenceID returns a random id.
func NewSilenceID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "sil_" + hex.EncodeToString(b)
}

// Validate checks a silence before it is stored.
func (s Silence) Validate() error {
	if s.RuleID == "" && s.KeyID == "" && s.ClientIP == "" {
		return fmt.Errorf("a silence needs at least one of rule, key or ip")
	}
	if strings.TrimSpace(s.Reason) == "" {
		return fmt.Errorf("a silence needs a reason")
	}
	if !s.EndsAt.After(s.StartsAt) {
		return fmt.Errorf("a silence must end after it starts")
	}
	if s.ClientIP != "" {
		if _, err := rules.ParsePrefix(s.ClientIP); err != nil {
			return fmt.Errorf("ip %q: not an address or CIDR", s.ClientIP)
		}
	}
	return nil
}

// Active reports whether s is in force at t.
func (s Silence) Active(t time.Time) bool {
	return !s.Expired && !t.Before(s.StartsAt) && t.Before(s.EndsAt)
}

// Matches reports whether s mutes f (regardless of time). A key matches
// either identity of the finding's key: its registry id (f.KeyID, or the
// group's key_id) or its fingerprint (f.KeyFingerprint), so a silence made
// with either holds for findings from rows logged with the other.
func (s Silence) Matches(f *detect.Finding) bool {
	if s.RuleID != "" && s.RuleID != f.RuleID {
		return false
	}
	if s.KeyID != "" && s.KeyID != f.KeyID && s.KeyID != f.Group["key_id"] && s.KeyID != f.KeyFingerprint {
		return false
	}
	if s.ClientIP != "" {
		p, err := rules.ParsePrefix(s.ClientIP)
		ip, ierr := netip.ParseAddr(f.ClientIP)
		if err != nil || ierr != nil || !p.Contains(ip.Unmap()) {
			return false
		}
	}
	return true
}

// silencedBy returns the first active silence muting f at t.
func silencedBy(ss []Silence, f *detect.Finding, t time.Time) *Silence {
	for i := range ss {
		if ss[i].Active(t) && ss[i].Matches(f) {
			return &ss[i]
		}
	}
	return nil
}

// ResolveSilenceKey resolves the key given to `silence add --key` to what the
// silence stores: the registry id of a registered key, found by its id, its
// fingerprint or its hint (a full key is looked up by its fingerprint and
// never kept), else the value as given (a full key's fingerprint). k is
// the registered key, nil when there is none. A hint shared by several keys
// is an error: the silence would hold for one of them only.
func ResolveSilenceKey(given string, reg []keys.Key) (id string, k *keys.Key, err error) {
	x := strings.TrimSpace(given)
	if secret.Env(x) != "" && !strings.Contains(x, secret.Ellipsis) {
		x = secret.Fingerprint(x) // a full key: never stored
	}
	for i := range reg {
		if reg[i].ID == x || (reg[i].Fingerprint != "" && reg[i].Fingerprint == x) {
			return reg[i].ID, &reg[i], nil
		}
	}
	var byHint []*keys.Key
	for i := range reg {
		if reg[i].Hint != "" && reg[i].Hint == x {
			byHint = append(byHint, &reg[i])
		}
	}
	switch len(byHint) {
	case 0:
		return x, nil, nil
	case 1:
		return byHint[0].ID, byHint[0], nil
	}
	ids := make([]string, len(byHint))
	for i, k := range byHint {
		ids[i] = k.ID
	}
	return "", nil, fmt.Errorf("key hint %s matches %d registered keys (%s): give the key id", x, len(byHint), strings.Join(ids, ", "))
}
