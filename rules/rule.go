package rules

import (
	"fmt"
	"net/netip"
	"reflect"
	"sort"
	"strings"

	"github.com/robfig/cron/v3"
	yaml "go.yaml.in/yaml/v3"
)

// Rule types.
const (
	TypeThreshold   = "threshold"
	TypeIPAllowlist = "ip_allowlist"
	TypeKeyRotation = "key_rotation"
	TypeStaleKey    = "stale_key"
	TypeNewValue    = "new_value"
	TypeSQL         = "sql"
	TypeSpike       = "spike"
	TypeDormant     = "dormant"
)

// Types lists the rule types.
var Types = []string{TypeThreshold, TypeIPAllowlist, TypeKeyRotation, TypeStaleKey, TypeNewValue, TypeSQL, TypeSpike, TypeDormant}

// Measures a spike rule can watch.
var Measures = []string{"requests", "errors", "error_rate", "distinct_ips", "bytes_out"}

// Severities, lowest first.
var Severities = []string{"info", "low", "medium", "high", "critical"}

// Rule is one detection rule as written in a rule file, validated.
type Rule struct {
	ID          string            `yaml:"id"`
	Name        string            `yaml:"name"`
	Description string            `yaml:"description"`
	Severity    string            `yaml:"severity"`
	Schedule    string            `yaml:"schedule"`
	Enabled     *bool             `yaml:"enabled"`
	Type        string            `yaml:"type"`
	Filter      Filter            `yaml:"filter"`
	GroupBy     []string          `yaml:"group_by"`
	Window      Duration          `yaml:"window"`
	QueryDelay  *Duration         `yaml:"query_delay"`
	Threshold   *float64          `yaml:"threshold"`
	Metric      Metric            `yaml:"metric"`
	Cooldown    *Duration         `yaml:"cooldown"`
	Labels      map[string]string `yaml:"labels"`
	Runbook     string            `yaml:"runbook"`
	Overrides   []Override        `yaml:"overrides"`
	Exceptions  Exceptions        `yaml:"exceptions"`

	// ip_allowlist: "outside" (requests from outside the key's allowlist)
	// or "missing" (keys with no allowlist). Env limits ip_allowlist,
	// key_rotation and stale_key rules to the keys of one env.
	Mode string `yaml:"mode"`
	Env  string `yaml:"env"`
	// key_rotation: MaxAge since the last rotation; stale_key: UnusedFor.
	MaxAge    Duration `yaml:"max_age"`
	UnusedFor Duration `yaml:"unused_for"`
	// key_rotation and ip_allowlist missing: how far back a key counts as in
	// use (default 7d).
	InUseWindow Duration `yaml:"in_use_window"`
	// new_value: the field whose first appearance per group is reported,
	// looking back Lookback.
	Field    string   `yaml:"field"`
	Lookback Duration `yaml:"lookback"`
	// sql: a SELECT using {from} and {to}, returning columns group, count
	// and optionally details; run read-only within Timeout.
	Query   string   `yaml:"query"`
	Timeout Duration `yaml:"timeout"`

	// spike: the measure per key and hour, compared with the key's own
	// history over BaselineDays (the same hour of day when Seasonality is
	// "daily", every hour when "none"); Threshold is the robust z-score to
	// reach (default 3.5); MinSamples baseline points are needed (warm-up);
	// MinVolume requests in the window; Direction up, down or both.
	Measure      string  `yaml:"measure"`
	BaselineDays int     `yaml:"baseline_days"`
	Seasonality  string  `yaml:"seasonality"`
	MinSamples   int     `yaml:"min_samples"`
	MinVolume    float64 `yaml:"min_volume"`
	Direction    string  `yaml:"direction"`
	// dormant: a key used in the window after at least DormantFor without
	// use; escalated to EscalateTo when it comes from a network it never used.
	DormantFor Duration `yaml:"dormant_for"`

	// Severity escalation: when a threshold rule's value reaches
	// EscalateAt, the finding takes EscalateTo severity.
	EscalateAt *float64 `yaml:"escalate_at"`
	EscalateTo string   `yaml:"escalate_to"`

	// File is the file the rule came from; Line and Col its position.
	File string `yaml:"-"`
	// Hash is the SHA-256 (hex) of the bytes of File as loaded: every run of
	// the rule records it (rule_runs.rule_hash), so a change of the rule
	// file — an exception added, a threshold raised — is visible.
	Hash       string `yaml:"-"`
	Line, Col  int    `yaml:"-"`
	keyPos     map[string][2]int
	badKeys    map[string]bool
	decodeErrs []string
	exceptIPs  []netip.Prefix
	sched      cron.Schedule
}

// IsEnabled reports whether the rule runs (enabled is true unless set false).
func (r *Rule) IsEnabled() bool { return r.Enabled == nil || *r.Enabled }

// DefaultQueryDelay is the query delay of a rule that sets none: a small
// floor for the gateway's own buffering before Kafka. Completeness comes
// from the ingest watermark, and rows later than that are evaluated as late
// data, so the delay no longer has to cover ingest lag.
const DefaultQueryDelay = Duration(2e9)

// Delay returns the query delay: a window evaluated at t ends at t − delay
// (default DefaultQueryDelay).
func (r *Rule) Delay() Duration {
	if r.QueryDelay == nil {
		return DefaultQueryDelay
	}
	return *r.QueryDelay
}

// CooldownOrDefault returns the cooldown: no new alert for the same group
// within it (default: the window, at least 15m).
func (r *Rule) CooldownOrDefault() Duration {
	if r.Cooldown != nil {
		return *r.Cooldown
	}
	return max(r.Window, Duration(15*60e9))
}

// Sched returns the parsed schedule.
func (r *Rule) Sched() cron.Schedule { return r.sched }

// ExceptedIP reports whether ip is in the rule's exceptions.
func (r *Rule) ExceptedIP(ip netip.Addr) bool {
	for _, p := range r.exceptIPs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ExceptedKey reports whether key (an id or a fingerprint; callers check
// both names of a key) is listed in the exceptions.
func (r *Rule) ExceptedKey(key string) bool {
	for _, k := range r.Exceptions.Keys {
		if k == key {
			return true
		}
	}
	return false
}

// ThresholdFor returns the threshold for a group: that of the first override
// whose match equals the group's values, else the rule's.
func (r *Rule) ThresholdFor(group map[string]string) float64 {
	for _, o := range r.Overrides {
		ok := true
		for k, v := range o.Match {
			if group[k] != v {
				ok = false
				break
			}
		}
		if ok {
			return o.Threshold
		}
	}
	if r.Threshold == nil {
		return 1
	}
	return *r.Threshold
}

// MinThreshold is the lowest threshold of the rule and its overrides.
func (r *Rule) MinThreshold() float64 {
	m := r.ThresholdFor(nil)
	for _, o := range r.Overrides {
		m = min(m, o.Threshold)
	}
	return m
}

// Pos returns "file:line:col" of key in the rule (the rule itself if key is
// not set).
func (r *Rule) Pos(key string) string {
	if p, ok := r.keyPos[key]; ok {
		return fmt.Sprintf("%s:%d:%d", r.File, p[0], p[1])
	}
	return fmt.Sprintf("%s:%d:%d", r.File, r.Line, r.Col)
}

// Override changes the threshold for groups matching Match.
type Override struct {
	Match     map[string]string `yaml:"match"`
	Threshold float64           `yaml:"threshold"`
}

// Exceptions are never flagged.
type Exceptions struct {
	Keys []string `yaml:"keys"` // keys by registry id or fingerprint (either name matches)
	IPs  []string `yaml:"ips"`  // addresses or CIDRs, IPv4 or IPv6
}

// Metric is what a threshold rule counts: requests (the default) or the
// distinct values of a field.
type Metric struct {
	Distinct string `yaml:"distinct"`
}

// UnmarshalYAML accepts `count` or `{distinct: field}`.
func (m *Metric) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Value != "count" && n.Value != "requests" {
			return typeErr(n, "metric: want count or {distinct: field}")
		}
		return nil
	}
	type plain Metric
	return strictDecode(n, (*plain)(m))
}

// UnmarshalYAML decodes a rule, rejecting unknown fields and recording the
// position of each key for error messages.
func (r *Rule) UnmarshalYAML(n *yaml.Node) error {
	type plain Rule
	err := strictDecode(n, (*plain)(r))
	r.Line, r.Col = n.Line, n.Column
	r.keyPos = map[string][2]int{}
	r.badKeys = map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		r.keyPos[k.Value] = [2]int{v.Line, v.Column}
		// A key whose value failed to decode is already reported; validation
		// stays quiet about it.
		if te, ok := err.(*yaml.TypeError); ok {
			for _, e := range te.Errors {
				if l := lineOf(e); l >= v.Line && l <= lastLine(v) {
					r.badKeys[k.Value] = true
				}
			}
		}
	}
	// Keep the rule even when parts failed, so that validation reports the
	// rest: yaml drops a value whose unmarshaler returns an error.
	if te, ok := err.(*yaml.TypeError); ok {
		r.decodeErrs = te.Errors
		return nil
	}
	return err
}

// strictDecode decodes a mapping node into v, reporting keys v has no field
// for, with their positions.
func strictDecode(n *yaml.Node, v any) error {
	if n.Kind != yaml.MappingNode {
		return typeErr(n, "want a mapping")
	}
	known := yamlKeys(reflect.TypeOf(v).Elem())
	var errs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !known[k.Value] {
			keys := make([]string, 0, len(known))
			for name := range known {
				keys = append(keys, name)
			}
			sort.Strings(keys)
			errs = append(errs, fmt.Sprintf("line %d: column %d: unknown field %q (known: %s)", k.Line, k.Column, k.Value, strings.Join(keys, ", ")))
		}
	}
	err := n.Decode(v)
	var te *yaml.TypeError
	if err != nil && !asTypeErr(err, &te) {
		return err
	}
	if te != nil {
		errs = append(errs, te.Errors...)
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

func asTypeErr(err error, te **yaml.TypeError) bool {
	t, ok := err.(*yaml.TypeError)
	if ok {
		*te = t
	}
	return ok
}

func yamlKeys(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		name := strings.Split(tag, ",")[0]
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}

func typeErr(n *yaml.Node, msg string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: %s", n.Line, n.Column, msg)}}
}

func lineOf(e string) int {
	var l int
	fmt.Sscanf(e, "line %d:", &l)
	return l
}

// lastLine returns the last line a node spans.
func lastLine(n *yaml.Node) int {
	l := n.Line
	for _, c := range n.Content {
		l = max(l, lastLine(c))
	}
	return l
}
