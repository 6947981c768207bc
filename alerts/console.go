package alerts

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/auditwatch/auditwatch/ingest/secret"
)

// Console writes notifications as plain text, for running without Slack
// (the demo's default) and for logs. It never fails except on write errors.
type Console struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

var _ Notifier = (*Console)(nil)

// NewConsole returns a Console writing to w.
func NewConsole(w io.Writer) *Console { return &Console{w: w} }

// Name implements Notifier.
func (c *Console) Name() string { return "console" }

// Notify implements Notifier. The receipt's TS numbers the messages, so
// repeats and resolutions name the message they follow up.
func (c *Console) Notify(_ context.Context, m *Message) (Receipt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	ts := fmt.Sprintf("console-%d", c.n)
	if _, err := io.WriteString(c.w, RenderText(m, ts)); err != nil {
		return Receipt{}, &DeliveryError{Err: err, Retry: true, Code: "write"}
	}
	return Receipt{Channel: m.Channel, TS: ts}, nil
}

// RenderText renders m as plain text; it is also the fallback of richer
// notifiers. Free text is passed through secret.Redact.
func RenderText(m *Message, id string) string {
	var b strings.Builder
	sev := strings.ToUpper(m.Severity)
	switch {
	case m.Kind == KindRepeat:
		fmt.Fprintf(&b, "── [%s] %s — still happening (repeat %d, thread %s) → %s\n", sev, m.RuleName, m.Repeats, m.ThreadTS, m.Channel)
	case m.Kind == KindEscalation:
		fmt.Fprintf(&b, "── [%s] %s — %s (thread %s, also sent to the channel) → %s\n", sev, m.RuleName, EscalationText(m), m.ThreadTS, m.Channel)
	case m.Kind == KindCatchup:
		fmt.Fprintf(&b, "── [%s] %s → %s [%s]\n", sev, secret.Redact(CatchupHeadline(m)), m.Channel, id)
	case m.Kind == KindResolved && m.Folded:
		fmt.Fprintf(&b, "── [RESOLVED] %s → %s [%s]\n", FoldedResolvedHeadline(m), m.Channel, id)
	case m.Kind == KindResolved:
		fmt.Fprintf(&b, "── [RESOLVED] %s (thread %s) → %s\n", m.RuleName, m.ThreadTS, m.Channel)
	default:
		fmt.Fprintf(&b, "── [%s] %s — %d group(s) at %s → %s [%s]\n", sev, m.RuleName, m.TotalGroups, m.EvalTime.UTC().Format(time.RFC3339), m.Channel, id)
	}
	if m.FallbackReason != "" {
		fmt.Fprintf(&b, "   ⚠ %s\n", secret.Redact(m.FallbackReason))
	}
	if m.Mention != "" && (m.Kind == KindAlert || m.Kind == KindEscalation || m.Kind == KindCatchup) {
		fmt.Fprintf(&b, "   %s\n", m.Mention)
	}
	for _, f := range m.Findings {
		fmt.Fprintf(&b, "   • %s\n", secret.Redact(f.Summary))
		if m.Kind == KindResolved {
			continue
		}
		var parts []string
		if f.KeyHint != "" {
			parts = append(parts, "key "+f.KeyHint)
		}
		if f.AccountID != "" {
			parts = append(parts, "account "+f.AccountID)
		}
		if m.Kind == KindCatchup {
			parts = append(parts, "evaluated "+TimeText(f.EvalTime))
			if n := m.GroupCounts[f.GroupKey]; n > 1 {
				parts = append(parts, fmt.Sprintf("%d findings", n))
			}
		}
		if len(f.Evidence.TopClientIPs) > 0 {
			parts = append(parts, "top IPs "+strings.Join(f.Evidence.TopClientIPs, ", "))
		}
		if len(f.Evidence.SampleRequestIDs) > 0 {
			parts = append(parts, "requests "+strings.Join(f.Evidence.SampleRequestIDs, ", "))
		}
		if f.EscalatedFrom != "" && m.Kind != KindEscalation {
			parts = append(parts, "escalated from "+f.EscalatedFrom+" to "+f.Severity)
		}
		if len(parts) > 0 {
			fmt.Fprintf(&b, "     %s\n", secret.Redact(strings.Join(parts, " · ")))
		}
		if f.Late() {
			fmt.Fprintf(&b, "     %s\n", LateDataNote)
		}
	}
	if extra := m.TotalGroups - len(m.Findings); extra > 0 && m.Kind != KindResolved {
		if m.Kind == KindCatchup {
			fmt.Fprintf(&b, "   … and %d more groups (%d findings in all)\n", extra, m.TotalFindings)
		} else {
			fmt.Fprintf(&b, "   … and %d more\n", extra)
		}
	}
	if m.Kind == KindAlert || m.Kind == KindCatchup {
		if m.Description != "" {
			fmt.Fprintf(&b, "   What it means: %s\n", strings.TrimSpace(m.Description))
		}
		if m.Runbook != "" {
			fmt.Fprintf(&b, "   What to do: %s\n", m.Runbook)
		}
		if m.Query != "" {
			fmt.Fprintf(&b, "   Investigate:\n     %s\n", strings.ReplaceAll(m.Query, "\n", "\n     "))
		}
	}
	return b.String()
}
