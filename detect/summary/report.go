// Package summary builds per-key usage reviews from the rollups in
// ClickHouse and renders them (table, Markdown, CSV, JSON, HTML).
package summary

import "time"

// Report is one usage review over a period, compared with the period before.
type Report struct {
	Period      string    `json:"period"` // "24h", "7d", "30d"
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	PrevFrom    time.Time `json:"prev_from"`
	PrevTo      time.Time `json:"prev_to"`
	GeneratedAt time.Time `json:"generated_at"`
	Database    string    `json:"database"`
	// Bucket is the width of the points of KeySummary.Series (1h for 24h and
	// 7d reports, 1d for 30d).
	Bucket time.Duration `json:"bucket_seconds"`
	Totals Totals        `json:"totals"`
	// Keys, what needs a person first (highest Priority first).
	Keys []KeySummary `json:"keys"`
}

// Totals are over all keys.
type Totals struct {
	Keys         int               `json:"keys"`          // keys in the report
	ActiveKeys   int               `json:"active_keys"`   // keys with requests in the period
	FlaggedKeys  int               `json:"flagged_keys"`  // keys with at least one flag
	Requests     uint64            `json:"requests"`      // in the period
	PrevRequests uint64            `json:"prev_requests"` // in the previous period
	Errors       map[string]uint64 `json:"errors"`        // by error code
	// Keys presented that are not in the registry and never succeeded
	// (typos, guesses, enumeration): counted here, not listed as keys.
	UnknownKeys     int    `json:"unknown_keys"`
	UnknownRequests uint64 `json:"unknown_requests"`
	// Signals are the findings of info or low severity in the period
	// (recorded, never alerted on their own), by rule: those of the keys
	// listed, of keys not listed (never a working key) and, without a key
	// filter, of findings about no key (rules grouped by client address).
	Signals map[string]uint64 `json:"signals"`
	// SignalKeys is the keys listed with at least one signal.
	SignalKeys int `json:"signal_keys"`
}

// Flags a key may carry.
const (
	FlagRotationOverdue  = "rotation_overdue"
	FlagStale            = "stale"             // unused for 45 days or more (or never used)
	FlagNoAllowlist      = "live_no_allowlist" // live key without an IP allowlist
	FlagOutsideAllowlist = "outside_allowlist" // requests from outside its allowlist in the period
	FlagUnusualChange    = "unusual_change"    // requests changed by ×3 or more (or from/to zero) against the previous period
	FlagOpenFindings     = "open_findings"     // findings alerted in the period
	FlagExpiredInUse     = "expired_in_use"    // expired or revoked, yet requests in the period
	FlagUnregistered     = "unregistered"      // seen in traffic, not in the key registry
	FlagHighErrorRate    = "high_error_rate"   // more than 10% of requests failed
	FlagSignals          = "signals"           // info or low findings in the period: recorded, not alerted
)

// KeySummary is one key's use in the period.
type KeySummary struct {
	KeyID      string `json:"key_id"`
	Hint       string `json:"key_hint"`
	Env        string `json:"env"`
	AccountID  string `json:"account_id"`
	Owner      string `json:"owner"`
	Status     string `json:"status"`     // registry status; "" when unregistered
	Registered bool   `json:"registered"` // in the key registry

	Requests     uint64  `json:"requests"`
	PrevRequests uint64  `json:"prev_requests"`
	Change       float64 `json:"change"` // Requests/PrevRequests − 1; +Inf when PrevRequests is 0 and Requests > 0; 0 when both 0
	Successes    uint64  `json:"successes"`
	SuccessRate  float64 `json:"success_rate"` // 0..1; 0 when no requests

	Errors      map[string]uint64 `json:"errors"` // by error code
	DistinctIPs uint64            `json:"distinct_ips"`
	// Addresses outside the key's allowlist that used it in the period.
	OutsideIPs      []string `json:"outside_ips"`
	OutsideRequests uint64   `json:"outside_requests"`
	TopPaths        []Count  `json:"top_paths"`
	P50LatencyMS    float64  `json:"p50_latency_ms"`
	P95LatencyMS    float64  `json:"p95_latency_ms"`
	BytesIn         uint64   `json:"bytes_in"`
	BytesOut        uint64   `json:"bytes_out"`

	FirstSeen *time.Time `json:"first_seen,omitempty"` // in the period
	LastSeen  *time.Time `json:"last_seen,omitempty"`  // ever (as far as the rollups go)

	CreatedAt       *time.Time `json:"created_at,omitempty"`
	LastRotation    *time.Time `json:"last_rotation,omitempty"`
	KeyAgeDays      float64    `json:"key_age_days"`      // since the last rotation (or creation)
	RotationDueDays float64    `json:"rotation_due_days"` // days until 90 days since the last rotation; negative = overdue
	AllowedCIDRs    []string   `json:"allowed_cidrs"`

	// OpenFindings are the findings alerted in the period (status new),
	// newest first, at most 20.
	OpenFindings []FindingRef `json:"open_findings"`
	// Signals are the key's findings of info or low severity in the period
	// (status signal: recorded, never alerted on their own), one per rule,
	// the most frequent first.
	Signals  []SignalRef `json:"signals"`
	Flags    []string    `json:"flags"`
	Priority int         `json:"priority"` // higher = needs a person sooner

	// Series is requests and errors per Report.Bucket over the period, for
	// charts (oldest first, every bucket present).
	Series []Point `json:"series"`
}

// Count is a value and how often it occurred.
type Count struct {
	Value string `json:"value"`
	N     uint64 `json:"n"`
}

// FindingRef is an alerted finding about the key.
type FindingRef struct {
	RuleID   string    `json:"rule_id"`
	Severity string    `json:"severity"`
	Summary  string    `json:"summary"`
	EvalTime time.Time `json:"eval_time"`
}

// SignalRef is a key's signals of one rule in the period: how many, and the
// latest one's severity, summary and time.
type SignalRef struct {
	RuleID   string    `json:"rule_id"`
	Count    int       `json:"count"`
	Severity string    `json:"severity"`
	Summary  string    `json:"summary"`
	Latest   time.Time `json:"latest"`
}

// SignalCount returns the number of signals in k.Signals.
func (k *KeySummary) SignalCount() int {
	n := 0
	for _, s := range k.Signals {
		n += s.Count
	}
	return n
}

// Point is one bucket of a series.
type Point struct {
	T        time.Time `json:"t"`
	Requests uint64    `json:"requests"`
	Errors   uint64    `json:"errors"`
}
