package summary

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/auditwatch/auditwatch/ingest/secret"
)

// renderers maps each format to its renderer; every renderer receives a
// report already passed through redactReport.
var renderers = map[string]func(io.Writer, *Report) error{
	"table": renderTable,
	"md":    renderMarkdown,
	"csv":   renderCSV,
	"json":  renderJSON,
	"html":  renderHTML,
}

// Formats returns the formats Render accepts, in the order they are documented.
func Formats() []string { return []string{"table", "md", "csv", "json", "html"} }

// Render writes r to w in format: "table" (aligned text for a terminal, at
// most 160 columns), "md" (Markdown), "csv" (one row per key), "json" (the
// Report, with non-finite numbers as null) or "html" (one self-contained page
// with inline SVG charts). Keys are written in the order of r.Keys.
//
// All text taken from the report (hints, owners, paths, finding summaries,
// error codes…) is passed through secret.Redact and stripped of control and
// bidirectional-override characters, so no format prints a full key; r itself
// is not modified. The output is built in memory and written with a single
// Write, so a failed render writes nothing. Render returns an error naming the
// valid formats for an unknown format, an error for a nil report, and the
// error of the write.
func Render(w io.Writer, r *Report, format string) error {
	fn, ok := renderers[format]
	if !ok {
		return fmt.Errorf("render report: unknown format %q: want one of %s", format, strings.Join(Formats(), ", "))
	}
	if r == nil {
		return errors.New("render report: nil report")
	}
	var buf bytes.Buffer
	if err := fn(&buf, redactReport(r)); err != nil {
		return fmt.Errorf("render %s report: %w", format, err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write %s report: %w", format, err)
	}
	return nil
}

// redactReport returns a deep copy of r fit for display: free text cleaned by
// cleanText, times in UTC, and nil slices and maps made empty (so JSON shows
// [] and {} rather than null).
func redactReport(r *Report) *Report {
	c := *r
	c.Period = cleanText(r.Period)
	c.Database = cleanText(r.Database)
	c.From, c.To = r.From.UTC(), r.To.UTC()
	c.PrevFrom, c.PrevTo = r.PrevFrom.UTC(), r.PrevTo.UTC()
	c.GeneratedAt = r.GeneratedAt.UTC()
	c.Totals.Errors = cleanCounts(r.Totals.Errors)
	c.Totals.Signals = cleanCounts(r.Totals.Signals)
	c.Keys = make([]KeySummary, len(r.Keys))
	for i, k := range r.Keys {
		c.Keys[i] = redactKey(k)
	}
	return &c
}

func redactKey(k KeySummary) KeySummary {
	k.KeyID = cleanText(k.KeyID)
	k.Hint = cleanText(k.Hint)
	k.Env = cleanText(k.Env)
	k.AccountID = cleanText(k.AccountID)
	k.Owner = cleanText(k.Owner)
	k.Status = cleanText(k.Status)
	k.Errors = cleanCounts(k.Errors)
	k.OutsideIPs = cleanTexts(k.OutsideIPs)
	k.AllowedCIDRs = cleanTexts(k.AllowedCIDRs)
	k.Flags = cleanTexts(k.Flags)
	paths := make([]Count, len(k.TopPaths))
	for i, p := range k.TopPaths {
		paths[i] = Count{Value: cleanText(p.Value), N: p.N}
	}
	k.TopPaths = paths
	findings := make([]FindingRef, len(k.OpenFindings))
	for i, f := range k.OpenFindings {
		findings[i] = FindingRef{RuleID: cleanText(f.RuleID), Severity: cleanText(f.Severity),
			Summary: cleanText(f.Summary), EvalTime: f.EvalTime.UTC()}
	}
	k.OpenFindings = findings
	signals := make([]SignalRef, len(k.Signals))
	for i, s := range k.Signals {
		signals[i] = SignalRef{RuleID: cleanText(s.RuleID), Count: s.Count, Severity: cleanText(s.Severity),
			Summary: cleanText(s.Summary), Latest: s.Latest.UTC()}
	}
	k.Signals = signals
	k.FirstSeen = utcPtr(k.FirstSeen)
	k.LastSeen = utcPtr(k.LastSeen)
	k.CreatedAt = utcPtr(k.CreatedAt)
	k.LastRotation = utcPtr(k.LastRotation)
	series := make([]Point, len(k.Series))
	for i, p := range k.Series {
		series[i] = Point{T: p.T.UTC(), Requests: p.Requests, Errors: p.Errors}
	}
	k.Series = series
	return k
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func cleanTexts(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = cleanText(s)
	}
	return out
}

// cleanCounts cleans the codes of m, adding up codes that clean to the same
// text.
func cleanCounts(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for code, n := range m {
		out[cleanText(code)] += n
	}
	return out
}

// cleanText makes untrusted text safe to show: invalid UTF-8 replaced,
// control characters turned into spaces, bidirectional overrides and
// zero-width characters dropped (they can hide or reorder text, or split a
// key so that it escapes redaction), then every key-like string masked by
// secret.Redact.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r >= 0x200B && r <= 0x200F,
			r == 0x061C, r == 0x2060, r == 0xFEFF:
			return -1
		case unicode.IsControl(r):
			return ' '
		}
		return r
	}, s)
	return secret.Redact(s)
}

// keyLabel is how a person recognises the key: its hint, or its id when it
// has none.
func keyLabel(k *KeySummary) string {
	if k.Hint != "" {
		return k.Hint
	}
	if k.KeyID != "" {
		return k.KeyID
	}
	return "(unknown key)"
}

// ownerLabel is "owner (account)", either one alone, or "".
func ownerLabel(k *KeySummary) string {
	switch {
	case k.Owner != "" && k.AccountID != "":
		return k.Owner + " (" + k.AccountID + ")"
	case k.Owner != "":
		return k.Owner
	}
	return k.AccountID
}

// isFinite reports whether v is neither NaN nor infinite.
func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// fmtCount formats n with thousands separators: 1,234,567.
func fmtCount(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	lead := len(s) % 3
	if lead == 0 {
		lead = 3
	}
	b.WriteString(s[:lead])
	for i := lead; i < len(s); i += 3 {
		b.WriteByte(',')
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// fmtCompact formats n briefly for chart labels: 950, 1.2k, 35k, 4.1M.
func fmtCompact(v float64) string {
	abs := math.Abs(v)
	for _, u := range []struct {
		div    float64
		suffix string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if abs >= u.div {
			x := v / u.div
			if math.Abs(x) < 10 && x != math.Trunc(x) {
				return strconv.FormatFloat(x, 'f', 1, 64) + u.suffix
			}
			return strconv.FormatFloat(x, 'f', 0, 64) + u.suffix
		}
	}
	if v != math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// fmtChange formats a change ratio for people: "+35%", "−80%", "new" for
// +Inf (nothing before), "—" for no change at all or an unknown one, and
// "×13" once the rise passes 1000%.
func fmtChange(change float64, cur, prev uint64) string {
	switch {
	case math.IsInf(change, 1):
		return "new"
	case !isFinite(change), cur == 0 && prev == 0:
		return "—"
	case change >= 10:
		return "×" + strconv.FormatFloat(change+1, 'f', 0, 64)
	}
	p := math.Round(change * 100)
	switch {
	case p > 0:
		return "+" + strconv.FormatFloat(p, 'f', 0, 64) + "%"
	case p < 0:
		return "−" + strconv.FormatFloat(-p, 'f', 0, 64) + "%"
	}
	return "±0%"
}

// totalChange is the change of the report's totals, as fmtChange takes it.
func totalChange(t Totals) float64 {
	switch {
	case t.PrevRequests > 0:
		return float64(t.Requests)/float64(t.PrevRequests) - 1
	case t.Requests > 0:
		return math.Inf(1)
	}
	return 0
}

// fmtRate formats a success rate: "99.2%", ">99.9%" when not quite all
// succeeded, "—" without requests.
func fmtRate(rate float64, requests uint64) string {
	if requests == 0 || !isFinite(rate) {
		return "—"
	}
	s := strconv.FormatFloat(rate*100, 'f', 1, 64)
	if s == "100.0" && rate < 1 {
		return ">99.9%"
	}
	if s == "100.0" {
		return "100%"
	}
	return s + "%"
}

// fmtLatency formats p50/p95 in milliseconds: "12/340", "—" without requests.
func fmtLatency(k *KeySummary) string {
	if k.Requests == 0 || !isFinite(k.P50LatencyMS) || !isFinite(k.P95LatencyMS) {
		return "—"
	}
	return fmtMS(k.P50LatencyMS) + "/" + fmtMS(k.P95LatencyMS)
}

func fmtMS(v float64) string {
	if v < 10 && v != math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// hasRotation reports whether the key's rotation is known (registered keys).
func hasRotation(k *KeySummary) bool {
	return k.Registered && (k.LastRotation != nil || k.CreatedAt != nil) && isFinite(k.RotationDueDays)
}

// fmtRotation formats when rotation is due: "in 23d", "due today",
// "overdue 41d", "—" when unknown.
func fmtRotation(k *KeySummary) string {
	if !hasRotation(k) {
		return "—"
	}
	d := k.RotationDueDays
	if d < 0 {
		return fmt.Sprintf("overdue %.0fd", math.Ceil(-d))
	}
	if n := math.Floor(d); n >= 1 {
		return fmt.Sprintf("in %.0fd", n)
	}
	return "due today"
}

// fmtAgo formats how long before ref t was: "<1h ago", "5h ago", "12d ago";
// "never" for nil, the date when t is after ref.
func fmtAgo(t *time.Time, ref time.Time) string {
	if t == nil {
		return "never"
	}
	d := ref.Sub(*t)
	switch {
	case d < 0:
		return t.UTC().Format("01-02 15:04")
	case d < time.Hour:
		return "<1h ago"
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// fmtTime formats t as "2006-01-02 15:04 UTC".
func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") + " UTC" }

// fmtSpan formats a period as "2006-01-02 00:00 → 2006-01-09 00:00 UTC".
func fmtSpan(from, to time.Time) string {
	return from.UTC().Format("2006-01-02 15:04") + " → " + to.UTC().Format("2006-01-02 15:04") + " UTC"
}

// sortedCounts returns m as counts, most frequent first (ties by code).
func sortedCounts(m map[string]uint64) []Count {
	out := make([]Count, 0, len(m))
	for _, code := range slices.Sorted(maps.Keys(m)) {
		out = append(out, Count{Value: code, N: m[code]})
	}
	slices.SortStableFunc(out, func(a, b Count) int {
		switch {
		case a.N > b.N:
			return -1
		case a.N < b.N:
			return 1
		}
		return 0
	})
	return out
}

// fmtCounts formats the first n counts as "invalid_signature 230,
// ip_not_whitelisted 12" (n <= 0: all), with "+3 more" when some are left out.
func fmtCounts(cs []Count, n int) string {
	if len(cs) == 0 {
		return "—"
	}
	parts := make([]string, 0, len(cs))
	for i, c := range cs {
		if n > 0 && i == n {
			parts = append(parts, fmt.Sprintf("+%d more", len(cs)-n))
			break
		}
		parts = append(parts, c.Value+" "+fmtCount(c.N))
	}
	return strings.Join(parts, ", ")
}

// errorCount is the key's failed requests.
func errorCount(k *KeySummary) uint64 {
	if k.Successes >= k.Requests {
		return 0
	}
	return k.Requests - k.Successes
}

// countNoun returns "1 address" or "3 addresses".
func countNoun(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// flagMeta describes a flag for people.
type flagMeta struct {
	Short  string // for the terminal table
	Title  string // badge text
	Level  string // crit, warn, info or muted: how urgent, for colours
	Legend string
}

var flagInfo = map[string]flagMeta{
	FlagOpenFindings:     {"findings", "Open findings", "crit", "findings alerted in the period"},
	FlagOutsideAllowlist: {"outside", "Outside allowlist", "crit", "requests from outside the IP allowlist"},
	FlagExpiredInUse:     {"expired", "Expired/revoked in use", "crit", "expired or revoked, yet used"},
	FlagUnregistered:     {"unreg", "Unregistered", "warn", "not in the key registry"},
	FlagNoAllowlist:      {"no-allow", "No IP allowlist", "warn", "live key without an IP allowlist"},
	FlagRotationOverdue:  {"rotate", "Rotation overdue", "warn", "rotation overdue"},
	FlagHighErrorRate:    {"errors", "High error rate", "warn", "more than 10% of requests failed"},
	FlagUnusualChange:    {"unusual", "Unusual change", "info", "requests changed ×3 or more"},
	FlagStale:            {"stale", "Stale", "muted", "unused for 45 days or more"},
	FlagSignals:          {"signals", "Signals", "muted", "info/low findings recorded, not alerted"},
}

// flagMetaOf describes flag, also one this version does not know.
func flagMetaOf(flag string) flagMeta {
	if m, ok := flagInfo[flag]; ok {
		return m
	}
	return flagMeta{Short: flag, Title: flag, Level: "info", Legend: flag}
}

// flagSentence explains flag on key k in words, with the key's figures; it
// is meant to follow the flag's title ("Rotation overdue: 41 days past due").
func flagSentence(flag string, k *KeySummary, r *Report) string {
	switch flag {
	case FlagOpenFindings:
		return fmt.Sprintf("%s alerted in the period.", countNoun(len(k.OpenFindings), "finding", "findings"))
	case FlagOutsideAllowlist:
		allow := "its allowlist"
		if len(k.AllowedCIDRs) > 0 {
			allow = strings.Join(k.AllowedCIDRs, ", ")
		}
		return fmt.Sprintf("%s requests from %s outside %s.", fmtCount(k.OutsideRequests),
			countNoun(len(k.OutsideIPs), "address", "addresses"), allow)
	case FlagExpiredInUse:
		status := k.Status
		if status == "" {
			status = "not active"
		}
		return fmt.Sprintf("the key is %s, yet it made %s requests in the period.", status, fmtCount(k.Requests))
	case FlagUnregistered:
		return "seen in traffic but not in the key registry; no owner, allowlist or rotation date is known."
	case FlagNoAllowlist:
		return "a live key accepted from any address."
	case FlagRotationOverdue:
		s := "due for rotation"
		if hasRotation(k) && k.RotationDueDays < 0 {
			s = fmt.Sprintf("%.0f days past due", math.Ceil(-k.RotationDueDays))
		}
		if k.LastRotation != nil {
			s += " (last rotated " + k.LastRotation.Format(time.DateOnly) + ")"
		}
		return s + "."
	case FlagHighErrorRate:
		return fmt.Sprintf("%s of %s requests failed (success rate %s).",
			fmtCount(errorCount(k)), fmtCount(k.Requests), fmtRate(k.SuccessRate, k.Requests))
	case FlagUnusualChange:
		return fmt.Sprintf("%s requests against %s in the previous %s (%s).",
			fmtCount(k.Requests), fmtCount(k.PrevRequests), dashIfEmpty(r.Period), fmtChange(k.Change, k.Requests, k.PrevRequests))
	case FlagSignals:
		return fmt.Sprintf("%s from %s in the period, recorded and not alerted.",
			countNoun(k.SignalCount(), "signal", "signals"), countNoun(len(k.Signals), "rule", "rules"))
	case FlagStale:
		if k.LastSeen == nil {
			return "never used."
		}
		return fmt.Sprintf("last used %s (%s).", k.LastSeen.Format(time.DateOnly), fmtAgo(k.LastSeen, r.To))
	}
	return "flag " + flag + "."
}

// topSeries returns up to n keys with the most requests (at least one), in
// descending order of requests and, for ties, the report's order.
func topSeries(keys []KeySummary, n int) []*KeySummary {
	var out []*KeySummary
	for i := range keys {
		if keys[i].Requests > 0 {
			out = append(out, &keys[i])
		}
	}
	slices.SortStableFunc(out, func(a, b *KeySummary) int {
		switch {
		case a.Requests > b.Requests:
			return -1
		case a.Requests < b.Requests:
			return 1
		}
		return 0
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// signalTotal is the number of signals in counts by rule.
func signalTotal(m map[string]uint64) uint64 {
	var n uint64
	for _, c := range m {
		n += c
	}
	return n
}

// signalCounts returns a key's signals as counts by rule, in its order.
func signalCounts(k *KeySummary) []Count {
	out := make([]Count, len(k.Signals))
	for i, s := range k.Signals {
		out[i] = Count{Value: s.RuleID, N: uint64(s.Count)}
	}
	return out
}
