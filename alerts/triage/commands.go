package triage

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/detect/summary"
	"github.com/auditwatch/auditwatch/ingest/secret"
)

// helpText answers /auditwatch help (and an unknown subcommand).
const helpText = "*auditwatch* — what you can ask (answers only you see):\n" +
	"• `/auditwatch key <key id | hint | fingerprint>` — the key's usage in the last 24 h and 7 d, its open findings and its registry facts\n" +
	"• `/auditwatch silences` — the silences in force\n" +
	"• `/auditwatch help` — this\n" +
	"On an alert: *Acknowledge* (anyone), *Silence this key 24 h*, *Silence this rule for this key…*, *Expected activity…*, *Resolve* (allowed users, groups and channels only).\n" +
	"Never paste a full API key into Slack: use its id or its hint (`bk_live_A1b2…O5p6`)."

// ephemeralAnswer is a slash command's answer, sent in the ack.
type ephemeralAnswer struct {
	ResponseType string `json:"response_type"`
	Text         string `json:"text"`
}

func answer(text string) ephemeralAnswer {
	const max = 3900
	if r := []rune(text); len(r) > max {
		text = string(r[:max]) + "…"
	}
	return ephemeralAnswer{ResponseType: "ephemeral", Text: text}
}

// command answers a slash command: the ack payload carries the answer,
// which Slack shows only to the user.
func (r *Runner) command(ctx context.Context, cmd slack.SlashCommand) any {
	fields := strings.Fields(cmd.Text)
	sub := ""
	if len(fields) > 0 {
		sub = strings.ToLower(fields[0])
	}
	switch sub {
	case "", "help":
		return answer(helpText)
	case "key", "silences":
	default:
		return answer("Unknown command `" + mrkdwn(clip(sub, 40)) + "`.\n" + helpText)
	}
	ok, err := r.auth.allowed(ctx, cmd.UserID)
	if !ok {
		if err != nil {
			r.log.Warn("triage: membership check failed; refusing", "user", cmd.UserID, "err", r.clean(err.Error()))
		}
		return answer(":no_entry: You are not allowed to " + verb("lookup") + " auditwatch: only its allowed users, user groups and channels are (alerts.slack.interactive).")
	}
	if sub == "silences" {
		return answer(r.silences(ctx))
	}
	if len(fields) != 2 {
		return answer("Usage: `/auditwatch key <key id | hint | fingerprint>`, e.g. `/auditwatch key key_01HXYZ` or `/auditwatch key bk_live_A1b2…O5p6`.")
	}
	return answer(r.keyReport(ctx, fields[1]))
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// silences lists the silences in force.
func (r *Runner) silences(ctx context.Context) string {
	now := r.cfg.Now()
	all, err := r.deps.Silences.Silences(ctx, now)
	if err != nil {
		r.log.Error("triage: read silences", "err", r.clean(err.Error()))
		return ":warning: auditwatch could not read the silences (ClickHouse error). Try again in a minute."
	}
	var active []alerts.Silence
	for _, s := range all {
		if s.Active(now) {
			active = append(active, s)
		}
	}
	if len(active) == 0 {
		return "No silence is in force: every alert is sent."
	}
	sort.Slice(active, func(i, j int) bool { return active[i].EndsAt.Before(active[j].EndsAt) })
	var b strings.Builder
	fmt.Fprintf(&b, "*%d %s in force:*\n", len(active), plural(len(active), "silence", "silences"))
	for i, s := range active {
		if i == 25 {
			fmt.Fprintf(&b, "+%d more (`auditwatch silence list`)\n", len(active)-25)
			break
		}
		var scope []string
		if s.RuleID != "" {
			scope = append(scope, "rule `"+mrkdwn(s.RuleID)+"`")
		}
		if s.KeyID != "" {
			scope = append(scope, "key `"+mrkdwn(clip(s.KeyID, 24))+"`")
		}
		if s.ClientIP != "" {
			scope = append(scope, "IP `"+mrkdwn(s.ClientIP)+"`")
		}
		by := s.CreatedBy
		if u, ok := strings.CutPrefix(by, "slack:"); ok {
			by = "<@" + u + ">"
		} else {
			by = mrkdwn(by)
		}
		fmt.Fprintf(&b, "• `%s` %s until %s, by %s — %s\n", s.ID, strings.Join(scope, ", "), s.EndsAt.UTC().Format("2006-01-02 15:04 UTC"), by, mrkdwn(clip(s.Reason, 200)))
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// keyReport answers /auditwatch key: registry facts, 24 h and 7 d usage,
// open findings. The key is shown by its id and hint only.
func (r *Runner) keyReport(ctx context.Context, given string) string {
	var b strings.Builder
	full := secret.Env(given) != "" && !strings.Contains(given, secret.Ellipsis)
	if full {
		b.WriteString(":warning: *That looks like a full API key.* It is now in Slack's history: rotate it. auditwatch looked it up by its fingerprint and did not keep it.\n")
	}
	reg, err := r.deps.Keys.All(ctx)
	if err != nil {
		r.log.Error("triage: read key registry", "err", r.clean(err.Error()))
		return ":warning: auditwatch could not read the key registry (ClickHouse error). Try again in a minute."
	}
	id, k, err := alerts.ResolveSilenceKey(given, reg)
	if err != nil {
		// Ambiguous hint; the error lists key ids only.
		return b.String() + mrkdwn(err.Error()) + "."
	}
	if k == nil && !full {
		if fk := byFingerprintPrefix(reg, given); fk != nil {
			id, k = fk.ID, fk
		}
	}
	shown := mrkdwn(clip(given, 40))
	if full {
		shown = "`" + mrkdwn(secret.Hint(given)) + "`"
	} else {
		shown = "`" + shown + "`"
	}
	now := r.cfg.Now()
	day, errD := r.deps.Usage.Build(ctx, summary.Options{Period: "24h", To: now, KeyID: id})
	week, errW := r.deps.Usage.Build(ctx, summary.Options{Period: "7d", To: now, KeyID: id})
	if errD != nil || errW != nil {
		r.log.Error("triage: usage summary", "err", r.clean(fmt.Sprint(errD, " ", errW)))
		return b.String() + ":warning: auditwatch could not build the usage summary (ClickHouse error). Try again in a minute."
	}
	ds, ws := keySummary(day, id), keySummary(week, id)
	if k == nil && ds == nil && ws == nil {
		return b.String() + "No registered key and no use in the last 7 days match " + shown + ". Give a key id (`key_…`), its hint (`bk_live_A1b2…O5p6`) or its fingerprint (64 hex characters)."
	}
	// Header and registry facts.
	hint := ""
	switch {
	case k != nil && k.Hint != "":
		hint = k.Hint
	case ws != nil && ws.Hint != "":
		hint = ws.Hint
	}
	fmt.Fprintf(&b, "*Key `%s`*", mrkdwn(clip(id, 24)))
	if hint != "" {
		fmt.Fprintf(&b, " (`%s`)", mrkdwn(hint))
	}
	b.WriteString("\n")
	if k != nil {
		b.WriteString(registryLine(k, now) + "\n")
	} else {
		b.WriteString("Not in the key registry (seen in traffic only).\n")
	}
	fmt.Fprintf(&b, "*Last 24 h* (to %s): %s\n", day.To.UTC().Format("15:04 UTC"), usageLine(ds))
	fmt.Fprintf(&b, "*Last 7 d*: %s\n", usageLine(ws))
	if ws != nil && len(ws.Flags) > 0 {
		fmt.Fprintf(&b, "*Flags*: %s\n", mrkdwn(strings.Join(ws.Flags, ", ")))
	}
	var open []summary.FindingRef
	if ws != nil {
		open = ws.OpenFindings
	}
	if len(open) == 0 {
		b.WriteString("*Open findings*: none in the last 7 d.")
	} else {
		fmt.Fprintf(&b, "*Open findings* (%d in the last 7 d):\n", len(open))
		for i, f := range open {
			if i == 10 {
				fmt.Fprintf(&b, "+%d more\n", len(open)-10)
				break
			}
			fmt.Fprintf(&b, "• %s `%s` %s — %s\n", strings.ToUpper(mrkdwn(f.Severity)), mrkdwn(f.RuleID), f.EvalTime.UTC().Format("2006-01-02 15:04 UTC"), mrkdwn(clip(f.Summary, 200)))
		}
	}
	return b.String()
}

// byFingerprintPrefix finds a registered key whose fingerprint starts with
// given (at least 12 hex characters), for short fingerprints pasted from a
// message.
func byFingerprintPrefix(reg []keys.Key, given string) *keys.Key {
	g := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(given)), "…")
	if len(g) < 12 || strings.Trim(g, "0123456789abcdef") != "" {
		return nil
	}
	var found *keys.Key
	for i := range reg {
		if strings.HasPrefix(reg[i].Fingerprint, g) {
			if found != nil {
				return nil
			}
			found = &reg[i]
		}
	}
	return found
}

func keySummary(r *summary.Report, id string) *summary.KeySummary {
	if r == nil {
		return nil
	}
	for i := range r.Keys {
		if r.Keys[i].KeyID == id {
			return &r.Keys[i]
		}
	}
	if len(r.Keys) == 1 {
		return &r.Keys[0]
	}
	return nil
}

func registryLine(k *keys.Key, now time.Time) string {
	var parts []string
	if k.Env != "" {
		parts = append(parts, mrkdwn(k.Env))
	}
	if k.Status != "" {
		parts = append(parts, "status *"+mrkdwn(k.Status)+"*")
	}
	if k.AccountID != "" {
		parts = append(parts, "account `"+mrkdwn(k.AccountID)+"`")
	}
	if k.Owner != "" {
		parts = append(parts, "owner "+mrkdwn(clip(k.Owner, 80)))
	}
	if !k.CreatedAt.IsZero() {
		parts = append(parts, "created "+k.CreatedAt.UTC().Format("2006-01-02"))
	}
	if rot := k.LastRotation(); !rot.IsZero() {
		parts = append(parts, fmt.Sprintf("last rotated %s (%d days ago)", rot.UTC().Format("2006-01-02"), int(now.Sub(rot).Hours()/24)))
	}
	if k.ExpiresAt != nil {
		parts = append(parts, "expires "+k.ExpiresAt.UTC().Format("2006-01-02"))
	}
	if len(k.AllowedCIDRs) == 0 {
		parts = append(parts, "no IP allowlist")
	} else {
		cs := make([]string, 0, len(k.AllowedCIDRs))
		for i, p := range k.AllowedCIDRs {
			if i == 5 {
				cs = append(cs, fmt.Sprintf("+%d", len(k.AllowedCIDRs)-5))
				break
			}
			cs = append(cs, p.String())
		}
		parts = append(parts, "allowlist "+strings.Join(cs, ", "))
	}
	return strings.Join(parts, " · ")
}

func usageLine(s *summary.KeySummary) string {
	if s == nil || s.Requests == 0 {
		return "no requests"
	}
	line := fmt.Sprintf("%d requests", s.Requests)
	if s.PrevRequests > 0 {
		line += fmt.Sprintf(" (%+.0f%% vs the period before)", s.Change*100)
	} else {
		line += " (none the period before)"
	}
	line += fmt.Sprintf(", %.1f%% successful, %d client IPs", s.SuccessRate*100, s.DistinctIPs)
	if s.OutsideRequests > 0 {
		line += fmt.Sprintf(", %d requests from %d IPs outside the allowlist", s.OutsideRequests, len(s.OutsideIPs))
	}
	if len(s.Errors) > 0 {
		type ec struct {
			code string
			n    uint64
		}
		var es []ec
		for c, n := range s.Errors {
			if c != "" {
				es = append(es, ec{c, n})
			}
		}
		sort.Slice(es, func(i, j int) bool { return es[i].n > es[j].n || es[i].n == es[j].n && es[i].code < es[j].code })
		var top []string
		for i, e := range es {
			if i == 3 {
				break
			}
			top = append(top, fmt.Sprintf("`%s` %d", mrkdwn(e.code), e.n))
		}
		if len(top) > 0 {
			line += "; top errors " + strings.Join(top, ", ")
		}
	}
	if s.LastSeen != nil {
		line += "; last seen " + s.LastSeen.UTC().Format("2006-01-02 15:04 UTC")
	}
	return line
}
