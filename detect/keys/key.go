package keys

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Key statuses.
const (
	StatusActive  = "active"
	StatusRevoked = "revoked"
	StatusExpired = "expired"
)

// Environments, as named by the key prefixes bk_live_ and bk_test_.
const (
	EnvLive = "live"
	EnvTest = "test"
)

// Sources of a key version (the keys.source column).
const (
	SourceImport = "import"
	SourceKafka  = "kafka"
)

// Key is the current state of one API key. It never holds the key itself.
type Key struct {
	// ID is the registry id, or the fingerprint when the source had no id.
	// It is what access_log.key_id holds for requests made with the key.
	ID string
	// Fingerprint is the fingerprint of the current full key (SHA-256, or
	// the HMAC with the fingerprint_key_file secret: see Parser and
	// DecodeEventWith), "" when unknown; Hint its masked form.
	Fingerprint, Hint string
	// Env is EnvLive or EnvTest ("" when unknown).
	Env       string
	AccountID string
	Owner     string
	// Status is StatusActive, StatusRevoked or StatusExpired.
	Status    string
	CreatedAt time.Time
	// RotatedAt is the last rotation, nil if never rotated. ExpiresAt is nil
	// for keys that do not expire. LastUsedAt is the last use the source
	// reported, nil if it reported none.
	RotatedAt, ExpiresAt, LastUsedAt *time.Time
	// AllowedCIDRs is the IP allowlist, normalised (masked, IPv4 unmapped,
	// sorted, no duplicates); empty means any address may use the key.
	AllowedCIDRs []netip.Prefix
	// UpdatedAt is the version of this state: when auditwatch wrote it.
	UpdatedAt time.Time
}

// Allows reports whether a request from ip may use the key: true when the key
// has no allowlist, else whether ip lies in one of its CIDRs. IPv4-mapped IPv6
// addresses are treated as IPv4, a zone is ignored, and an invalid address is
// allowed only by a key without allowlist. An IPv4 address never matches an
// IPv6 CIDR (not even ::/0) nor the reverse.
func (k Key) Allows(ip netip.Addr) bool {
	if len(k.AllowedCIDRs) == 0 {
		return true
	}
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range k.AllowedCIDRs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// LastRotation returns when the key's current secret was issued: the later
// of RotatedAt and CreatedAt.
func (k Key) LastRotation() time.Time {
	if k.RotatedAt != nil && k.RotatedAt.After(k.CreatedAt) {
		return *k.RotatedAt
	}
	return k.CreatedAt
}

// clone returns a deep copy of k.
func (k Key) clone() Key {
	k.AllowedCIDRs = slices.Clone(k.AllowedCIDRs)
	for _, t := range []**time.Time{&k.RotatedAt, &k.ExpiresAt, &k.LastUsedAt} {
		if *t != nil {
			v := **t
			*t = &v
		}
	}
	return k
}

// ParseCIDR parses one allowlist entry: a CIDR ("10.0.0.0/8", "2001:db8::/32")
// or a single address, which becomes a /32 or /128. The result is masked
// ("10.1.2.3/8" becomes "10.0.0.0/8") and IPv4-mapped IPv6 is unmapped
// ("::ffff:10.0.0.0/104" becomes "10.0.0.0/8"). Zones are rejected.
func ParseCIDR(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Prefix{}, fmt.Errorf("empty CIDR")
	}
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or IP address", s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or IP address", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped CIDR needs at least /96", s)
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// normalizeCIDRs sorts and deduplicates ps in place; nil stays nil and an
// empty non-nil slice stays empty and non-nil.
func normalizeCIDRs(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(ps)
}

// cidrStrings returns ps as text.
func cidrStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// timeLayouts are accepted for timestamps in import files and events: RFC
// 3339 (fraction optional), the same without offset (UTC), with a space
// instead of T, and a date alone (midnight UTC).
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	time.DateOnly,
}

// DateTime range of ClickHouse.
var (
	minTime = time.Unix(0, 0).UTC()
	maxTime = time.Date(2106, 2, 7, 0, 0, 0, 0, time.UTC)
)

// parseTime parses a timestamp in one of timeLayouts, in UTC, truncated to
// the second (the table stores DateTime), within ClickHouse's DateTime range.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			t = t.UTC().Truncate(time.Second)
			if t.Before(minTime) || !t.Before(maxTime) {
				return time.Time{}, fmt.Errorf("%s is out of range (1970 to 2106)", s)
			}
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%s is not an RFC 3339 time or a date (2006-01-02)", quote(s))
}

// validStatus reports whether s is a known status.
func validStatus(s string) bool {
	return s == StatusActive || s == StatusRevoked || s == StatusExpired
}

// IsFingerprint reports whether s is a key fingerprint: 16 lower-case hex digits.
func IsFingerprint(s string) bool {
	if len(s) != 16 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
