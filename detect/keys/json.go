package keys

import (
	"encoding/json"
	"time"
)

// jsonKey is the JSON form of a Key: the field names of the import format,
// plus updated_at.
type jsonKey struct {
	ID           string     `json:"id"`
	Fingerprint  string     `json:"fingerprint,omitempty"`
	Hint         string     `json:"hint,omitempty"`
	Env          string     `json:"env,omitempty"`
	AccountID    string     `json:"account_id,omitempty"`
	Owner        string     `json:"owner,omitempty"`
	Status       string     `json:"status"`
	CreatedAt    time.Time  `json:"created_at"`
	RotatedAt    *time.Time `json:"rotated_at,omitempty"`
	ExpiresAt    *time.Time `json:"expires_at,omitempty"`
	LastUsedAt   *time.Time `json:"last_used_at,omitempty"`
	AllowedCIDRs []string   `json:"allowed_cidrs"`
	UpdatedAt    time.Time  `json:"updated_at,omitzero"`
}

// MarshalJSON encodes k with the field names of the import format (id,
// fingerprint, hint, env, account_id, owner, status, created_at, rotated_at,
// expires_at, last_used_at, allowed_cidrs) and updated_at; times are RFC 3339
// UTC, absent ones omitted, and allowed_cidrs is always an array.
func (k Key) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonKey{
		ID: k.ID, Fingerprint: k.Fingerprint, Hint: k.Hint, Env: k.Env, AccountID: k.AccountID, Owner: k.Owner,
		Status: k.Status, CreatedAt: k.CreatedAt.UTC(), RotatedAt: utcPtr(k.RotatedAt), ExpiresAt: utcPtr(k.ExpiresAt),
		LastUsedAt: utcPtr(k.LastUsedAt), AllowedCIDRs: cidrStrings(k.AllowedCIDRs), UpdatedAt: k.UpdatedAt.UTC(),
	})
}

// stateJSON returns k as JSON without its version, for key_events.details
// and comparisons.
func stateJSON(k Key) string {
	k.UpdatedAt = time.Time{}
	b, _ := json.Marshal(k)
	return string(b)
}
