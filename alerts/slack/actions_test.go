package slack

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/slack-go/slack"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/alerts/slack/slacktest"
	"github.com/auditwatch/auditwatch/detect"
)

// actionRows returns the block ids of the actions blocks and the action ids
// of their buttons.
func actionRows(blocks []slack.Block) map[string][]string {
	out := map[string][]string{}
	for _, b := range blocks {
		ab, ok := b.(*slack.ActionBlock)
		if !ok {
			continue
		}
		var ids []string
		for _, el := range ab.Elements.ElementSet {
			if btn, ok := el.(*slack.ButtonBlockElement); ok {
				ids = append(ids, btn.ActionID+"="+btn.Value)
			}
		}
		out[ab.BlockID] = ids
	}
	return out
}

func TestRenderInteractive(t *testing.T) {
	noKey := finding("x", "203.0.113.9", 30)
	noKey.ID, noKey.KeyID, noKey.Group, noKey.GroupKey, noKey.KeyHint = "f-ip", "", map[string]string{"client_ip": "203.0.113.9"}, "client_ip=203.0.113.9", ""
	many := alertMessage()
	many.Findings = nil
	for i := range 60 {
		many.Findings = append(many.Findings, finding(fmt.Sprintf("key_%02d", i), "203.0.113.7", float64(100-i)))
	}
	many.TotalGroups = 60
	tests := []struct {
		name string
		msg  func() *alerts.Message
		rows int      // actions blocks expected
		want []string // buttons of the first row
	}{
		{"alert: a row per finding", alertMessage, 2, []string{"aw_ack=f-key_01HXYZ", "aw_silence_key=f-key_01HXYZ", "aw_silence_rule=f-key_01HXYZ", "aw_expected=f-key_01HXYZ", "aw_resolve=f-key_01HXYZ"}},
		{"group without a key: no key silence", func() *alerts.Message {
			m := alertMessage()
			m.Findings = []detect.Finding{noKey}
			return m
		}, 1, []string{"aw_ack=f-ip", "aw_silence_rule=f-ip", "aw_expected=f-ip", "aw_resolve=f-ip"}},
		{"many findings stay within 50 blocks", func() *alerts.Message { return many }, -1, nil},
		{"resolution: no buttons", func() *alerts.Message {
			m := alertMessage()
			m.Kind = alerts.KindResolved
			return m
		}, 0, nil},
		{"thread reply: no buttons", func() *alerts.Message {
			m := alertMessage()
			m.Kind, m.ThreadTS, m.Repeats = alerts.KindRepeat, "1.1", 2
			return m
		}, 0, nil},
		{"fallback route: no buttons", func() *alerts.Message {
			m := alertMessage()
			m.FallbackReason = "Delivery to #sec-alerts failed for good (channel_not_found); this is the fallback route."
			return m
		}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.msg()
			blocks, _ := RenderInteractive(m)
			checkLimits(t, blocks)
			rows := actionRows(blocks)
			switch {
			case tt.rows >= 0 && len(rows) != tt.rows:
				t.Fatalf("%d actions blocks, want %d", len(rows), tt.rows)
			case tt.rows < 0 && (len(rows) < 10 || len(blocks) > maxBlocks):
				t.Fatalf("%d actions blocks in %d blocks", len(rows), len(blocks))
			}
			if tt.want != nil {
				got := rows[ActionBlockPrefix+m.Findings[0].ID]
				if strings.Join(got, ",") != strings.Join(tt.want, ",") {
					t.Errorf("buttons %v, want %v", got, tt.want)
				}
			}
			plain, _ := Render(m)
			if len(actionRows(plain)) != 0 {
				t.Errorf("Render (not interactive) added buttons")
			}
		})
	}
	// Listed findings each have their row when the message is cut.
	blocks, _ := RenderInteractive(many)
	sections := 0
	for _, b := range blocks {
		if s, ok := b.(*slack.SectionBlock); ok && s.Text != nil && strings.Contains(s.Text.Text, "`key_") {
			sections++
		}
	}
	if rows := len(actionRows(blocks)); rows != sections {
		t.Errorf("%d findings listed, %d button rows", sections, rows)
	}
}

// TestInteractiveNotifier: the notifier posts the buttons only when
// interactive, keeps them on parent updates of an open incident, and
// refuses interactive with a webhook.
func TestInteractiveNotifier(t *testing.T) {
	if _, err := New(Config{WebhookURL: "https://hooks.slack.com/services/T1/B1/x", Interactive: true}); err == nil || !strings.Contains(err.Error(), "bot token") {
		t.Fatalf("interactive webhook: %v", err)
	}
	srv := slacktest.NewServer(t)
	for _, interactive := range []bool{false, true} {
		n, err := New(Config{Token: botToken, APIURL: srv.APIURL(), HTTPClient: srv.Client(), Interactive: interactive})
		if err != nil {
			t.Fatal(err)
		}
		rec, err := n.Notify(context.Background(), alertMessage())
		if err != nil {
			t.Fatal(err)
		}
		reqs := srv.Requests()
		post := reqs[len(reqs)-1]
		if got := strings.Contains(string(post.Blocks), `"type":"actions"`); got != interactive {
			t.Errorf("interactive=%v: buttons posted = %v", interactive, got)
		}
		rep := alertMessage()
		rep.Kind, rep.ThreadTS, rep.UpdateTS, rep.Channel, rep.Repeats = alerts.KindRepeat, rec.TS, rec.TS, rec.Channel, 2
		if _, err := n.Notify(context.Background(), rep); err != nil {
			t.Fatal(err)
		}
		m, _ := srv.Message(rec.Channel, rec.TS)
		if m.Updates != 1 || strings.Contains(string(m.Blocks), `"type":"actions"`) != interactive {
			t.Errorf("interactive=%v: parent after a repeat (updates %d) keeps buttons = %v", interactive, m.Updates, !interactive)
		}
		res := alertMessage()
		res.Kind, res.ThreadTS, res.UpdateTS, res.Channel = alerts.KindResolved, rec.TS, rec.TS, rec.Channel
		if _, err := n.Notify(context.Background(), res); err != nil {
			t.Fatal(err)
		}
		if m, _ := srv.Message(rec.Channel, rec.TS); strings.Contains(string(m.Blocks), `"type":"actions"`) {
			t.Errorf("interactive=%v: a resolved parent still has buttons", interactive)
		}
	}
}
