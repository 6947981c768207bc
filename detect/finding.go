package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/auditwatch/auditwatch/rules"
)

// Finding statuses.
const (
	StatusNew        = "new"        // to be alerted
	StatusSignal     = "signal"     // info or low severity: recorded for reviews and digests, never alerted on its own
	StatusSuppressed = "suppressed" // matched again within the cooldown, at the same or a lower severity
)

// Triggers: how an evaluation was started (findings.trigger, rule_runs.trigger).
const (
	TriggerSchedule = "schedule" // a schedule tick, evaluated once the watermark passed the window
	TriggerReplay   = "replay"   // a tick missed while detect was down or busy, evaluated later
	TriggerLate     = "late"     // a window evaluated again because events arrived after it was evaluated
	TriggerManual   = "manual"   // detect --once / --from
	TriggerBacktest = "backtest"
	TriggerTest     = "test"
)

// Finding is one match of a rule for one group at one evaluation.
type Finding struct {
	ID       string            `json:"id"`
	RuleID   string            `json:"rule_id"`
	RuleName string            `json:"rule_name"`
	RuleType string            `json:"rule_type"`
	Severity string            `json:"severity"`
	Status   string            `json:"status"`
	Group    map[string]string `json:"group"`
	GroupKey string            `json:"group_key"`
	KeyID    string            `json:"key_id,omitempty"`
	KeyHint  string            `json:"key_hint,omitempty"`
	// KeyFingerprint is the key's other identity: access_log.key_id holds
	// it for requests where the gateway did not log the registry id.
	KeyFingerprint string            `json:"key_fingerprint,omitempty"`
	AccountID      string            `json:"account_id,omitempty"`
	ClientIP       string            `json:"client_ip,omitempty"`
	EvalTime       time.Time         `json:"eval_time"`
	WindowStart    time.Time         `json:"window_start"`
	WindowEnd      time.Time         `json:"window_end"`
	Value          float64           `json:"value"`
	Threshold      float64           `json:"threshold"`
	Summary        string            `json:"summary"`
	Evidence       Evidence          `json:"evidence"`
	Labels         map[string]string `json:"labels,omitempty"`
	Runbook        string            `json:"runbook,omitempty"`
	// Trigger says how the evaluation was started (TriggerSchedule, …);
	// TriggerLate findings came from events that arrived after their window
	// was first evaluated.
	Trigger string `json:"trigger,omitempty"`
	// EscalatedFrom is the highest severity already reported for the rule
	// and group within the cooldown, when this finding broke the cooldown by
	// being more severe.
	EscalatedFrom string `json:"escalated_from,omitempty"`
}

// Late reports whether f was found in events that arrived after their window
// was first evaluated.
func (f *Finding) Late() bool { return f.Trigger == TriggerLate }

// Evidence is what a person needs to judge a finding.
type Evidence struct {
	Requests         uint64         `json:"requests,omitempty"`
	TopClientIPs     []string       `json:"top_client_ips,omitempty"`
	TopErrorCodes    []string       `json:"top_error_codes,omitempty"`
	SampleRequestIDs []string       `json:"sample_request_ids,omitempty"`
	FirstSeen        *time.Time     `json:"first_seen,omitempty"`
	LastSeen         *time.Time     `json:"last_seen,omitempty"`
	Details          map[string]any `json:"details,omitempty"`
}

// newFinding fills the common fields of a finding of r for group.
func newFinding(r *rules.Rule, w Window, group map[string]string, order []string) Finding {
	f := Finding{
		RuleID: r.ID, RuleName: r.Name, RuleType: r.Type, Severity: r.Severity,
		Group: group, GroupKey: groupKey(group, order),
		KeyID: group["key_id"], ClientIP: group["client_ip"],
		EvalTime: w.Eval, WindowStart: w.From, WindowEnd: w.To,
		Labels: r.Labels, Runbook: r.Runbook, Status: StatusNew,
	}
	f.ID = findingID(r.ID, f.GroupKey, w.Eval)
	return f
}

// findingID is the stable id of the finding of rule for group at eval.
func findingID(rule, groupKey string, eval time.Time) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s|%s|%d", rule, groupKey, eval.Unix()))
	return hex.EncodeToString(sum[:8])
}

// groupKey renders group as "a=1,b=2" in order (sorted keys when order is
// empty).
func groupKey(group map[string]string, order []string) string {
	if len(order) == 0 {
		for k := range group {
			order = append(order, k)
		}
		sort.Strings(order)
	}
	parts := make([]string, 0, len(order))
	for _, k := range order {
		parts = append(parts, k+"="+group[k])
	}
	return strings.Join(parts, ",")
}

// escalate applies the rule's escalation to f.
func escalate(r *rules.Rule, f *Finding) {
	if r.EscalateAt != nil && f.Value >= *r.EscalateAt {
		f.Severity = r.EscalateTo
	}
}

// Window is the time span one evaluation reads.
type Window struct {
	Eval     time.Time // the evaluation time
	From, To time.Time // [From, To): To = Eval − query delay
}

// WindowFor returns the window of r evaluated at t.
func WindowFor(r *rules.Rule, t time.Time) Window {
	t = t.UTC().Truncate(time.Second)
	to := t.Add(-r.Delay().D())
	return Window{Eval: t, From: to.Add(-r.Window.D()), To: to}
}
