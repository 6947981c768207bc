package slack

import (
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditwatch/auditwatch/ingest/secret"
)

// Slack's limits (https://api.slack.com/reference/block-kit/blocks).
const (
	maxBlocks      = 50
	maxHeaderText  = 150
	maxSectionText = 3000
	maxFallback    = 300 // the notification line; Slack allows 40000, people read 1
	maxValue       = 200 // one free-text value (IP, error code, request id, …)
	maxSummary     = 1000
	maxListItems   = 5
	maxQuery       = maxSectionText - 8 // room for the ``` fences and newlines
	maxURL         = 2000               // longer runbook "links" are shown as text
)

// escaper escapes the three characters mrkdwn treats as control characters.
var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// clean makes a user-controlled value safe for mrkdwn: key-like strings are
// replaced by their hints (secret.Redact), it is cut to max characters and
// &, < and > are escaped. The escaped result is also at most max characters.
func clean(v string, max int) string {
	v = strings.TrimSpace(secret.Redact(v))
	v = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, v)
	return fit(escaper.Replace(cut(v, max)), max)
}

// cleanMultiline is clean for text whose line breaks should survive
// (descriptions, summaries).
func cleanMultiline(v string, max int) string {
	v = strings.TrimSpace(secret.Redact(v))
	return fit(escaper.Replace(cut(v, max)), max)
}

// plain makes a value safe for a plain_text object: redacted and cut.
// plain_text is not parsed, so nothing is escaped.
func plain(v string, max int) string {
	return cut(strings.TrimSpace(secret.Redact(v)), max)
}

// code renders an already cleaned value as inline code. A backtick would end
// the span, so it becomes a quote.
func code(cleaned string) string {
	if cleaned == "" {
		return ""
	}
	return "`" + strings.ReplaceAll(cleaned, "`", "'") + "`"
}

// cut shortens s to at most max characters, ending with "…" when it cut.
func cut(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}

// fit is cut for escaped mrkdwn: it never leaves half an entity (&amp;).
func fit(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := string([]rune(s)[:max-1])
	if amp := strings.LastIndexByte(r, '&'); amp >= 0 && !strings.Contains(r[amp:], ";") {
		r = r[:amp]
	}
	return r + "…"
}

// link renders a mrkdwn link to an http(s) URL, or "" when u is not one (or
// is too long to link).
func link(u, label string) string {
	p, err := url.Parse(strings.TrimSpace(u))
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || len(u) > maxURL {
		return ""
	}
	s := secret.Redact(p.String())
	s = strings.NewReplacer("&", "&amp;", "<", "%3C", ">", "%3E", "|", "%7C", " ", "%20").Replace(s)
	return "<" + s + "|" + label + ">"
}

// list renders up to maxListItems values as inline code, "+N more" after.
func list(vs []string) string {
	var parts []string
	for i, v := range vs {
		if i == maxListItems {
			parts = append(parts, "+"+strconv.Itoa(len(vs)-i)+" more")
			break
		}
		if c := clean(v, maxValue); c != "" {
			parts = append(parts, code(c))
		}
	}
	return strings.Join(parts, ", ")
}

// timeLayout is how times are shown: UTC, like the ClickHouse query.
const timeLayout = "2006-01-02 15:04:05"

// fmtTime renders t in UTC, "" for the zero time.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout) + " UTC"
}

// fmtSpan renders [from, to) in UTC, the date once when both are on the same
// day.
func fmtSpan(from, to time.Time) string {
	switch {
	case from.IsZero() && to.IsZero():
		return ""
	case from.IsZero():
		return "until " + fmtTime(to)
	case to.IsZero():
		return "since " + fmtTime(from)
	}
	from, to = from.UTC(), to.UTC()
	if from.Format(time.DateOnly) == to.Format(time.DateOnly) {
		return from.Format(timeLayout) + "–" + to.Format(time.TimeOnly) + " UTC"
	}
	return from.Format(timeLayout) + " – " + to.Format(timeLayout) + " UTC"
}

// fmtNum renders a rule value: integers as integers, others with up to two
// decimals.
func fmtNum(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// ordinal renders n as "1st", "2nd", "3rd", "4th", ….
func ordinal(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return strconv.Itoa(n) + suffix
}
