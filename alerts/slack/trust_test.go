package slack

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/alerts/slack/slacktest"
	"github.com/auditwatch/auditwatch/detect"
)

// TestNotifyEscalation: an escalation is a reply in the thread, broadcast
// to the channel with the mention, and the parent takes the new severity.
func TestNotifyEscalation(t *testing.T) {
	srv := slacktest.NewServer(t)
	n := newBot(t, srv)
	ctx := context.Background()
	first := alertMessage()
	first.Severity, first.Mention = "high", ""
	parent, err := n.Notify(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	srv.Reset()
	m := alertMessage()
	m.Kind, m.EscalatedFrom, m.Broadcast, m.Repeats = alerts.KindEscalation, "high", true, 1
	m.ThreadTS, m.UpdateTS = parent.TS, parent.TS
	m.TotalGroups, m.Findings = 1, m.Findings[:1]
	if _, err := n.Notify(ctx, m); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || reqs[0].API != "chat.postMessage" || reqs[1].API != "chat.update" {
		t.Fatalf("requests: %+v", reqs)
	}
	post := reqs[0]
	if post.ThreadTS != parent.TS || !post.ReplyBroadcast {
		t.Errorf("escalation not a broadcast reply: thread_ts %q broadcast %v", post.ThreadTS, post.ReplyBroadcast)
	}
	mustContain(t, "reply", post.BlocksText(), "<!subteam^S0123ABC>", "*Escalated from HIGH to CRITICAL*")
	mustContain(t, "notification text", post.Text, "<!subteam^S0123ABC>", "escalated from high to critical")
	p, _ := srv.Message(parent.Channel, parent.TS)
	mustContain(t, "parent", (slacktest.Request{Blocks: p.Blocks}).BlocksText(), ":red_circle: CRITICAL", "Escalated from HIGH to CRITICAL", "Updates are in the thread.")
	if rs := srv.Replies(parent.Channel, parent.TS); len(rs) != 1 || !rs[0].Broadcast {
		t.Errorf("replies: %+v", rs)
	}
}

func TestRenderLateData(t *testing.T) {
	m := alertMessage()
	for i := range m.Findings {
		m.Findings[i].Trigger = detect.TriggerLate
	}
	blocks, text := Render(m)
	mustContain(t, "blocks", blocksText(t, blocks), alerts.LateDataNote)
	mustContain(t, "text", text, "found in late data")

	// Only some late: the late ones say so.
	m = alertMessage()
	m.Findings[1].Trigger = detect.TriggerLate
	blocks, text = Render(m)
	mustContain(t, "blocks", blocksText(t, blocks), "1 of these 2 groups were found in late data", alerts.LateDataNote)
	mustNotContain(t, "text", text, "late data")

	// Replays render normally.
	m = alertMessage()
	m.Findings[0].Trigger = detect.TriggerReplay
	blocks, _ = Render(m)
	mustNotContain(t, "blocks", blocksText(t, blocks), "late data")
}

func TestRenderCatchup(t *testing.T) {
	m := alertMessage()
	m.Kind, m.Folded = alerts.KindCatchup, true
	m.FirstEval, m.EvalTime = evalTime.Add(-3*time.Hour), evalTime
	m.TotalGroups, m.TotalFindings = 5, 17
	m.GroupCounts = map[string]int{"key_id=key_01HXYZ": 9, "key_id=key_01HABC": 1}
	m.Findings[1].Severity = "high"
	blocks, text := Render(m)
	bt := blocksText(t, blocks)
	mustContain(t, "blocks", bt,
		"<!subteam^S0123ABC> :rewind: *While detect was down or catching up: 17 findings of Invalid signature burst on one key between 2026-11-27 09:06 UTC and 2026-11-27 12:06 UTC*",
		"9 findings of this group, the highest shown", "*Severity* HIGH", "+3 more groups not listed (17 findings in all)",
		keyHint, "203.0.113.7", "req_7f3a9c01", "Investigate in ClickHouse")
	mustContain(t, "text", text, "<!subteam^S0123ABC> [CRITICAL] While detect was down or catching up: 17 findings")
	if strings.Contains(bt+text, fullKey) {
		t.Fatal("catch-up leaks the key")
	}
}

func TestRenderFoldedResolved(t *testing.T) {
	m := &alerts.Message{Kind: alerts.KindResolved, Folded: true, Channel: "C1", RuleID: "invalid-signature-burst",
		RuleName: "Invalid signature burst on one key", Severity: "critical", EvalTime: evalTime, TotalGroups: 12, Mention: "<!here>"}
	for i := range 12 {
		f := finding("key_"+string(rune('A'+i)), "", 0)
		last := evalTime.Add(-time.Hour)
		f.Evidence.LastSeen = &last
		m.Findings = append(m.Findings, f)
	}
	blocks, text := Render(m)
	bt := blocksText(t, blocks)
	mustContain(t, "blocks", bt, ":white_check_mark: *12 incidents of Invalid signature burst on one key no longer match*",
		"no match since 2026-11-27 11:06:00 UTC", "+2 more")
	mustContain(t, "text", text, "[RESOLVED] 12 incidents")
	mustNotContain(t, "folded resolution", bt+text, "<!here>")
}
