package summary

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// tableWidth is the widest line renderTable writes.
const tableWidth = 160

// tableGap is the space between columns.
const tableGap = 2

// tableColumn is one column of the terminal table.
type tableColumn struct {
	title string
	max   int  // widest the column gets (cells wider are cut with "…")
	min   int  // narrowest it may be squeezed to when a line is too wide
	right bool // right-aligned (numbers)
	cell  func(k *KeySummary, r *Report) string
	// fit, when set, formats the cell for a width below its natural one
	// (instead of cutting the end off).
	fit func(k *KeySummary, width int) string
}

var tableColumns = []tableColumn{
	{title: "KEY", max: 20, min: 17, cell: func(k *KeySummary, _ *Report) string { return keyLabel(k) }},
	{title: "ENV", max: 4, min: 4, cell: func(k *KeySummary, _ *Report) string { return dashIfEmpty(k.Env) }},
	{title: "OWNER / ACCOUNT", max: 28, min: 14, cell: func(k *KeySummary, _ *Report) string { return dashIfEmpty(ownerLabel(k)) },
		fit: func(k *KeySummary, width int) string {
			if k.Owner != "" {
				return ellipsize(k.Owner, width) // the account goes first
			}
			return ellipsize(dashIfEmpty(k.AccountID), width)
		}},
	{title: "REQUESTS", max: 26, min: 26, right: true, cell: func(k *KeySummary, _ *Report) string { return fmtCount(k.Requests) }},
	{title: "CHANGE", max: 8, min: 8, right: true, cell: func(k *KeySummary, _ *Report) string {
		return fmtChange(k.Change, k.Requests, k.PrevRequests)
	}},
	{title: "OK", max: 6, min: 6, right: true, cell: func(k *KeySummary, _ *Report) string { return fmtRate(k.SuccessRate, k.Requests) }},
	{title: "TOP ERRORS", max: 46, min: 16, cell: func(k *KeySummary, _ *Report) string { return fmtCounts(sortedCounts(k.Errors), 2) },
		fit: func(k *KeySummary, width int) string { return fitCounts(sortedCounts(k.Errors), width) }},
	{title: "IPS", max: 26, min: 26, right: true, cell: func(k *KeySummary, _ *Report) string { return fmtCount(k.DistinctIPs) }},
	{title: "OUTSIDE", max: 26, min: 26, right: true, cell: func(k *KeySummary, _ *Report) string {
		if len(k.OutsideIPs) == 0 {
			return "—"
		}
		return fmtCount(uint64(len(k.OutsideIPs)))
	}},
	{title: "P50/95 MS", max: 16, min: 16, right: true, cell: func(k *KeySummary, _ *Report) string { return fmtLatency(k) }},
	{title: "SEEN", max: 12, min: 12, cell: func(k *KeySummary, r *Report) string { return fmtAgo(k.LastSeen, r.To) }},
	{title: "ROTATION", max: 14, min: 14, cell: func(k *KeySummary, _ *Report) string { return fmtRotation(k) }},
	{title: "FLAGS", max: 48, min: 10, cell: func(k *KeySummary, _ *Report) string {
		// Signals are listed under the table, apart from what was alerted.
		var short []string
		for _, f := range k.Flags {
			if f != FlagSignals {
				short = append(short, flagMetaOf(f).Short)
			}
		}
		if len(short) == 0 {
			return "—"
		}
		return strings.Join(short, " ")
	}},
}

// Columns squeezed, widest first, when a line would pass tableWidth; the
// flags only once these are at their min.
const (
	colOwner  = 2
	colErrors = 6
	colFlags  = 12
)

// renderTable writes the report as aligned text, at most tableWidth columns:
// a header with the period and totals (signals by rule among them), one row
// per key, the keys' signals (recorded, not alerted) one line each, and a
// legend of the flags shown. Cells too wide for their column end with "…".
func renderTable(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	ew.printf("%s\n", ellipsize(fmt.Sprintf("API key usage review · %s · %s", dashIfEmpty(r.Period), fmtSpan(r.From, r.To)), tableWidth))
	t := r.Totals
	ew.printf("%s\n", ellipsize(fmt.Sprintf("%s · %d active · %d flagged · %s requests (%s vs %s in the previous period)",
		countNoun(t.Keys, "key", "keys"), t.ActiveKeys, t.FlaggedKeys, fmtCount(t.Requests),
		fmtChange(totalChange(t), t.Requests, t.PrevRequests), fmtCount(t.PrevRequests)), tableWidth))
	if len(t.Errors) > 0 {
		ew.printf("%s\n", ellipsize("errors: "+fmtCounts(sortedCounts(t.Errors), 6), tableWidth))
	}
	if n := signalTotal(t.Signals); n > 0 {
		ew.printf("%s\n", ellipsize(fmt.Sprintf("signals (recorded, not alerted): %s · %s", fmtCount(n), fmtCounts(sortedCounts(t.Signals), 6)), tableWidth))
	}
	ew.printf("\n")
	if len(r.Keys) == 0 {
		ew.printf("No keys in this period.\n")
		return ew.err
	}

	rows := make([][]string, 0, len(r.Keys)+1)
	head := make([]string, len(tableColumns))
	for i, c := range tableColumns {
		head[i] = c.title
	}
	rows = append(rows, head)
	for i := range r.Keys {
		row := make([]string, len(tableColumns))
		for j, c := range tableColumns {
			row[j] = c.cell(&r.Keys[i], r)
		}
		rows = append(rows, row)
	}
	widths := tableWidths(rows)
	for i := range r.Keys {
		for j, c := range tableColumns {
			if c.fit != nil && utf8.RuneCountInString(rows[i+1][j]) > widths[j] {
				rows[i+1][j] = c.fit(&r.Keys[i], widths[j])
			}
		}
	}

	tw := tabwriter.NewWriter(ew, 0, 0, tableGap, ' ', 0)
	for _, row := range rows {
		cells := make([]string, len(row))
		for j, s := range row {
			s = ellipsize(s, widths[j])
			if tableColumns[j].right && j < len(row)-1 {
				s = strings.Repeat(" ", widths[j]-utf8.RuneCountInString(s)) + s
			}
			cells[j] = s
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	tableSignals(ew, r.Keys)
	if legend := flagLegend(r.Keys); legend != "" {
		ew.printf("\n")
		for _, line := range wrapWords("flags: "+legend, tableWidth) {
			ew.printf("%s\n", line)
		}
	}
	ew.printf("\ngenerated %s · database %s\n", fmtTime(r.GeneratedAt), dashIfEmpty(r.Database))
	return ew.err
}

// tableMaxSignalKeys bounds the keys listed under the table's signals.
const tableMaxSignalKeys = 20

// tableSignals lists, under the table, each key's signals (recorded, not
// alerted: apart from the alerted findings, which the flags show): its
// label, counts by rule, and the latest signal's time and summary.
func tableSignals(ew *errWriter, keys []KeySummary) {
	var with []*KeySummary
	for i := range keys {
		if len(keys[i].Signals) > 0 {
			with = append(with, &keys[i])
		}
	}
	if len(with) == 0 {
		return
	}
	ew.printf("\nsignals (recorded, not alerted):\n")
	for i, k := range with {
		if i == tableMaxSignalKeys {
			ew.printf("  +%d more keys with signals\n", len(with)-i)
			break
		}
		latest := latestSignal(k)
		line := fmt.Sprintf("  %s  %s · latest %s: %s", keyLabel(k), fmtCounts(signalCounts(k), 3),
			latest.Latest.Format("01-02 15:04"), dashIfEmpty(latest.Summary))
		ew.printf("%s\n", ellipsize(line, tableWidth))
	}
}

// latestSignal returns the most recent of k's signals (k has at least one).
func latestSignal(k *KeySummary) SignalRef {
	latest := k.Signals[0]
	for _, s := range k.Signals[1:] {
		if s.Latest.After(latest.Latest) {
			latest = s
		}
	}
	return latest
}

// tableWidths returns each column's width: its widest cell up to the
// column's max, then, while a line is wider than tableWidth, the widest of
// the owner and error columns narrowed (down to their min), then the flags.
func tableWidths(rows [][]string) []int {
	widths := make([]int, len(tableColumns))
	for _, row := range rows {
		for j, s := range row {
			widths[j] = max(widths[j], min(utf8.RuneCountInString(s), tableColumns[j].max))
		}
	}
	over := tableGap*(len(widths)-1) - tableWidth
	for _, w := range widths {
		over += w
	}
	for ; over > 0; over-- {
		j := colOwner
		if widths[colErrors]-tableColumns[colErrors].min > widths[colOwner]-tableColumns[colOwner].min {
			j = colErrors
		}
		if widths[j] <= tableColumns[j].min {
			j = colFlags
		}
		if widths[j] <= tableColumns[j].min {
			break // nothing left to squeeze: the line stays wider
		}
		widths[j]--
	}
	return widths
}

// fitCounts formats counts for width: as many as fit with their numbers
// and "+n" for the rest; if not even one fits, its code cut short.
func fitCounts(cs []Count, width int) string {
	if len(cs) == 0 {
		return "—"
	}
	for n := len(cs); n >= 1; n-- {
		parts := make([]string, 0, n)
		for _, c := range cs[:n] {
			parts = append(parts, c.Value+" "+fmtCount(c.N))
		}
		s := strings.Join(parts, ", ")
		if n < len(cs) {
			s += fmt.Sprintf(" +%d", len(cs)-n)
		}
		if utf8.RuneCountInString(s) <= width {
			return s
		}
	}
	tail := " " + fmtCount(cs[0].N)
	if len(cs) > 1 {
		tail += fmt.Sprintf(" +%d", len(cs)-1)
	}
	return ellipsize(ellipsize(cs[0].Value, width-utf8.RuneCountInString(tail))+tail, width)
}

// flagLegend explains the short flag names used in rows, in the order they
// first appear (signals have their own list, not a flag column entry).
func flagLegend(keys []KeySummary) string {
	seen := map[string]bool{}
	var parts []string
	for _, k := range keys {
		for _, f := range k.Flags {
			if seen[f] || f == FlagSignals {
				continue
			}
			seen[f] = true
			m := flagMetaOf(f)
			parts = append(parts, m.Short+" = "+m.Legend)
		}
	}
	return strings.Join(parts, " · ")
}

// ellipsize shortens s to at most n runes, ending it with "…" when cut.
func ellipsize(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimRight(string(r[:n-1]), " ,") + "…"
}

// wrapWords splits s into lines of at most width runes at spaces.
func wrapWords(s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		switch {
		case line == "":
			line = ellipsize(word, width)
		case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = ellipsize(word, width)
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

func dashIfEmpty(s string) string {
	if strings.TrimSpace(s) == "" {
		return "—"
	}
	return s
}

// errWriter remembers the first write error and skips later writes.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) {
	fmt.Fprintf(e, format, args...)
}
