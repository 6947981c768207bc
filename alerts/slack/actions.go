package slack

import (
	"github.com/slack-go/slack"

	"github.com/auditwatch/auditwatch/detect"
)

// Action ids of the triage buttons. Each button's value is the finding's
// id; its block's id is ActionBlockPrefix + the finding's id. alerts/triage
// answers them.
const (
	ActionAcknowledge = "aw_ack"          // anyone in the channel: records who is on it
	ActionSilenceKey  = "aw_silence_key"  // silence the finding's key for 24 h (every rule)
	ActionSilenceRule = "aw_silence_rule" // a modal: silence this rule for this key (or address), duration and reason
	ActionExpected    = "aw_expected"     // a modal: expected activity, reason and period; closes the finding
	ActionResolve     = "aw_resolve"      // closes the finding
	// ActionBlockPrefix starts the block_id of a finding's actions block.
	ActionBlockPrefix = "aw_triage:"
)

// ActionIDs lists the triage buttons' action ids in the order shown.
var ActionIDs = []string{ActionAcknowledge, ActionSilenceKey, ActionSilenceRule, ActionExpected, ActionResolve}

// GroupHasKey reports whether f's group names a key (registry id or
// fingerprint), which the key silences need.
func GroupHasKey(f *detect.Finding) bool {
	return f.KeyID != "" || f.Group["key_id"] != "" || f.KeyFingerprint != ""
}

// actionsBlock is the row of triage buttons of finding f. A group without a
// key gets "Silence rule for this group…" and no key silence.
func actionsBlock(f *detect.Finding) *slack.ActionBlock {
	btn := func(id, label, style string) *slack.ButtonBlockElement {
		b := slack.NewButtonBlockElement(id, f.ID, slack.NewTextBlockObject(slack.PlainTextType, label, true, false))
		if style != "" {
			b.Style = slack.Style(style)
		}
		return b
	}
	els := []slack.BlockElement{btn(ActionAcknowledge, ":eyes: Acknowledge", "primary")}
	if GroupHasKey(f) {
		els = append(els, btn(ActionSilenceKey, "Silence this key 24 h", ""), btn(ActionSilenceRule, "Silence this rule for this key…", ""))
	} else {
		els = append(els, btn(ActionSilenceRule, "Silence this rule for this group…", ""))
	}
	els = append(els, btn(ActionExpected, "Expected activity…", ""), btn(ActionResolve, "Resolve", ""))
	return slack.NewActionBlock(ActionBlockPrefix+f.ID, els...)
}
