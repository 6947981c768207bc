package gen

import (
	"slices"
	"time"
)

// Key statuses in the registry.
const (
	KeyActive  = "active"
	KeyRevoked = "revoked"
	KeyExpired = "expired"
)

// RotationPeriod is how often keys should be rotated.
const RotationPeriod = 90 * 24 * time.Hour

// Key is an API key registry entry. Everything except Secret is what the
// gateway's key registry would hold; Secret is the key itself, known to the
// generator so it can present it in requests.
type Key struct {
	// ID is the registry id, "key_" followed by a ULID of CreatedAt.
	ID string `json:"id"`
	// Secret is the full key, "bk_live_…" or "bk_test_…".
	Secret    string `json:"secret"`
	Env       string `json:"env"`
	AccountID string `json:"account_id"`
	// Owner is the team or application the key was issued to.
	Owner     string    `json:"owner"`
	CreatedAt time.Time `json:"created_at"`
	// RotatedAt is the last rotation, zero if never rotated.
	RotatedAt time.Time `json:"rotated_at,omitzero"`
	// ExpiresAt is zero for keys that do not expire.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// LastUsedAt is the last successful request before the generated window,
	// zero if never used. Keys that are stale or dormant have it far in the past.
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	// Status is KeyActive, KeyRevoked or KeyExpired.
	Status string `json:"status"`
	// AllowedCIDRs is the IP allowlist; empty means any address may use the key.
	AllowedCIDRs []string `json:"allowed_cidrs,omitempty"`
	// HomeNetwork is the CIDR of the network the key is normally used from.
	HomeNetwork string `json:"home_network"`
	// HomeIPs are the addresses normal traffic of the key comes from; for keys
	// with an allowlist they all lie inside it.
	HomeIPs []string `json:"home_ips"`
	// UserAgent is what the key's client normally sends.
	UserAgent string `json:"user_agent"`
	// SignedShare is the fraction of the key's requests that are HMAC-signed.
	SignedShare float64 `json:"signed_share"`
	// BaseRate is the key's average normal request rate in requests per
	// second; zero for keys that send no normal traffic.
	BaseRate float64 `json:"base_rate"`
	// HourlyProfile multiplies BaseRate by UTC hour of day; its mean is 1.
	HourlyProfile [24]float64 `json:"hourly_profile"`
}

// RotationDue reports whether the key has gone longer than RotationPeriod
// since it was last rotated (or created) as of now.
func (k *Key) RotationDue(now time.Time) bool {
	last := k.CreatedAt
	if k.RotatedAt.After(last) {
		last = k.RotatedAt
	}
	return now.Sub(last) > RotationPeriod
}

// clone returns a deep copy of k.
func (k Key) clone() Key {
	k.AllowedCIDRs = slices.Clone(k.AllowedCIDRs)
	k.HomeIPs = slices.Clone(k.HomeIPs)
	return k
}
