package alerts

import (
	"fmt"
	"strings"
	"time"
)

// Wording shared by the notifiers, so the console, Slack's blocks and its
// notification text say the same thing.

// LateDataNote is the line of a finding found in late data
// (detect.TriggerLate).
const LateDataNote = "Found in late data: events arrived after this window was first evaluated"

// EscalationText is "escalated from high to critical" for an escalation
// (plain text, lower case severities).
func EscalationText(m *Message) string {
	from := m.EscalatedFrom
	if from == "" {
		from = "a lower severity"
	}
	return "escalated from " + from + " to " + m.Severity
}

// CatchupHeadline is the first line of a catch-up message: "While detect was
// down or catching up: 30 findings of <rule> between <first> and <last>"
// (or "Found in late data: …" when every finding listed came from late
// data). Plain text: escape it for rich notifiers.
func CatchupHeadline(m *Message) string {
	n := max(m.TotalFindings, len(m.Findings))
	lead := "While detect was down or catching up"
	if allLate(m) {
		lead = "Found in late data"
	}
	what := fmt.Sprintf("%d %s of %s", n, pluralWord(n, "finding", "findings"), messageRule(m))
	first, last := m.FirstEval, m.EvalTime
	switch {
	case first.IsZero() || first.Equal(last):
		return fmt.Sprintf("%s: %s at %s", lead, what, TimeText(last))
	default:
		return fmt.Sprintf("%s: %s between %s and %s", lead, what, TimeText(first), TimeText(last))
	}
}

// FoldedResolvedHeadline is the first line of a folded resolution note:
// "25 incidents of <rule> no longer match".
func FoldedResolvedHeadline(m *Message) string {
	n := max(m.TotalGroups, len(m.Findings))
	verb := "no longer match"
	if n == 1 {
		verb = "no longer matches"
	}
	return fmt.Sprintf("%d %s of %s %s", n, pluralWord(n, "incident", "incidents"), messageRule(m), verb)
}

// TimeText formats t for messages: "2026-11-27 12:06 UTC".
func TimeText(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// allLate reports whether m lists findings and all came from late data.
func allLate(m *Message) bool {
	for i := range m.Findings {
		if !m.Findings[i].Late() {
			return false
		}
	}
	return len(m.Findings) > 0
}

func messageRule(m *Message) string {
	switch {
	case strings.TrimSpace(m.RuleName) != "":
		return m.RuleName
	case m.RuleID != "":
		return m.RuleID
	case len(m.Findings) > 0 && m.Findings[0].RuleName != "":
		return m.Findings[0].RuleName
	}
	return "a rule"
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
