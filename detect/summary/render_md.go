package summary

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
)

// renderMarkdown writes the report as Markdown: a title, a summary
// paragraph (with the signals by rule), the flagged keys ("Needs
// attention") as a table and a short bullet list each (alerted findings
// under "Open findings", signals under "Signals"), then a table of all keys. Untrusted text is escaped so
// that it renders literally: no HTML, links or emphasis can come from data,
// and "|" cannot break a table.
func renderMarkdown(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	t := r.Totals
	ew.printf("# API key usage review — %s\n\n", mdText(dashIfEmpty(r.Period)))
	ew.printf("**Period:** %s (previous: %s)  \n", fmtSpan(r.From, r.To), fmtSpan(r.PrevFrom, r.PrevTo))
	ew.printf("**Generated:** %s from database %s\n\n", fmtTime(r.GeneratedAt), mdCode(dashIfEmpty(r.Database)))

	ew.printf("%s in the report, %d active in the period; **%d need attention**. ",
		countNoun(t.Keys, "key", "keys"), t.ActiveKeys, t.FlaggedKeys)
	ew.printf("%s requests (%s against %s in the previous period)",
		fmtCount(t.Requests), fmtChange(totalChange(t), t.Requests, t.PrevRequests), fmtCount(t.PrevRequests))
	if errs := sortedCounts(t.Errors); len(errs) > 0 {
		var sum uint64
		for _, c := range errs {
			sum += c.N
		}
		ew.printf("; %s failed, most often with %s", fmtCount(sum), mdCountList(errs, 3))
	}
	ew.printf(".")
	if n := signalTotal(t.Signals); n > 0 {
		ew.printf(" %s recorded and not alerted (info or low severity): %s.", countNoun(int(n), "signal was", "signals were"),
			mdCountList(sortedCounts(t.Signals), 5))
	}
	ew.printf("\n\n")

	var flagged []int
	for i := range r.Keys {
		if len(r.Keys[i].Flags) > 0 {
			flagged = append(flagged, i)
		}
	}
	ew.printf("## Needs attention (%d)\n\n", len(flagged))
	if len(flagged) == 0 {
		ew.printf("No key is flagged.\n\n")
	} else {
		mdTable(ew, []string{"Key", "Owner / account", "Requests", "Change", "Flags", "Open findings", "Signals"}, "llrrlrr", len(flagged), func(row int) []string {
			k := &r.Keys[flagged[row]]
			return []string{mdCode(keyLabel(k)), mdText(dashIfEmpty(ownerLabel(k))), fmtCount(k.Requests),
				fmtChange(k.Change, k.Requests, k.PrevRequests), mdFlags(k.Flags), fmt.Sprint(len(k.OpenFindings)), fmt.Sprint(k.SignalCount())}
		})
		for _, i := range flagged {
			mdKeyDetails(ew, &r.Keys[i], r)
		}
	}

	ew.printf("## All keys (%d)\n\n", len(r.Keys))
	if len(r.Keys) == 0 {
		ew.printf("No keys in this period.\n")
		return ew.err
	}
	mdTable(ew, []string{"Key", "Env", "Owner / account", "Requests", "Change", "Success", "Top errors", "IPs",
		"Outside IPs", "p50 / p95 ms", "Last seen", "Rotation", "Signals", "Flags"}, "lllrrrlrrrllrl", len(r.Keys), func(row int) []string {
		k := &r.Keys[row]
		outside := "—"
		if len(k.OutsideIPs) > 0 {
			outside = fmt.Sprint(len(k.OutsideIPs))
		}
		return []string{mdCode(keyLabel(k)), mdText(dashIfEmpty(k.Env)), mdText(dashIfEmpty(ownerLabel(k))),
			fmtCount(k.Requests), fmtChange(k.Change, k.Requests, k.PrevRequests), fmtRate(k.SuccessRate, k.Requests),
			mdCountList(sortedCounts(k.Errors), 3), fmtCount(k.DistinctIPs), outside, fmtLatency(k),
			mdLastSeen(k.LastSeen, r.To), fmtRotation(k), mdSignalCount(k), mdFlags(k.Flags)}
	})
	return ew.err
}

// mdKeyDetails writes the bullet list of a flagged key: its flags in words
// (open findings and outside addresses listed under their flag), then its
// rotation, errors and top paths.
func mdKeyDetails(ew *errWriter, k *KeySummary, r *Report) {
	ew.printf("### %s", mdCode(keyLabel(k)))
	if o := ownerLabel(k); o != "" {
		ew.printf(" — %s", mdText(o))
	}
	ew.printf("\n\n")
	findingsDone, signalsDone, outsideDone, rotationDone := false, false, false, false
	for _, f := range k.Flags {
		ew.printf("- **%s:** %s\n", mdText(flagMetaOf(f).Title), mdText(flagSentence(f, k, r)))
		switch f {
		case FlagOpenFindings:
			mdFindings(ew, k.OpenFindings)
			findingsDone = true
		case FlagSignals:
			mdSignals(ew, k.Signals)
			signalsDone = true
		case FlagOutsideAllowlist:
			mdOutside(ew, k.OutsideIPs)
			outsideDone = true
		case FlagRotationOverdue:
			rotationDone = true
		}
	}
	if !findingsDone && len(k.OpenFindings) > 0 {
		ew.printf("- Open findings:\n")
		mdFindings(ew, k.OpenFindings)
	}
	if !signalsDone && len(k.Signals) > 0 {
		ew.printf("- Signals (recorded, not alerted):\n")
		mdSignals(ew, k.Signals)
	}
	if !outsideDone && len(k.OutsideIPs) > 0 {
		ew.printf("- Outside the allowlist:\n")
		mdOutside(ew, k.OutsideIPs)
	}
	if !rotationDone && hasRotation(k) {
		ew.printf("- Rotation: %s\n", fmtRotation(k))
	}
	if len(k.Errors) > 0 {
		ew.printf("- Errors: %s\n", mdCountList(sortedCounts(k.Errors), 0))
	}
	if len(k.TopPaths) > 0 {
		ew.printf("- Top paths: %s\n", mdPaths(k.TopPaths, 5))
	}
	ew.printf("\n")
}

// mdFindings writes findings as a nested list.
func mdFindings(ew *errWriter, fs []FindingRef) {
	for _, f := range fs {
		ew.printf("  - %s (%s, %s) — %s\n", mdCode(f.RuleID), mdText(dashIfEmpty(f.Severity)),
			fmtTime(f.EvalTime), mdText(f.Summary))
	}
}

// mdSignals writes signals as a nested list, one item per rule: how many,
// and the latest one's severity, time and summary.
func mdSignals(ew *errWriter, sig []SignalRef) {
	for _, s := range sig {
		ew.printf("  - %s ×%d (%s, latest %s) — %s\n", mdCode(s.RuleID), s.Count, mdText(dashIfEmpty(s.Severity)),
			fmtTime(s.Latest), mdText(s.Summary))
	}
}

// mdSignalCount is the key's number of signals, "—" for none.
func mdSignalCount(k *KeySummary) string {
	if len(k.Signals) == 0 {
		return "—"
	}
	return fmt.Sprint(k.SignalCount())
}

// mdOutside writes addresses as a nested item.
func mdOutside(ew *errWriter, ips []string) {
	if len(ips) == 0 {
		return
	}
	codes := make([]string, len(ips))
	for i, ip := range ips {
		codes[i] = mdCode(ip)
	}
	ew.printf("  - %s\n", strings.Join(codes, ", "))
}

// mdTable writes a table; align has one letter per column ("l" or "r").
func mdTable(ew *errWriter, head []string, align string, n int, row func(int) []string) {
	ew.printf("| %s |\n|", strings.Join(head, " | "))
	for i := range head {
		if align[i] == 'r' {
			ew.printf("---:|")
		} else {
			ew.printf("---|")
		}
	}
	ew.printf("\n")
	for i := range n {
		cells := row(i)
		for j, c := range cells {
			cells[j] = mdCell(c)
		}
		ew.printf("| %s |\n", strings.Join(cells, " | "))
	}
	ew.printf("\n")
}

// mdCell makes inline Markdown fit a table cell: "|" escaped (GitHub-style
// tables honour "\|" even inside code spans), line breaks flattened.
func mdCell(s string) string {
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	return strings.ReplaceAll(s, "|", `\|`)
}

// mdText escapes text so that Markdown renders it literally: backslash
// escapes for the punctuation of emphasis, code and links, entities for "<",
// ">" and "&" (so no raw HTML reaches the output), line breaks flattened. It
// is meant for text inside a line (never at its start), where "#", "+", "-"
// and digits have no meaning.
func mdText(s string) string {
	var b strings.Builder
	runes := []rune(s)
	for i, r := range runes {
		switch r {
		case '_':
			// Inside a word ("bk_live_…", "invalid_signature") "_" never
			// makes emphasis; escape it only at a word's edge.
			if i > 0 && i < len(runes)-1 && isWordRune(runes[i-1]) && isWordRune(runes[i+1]) {
				b.WriteRune(r)
				continue
			}
			b.WriteString(`\_`)
		case '\\', '`', '*', '[', ']', '~':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '\n', '\r':
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// mdCode writes s as a code span, with a fence longer than any run of
// backticks in s. Code spans need no other escaping (mdCell handles "|").
func mdCode(s string) string {
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}

// mdCountList formats counts as "`code` 12, `other` 3" (n <= 0: all).
func mdCountList(cs []Count, n int) string {
	if len(cs) == 0 {
		return "—"
	}
	var parts []string
	for i, c := range cs {
		if n > 0 && i == n {
			parts = append(parts, fmt.Sprintf("+%d more", len(cs)-n))
			break
		}
		parts = append(parts, mdCode(c.Value)+" "+fmtCount(c.N))
	}
	return strings.Join(parts, ", ")
}

// mdPaths formats paths, with their counts when known.
func mdPaths(cs []Count, n int) string {
	var parts []string
	for i, c := range cs {
		if i == n {
			parts = append(parts, fmt.Sprintf("+%d more", len(cs)-n))
			break
		}
		p := mdCode(c.Value)
		if c.N > 0 {
			p += " " + fmtCount(c.N)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// mdFlags formats flags as code spans.
func mdFlags(flags []string) string {
	if len(flags) == 0 {
		return "—"
	}
	parts := make([]string, len(flags))
	for i, f := range flags {
		parts[i] = mdCode(f)
	}
	return strings.Join(parts, " ")
}

func mdLastSeen(t *time.Time, ref time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Format("2006-01-02 15:04") + " (" + fmtAgo(t, ref) + ")"
}
