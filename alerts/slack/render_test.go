package slack

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/detect"
)

func TestRenderAlert(t *testing.T) {
	blocks, fallback := Render(alertMessage())

	wantFallback := "<!subteam^S0123ABC> [CRITICAL] Invalid signature burst on one key: " +
		"184 invalid_signature in 5m (threshold 20) for key_id key_01HXYZ (+4 more)"
	if fallback != wantFallback {
		t.Errorf("fallback =\n%q\nwant\n%q", fallback, wantFallback)
	}

	h, ok := blocks[0].(*slack.HeaderBlock)
	if !ok {
		t.Fatalf("first block is %T, want a header", blocks[0])
	}
	if want := ":red_circle: CRITICAL — Invalid signature burst on one key"; h.Text.Text != want {
		t.Errorf("header = %q, want %q", h.Text.Text, want)
	}
	text := blocksText(t, blocks)
	mustContain(t, "blocks", text,
		"<!subteam^S0123ABC> *5 groups matched*", // mention in the text, total groups
		"rule `invalid-signature-burst`", "env *live*", "evaluated 2026-11-27 12:06:00 UTC",
		"*Key* `"+keyHint+"` (`key_01HXYZ`)",              // group: hint and key id
		"*Account* `acc_42`", "*Owner* Market Makers Ltd", // owner / account
		"*Value* 184 vs threshold 20",                         // value vs threshold
		"*Window* 2026-11-27 12:00:00–12:05:00 UTC",           // the window
		"*Top client IPs* `203.0.113.7`, `198.51.100.2`",      // top IPs
		"*Top error codes* `invalid_signature`",               // top error codes
		"*Sample request ids* `req_7f3a9c01`, `req_8b1d2e02`", // samples
		"*First seen* 2026-11-27 12:00:10 UTC · *Last seen* 2026-11-27 12:04:50 UTC",
		"> 184 invalid_signature in 5m (threshold 20) for key_id key_01HXYZ", // summary without the rule name
		"`key_01HABC`", "`192.0.2.55`", "*Value* 40 vs threshold 20", // the second finding
		"+3 more groups not listed",
		"*What it means*\nMany requests with a bad HMAC signature",
		"*What to do*\n:blue_book: <https://runbooks.example/invalid-signature?team=sec&amp;v=2|Open the runbook>",
		":mag: *Investigate in ClickHouse*",
		"```\nSELECT ts, request_id, client_ip, error_code FROM access_log WHERE key_id = 'key_01HXYZ' AND ts &gt;= '2026-11-27 12:00:00'",
	)
	// Block order: header, intro, divider, findings, more, divider, meaning, runbook, query.
	var types []string
	for _, b := range blocks {
		types = append(types, string(b.BlockType()))
	}
	want := "header section divider section section context divider section section context section"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("block types = %s\nwant %s", got, want)
	}
}

func TestRenderSeverity(t *testing.T) {
	tests := []struct {
		name, severity, header, fallback string
	}{
		{"critical", "critical", ":red_circle: CRITICAL — ", "[CRITICAL] "},
		{"high", "high", ":large_orange_circle: HIGH — ", "[HIGH] "},
		{"medium", "medium", ":large_yellow_circle: MEDIUM — ", "[MEDIUM] "},
		{"low", "low", ":large_blue_circle: LOW — ", "[LOW] "},
		{"info", "info", ":white_circle: INFO — ", "[INFO] "},
		{"upper case", "HIGH", ":large_orange_circle: HIGH — ", "[HIGH] "},
		{"unknown", "urgent", ":white_circle: URGENT — ", "[URGENT] "},
		{"from the finding", "", ":red_circle: CRITICAL — ", "[CRITICAL] "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := alertMessage()
			m.Severity, m.Mention = tt.severity, ""
			blocks, fallback := Render(m)
			h := blocks[0].(*slack.HeaderBlock).Text.Text
			if !strings.HasPrefix(h, tt.header) {
				t.Errorf("header = %q, want prefix %q", h, tt.header)
			}
			if !strings.HasPrefix(fallback, tt.fallback) {
				t.Errorf("fallback = %q, want prefix %q", fallback, tt.fallback)
			}
		})
	}
}

func TestRenderEscaping(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(m *alerts.Message)
		want    []string // in the blocks
		notWant []string
	}{
		{
			name: "summary markup is escaped",
			edit: func(m *alerts.Message) {
				m.Findings[0].Summary = "ua <script>alert(1)</script> & <!channel> <https://evil.example|click>"
			},
			want:    []string{"ua &lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;!channel&gt; &lt;https://evil.example|click&gt;"},
			notWant: []string{"<!channel>", "<https://evil"},
		},
		{
			name:    "group values are escaped",
			edit:    func(m *alerts.Message) { m.Findings[0].Group["path"] = "/a?<b>&c" },
			want:    []string{"path `/a?&lt;b&gt;&amp;c`"},
			notWant: []string{"<b>"},
		},
		{
			name:    "a backtick cannot close the code span",
			edit:    func(m *alerts.Message) { m.Findings[0].Evidence.SampleRequestIDs = []string{"req`*bold*`"} },
			want:    []string{"`req'*bold*'`"},
			notWant: []string{"req`"},
		},
		{
			name:    "a bad mention is escaped, a good one kept",
			edit:    func(m *alerts.Message) { m.Mention = "<@U024BE7LH> <https://evil.example|x>" },
			want:    []string{"<@U024BE7LH> &lt;https://evil.example|x&gt; *5 groups"},
			notWant: []string{"<https://evil"},
		},
		{
			name:    "a runbook that is not a URL is text",
			edit:    func(m *alerts.Message) { m.Runbook = "javascript:alert(1)<x>" },
			want:    []string{"Runbook: javascript:alert(1)&lt;x&gt;"},
			notWant: []string{"<javascript"},
		},
		{
			name:    "query fences cannot be closed early",
			edit:    func(m *alerts.Message) { m.Query = "SELECT 1 ``` <!here>" },
			want:    []string{"```\nSELECT 1 ` ` ` &lt;!here&gt;\n```"},
			notWant: []string{"<!here>"},
		},
		{
			name:    "rule name in the header is plain text",
			edit:    func(m *alerts.Message) { m.RuleName = "A & B <x>" },
			want:    []string{":red_circle: CRITICAL — A & B <x>"},
			notWant: []string{"A &amp; B"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := alertMessage()
			tt.edit(m)
			blocks, _ := Render(m)
			text := blocksText(t, blocks)
			mustContain(t, "blocks", text, tt.want...)
			// The header is plain text: check the escape rules on mrkdwn only.
			text = strings.Join(strings.Split(text, "\n")[1:], "\n")
			mustNotContain(t, "mrkdwn blocks", text, tt.notWant...)
		})
	}
}

func TestRenderLimits(t *testing.T) {
	long := strings.Repeat("&<>", 2000) // 6000 characters, 24000 escaped
	tests := []struct {
		name      string
		edit      func(m *alerts.Message)
		wantMore  string
		wantBlock int // exact count, or 0 for "≤ 50"
	}{
		{
			name: "200 findings",
			edit: func(m *alerts.Message) {
				m.Findings = nil
				for i := range 200 {
					m.Findings = append(m.Findings, finding(fmt.Sprintf("key_%03d", i), "203.0.113.7", 100))
				}
				m.TotalGroups = 250
			},
			wantMore:  "+209 more groups not listed", // 41 fit
			wantBlock: 50,
		},
		{
			name: "huge values",
			edit: func(m *alerts.Message) {
				m.RuleName = strings.Repeat("Very long rule name ", 20)
				m.Description = long
				m.Query = "SELECT '" + long + "'"
				f := &m.Findings[0]
				f.Summary = long
				f.KeyHint, f.KeyID, f.ClientIP, f.AccountID = long, long, long, long
				f.Group["user_agent"] = long
				for range 30 {
					f.Evidence.TopClientIPs = append(f.Evidence.TopClientIPs, long)
					f.Evidence.SampleRequestIDs = append(f.Evidence.SampleRequestIDs, long)
					f.Evidence.TopErrorCodes = append(f.Evidence.TopErrorCodes, long)
				}
				for i := range 30 {
					f.Evidence.Details[fmt.Sprint("d", i)] = long
				}
			},
			wantMore: "+3 more groups not listed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := alertMessage()
			tt.edit(m)
			blocks, fallback := Render(m)
			checkLimits(t, blocks)
			if tt.wantBlock != 0 && len(blocks) != tt.wantBlock {
				t.Errorf("%d blocks, want %d", len(blocks), tt.wantBlock)
			}
			mustContain(t, "blocks", blocksText(t, blocks), tt.wantMore)
			if n := utf8.RuneCountInString(fallback); n > maxFallback+len(m.Mention)+1 {
				t.Errorf("fallback has %d characters", n)
			}
			if strings.Contains(fallback, "\n") {
				t.Errorf("fallback has a line break: %q", fallback)
			}
		})
	}
}

// checkLimits fails when blocks break one of Slack's limits or leave half
// an entity behind.
func checkLimits(t *testing.T, blocks []slack.Block) {
	t.Helper()
	if len(blocks) > maxBlocks {
		t.Errorf("%d blocks, Slack takes %d", len(blocks), maxBlocks)
	}
	check := func(kind, s string, limit int) {
		if n := utf8.RuneCountInString(s); n > limit || n == 0 {
			t.Errorf("%s text has %d characters (max %d)", kind, n, limit)
		}
		if kind != "header" {
			for i := 0; i < len(s); i++ {
				if s[i] == '&' && !(strings.HasPrefix(s[i:], "&amp;") || strings.HasPrefix(s[i:], "&lt;") || strings.HasPrefix(s[i:], "&gt;")) {
					t.Errorf("%s text has a broken entity at %d: %q", kind, i, s[max(0, i-10):min(len(s), i+10)])
					return
				}
			}
		}
	}
	for _, b := range blocks {
		switch b := b.(type) {
		case *slack.HeaderBlock:
			check("header", b.Text.Text, maxHeaderText)
		case *slack.SectionBlock:
			check("section", b.Text.Text, maxSectionText)
		case *slack.ContextBlock:
			for _, e := range b.ContextElements.Elements {
				check("context", e.(*slack.TextBlockObject).Text, maxSectionText)
			}
		}
	}
}

func TestRenderThreadReplies(t *testing.T) {
	tests := []struct {
		name         string
		edit         func(m *alerts.Message)
		wantBlocks   int
		wantText     []string
		notText      []string
		wantFallback string
	}{
		{
			name: "repeat",
			edit: func(m *alerts.Message) {
				m.Kind, m.ThreadTS, m.Repeats, m.Mention = alerts.KindRepeat, "1700000001.000001", 3, ""
				m.Findings[0].Value = 950
			},
			wantBlocks: 1,
			wantText: []string{
				":repeat: *Still happening* — alerted 3 times so far · 5 groups now · evaluated 2026-11-27 12:06:00 UTC",
				"• `" + keyHint + "` (`key_01HXYZ`): *950* (threshold 20) · 2026-11-27 12:00:00–12:05:00 UTC · top IP `203.0.113.7` · sample `req_7f3a9c01`",
				"• `" + keyHint + "` (`key_01HABC`): *40* (threshold 20)",
				"+3 more groups",
			},
			notText:      []string{"What it means", "CRITICAL"},
			wantFallback: "[CRITICAL] Invalid signature burst on one key: still happening: 184 invalid_signature in 5m (threshold 20) for key_id key_01HXYZ (+4 more)",
		},
		{
			name: "resolved",
			edit: func(m *alerts.Message) {
				m.Kind, m.ThreadTS, m.Mention = alerts.KindResolved, "1700000001.000001", ""
				m.EvalTime = evalTime.Add(30 * time.Minute)
			},
			wantBlocks:   2,
			wantText:     []string{":white_check_mark: *Resolved* — no match since 2026-11-27 12:04:50 UTC.", "rule `invalid-signature-burst` · checked 2026-11-27 12:36:00 UTC"},
			wantFallback: "[CRITICAL] Invalid signature burst on one key: resolved, no match since 2026-11-27 12:04:50 UTC",
		},
		{
			name: "resolved pages nobody",
			edit: func(m *alerts.Message) {
				m.Kind, m.ThreadTS = alerts.KindResolved, "1700000001.000001"
			},
			wantText: []string{":white_check_mark: *Resolved*",
				"• `" + keyHint + "` (`key_01HXYZ`): 184 invalid_signature in 5m (threshold 20) for key_id key_01HXYZ"},
			notText:      []string{"<!subteam"},
			wantFallback: "[CRITICAL] Invalid signature burst on one key: resolved, no match since 2026-11-27 12:04:50 UTC",
		},
		{
			name: "resolved as the dispatcher builds it",
			edit: func(m *alerts.Message) {
				lastRun := evalTime.Add(30 * time.Minute)
				m.Kind, m.ThreadTS, m.UpdateTS, m.EvalTime = alerts.KindResolved, "1700000001.000001", "1700000001.000001", lastRun
				m.Findings = []detect.Finding{{RuleID: m.RuleID, GroupKey: "key_id=key_01HXYZ", Group: map[string]string{"key_id": "key_01HXYZ"},
					KeyID: "key_01HXYZ", EvalTime: lastRun, WindowEnd: lastRun, RuleName: m.RuleName,
					Summary: "no match for key_id=key_01HXYZ since 2026-11-27 12:04 UTC"}}
				m.TotalGroups = 1
			},
			wantBlocks: 2,
			wantText: []string{":white_check_mark: *Resolved* — no match as of 2026-11-27 12:36:00 UTC.",
				"• `key_01HXYZ`: no match for key_id=key_01HXYZ since 2026-11-27 12:04 UTC"},
			notText:      []string{"<!subteam"},
			wantFallback: "[CRITICAL] Invalid signature burst on one key: resolved, no match as of 2026-11-27 12:36:00 UTC",
		},
		{
			name: "repeat keeps the mention",
			edit: func(m *alerts.Message) {
				m.Kind, m.ThreadTS = alerts.KindRepeat, "1700000001.000001"
			},
			wantText:     []string{"<!subteam^S0123ABC> :repeat: *Still happening*"},
			wantFallback: "<!subteam^S0123ABC> [CRITICAL] Invalid signature burst on one key: still happening: 184 invalid_signature in 5m (threshold 20) for key_id key_01HXYZ (+4 more)",
		},
		{
			name: "resolved without findings",
			edit: func(m *alerts.Message) {
				m.Kind, m.ThreadTS, m.Mention, m.Findings, m.TotalGroups = alerts.KindResolved, "1700000001.000001", "", nil, 0
			},
			wantBlocks:   2,
			wantText:     []string{":white_check_mark: *Resolved* — no match as of 2026-11-27 12:06:00 UTC."},
			wantFallback: "[CRITICAL] Invalid signature burst on one key: resolved, no match as of 2026-11-27 12:06:00 UTC",
		},
		{
			name: "repeat without a thread stands alone",
			edit: func(m *alerts.Message) {
				m.Kind, m.Repeats, m.Mention = alerts.KindRepeat, 2, ""
			},
			wantText: []string{
				":red_circle: CRITICAL — Invalid signature burst on one key",
				":repeat: *Still happening* — alerted 2 times so far, latest at 2026-11-27 12:06:00 UTC. This repeats an earlier alert.",
				"*Sample request ids* `req_7f3a9c01`", "*What it means*", "Investigate in ClickHouse",
			},
			wantFallback: "[CRITICAL] Invalid signature burst on one key: still happening: 184 invalid_signature in 5m (threshold 20) for key_id key_01HXYZ (+4 more)",
		},
		{
			name: "resolved without a thread stands alone",
			edit: func(m *alerts.Message) { m.Kind, m.Mention = alerts.KindResolved, "" },
			wantText: []string{
				":white_check_mark: RESOLVED — Invalid signature burst on one key",
				":white_check_mark: *Resolved* — no match since 2026-11-27 12:04:50 UTC.",
				"rule `invalid-signature-burst`",
			},
			notText:      []string{"groups matched"},
			wantFallback: "[CRITICAL] Invalid signature burst on one key: resolved, no match since 2026-11-27 12:04:50 UTC",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := alertMessage()
			tt.edit(m)
			blocks, fallback := Render(m)
			checkLimits(t, blocks)
			if tt.wantBlocks != 0 && len(blocks) != tt.wantBlocks {
				t.Errorf("%d blocks, want %d", len(blocks), tt.wantBlocks)
			}
			text := blocksText(t, blocks)
			mustContain(t, "blocks", text, tt.wantText...)
			mustNotContain(t, "blocks", text, tt.notText...)
			if fallback != tt.wantFallback {
				t.Errorf("fallback =\n%q\nwant\n%q", fallback, tt.wantFallback)
			}
		})
	}
}

func TestRenderParent(t *testing.T) {
	tests := []struct {
		name string
		kind string
		want []string
	}{
		{"repeat", alerts.KindRepeat, []string{
			":red_circle: CRITICAL — Invalid signature burst on one key",
			":repeat: *Still happening* — alerted 4 times so far, latest at 2026-11-27 12:06:00 UTC. Updates are in the thread.",
			"*Value* 184 vs threshold 20",
		}},
		{"resolved", alerts.KindResolved, []string{
			":white_check_mark: RESOLVED — Invalid signature burst on one key",
			":white_check_mark: *Resolved* — no match since 2026-11-27 12:04:50 UTC (was CRITICAL).",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := alertMessage()
			m.Kind, m.Repeats, m.ThreadTS, m.UpdateTS = tt.kind, 4, "1.1", "1.1"
			blocks, fallback := renderParent(m, false)
			checkLimits(t, blocks)
			mustContain(t, "blocks", blocksText(t, blocks), tt.want...)
			if strings.Contains(fallback, m.Mention) {
				t.Errorf("the parent's text mentions again: %q", fallback)
			}
		})
	}
}

func TestRenderFindingShapes(t *testing.T) {
	tests := []struct {
		name string
		f    detect.Finding
		want []string
	}{
		{
			name: "per-IP rule",
			f: detect.Finding{RuleName: "Auth failures from one IP", Severity: "high", Group: map[string]string{"client_ip": "198.51.100.9"},
				GroupKey: "client_ip=198.51.100.9", ClientIP: "198.51.100.9", Value: 35, Threshold: 20},
			want: []string{"*Client IP* `198.51.100.9`", "*Value* 35 vs threshold 20"},
		},
		{
			name: "registry rule without value",
			f: detect.Finding{RuleName: "Stale key", Severity: "low", KeyID: "key_1", KeyHint: "bk_test_…9z",
				Summary:  "Stale key: key bk_test_…9z (test, Ops) unused for 45d or more: never used",
				Evidence: detect.Evidence{Details: map[string]any{"never_used": true, "idle_days": 61.5, "owner": "Ops"}}},
			want: []string{"*Key* `bk_test_…9z` (`key_1`) · *Owner* Ops", "*Details* idle_days: 61.5 · never_used: true",
				"> key bk_test_…9z (test, Ops) unused for 45d or more: never used"},
		},
		{
			name: "sql rule with an arbitrary group",
			f:    detect.Finding{RuleName: "Custom", Severity: "medium", Group: map[string]string{"path": "/v1/orders", "method": "DELETE"}, GroupKey: "method=DELETE,path=/v1/orders", Value: 3},
			want: []string{"method `DELETE` · path `/v1/orders`", "*Value* 3"},
		},
		{
			name: "no group",
			f:    detect.Finding{RuleName: "Global", Severity: "info", Value: 1.25, Threshold: 0.5},
			want: []string{"*Group* (the whole rule)", "*Value* 1.25 vs threshold 0.5"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &alerts.Message{Kind: alerts.KindAlert, RuleName: tt.f.RuleName, Severity: tt.f.Severity, Findings: []detect.Finding{tt.f}, TotalGroups: 1}
			blocks, _ := Render(m)
			checkLimits(t, blocks)
			mustContain(t, "blocks", blocksText(t, blocks), tt.want...)
		})
	}
}

func TestRenderBlocksAreValidJSON(t *testing.T) {
	// What goes over the wire must decode back into Block Kit blocks.
	blocks, _ := Render(alertMessage())
	var back slack.Blocks
	if err := json.Unmarshal(blocksJSON(t, blocks), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.BlockSet) != len(blocks) {
		t.Errorf("decoded %d blocks of %d", len(back.BlockSet), len(blocks))
	}
}
