// Package alerts turns findings into notifications: it routes them to
// channels, groups the findings of one rule run into one message, threads
// repeats and resolutions under the first message of an incident, honours
// silences, retries failed deliveries and records every attempt in
// ClickHouse. Integrations live in subpackages (alerts/slack); the console
// notifier is here.
package alerts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/auditwatch/auditwatch/detect"
)

// Message kinds.
const (
	KindAlert      = "alert"      // first notification of an incident
	KindRepeat     = "repeat"     // the incident is still going, after the rule's cooldown
	KindEscalation = "escalation" // the incident is still going at a higher severity: a thread reply broadcast to the channel
	KindCatchup    = "catchup"    // findings older than CatchupAfter (an outage, a catch-up), folded into one message per rule and channel
	KindResolved   = "resolved"   // the condition cleared
)

// Message is one notification: the findings of one rule at one evaluation
// that go to one channel (grouped), or a repeat or resolution of an incident.
type Message struct {
	Kind        string
	Channel     string // channel name or id ("#sec-alerts", "C0123"); webhooks ignore it
	ThreadTS    string // post as a reply in this thread, when set
	UpdateTS    string // also edit this (parent) message, when set and the notifier can
	RuleID      string
	RuleName    string
	Severity    string
	Description string // what the rule means
	Runbook     string // what to do (URL)
	Mention     string // e.g. "<!subteam^S0123>" for critical alerts; empty for none
	Env         string // live or test, when all findings share one
	Findings    []detect.Finding
	TotalGroups int    // groups matched; may exceed len(Findings) (top N listed)
	Query       string // a ready-to-run ClickHouse query to investigate
	EvalTime    time.Time
	Repeats     int // for KindRepeat: how many times the incident alerted so far

	// Broadcast also shows a thread reply in the channel (Slack
	// reply_broadcast); set for escalations.
	Broadcast bool
	// EscalatedFrom is, for KindEscalation, the severity the incident had
	// before ("high" when m.Severity is "critical").
	EscalatedFrom string
	// Folded marks a catch-up summary: for KindCatchup the findings of many
	// evaluations (Findings holds one per group, the top ones), for
	// KindResolved the resolutions of many incidents (one finding each),
	// posted as one channel message rather than one per thread.
	Folded bool
	// FirstEval is, for KindCatchup, the evaluation time of the oldest
	// finding folded (EvalTime is that of the newest).
	FirstEval time.Time
	// TotalFindings is, for KindCatchup, how many findings were folded
	// (TotalGroups counts their distinct groups).
	TotalFindings int
	// GroupCounts is, for KindCatchup, how many findings each listed group
	// (by GroupKey) had.
	GroupCounts map[string]int
	// FallbackReason, when set, marks a message sent to a fallback route and
	// says why ("Delivery to #sec-alerts failed for good (channel_not_found);
	// this is the fallback route."). Notifiers show it first.
	FallbackReason string
}

// Receipt identifies a delivered message.
type Receipt struct {
	Channel string // channel id Slack answered with (empty for webhooks)
	TS      string // message timestamp (empty for webhooks)
}

// Notifier delivers one message.
//
// Notify returns a *DeliveryError when delivery failed; its Retry field says
// whether trying again may help (rate limits, 5xx, timeouts) and RetryAfter
// how long to wait, if the service said. Errors never contain credentials.
// Notify honours ctx's deadline and cancellation.
type Notifier interface {
	Notify(ctx context.Context, m *Message) (Receipt, error)
	// Name identifies the notifier in records and logs ("slack", "console").
	Name() string
}

// DeliveryError is a failed delivery, classified.
type DeliveryError struct {
	Err        error
	Retry      bool          // a later attempt may succeed
	RetryAfter time.Duration // the service asked to wait this long (429 Retry-After)
	Code       string        // short class for records: rate_limited, http_5xx, timeout, channel_not_found, invalid_auth, …
}

func (e *DeliveryError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s: %v", e.Code, e.Err)
	}
	return e.Err.Error()
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Retryable reports whether err is worth retrying and after how long at
// least. Errors that are not *DeliveryError are retried.
func Retryable(err error) (bool, time.Duration) {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.Retry, de.RetryAfter
	}
	return true, 0
}
