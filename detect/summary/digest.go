package summary

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/auditwatch/auditwatch/ingest/secret"
)

// Digest is a short text version of a report for chat: totals, the flagged
// keys, the busiest keys, the biggest changes and the signals (findings of
// info or low severity, never alerted on their own) by rule with the keys
// that have the most. Slack mrkdwn renders it; it reads fine as plain text.
func Digest(r *Report, limit int) string {
	if limit <= 0 {
		limit = 5
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*API key usage review — last %s* (%s → %s UTC)\n", r.Period, r.From.Format("2006-01-02 15:04"), r.To.Format("2006-01-02 15:04"))
	fmt.Fprintf(&b, "%d keys, %d active, *%d flagged*; %s requests (%s vs the previous %s)\n",
		r.Totals.Keys, r.Totals.ActiveKeys, r.Totals.FlaggedKeys, thousands(r.Totals.Requests), pct(r.Totals.Requests, r.Totals.PrevRequests), r.Period)
	name := func(k KeySummary) string {
		n := k.Hint
		if n == "" {
			n = k.KeyID
		}
		if k.Owner != "" {
			n += " (" + k.Owner + ")"
		}
		return secret.Redact(n)
	}
	var flagged []KeySummary
	for _, k := range r.Keys {
		// A key whose only flag is its signals is listed under Signals.
		if len(k.Flags) > 0 && !(len(k.Flags) == 1 && k.Flags[0] == FlagSignals) {
			flagged = append(flagged, k)
		}
	}
	if len(flagged) > 0 {
		b.WriteString("\n*Needs attention*\n")
		for i, k := range flagged {
			if i == limit {
				fmt.Fprintf(&b, "• … and %d more in the attached report\n", len(flagged)-limit)
				break
			}
			fmt.Fprintf(&b, "• %s — %s\n", name(k), strings.ReplaceAll(strings.Join(k.Flags, ", "), "_", " "))
		}
	}
	busy := append([]KeySummary(nil), r.Keys...)
	sort.SliceStable(busy, func(i, j int) bool { return busy[i].Requests > busy[j].Requests })
	b.WriteString("\n*Busiest keys*\n")
	for i, k := range busy {
		if i == limit || k.Requests == 0 {
			break
		}
		fmt.Fprintf(&b, "• %s — %s requests, %.1f%% ok\n", name(k), thousands(k.Requests), 100*k.SuccessRate)
	}
	changed := append([]KeySummary(nil), r.Keys...)
	sort.SliceStable(changed, func(i, j int) bool { return absChange(changed[i]) > absChange(changed[j]) })
	var lines []string
	for _, k := range changed {
		if len(lines) == limit || absChange(k) < 0.5 || max(k.Requests, k.PrevRequests) < 100 {
			break
		}
		lines = append(lines, fmt.Sprintf("• %s — %s → %s (%s)", name(k), thousands(k.PrevRequests), thousands(k.Requests), pct(k.Requests, k.PrevRequests)))
	}
	if len(lines) > 0 {
		b.WriteString("\n*Biggest changes*\n" + strings.Join(lines, "\n") + "\n")
	}
	digestSignals(&b, r, limit, name)
	return b.String()
}

// digestSignals writes the "Signals (not alerted)" section: the report's
// signals counted by rule, then the keys with the most. Nothing without
// signals.
func digestSignals(b *strings.Builder, r *Report, limit int, name func(KeySummary) string) {
	var total uint64
	for _, n := range r.Totals.Signals {
		total += n
	}
	if total == 0 {
		return
	}
	fmt.Fprintf(b, "\n*Signals (not alerted)* — %s in the period, on %d listed keys\n", thousands(total), r.Totals.SignalKeys)
	for i, c := range sortedCounts(r.Totals.Signals) {
		if i == limit {
			fmt.Fprintf(b, "• … and %d more rules in the attached report\n", len(r.Totals.Signals)-limit)
			break
		}
		fmt.Fprintf(b, "• %s — %s\n", secret.Redact(c.Value), thousands(c.N))
	}
	var keys []KeySummary
	for _, k := range r.Keys {
		if len(k.Signals) > 0 {
			keys = append(keys, k)
		}
	}
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].SignalCount() > keys[j].SignalCount() })
	if len(keys) == 0 {
		return
	}
	b.WriteString("Top keys:\n")
	for i, k := range keys {
		if i == limit {
			fmt.Fprintf(b, "• … and %d more keys\n", len(keys)-limit)
			break
		}
		rules := make([]string, 0, len(k.Signals))
		for j, s := range k.Signals {
			if j == 3 {
				rules = append(rules, fmt.Sprintf("+%d more", len(k.Signals)-3))
				break
			}
			rules = append(rules, fmt.Sprintf("%s %d", secret.Redact(s.RuleID), s.Count))
		}
		n := k.SignalCount()
		noun := "signals"
		if n == 1 {
			noun = "signal"
		}
		fmt.Fprintf(b, "• %s — %d %s (%s)\n", name(k), n, noun, strings.Join(rules, ", "))
	}
}

func absChange(k KeySummary) float64 {
	if math.IsInf(k.Change, 0) {
		return 1e9
	}
	return math.Abs(k.Change)
}

func pct(cur, prev uint64) string {
	switch {
	case prev == 0 && cur == 0:
		return "no change"
	case prev == 0:
		return "new"
	}
	c := (float64(cur)/float64(prev) - 1) * 100
	return fmt.Sprintf("%+.0f%%", c)
}

func thousands(n uint64) string {
	s := fmt.Sprint(n)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
