package slack

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/ingest/secret"
)

// severityMarkers are the emoji in front of a severity.
var severityMarkers = map[string]string{
	"critical": ":red_circle:",
	"high":     ":large_orange_circle:",
	"medium":   ":large_yellow_circle:",
	"low":      ":large_blue_circle:",
	"info":     ":white_circle:",
}

const (
	resolvedMarker   = ":white_check_mark:"
	escalationMarker = ":arrow_double_up:"
	catchupMarker    = ":rewind:"
	lateMarker       = ":hourglass_flowing_sand:"
)

// escalationLabel is "Escalated from HIGH to CRITICAL" (escaped).
func escalationLabel(m *alerts.Message) string {
	from := sevLabel(strings.ToLower(strings.TrimSpace(m.EscalatedFrom)))
	if m.EscalatedFrom == "" {
		from = "a lower severity"
	}
	return clean("Escalated from "+from+" to "+sevLabel(severity(m)), maxValue)
}

// Render returns the Block Kit blocks of m and its notification text: the
// one line Slack shows in notifications and where blocks cannot be shown,
// "[SEVERITY] rule name: summary (+N more)".
//
// KindAlert renders the full message: a header with the severity and the
// rule, one section per finding (the group — key hint, key id, client IP —,
// owner and account, value against threshold in its window, top client IPs
// and error codes, sample request ids, first and last seen, the summary),
// "+K more groups" when m.TotalGroups exceeds the findings listed, what the
// rule means, the runbook and the ClickHouse query. KindRepeat and
// KindResolved render a short thread reply when m.ThreadTS is set; without
// it (webhooks, or a lost parent) they render the full message with a
// "still happening" or "resolved" line, so the message stands on its own.
// KindEscalation is like a repeat whose reply says "escalated from high to
// critical" (the notifier also broadcasts it to the channel), and whose
// parent update takes the new severity. KindCatchup renders the folded
// message of findings delivered late ("While detect was down or catching
// up: N findings of R between T1 and T2", one line per group listed), and a
// folded KindResolved one note for many incidents ("N incidents of R no
// longer match"). A finding found in late data says so (alerts.LateDataNote).
// m.Mention, when set, leads the text and the first section of alerts and
// repeats (a resolution pages nobody).
//
// Every user-controlled value is passed through secret.Redact and escaped
// for mrkdwn, and the result respects Slack's limits: at most 50 blocks,
// 3000 characters per section, 150 per header.
func Render(m *alerts.Message) (blocks []slack.Block, fallback string) {
	switch {
	case m.Kind == alerts.KindCatchup:
		return renderFull(m, false)
	case m.Kind == alerts.KindResolved && m.Folded:
		return renderFoldedResolved(m)
	}
	if m.ThreadTS != "" {
		switch m.Kind {
		case alerts.KindRepeat, alerts.KindEscalation:
			return renderRepeatReply(m)
		case alerts.KindResolved:
			return renderResolvedReply(m)
		}
	}
	return renderFull(m, false)
}

// RenderInteractive is Render with the triage buttons (see ActionIDs) under
// each finding of a full message that is not a resolution: what the
// notifier posts when Config.Interactive is set. Thread replies and
// resolutions have no buttons.
func RenderInteractive(m *alerts.Message) (blocks []slack.Block, fallback string) {
	if m.Kind == alerts.KindResolved || m.FallbackReason != "" || (m.ThreadTS != "" && (m.Kind == alerts.KindRepeat || m.Kind == alerts.KindEscalation)) {
		return Render(m)
	}
	return renderFullWith(m, false, true)
}

// renderParent renders the first message of an incident again with the
// state m brings (still happening, resolved), for chat.update; with
// buttons when interactive and the incident is not resolved.
func renderParent(m *alerts.Message, interactive bool) ([]slack.Block, string) {
	return renderFullWith(m, true, interactive && m.Kind != alerts.KindResolved)
}

// renderFull renders the complete message. parent says it replaces the first
// message of the incident (the replies are in its thread).
func renderFull(m *alerts.Message, parent bool) ([]slack.Block, string) {
	return renderFullWith(m, parent, false)
}

// renderFullWith is renderFull, with an actions block (the triage buttons)
// after each finding listed when buttons is set; fewer findings are then
// listed, so that the message stays within Slack's 50 blocks.
func renderFullWith(m *alerts.Message, parent, buttons bool) ([]slack.Block, string) {
	blocks := []slack.Block{header(m)}
	if m.FallbackReason != "" && !parent {
		blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, ":warning: "+clean(m.FallbackReason, maxValue), false, false)))
	}
	if st := statusLine(m, parent); st != "" {
		blocks = append(blocks, mdSection(st))
	}
	blocks = append(blocks, mdSection(intro(m)))
	if l := lateLine(m); l != "" {
		blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, l, false, false)))
	}
	tail := tailBlocks(m)

	findings := m.Findings
	total := totalGroups(m)
	// Room for the findings: 50 minus what is around them, minus the
	// divider before them and the "+K more" line.
	room := maxBlocks - len(blocks) - len(tail) - 2
	if buttons {
		room /= 2 // a section and an actions block per finding
	}
	if len(findings) > room {
		findings = findings[:room]
	}
	if len(findings) > 0 {
		blocks = append(blocks, slack.NewDividerBlock())
		for i := range findings {
			blocks = append(blocks, mdSection(findingText(m, &findings[i])))
			if buttons && findings[i].ID != "" {
				blocks = append(blocks, actionsBlock(&findings[i]))
			}
		}
	}
	if more := total - len(findings); more > 0 && len(findings) > 0 {
		text := fmt.Sprintf("+%d more %s not listed", more, plural(more, "group", "groups"))
		if m.Kind == alerts.KindCatchup {
			text += fmt.Sprintf(" (%d findings in all)", max(m.TotalFindings, len(m.Findings)))
		}
		blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, text, false, false)))
	}
	blocks = append(blocks, tail...)
	text := fallbackText(m, parent)
	if m.FallbackReason != "" && !parent {
		text = "[fallback] " + text
	}
	return blocks, text
}

// lateLine says that the findings of m were found in late data: all of
// them, or how many; "" when none was.
func lateLine(m *alerts.Message) string {
	late := 0
	for i := range m.Findings {
		if m.Findings[i].Late() {
			late++
		}
	}
	switch {
	case late == 0:
		return ""
	case late == len(m.Findings):
		return lateMarker + " *" + alerts.LateDataNote + ".*"
	}
	return fmt.Sprintf(lateMarker+" *%d of these %d groups were found in late data*: events arrived after their window was first evaluated.", late, len(m.Findings))
}

// allLate reports whether m lists findings and all came from late data.
func allLate(m *alerts.Message) bool {
	for i := range m.Findings {
		if !m.Findings[i].Late() {
			return false
		}
	}
	return len(m.Findings) > 0
}

// tailBlocks are the blocks after the findings: what the rule means, what
// to do, the query.
func tailBlocks(m *alerts.Message) []slack.Block {
	var tail []slack.Block
	tail = append(tail, slack.NewDividerBlock())
	if d := strings.TrimSpace(m.Description); d != "" {
		tail = append(tail, mdSection("*What it means*\n"+cleanMultiline(d, maxSectionText-20)))
	}
	tail = append(tail, mdSection("*What to do*\n"+runbookText(m)))
	if q := strings.TrimSpace(m.Query); q != "" {
		note := ":mag: *Investigate in ClickHouse*"
		cq := escaper.Replace(strings.ReplaceAll(secret.Redact(q), "```", "` ` `"))
		if fitted := fit(cq, maxQuery); fitted != cq {
			cq = fitted
			note += " (query truncated; see the detector's logs or rule)"
		}
		tail = append(tail,
			slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, note, false, false)),
			mdSection("```\n"+cq+"\n```"))
	}
	return tail
}

// header is the header block: severity marker, severity and rule name.
func header(m *alerts.Message) slack.Block {
	var text string
	if m.Kind == alerts.KindResolved {
		text = resolvedMarker + " RESOLVED — " + ruleName(m)
	} else {
		sev := severity(m)
		marker := severityMarkers[sev]
		if marker == "" {
			marker = ":white_circle:"
		}
		text = marker + " " + sevLabel(sev) + " — " + ruleName(m)
	}
	return slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, plain(text, maxHeaderText), true, false))
}

// statusLine says that the incident is still going or resolved; "" for a
// first alert.
func statusLine(m *alerts.Message, parent bool) string {
	switch m.Kind {
	case alerts.KindRepeat:
		s := ":repeat: *Still happening*"
		if m.Repeats > 0 {
			s += fmt.Sprintf(" — alerted %d %s so far", m.Repeats, plural(m.Repeats, "time", "times"))
		}
		if t := fmtTime(m.EvalTime); t != "" {
			s += ", latest at " + t
		}
		if parent {
			s += ". Updates are in the thread."
		} else {
			s += ". This repeats an earlier alert."
		}
		return s
	case alerts.KindEscalation:
		s := escalationMarker + " *" + escalationLabel(m) + "*"
		if t := fmtTime(m.EvalTime); t != "" {
			s += " at " + t
		}
		if parent {
			s += ". Updates are in the thread."
		} else {
			s += ". This escalates an earlier alert."
		}
		return s
	case alerts.KindResolved:
		s := resolvedMarker + " *Resolved* — " + noMatchSince(m)
		if parent {
			s += fmt.Sprintf(" (was %s)", sevLabel(severity(m)))
		}
		return s + "."
	}
	return ""
}

// intro is the first section: mention, how many groups, rule id, env, time;
// for a catch-up, its headline first.
func intro(m *alerts.Message) string {
	var parts []string
	head := ""
	if m.Kind == alerts.KindCatchup {
		head = catchupMarker + " *" + clean(alerts.CatchupHeadline(m), maxSectionText/2) + "*\n"
	}
	if m.Kind != alerts.KindResolved {
		n := totalGroups(m)
		switch {
		case n > 0:
			parts = append(parts, fmt.Sprintf("*%d %s matched*", n, plural(n, "group", "groups")))
		default:
			parts = append(parts, "*Matched*")
		}
	}
	if id := clean(m.RuleID, maxValue); id != "" {
		parts = append(parts, "rule "+code(id))
	}
	if env := clean(m.Env, maxValue); env != "" {
		parts = append(parts, "env *"+env+"*")
	}
	if t := fmtTime(m.EvalTime); t != "" && m.Kind != alerts.KindCatchup {
		verb := "evaluated "
		if m.Kind == alerts.KindResolved {
			verb = "checked "
		}
		parts = append(parts, verb+t)
	}
	s := head + strings.Join(parts, " · ")
	if mention := mentionFor(m); mention != "" {
		s = mention + " " + s
	}
	if s == "" {
		s = "—"
	}
	return s
}

// findingText is the section of one finding.
func findingText(m *alerts.Message, f *detect.Finding) string {
	var lines []string
	lines = append(lines, whoLine(f))

	var vals []string
	if f.Value != 0 || f.Threshold != 0 {
		v := "*Value* " + fmtNum(f.Value)
		if f.Threshold != 0 {
			v += " vs threshold " + fmtNum(f.Threshold)
		}
		vals = append(vals, v)
	}
	if w := fmtSpan(f.WindowStart, f.WindowEnd); w != "" {
		vals = append(vals, "*Window* "+w)
	}
	if f.Evidence.Requests > 0 {
		vals = append(vals, "*Requests* "+strconv.FormatUint(f.Evidence.Requests, 10))
	}
	if len(vals) > 0 {
		lines = append(lines, strings.Join(vals, " · "))
	}
	if m.Kind == alerts.KindCatchup {
		lines = append(lines, catchupLine(m, f))
	}
	if l := list(f.Evidence.TopClientIPs); l != "" {
		lines = append(lines, "*Top client IPs* "+l)
	}
	if l := list(f.Evidence.TopErrorCodes); l != "" {
		lines = append(lines, "*Top error codes* "+l)
	}
	if l := list(f.Evidence.SampleRequestIDs); l != "" {
		lines = append(lines, "*Sample request ids* "+l)
	}
	var seen []string
	if f.Evidence.FirstSeen != nil && !f.Evidence.FirstSeen.IsZero() {
		seen = append(seen, "*First seen* "+fmtTime(*f.Evidence.FirstSeen))
	}
	if f.Evidence.LastSeen != nil && !f.Evidence.LastSeen.IsZero() {
		seen = append(seen, "*Last seen* "+fmtTime(*f.Evidence.LastSeen))
	}
	if len(seen) > 0 {
		lines = append(lines, strings.Join(seen, " · "))
	}
	if d := detailsLine(f.Evidence.Details); d != "" {
		lines = append(lines, "*Details* "+d)
	}
	if f.EscalatedFrom != "" && m.Kind != alerts.KindEscalation {
		lines = append(lines, escalationMarker+" "+clean("Escalated from "+sevLabel(f.EscalatedFrom)+" to "+sevLabel(f.Severity), maxValue))
	}
	if f.Late() && !allLate(m) {
		lines = append(lines, lateMarker+" _"+alerts.LateDataNote+"_")
	}
	if s := summaryOf(m, f); s != "" {
		lines = append(lines, quote(cleanMultiline(s, maxSummary)))
	}
	return joinLines(lines, maxSectionText)
}

// whoLine names the group of a finding: key hint (never a key), key id,
// client IP, account, owner and any other group field.
func whoLine(f *detect.Finding) string {
	var parts []string
	hint := f.KeyHint
	if hint != "" {
		parts = append(parts, "*Key* "+code(clean(hint, maxValue)))
		if f.KeyID != "" {
			parts[len(parts)-1] += " (" + code(clean(f.KeyID, maxValue)) + ")"
		}
	} else if f.KeyID != "" {
		parts = append(parts, "*Key* "+code(clean(f.KeyID, maxValue)))
	}
	if f.ClientIP != "" {
		parts = append(parts, "*Client IP* "+code(clean(f.ClientIP, maxValue)))
	}
	account := f.AccountID
	if account == "" {
		account = f.Group["account_id"]
	}
	if account != "" {
		parts = append(parts, "*Account* "+code(clean(account, maxValue)))
	}
	if owner, ok := f.Evidence.Details["owner"].(string); ok && owner != "" {
		parts = append(parts, "*Owner* "+clean(owner, maxValue))
	}
	keys := make([]string, 0, len(f.Group))
	for k := range f.Group {
		switch k {
		case "key_id", "client_ip", "account_id":
		default:
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i == maxListItems {
			break
		}
		parts = append(parts, clean(k, 50)+" "+code(clean(f.Group[k], maxValue)))
	}
	if len(parts) == 0 {
		if g := clean(f.GroupKey, maxValue); g != "" {
			return "*Group* " + code(g)
		}
		return "*Group* (the whole rule)"
	}
	return strings.Join(parts, " · ")
}

// detailsLine renders the evidence details other than those shown
// elsewhere, sorted by name.
func detailsLine(d map[string]any) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		if k != "owner" && k != "env" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for i, k := range keys {
		if i == 8 {
			parts = append(parts, fmt.Sprintf("+%d more", len(keys)-i))
			break
		}
		parts = append(parts, clean(k, 50)+": "+clean(detailValue(d[k]), 100))
	}
	return strings.Join(parts, " · ")
}

func detailValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "—"
	case string:
		return v
	case []string:
		return strings.Join(v, ", ")
	case []any:
		s := make([]string, len(v))
		for i, e := range v {
			s[i] = detailValue(e)
		}
		return strings.Join(s, ", ")
	case float64:
		return fmtNum(v)
	case float32:
		return fmtNum(float64(v))
	case time.Time:
		return fmtTime(v)
	case *time.Time:
		if v == nil {
			return "—"
		}
		return fmtTime(*v)
	}
	return fmt.Sprint(v)
}

// renderRepeatReply is the short thread reply of a repeat or an
// escalation: the new values.
func renderRepeatReply(m *alerts.Message) ([]slack.Block, string) {
	head := ":repeat: *Still happening*"
	if m.Kind == alerts.KindEscalation {
		head = escalationMarker + " *" + escalationLabel(m) + "*"
	}
	var parts []string
	if m.Repeats > 0 {
		parts = append(parts, fmt.Sprintf("alerted %d %s so far", m.Repeats, plural(m.Repeats, "time", "times")))
	}
	if n := totalGroups(m); n > 0 {
		parts = append(parts, fmt.Sprintf("%d %s now", n, plural(n, "group", "groups")))
	}
	if t := fmtTime(m.EvalTime); t != "" {
		parts = append(parts, "evaluated "+t)
	}
	if len(parts) > 0 {
		head += " — " + strings.Join(parts, " · ")
	}
	if mention := mentionFor(m); mention != "" {
		head = mention + " " + head
	}
	lines := []string{head}
	const maxLines = 10
	shown := 0
	for i := range m.Findings {
		if i == maxLines {
			break
		}
		lines = append(lines, "• "+oneLine(m, &m.Findings[i]))
		shown++
	}
	if more := totalGroups(m) - shown; more > 0 && shown > 0 {
		lines = append(lines, fmt.Sprintf("+%d more %s", more, plural(more, "group", "groups")))
	}
	return []slack.Block{mdSection(joinLines(lines, maxSectionText))}, fallbackText(m, false)
}

// oneLine is a finding in one line: group, value, window, top IP, sample.
func oneLine(m *alerts.Message, f *detect.Finding) string {
	who := shortWho(f)
	var parts []string
	if f.Value != 0 || f.Threshold != 0 {
		v := "*" + fmtNum(f.Value) + "*"
		if f.Threshold != 0 {
			v += " (threshold " + fmtNum(f.Threshold) + ")"
		}
		parts = append(parts, v)
	} else if s := summaryOf(m, f); s != "" {
		parts = append(parts, clean(s, 300))
	}
	if w := fmtSpan(f.WindowStart, f.WindowEnd); w != "" {
		parts = append(parts, w)
	}
	if len(f.Evidence.TopClientIPs) > 0 {
		parts = append(parts, "top IP "+code(clean(f.Evidence.TopClientIPs[0], maxValue)))
	}
	if len(f.Evidence.SampleRequestIDs) > 0 {
		parts = append(parts, "sample "+code(clean(f.Evidence.SampleRequestIDs[0], maxValue)))
	}
	if f.Late() {
		parts = append(parts, lateMarker+" found in late data")
	}
	if who == "" {
		return strings.Join(parts, " · ")
	}
	return who + ": " + strings.Join(parts, " · ")
}

// shortWho names a finding's group in a few words: key hint and id, client
// IP, else the group key.
func shortWho(f *detect.Finding) string {
	var who string
	switch {
	case f.KeyHint != "":
		who = code(clean(f.KeyHint, maxValue))
		if f.KeyID != "" {
			who += " (" + code(clean(f.KeyID, maxValue)) + ")"
		}
	case f.KeyID != "":
		who = code(clean(f.KeyID, maxValue))
	}
	if f.ClientIP != "" {
		if who != "" {
			who += " from "
		}
		who += code(clean(f.ClientIP, maxValue))
	}
	if who == "" {
		if who = code(clean(f.GroupKey, maxValue)); who == "" {
			who = "the whole rule"
		}
	}
	return who
}

// renderResolvedReply is the short thread reply of a resolution.
func renderResolvedReply(m *alerts.Message) ([]slack.Block, string) {
	lines := []string{resolvedMarker + " *Resolved* — " + noMatchSince(m) + "."}
	const maxLines = 10
	for i := range m.Findings {
		if i == maxLines {
			lines = append(lines, fmt.Sprintf("+%d more", len(m.Findings)-i))
			break
		}
		f := &m.Findings[i]
		line := "• " + shortWho(f)
		if s := summaryOf(m, f); s != "" {
			line += ": " + clean(s, 300)
		}
		lines = append(lines, line)
	}
	text := joinLines(lines, maxSectionText)
	var ctx []string
	if id := clean(m.RuleID, maxValue); id != "" {
		ctx = append(ctx, "rule "+code(id))
	}
	if t := fmtTime(m.EvalTime); t != "" {
		ctx = append(ctx, "checked "+t)
	}
	blocks := []slack.Block{mdSection(text)}
	if len(ctx) > 0 {
		blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, strings.Join(ctx, " · "), false, false)))
	}
	return blocks, fallbackText(m, false)
}

// noMatchSince says since when the rule has not matched: the latest last
// seen among the findings (else the end of their window, when it is before
// the evaluation: a window ending at m.EvalTime is that of the check that
// did not match), else the evaluation time.
func noMatchSince(m *alerts.Message) string {
	var last time.Time
	for i := range m.Findings {
		f := &m.Findings[i]
		var t time.Time
		switch {
		case f.Evidence.LastSeen != nil:
			t = *f.Evidence.LastSeen
		case m.EvalTime.IsZero() || f.WindowEnd.Before(m.EvalTime):
			t = f.WindowEnd
		}
		if t.After(last) {
			last = t
		}
	}
	if !last.IsZero() {
		return "no match since " + fmtTime(last)
	}
	if !m.EvalTime.IsZero() {
		return "no match as of " + fmtTime(m.EvalTime)
	}
	return "no match any more"
}

// fallbackText is the notification line: "[SEVERITY] rule name: summary
// (+N more)", led by the mention.
func fallbackText(m *alerts.Message, parent bool) string {
	var body string
	more := 0
	first := ""
	if len(m.Findings) > 0 {
		first = summaryOf(m, &m.Findings[0])
	}
	switch m.Kind {
	case alerts.KindCatchup:
		text := clean(fmt.Sprintf("[%s] %s", sevLabel(severity(m)), alerts.CatchupHeadline(m)), maxFallback)
		if mention := mentionFor(m); mention != "" && !parent {
			text = mention + " " + text
		}
		return text
	case alerts.KindResolved:
		body = "resolved, " + noMatchSince(m)
	case alerts.KindRepeat, alerts.KindEscalation:
		body = "still happening"
		if m.Kind == alerts.KindEscalation {
			body = alerts.EscalationText(m)
		}
		if first != "" {
			body += ": " + first
			more = totalGroups(m) - 1
		}
	default:
		switch {
		case first != "":
			body = first
			more = totalGroups(m) - 1
		case totalGroups(m) > 0:
			body = fmt.Sprintf("%d %s matched", totalGroups(m), plural(totalGroups(m), "group", "groups"))
		default:
			body = "matched"
		}
	}
	if more > 0 {
		body += fmt.Sprintf(" (+%d more)", more)
	}
	if m.Kind != alerts.KindResolved && allLate(m) {
		body += " — found in late data"
	}
	text := clean(fmt.Sprintf("[%s] %s: %s", sevLabel(severity(m)), ruleName(m), body), maxFallback)
	if mention := mentionFor(m); mention != "" && !parent {
		text = mention + " " + text
	}
	return text
}

// summaryOf is a finding's summary without the rule name the detector puts
// in front of it.
func summaryOf(m *alerts.Message, f *detect.Finding) string {
	s := strings.TrimSpace(f.Summary)
	for _, name := range []string{m.RuleName, f.RuleName} {
		if name != "" && strings.HasPrefix(s, name+": ") {
			return strings.TrimSpace(s[len(name)+2:])
		}
	}
	return s
}

// runbookText links the runbook, or says there is none.
func runbookText(m *alerts.Message) string {
	rb := m.Runbook
	if rb == "" {
		for _, f := range m.Findings {
			if f.Runbook != "" {
				rb = f.Runbook
				break
			}
		}
	}
	if l := link(rb, "Open the runbook"); l != "" {
		return ":blue_book: " + l
	}
	if rb != "" {
		return "Runbook: " + clean(rb, 500)
	}
	return "No runbook is linked to this rule: check the findings above and the query below."
}

// mentionFor is m's mention for alerts and repeats; a resolution pages
// nobody.
func mentionFor(m *alerts.Message) string {
	if m.Kind == alerts.KindResolved {
		return ""
	}
	return mentionText(m.Mention)
}

// mentionRe matches the mentions Slack understands: user groups, @here,
// @channel, @everyone and users.
var mentionRe = regexp.MustCompile(`^(<!subteam\^[A-Z0-9]+(\|[^<>|]*)?>|<!(here|channel|everyone)>|<@[UW][A-Z0-9]+>)$`)

// mentionText returns mention with every part that is not a Slack mention
// escaped (so it cannot smuggle links).
func mentionText(mention string) string {
	fields := strings.Fields(mention)
	for i, f := range fields {
		if !mentionRe.MatchString(f) {
			fields[i] = clean(f, maxValue)
		}
	}
	return strings.Join(fields, " ")
}

// mdSection is a section with mrkdwn text, cut to Slack's limit.
func mdSection(text string) *slack.SectionBlock {
	return slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, fit(text, maxSectionText), false, false), nil, nil)
}

// joinLines joins lines with newlines, dropping the lines that would take
// the text over max and marking the cut with "…".
func joinLines(lines []string, max int) string {
	var b strings.Builder
	for i, l := range lines {
		n := len([]rune(l))
		if i > 0 {
			n++
		}
		if len([]rune(b.String()))+n > max-2 {
			if b.Len() == 0 {
				return fit(l, max)
			}
			b.WriteString("\n…")
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l)
	}
	return b.String()
}

// quote renders text as a mrkdwn block quote.
func quote(text string) string {
	return "> " + strings.ReplaceAll(text, "\n", "\n> ")
}

func severity(m *alerts.Message) string {
	s := strings.ToLower(strings.TrimSpace(m.Severity))
	if s == "" && len(m.Findings) > 0 {
		s = strings.ToLower(m.Findings[0].Severity)
	}
	return s
}

func sevLabel(sev string) string {
	if sev == "" {
		return "ALERT"
	}
	return strings.ToUpper(cut(sev, 20))
}

func ruleName(m *alerts.Message) string {
	switch {
	case m.RuleName != "":
		return m.RuleName
	case m.RuleID != "":
		return m.RuleID
	case len(m.Findings) > 0 && m.Findings[0].RuleName != "":
		return m.Findings[0].RuleName
	}
	return "auditwatch alert"
}

func totalGroups(m *alerts.Message) int {
	return max(m.TotalGroups, len(m.Findings))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// catchupLine is the catch-up line of a group: when it was evaluated, how
// many findings it had, its severity when below the message's.
func catchupLine(m *alerts.Message, f *detect.Finding) string {
	parts := []string{"*Evaluated* " + fmtTime(f.EvalTime)}
	if n := m.GroupCounts[f.GroupKey]; n > 1 {
		parts[0] += fmt.Sprintf(" · %d findings of this group, the highest shown", n)
	}
	if f.Severity != "" && f.Severity != severity(m) {
		parts = append(parts, "*Severity* "+sevLabel(f.Severity))
	}
	return strings.Join(parts, " · ")
}

// renderFoldedResolved renders one note for many incidents that no longer
// match: "N incidents of R no longer match", one line per incident (the
// first ten).
func renderFoldedResolved(m *alerts.Message) ([]slack.Block, string) {
	lines := []string{resolvedMarker + " *" + clean(alerts.FoldedResolvedHeadline(m), maxSectionText/2) + "*"}
	const maxLines = 10
	for i := range m.Findings {
		if i == maxLines {
			lines = append(lines, fmt.Sprintf("+%d more", len(m.Findings)-i))
			break
		}
		f := &m.Findings[i]
		line := "• " + shortWho(f)
		if f.Evidence.LastSeen != nil {
			line += ": no match since " + fmtTime(*f.Evidence.LastSeen)
		}
		lines = append(lines, line)
	}
	var ctx []string
	if id := clean(m.RuleID, maxValue); id != "" {
		ctx = append(ctx, "rule "+code(id))
	}
	if t := fmtTime(m.EvalTime); t != "" {
		ctx = append(ctx, "checked "+t)
	}
	ctx = append(ctx, "each incident's thread stays as it was")
	blocks := []slack.Block{mdSection(joinLines(lines, maxSectionText)),
		slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, strings.Join(ctx, " · "), false, false))}
	text := clean(fmt.Sprintf("[RESOLVED] %s", alerts.FoldedResolvedHeadline(m)), maxFallback)
	return blocks, text
}
