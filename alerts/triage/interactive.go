package triage

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/auditwatch/auditwatch/alerts"
	awslack "github.com/auditwatch/auditwatch/alerts/slack"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/ingest/secret"
)

// Modal callback ids and the ids of their inputs.
const (
	viewSilence   = "aw_silence_modal"
	viewExpected  = "aw_expected_modal"
	blockDuration = "duration"
	blockReason   = "reason"
	inputDuration = "duration_select"
	inputReason   = "reason_input"
	statusBlockID = "aw_triage_status"
	maxReason     = 500
)

// durations offered by the modals; the first is the default.
var durations = []struct {
	value string
	label string
	d     time.Duration
}{
	{"24h", "24 hours", 24 * time.Hour},
	{"1h", "1 hour", time.Hour},
	{"4h", "4 hours", 4 * time.Hour},
	{"72h", "3 days", 72 * time.Hour},
	{"168h", "7 days", 168 * time.Hour},
}

// modalMeta is a modal's private_metadata: the finding and the message.
type modalMeta struct {
	Finding string `json:"f"`
	Channel string `json:"c"`
	TS      string `json:"t"`
}

// interactive handles an interaction and returns the ack payload (nil, or
// a view_submission's response_action).
func (r *Runner) interactive(ctx context.Context, cb slack.InteractionCallback) any {
	switch cb.Type {
	case slack.InteractionTypeBlockActions:
		for _, a := range cb.ActionCallback.BlockActions {
			if a != nil && strings.HasPrefix(a.ActionID, "aw_") {
				r.button(ctx, cb, a)
			}
		}
		return nil
	case slack.InteractionTypeViewSubmission:
		return r.submit(ctx, cb)
	}
	return nil
}

// button handles a press of one of the alert's buttons.
func (r *Runner) button(ctx context.Context, cb slack.InteractionCallback, a *slack.BlockAction) {
	user, channel := cb.User.ID, cb.Channel.ID
	if channel == "" {
		channel = cb.Container.ChannelID
	}
	ts := cb.Message.Timestamp
	if ts == "" {
		ts = cb.Container.MessageTs
	}
	f, ok := r.finding(ctx, channel, user, a.Value)
	if !ok {
		return
	}
	kind := map[string]string{awslack.ActionAcknowledge: KindAcknowledge, awslack.ActionSilenceKey: KindSilenceKey,
		awslack.ActionSilenceRule: KindSilenceRule, awslack.ActionExpected: KindExpected, awslack.ActionResolve: KindResolve}[a.ActionID]
	if kind == "" {
		return
	}
	if kind != KindAcknowledge && !r.authorised(ctx, channel, user, kind) {
		return
	}
	switch kind {
	case KindSilenceRule, KindExpected:
		r.openModal(ctx, cb.TriggerID, kind, f, modalMeta{Finding: f.ID, Channel: channel, TS: ts})
		return
	case KindSilenceKey:
		if !awslack.GroupHasKey(f) {
			r.ephemeral(ctx, channel, user, "This group has no key to silence; use *Silence this rule for this group…*.")
			return
		}
	}
	in := actInput{
		id:   actionID("button", channel, ts, a.ActionID, f.ID, user, a.ActionTs),
		kind: kind, f: f, user: user, channel: channel, ts: ts,
		blocks: cb.Message.Blocks.BlockSet, text: cb.Message.Text,
	}
	if kind == KindSilenceKey {
		in.duration, in.reason = KeySilence, "silenced from Slack"
	}
	r.act(ctx, in)
}

// finding reads the finding a button names; it tells the user when it
// cannot.
func (r *Runner) finding(ctx context.Context, channel, user, id string) (*detect.Finding, bool) {
	if id == "" {
		return nil, false
	}
	f, err := r.deps.Findings.Finding(ctx, id)
	if err != nil {
		r.log.Error("triage: read finding", "finding", id, "err", r.clean(err.Error()))
		r.ephemeral(ctx, channel, user, ":warning: auditwatch could not read this finding (ClickHouse error); nothing was changed. Try again in a minute.")
		return nil, false
	}
	if f == nil {
		r.ephemeral(ctx, channel, user, "This finding is no longer stored (removed by retention?); nothing was changed. Use `auditwatch silence add` for a silence.")
		return nil, false
	}
	return f, true
}

// authorised checks user for kind and refuses, ephemerally, when not.
func (r *Runner) authorised(ctx context.Context, channel, user, kind string) bool {
	ok, err := r.auth.allowed(ctx, user)
	if ok {
		return true
	}
	if err != nil {
		r.log.Warn("triage: membership check failed; refusing", "user", user, "err", r.clean(err.Error()))
	}
	r.log.Info("triage: action refused", "user", user, "action", kind)
	if channel != "" {
		r.ephemeral(ctx, channel, user, fmt.Sprintf(":no_entry: You are not allowed to %s alerts here: auditwatch's alerts.slack.interactive lets only its allowed users, user groups and channels silence, mark expected or resolve. Acknowledge is open to everyone.", verb(kind)))
	}
	return false
}

func verb(kind string) string {
	switch kind {
	case KindSilenceKey, KindSilenceRule:
		return "silence"
	case KindExpected:
		return "mark expected"
	case KindResolve:
		return "resolve"
	}
	return "look up keys or silences on"
}

// openModal opens the silence or expected-activity modal.
func (r *Runner) openModal(ctx context.Context, trigger, kind string, f *detect.Finding, meta modalMeta) {
	md, _ := json.Marshal(meta)
	opts := make([]*slack.OptionBlockObject, len(durations))
	for i, d := range durations {
		opts[i] = slack.NewOptionBlockObject(d.value, slack.NewTextBlockObject(slack.PlainTextType, d.label, false, false), nil)
	}
	sel := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, slack.NewTextBlockObject(slack.PlainTextType, "How long", false, false), inputDuration, opts...)
	sel.InitialOption = opts[0]
	reason := slack.NewPlainTextInputBlockElement(slack.NewTextBlockObject(slack.PlainTextType, "Why (kept with the silence)", false, false), inputReason)
	reason.Multiline, reason.MaxLength = true, maxReason
	scope := scopeText(f)
	title, intro, submit, callback := "Silence", "Silence *"+mrkdwn(ruleLabel(f))+"* for "+scope+". Its findings are still recorded, not sent.", "Silence", viewSilence
	if kind == KindExpected {
		title, callback, submit = "Expected activity", viewExpected, "Mark expected"
		intro = "Mark this finding of *" + mrkdwn(ruleLabel(f)) + "* for " + scope + " as expected activity: it is closed, and the same group does not alert for the period chosen."
	}
	view := slack.ModalViewRequest{
		Type:            slack.VTModal,
		Title:           slack.NewTextBlockObject(slack.PlainTextType, title, false, false),
		Submit:          slack.NewTextBlockObject(slack.PlainTextType, submit, false, false),
		Close:           slack.NewTextBlockObject(slack.PlainTextType, "Cancel", false, false),
		CallbackID:      callback,
		PrivateMetadata: string(md),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, intro, false, false), nil, nil),
			slack.NewInputBlock(blockDuration, slack.NewTextBlockObject(slack.PlainTextType, "For", false, false), nil, sel),
			slack.NewInputBlock(blockReason, slack.NewTextBlockObject(slack.PlainTextType, "Reason", false, false), nil, reason),
		}},
	}
	rctx, cancel := r.request(ctx)
	defer cancel()
	if _, err := r.api.OpenViewContext(rctx, trigger, view); err != nil {
		r.log.Warn("slack: views.open failed", "err", r.clean(err.Error()))
	}
}

// submit handles a modal's submission.
func (r *Runner) submit(ctx context.Context, cb slack.InteractionCallback) any {
	kind := map[string]string{viewSilence: KindSilenceRule, viewExpected: KindExpected}[cb.View.CallbackID]
	if kind == "" {
		return nil
	}
	var meta modalMeta
	if err := json.Unmarshal([]byte(cb.View.PrivateMetadata), &meta); err != nil || meta.Finding == "" {
		return nil
	}
	user := cb.User.ID
	values := cb.View.State
	reason := ""
	dur := durations[0].d
	if values != nil {
		reason = strings.TrimSpace(values.Values[blockReason][inputReason].Value)
		sel := values.Values[blockDuration][inputDuration].SelectedOption.Value
		for _, d := range durations {
			if d.value == sel {
				dur = d.d
			}
		}
	}
	if reason == "" {
		return slack.NewErrorsViewSubmissionResponse(map[string]string{blockReason: "Give a reason: it is kept with the silence."})
	}
	if !r.authorised(ctx, meta.Channel, user, kind) {
		return nil
	}
	f, ok := r.finding(ctx, meta.Channel, user, meta.Finding)
	if !ok {
		return nil
	}
	r.act(ctx, actInput{
		id:   actionID("view", cb.View.ID, kind, f.ID, user),
		kind: kind, f: f, user: user, channel: meta.Channel, ts: meta.TS,
		reason: reason, duration: dur,
	})
	return nil
}

// actInput is an action to carry out.
type actInput struct {
	id, kind    string
	f           *detect.Finding
	user        string
	channel, ts string
	reason      string
	duration    time.Duration // of the silence, for silences and expected
	blocks      []slack.Block // the message as the user saw it (buttons only), for its update
	text        string
}

// act carries out an action once: silence, finding status, record, message
// update and thread note. An action already recorded is not repeated.
func (r *Runner) act(ctx context.Context, in actInput) {
	done, err := r.deps.Actions.ActionRecorded(ctx, in.id)
	if err != nil {
		r.log.Error("triage: read actions", "err", r.clean(err.Error()))
		r.ephemeral(ctx, in.channel, in.user, ":warning: auditwatch could not record this (ClickHouse error); nothing was changed. Try again in a minute.")
		return
	}
	if done {
		r.log.Info("triage: action already recorded; not repeated", "action_id", in.id, "action", in.kind)
		return
	}
	now := r.cfg.Now().UTC().Truncate(time.Second)
	f := in.f
	reason := secret.Redact(strings.TrimSpace(in.reason))
	if len([]rune(reason)) > maxReason {
		reason = string([]rune(reason)[:maxReason])
	}
	a := Action{ID: in.id, At: now, FindingID: f.ID, RuleID: f.RuleID, GroupKey: f.GroupKey, Kind: in.kind,
		SlackUser: in.user, SlackChannel: in.channel, SlackTS: in.ts, Reason: reason}
	fail := func(what string, err error) {
		r.log.Error("triage: "+what, "action", in.kind, "finding", f.ID, "err", r.clean(err.Error()))
		r.ephemeral(ctx, in.channel, in.user, ":warning: auditwatch could not "+what+" (ClickHouse error); try again in a minute.")
	}
	switch in.kind {
	case KindSilenceKey, KindSilenceRule, KindExpected:
		s := silenceFor(in.kind, f, now, in.duration)
		s.ID = silenceID(in.id)
		s.CreatedBy = "slack:" + in.user
		s.Reason = reason
		if in.kind == KindExpected {
			s.Reason = "expected: " + reason
		}
		if err := r.deps.Silences.AddSilence(ctx, s); err != nil {
			fail("create the silence", err)
			return
		}
		a.SilenceID, a.EndsAt = s.ID, s.EndsAt
	}
	switch in.kind {
	case KindExpected:
		a.FindingStatus = StatusExpected
	case KindResolve:
		a.FindingStatus = StatusResolved
	}
	if a.FindingStatus != "" {
		if err := r.deps.Findings.SetFindingStatus(ctx, *f, a.FindingStatus); err != nil {
			fail("close the finding", err)
			return
		}
	}
	if err := r.deps.Actions.RecordAction(ctx, a); err != nil {
		fail("record the action", err)
		return
	}
	r.log.Info("triage: action", "action", in.kind, "action_id", a.ID, "finding", f.ID, "rule", f.RuleID, "user", in.user, "silence", a.SilenceID)
	line := noteLine(a, f)
	if in.blocks != nil && in.channel != "" && in.ts != "" {
		r.updateMessage(ctx, in, line, a.FindingStatus != "")
	}
	if in.channel != "" && in.ts != "" {
		rctx, cancel := r.request(ctx)
		_, _, err := r.api.PostMessageContext(rctx, in.channel, slack.MsgOptionTS(in.ts), slack.MsgOptionText(line, false),
			slack.MsgOptionDisableLinkUnfurl())
		cancel()
		if err != nil {
			r.log.Warn("slack: thread note failed", "channel", in.channel, "ts", in.ts, "err", r.clean(err.Error()))
		}
	}
}

// silenceFor is the silence of an action: the key for every rule
// (silence_key), or the rule for the group's key, else its client IP, else
// the whole rule.
func silenceFor(kind string, f *detect.Finding, now time.Time, d time.Duration) alerts.Silence {
	s := alerts.Silence{CreatedAt: now, StartsAt: now, EndsAt: now.Add(d)}
	if kind != KindSilenceKey {
		s.RuleID = f.RuleID
	}
	switch {
	case groupKey(f) != "":
		s.KeyID = groupKey(f)
	case f.ClientIP != "" && kind != KindSilenceKey:
		s.ClientIP = f.ClientIP
	}
	return s
}

// groupKey is the key a silence names for f: the registry id, else the
// fingerprint.
func groupKey(f *detect.Finding) string {
	switch {
	case f.KeyID != "":
		return f.KeyID
	case f.Group["key_id"] != "":
		return f.Group["key_id"]
	}
	return f.KeyFingerprint
}

// scopeText says, in mrkdwn, what a silence for f covers.
func scopeText(f *detect.Finding) string {
	switch {
	case groupKey(f) != "":
		return "key " + keyLabel(f)
	case f.ClientIP != "":
		return "client IP `" + mrkdwn(f.ClientIP) + "`"
	}
	return "every group (this rule's groups name no key or IP)"
}

// keyLabel shows f's key by its hint and id, never whole.
func keyLabel(f *detect.Finding) string {
	id := groupKey(f)
	if len(id) > 24 {
		id = id[:12] + "…" // a fingerprint: short form
	}
	if f.KeyHint != "" {
		return "`" + mrkdwn(f.KeyHint) + "` (`" + mrkdwn(id) + "`)"
	}
	return "`" + mrkdwn(id) + "`"
}

func ruleLabel(f *detect.Finding) string {
	if f.RuleName != "" {
		return f.RuleName
	}
	return f.RuleID
}

// noteLine is the thread note (and status line) of an action.
func noteLine(a Action, f *detect.Finding) string {
	who := "<@" + a.SlackUser + ">"
	at := a.At.UTC().Format("2006-01-02 15:04 UTC")
	until := ""
	if !a.EndsAt.IsZero() {
		until = " until " + a.EndsAt.UTC().Format("2006-01-02 15:04 UTC")
	}
	why := ""
	if a.Reason != "" && a.Kind != KindSilenceKey {
		why = " — " + mrkdwn(a.Reason)
	}
	scope := scopeText(f)
	switch a.Kind {
	case KindAcknowledge:
		return ":eyes: Acknowledged by " + who + " (" + scope + ") · " + at
	case KindSilenceKey:
		return ":no_bell: " + who + " silenced " + scope + " for every rule" + until + " (silence `" + a.SilenceID + "`)"
	case KindSilenceRule:
		return ":no_bell: " + who + " silenced *" + mrkdwn(ruleLabel(f)) + "* for " + scope + until + " (silence `" + a.SilenceID + "`)" + why
	case KindExpected:
		return ":white_check_mark: " + who + " marked this as expected activity (" + scope + "); closed, and not alerted" + until + " (silence `" + a.SilenceID + "`)" + why
	case KindResolve:
		return ":white_check_mark: Resolved by " + who + " (" + scope + ") · " + at
	}
	return who + " " + a.Kind
}

// updateMessage edits the alert to show the action: a status line under
// the header (the last 8 actions) and, when the finding was closed, without
// its buttons.
func (r *Runner) updateMessage(ctx context.Context, in actInput, line string, closed bool) {
	var out []slack.Block
	var lines []string
	statusAt := -1
	for _, b := range in.blocks {
		if b == nil {
			continue
		}
		if cb, ok := b.(*slack.ContextBlock); ok && cb.BlockID == statusBlockID {
			for _, el := range cb.ContextElements.Elements {
				if t, ok := el.(*slack.TextBlockObject); ok {
					lines = append(lines, strings.Split(t.Text, "\n")...)
				}
			}
			statusAt = len(out)
			continue
		}
		if ab, ok := b.(*slack.ActionBlock); ok && closed && ab.BlockID == awslack.ActionBlockPrefix+in.f.ID {
			continue
		}
		out = append(out, b)
	}
	lines = append(lines, line)
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	text := strings.Join(lines, "\n")
	if len(text) > 2900 {
		text = text[len(text)-2900:]
	}
	status := slack.NewContextBlock(statusBlockID, slack.NewTextBlockObject(slack.MarkdownType, text, false, false))
	if statusAt < 0 {
		statusAt = min(1, len(out)) // under the header
	}
	out = append(out[:statusAt], append([]slack.Block{status}, out[statusAt:]...)...)
	if len(out) > 50 {
		r.log.Warn("slack: alert message full; the action is in its thread only", "channel", in.channel, "ts", in.ts)
		return
	}
	rctx, cancel := r.request(ctx)
	defer cancel()
	if _, _, _, err := r.api.UpdateMessageContext(rctx, in.channel, in.ts, slack.MsgOptionBlocks(out...), slack.MsgOptionText(in.text, false)); err != nil {
		r.log.Warn("slack: update of the alert failed; the action is in its thread", "channel", in.channel, "ts", in.ts, "err", r.clean(err.Error()))
	}
}

// mrkdwn masks keys in s and escapes it for Slack's mrkdwn, so data cannot
// form links or mentions.
func mrkdwn(s string) string {
	return mrkdwnEscaper.Replace(secret.Redact(s))
}

var mrkdwnEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "`", "'")
