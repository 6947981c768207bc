package summary

import (
	"fmt"
	"html/template"
	"io"
	"slices"
	"strings"
)

// htmlView is what the HTML template shows; every string in it is plain text
// that html/template escapes.
type htmlView struct {
	Title     string
	Period    string
	Span      string
	PrevSpan  string
	Generated string
	Database  string
	Tiles     []htmlTile
	Flagged   []htmlCard
	Rows      []htmlRow
	Signals   *htmlSignals  // nil without signals
	Lines     *lineChartSVG // nil without traffic
	Errors    *barChartSVG  // nil without failures
}

// htmlTile is one figure of the totals.
type htmlTile struct {
	Label, Value, Note string
	Class              string // "" or "alert"
}

// htmlBadge is a flag as a coloured badge.
type htmlBadge struct {
	Text, Level, Flag string
}

// htmlRow is a key in the table of all keys.
type htmlRow struct {
	ID          string // anchor id (k1, k2…), for the cards to name
	Label       string
	KeyID       string
	Env         string
	Owner       string
	Requests    string
	Change      string
	ChangeClass string // up, down or ""
	Success     string
	Errors      []string
	IPs         string
	Outside     string
	Latency     string
	LastSeen    string
	LastSeenAt  string
	Rotation    string
	RotClass    string // overdue, soon or ""
	Badges      []htmlBadge
	Spark       sparkSVG
	Flagged     bool
}

// htmlSentence is a flag explained in words.
type htmlSentence struct {
	Title, Text, Level string
}

// htmlFinding is an open finding on a card.
type htmlFinding struct {
	Rule, Severity, Summary, Time string
}

// htmlSignal is a key's signals of one rule on a card.
type htmlSignal struct {
	Rule, Count, Severity, Summary, Latest string
}

// htmlSignals is the report's signals: counts by rule, and the keys with
// the most.
type htmlSignals struct {
	Total  string
	Keys   string // "2 listed keys have some"
	Rules  []string
	Top    []htmlSignalKey
	Hidden int // keys with signals not in Top
}

// htmlSignalKey is a key in the signals section.
type htmlSignalKey struct {
	ID, Label, KeyID, Owner, Count, Rules, Latest string
}

// htmlMaxSignalKeys bounds the keys of the signals section.
const htmlMaxSignalKeys = 10

// htmlCard is a flagged key in "Needs attention".
type htmlCard struct {
	htmlRow
	Level     string // the most urgent flag's level, for the card's edge
	Sentences []htmlSentence
	Findings  []htmlFinding
	Signals   []htmlSignal
	Outside   []string
	OutsideN  string
	Allowed   string
	ErrorList []string
	Paths     []string
	Big       sparkSVG
}

var levelRank = map[string]int{"crit": 3, "warn": 2, "info": 1, "muted": 0}

// newHTMLView computes the page's content from r.
func newHTMLView(r *Report) *htmlView {
	t := r.Totals
	v := &htmlView{
		Title:     "API key usage review — " + dashIfEmpty(r.Period),
		Period:    dashIfEmpty(r.Period),
		Span:      fmtSpan(r.From, r.To),
		PrevSpan:  fmtSpan(r.PrevFrom, r.PrevTo),
		Generated: fmtTime(r.GeneratedAt),
		Database:  dashIfEmpty(r.Database),
	}
	var failed uint64
	for _, n := range t.Errors {
		failed += n
	}
	failedNote := "no failures"
	if t.Requests > 0 {
		failedNote = fmtShare(failed, t.Requests) + " of requests"
	}
	if top := sortedCounts(t.Errors); len(top) > 0 {
		failedNote += " · most: " + top[0].Value
	}
	flaggedClass := ""
	if t.FlaggedKeys > 0 {
		flaggedClass = "alert"
	}
	v.Tiles = []htmlTile{
		{Label: "Keys", Value: fmt.Sprint(t.Keys), Note: fmt.Sprintf("%d active in the period", t.ActiveKeys)},
		{Label: "Need attention", Value: fmt.Sprint(t.FlaggedKeys), Note: "keys with at least one flag", Class: flaggedClass},
		{Label: "Requests", Value: fmtCount(t.Requests), Note: fmt.Sprintf("%s vs %s in the previous period",
			fmtChange(totalChange(t), t.Requests, t.PrevRequests), fmtCount(t.PrevRequests))},
		{Label: "Failed requests", Value: fmtCount(failed), Note: failedNote},
		newSignalTile(t),
	}

	for i := range r.Keys {
		k := &r.Keys[i]
		row := newHTMLRow(k, r, i)
		v.Rows = append(v.Rows, row)
		if row.Flagged {
			v.Flagged = append(v.Flagged, newHTMLCard(row, k, r))
		}
	}
	v.Signals = newHTMLSignals(r)
	if top := topSeries(r.Keys, 8); len(top) > 0 {
		lc := newLineChart(r, top)
		v.Lines = &lc
	}
	if em := newErrorMix(r); len(em.Rows) > 0 {
		v.Errors = &em
	}
	return v
}

// newSignalTile is the tile of the signals: how many, and the most frequent
// rule.
func newSignalTile(t Totals) htmlTile {
	n := signalTotal(t.Signals)
	note := "none recorded"
	if n > 0 {
		note = "recorded, not alerted · most: " + sortedCounts(t.Signals)[0].Value
	}
	return htmlTile{Label: "Signals", Value: fmtCount(n), Note: note}
}

// newHTMLSignals returns the signals section, nil without signals.
func newHTMLSignals(r *Report) *htmlSignals {
	n := signalTotal(r.Totals.Signals)
	if n == 0 {
		return nil
	}
	v := &htmlSignals{Total: fmtCount(n), Keys: countNoun(r.Totals.SignalKeys, "listed key has", "listed keys have") + " some."}
	for _, c := range sortedCounts(r.Totals.Signals) {
		v.Rules = append(v.Rules, c.Value+" "+fmtCount(c.N))
	}
	var with []int
	for i := range r.Keys {
		if len(r.Keys[i].Signals) > 0 {
			with = append(with, i)
		}
	}
	slices.SortStableFunc(with, func(a, b int) int { return r.Keys[b].SignalCount() - r.Keys[a].SignalCount() })
	for j, i := range with {
		if j == htmlMaxSignalKeys {
			v.Hidden = len(with) - j
			break
		}
		k := &r.Keys[i]
		latest := latestSignal(k)
		v.Top = append(v.Top, htmlSignalKey{ID: fmt.Sprintf("k%d", i+1), Label: keyLabel(k), KeyID: k.KeyID, Owner: ownerLabel(k),
			Count: fmt.Sprint(k.SignalCount()), Rules: fmtCounts(signalCounts(k), 3), Latest: fmtTime(latest.Latest) + " · " + latest.Summary})
	}
	return v
}

func newHTMLRow(k *KeySummary, r *Report, i int) htmlRow {
	row := htmlRow{
		ID:       fmt.Sprintf("k%d", i+1),
		Label:    keyLabel(k),
		KeyID:    k.KeyID,
		Env:      dashIfEmpty(k.Env),
		Owner:    ownerLabel(k),
		Requests: fmtCount(k.Requests),
		Change:   fmtChange(k.Change, k.Requests, k.PrevRequests),
		Success:  fmtRate(k.SuccessRate, k.Requests),
		Errors:   htmlCounts(sortedCounts(k.Errors), 3),
		IPs:      fmtCount(k.DistinctIPs),
		Outside:  "—",
		Latency:  fmtLatency(k),
		LastSeen: fmtAgo(k.LastSeen, r.To),
		Rotation: fmtRotation(k),
		Spark:    newSpark(k, bucketOf(r), 96, 26),
		Flagged:  len(k.Flags) > 0,
	}
	switch {
	case row.Change == "new" || strings.HasPrefix(row.Change, "+") || strings.HasPrefix(row.Change, "×"):
		row.ChangeClass = "up"
	case strings.HasPrefix(row.Change, "−"):
		row.ChangeClass = "down"
	}
	if len(k.OutsideIPs) > 0 {
		row.Outside = fmt.Sprint(len(k.OutsideIPs))
	}
	if k.LastSeen != nil {
		row.LastSeenAt = fmtTime(*k.LastSeen)
	}
	if hasRotation(k) {
		switch {
		case k.RotationDueDays < 0:
			row.RotClass = "overdue"
		case k.RotationDueDays < 14:
			row.RotClass = "soon"
		}
	}
	for _, f := range k.Flags {
		m := flagMetaOf(f)
		row.Badges = append(row.Badges, htmlBadge{Text: m.Title, Level: m.Level, Flag: f})
	}
	return row
}

func newHTMLCard(row htmlRow, k *KeySummary, r *Report) htmlCard {
	c := htmlCard{htmlRow: row, Level: "muted", Outside: k.OutsideIPs, Big: newSpark(k, bucketOf(r), 500, 44)}
	c.Big.Fluid = true
	for _, b := range row.Badges {
		if levelRank[b.Level] > levelRank[c.Level] {
			c.Level = b.Level
		}
	}
	for _, f := range k.Flags {
		m := flagMetaOf(f)
		c.Sentences = append(c.Sentences, htmlSentence{Title: m.Title, Text: flagSentence(f, k, r), Level: m.Level})
	}
	for _, f := range k.OpenFindings {
		c.Findings = append(c.Findings, htmlFinding{Rule: f.RuleID, Severity: dashIfEmpty(f.Severity), Summary: f.Summary, Time: fmtTime(f.EvalTime)})
	}
	for _, sg := range k.Signals {
		c.Signals = append(c.Signals, htmlSignal{Rule: sg.RuleID, Count: "×" + fmt.Sprint(sg.Count), Severity: dashIfEmpty(sg.Severity),
			Summary: sg.Summary, Latest: fmtTime(sg.Latest)})
	}
	if len(k.OutsideIPs) > 0 {
		c.OutsideN = fmt.Sprintf("%s requests from %s", fmtCount(k.OutsideRequests), countNoun(len(k.OutsideIPs), "address", "addresses"))
	}
	if len(k.AllowedCIDRs) > 0 {
		c.Allowed = strings.Join(k.AllowedCIDRs, ", ")
	} else if k.Registered {
		c.Allowed = "none (any address)"
	}
	for _, e := range sortedCounts(k.Errors) {
		c.ErrorList = append(c.ErrorList, e.Value+" "+fmtCount(e.N))
	}
	for i, p := range k.TopPaths {
		if i == 5 {
			break
		}
		s := p.Value
		if p.N > 0 {
			s += " " + fmtCount(p.N)
		}
		c.Paths = append(c.Paths, s)
	}
	return c
}

// htmlCounts is the first n counts as "code 12" each, then "+3 more".
func htmlCounts(cs []Count, n int) []string {
	var out []string
	for i, c := range cs {
		if i == n {
			out = append(out, fmt.Sprintf("+%d more", len(cs)-n))
			break
		}
		out = append(out, c.Value+" "+fmtCount(c.N))
	}
	return out
}

// renderHTML writes the report as one self-contained HTML page: no scripts,
// no external fonts, styles or images; the charts are inline SVG. All text
// from the report is escaped by html/template.
func renderHTML(w io.Writer, r *Report) error {
	return htmlTemplate.Execute(w, newHTMLView(r))
}

var htmlTemplate = template.Must(template.New("report").Parse(htmlSource))

// htmlSource is the page. It is also well-formed XML (void elements closed,
// no "<" or "&" in the style sheet), which keeps it easy to check.
const htmlSource = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<meta name="color-scheme" content="light"/>
<title>{{.Title}} · {{.Span}}</title>
<style>
:root {
  --fg: #1f2328; --muted: #57606a; --border: #d0d7de; --soft: #f6f8fa;
  --crit: #b42318; --crit-bg: #fef3f2; --crit-bd: #fda29b;
  --warn: #8a4b08; --warn-bg: #fffaeb; --warn-bd: #fec84b;
  --info: #175cd3; --info-bg: #eff8ff; --info-bd: #84caff;
  --mute: #475467; --mute-bg: #f2f4f7; --mute-bd: #d0d5dd;
}
* { box-sizing: border-box; }
html { background: #fff; }
body { margin: 0; color: var(--fg); background: #fff; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 28px 32px 48px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace; font-size: 0.92em; }
h1 { font-size: 24px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 18px; margin: 36px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--border); }
h3 { font-size: 15px; margin: 0; }
.sub { color: var(--muted); margin: 0; }
.sub span + span::before { content: " · "; }
.tiles { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 12px; margin: 20px 0 0; }
.tile { border: 1px solid var(--border); border-radius: 8px; padding: 12px 14px; background: var(--soft); }
.tile .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; }
.tile .value { font-size: 26px; font-weight: 600; font-variant-numeric: tabular-nums; }
.tile .note { color: var(--muted); font-size: 12.5px; }
.tile.alert { background: var(--crit-bg); border-color: var(--crit-bd); }
.tile.alert .value { color: var(--crit); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 14px; }
.card { border: 1px solid var(--border); border-left: 5px solid var(--mute-bd); border-radius: 8px; padding: 14px 16px; background: #fff; break-inside: avoid; page-break-inside: avoid; }
.card.crit { border-left-color: var(--crit); }
.card.warn { border-left-color: #dc6803; }
.card.info { border-left-color: var(--info); }
.card header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 6px 10px; margin-bottom: 8px; }
.card .owner { color: var(--muted); }
.card .badges { flex-basis: 100%; }
.facts { display: grid; grid-template-columns: repeat(6, auto); gap: 2px 14px; margin: 8px 0; font-size: 13px; }
.facts dt { color: var(--muted); font-size: 11.5px; text-transform: uppercase; letter-spacing: 0.03em; }
.facts dd { margin: 0; font-variant-numeric: tabular-nums; font-weight: 600; }
.card ul { margin: 6px 0; padding-left: 18px; }
.card li { margin: 2px 0; }
.card .section { margin-top: 8px; }
.card .section > .h { font-size: 12px; text-transform: uppercase; letter-spacing: 0.03em; color: var(--muted); }
.findings { width: 100%; border-collapse: collapse; font-size: 13px; margin-top: 2px; }
.findings td { padding: 3px 6px 3px 0; vertical-align: top; border-top: 1px solid var(--soft); }
.section.signals { border-top: 1px dashed var(--mute-bd); padding-top: 4px; }
.section.signals .findings { color: var(--mute); }
table.signals { border-collapse: collapse; font-size: 12.5px; margin-top: 8px; color: var(--mute); }
table.signals th { text-align: left; font-size: 11px; text-transform: uppercase; color: var(--muted); border-bottom: 1px solid var(--border); padding: 4px 8px 4px 0; }
table.signals td { border-bottom: 1px dashed var(--border); padding: 4px 8px 4px 0; vertical-align: top; }
.chips code { display: inline-block; background: var(--soft); border: 1px solid var(--border); border-radius: 4px; padding: 0 5px; margin: 2px 4px 2px 0; overflow-wrap: anywhere; }
.badge { display: inline-block; border: 1px solid; border-radius: 999px; padding: 0 8px; margin: 1px 4px 1px 0; font-size: 12px; font-weight: 600; white-space: nowrap; }
.badge.crit { color: var(--crit); background: var(--crit-bg); border-color: var(--crit-bd); }
.badge.warn { color: var(--warn); background: var(--warn-bg); border-color: var(--warn-bd); }
.badge.info { color: var(--info); background: var(--info-bg); border-color: var(--info-bd); }
.badge.muted { color: var(--mute); background: var(--mute-bg); border-color: var(--mute-bd); }
.env { font-size: 11.5px; font-weight: 600; border-radius: 4px; padding: 0 5px; border: 1px solid var(--border); color: var(--muted); text-transform: uppercase; }
.env.live { color: #067647; border-color: #75e0a7; background: #ecfdf3; }
.sev { font-weight: 600; text-transform: uppercase; font-size: 11.5px; }
.sev.critical, .sev.high { color: var(--crit); }
.sev.medium { color: var(--warn); }
.sev.low, .sev.info { color: var(--mute); }
table.keys { width: 100%; border-collapse: collapse; font-size: 12.5px; font-variant-numeric: tabular-nums; }
table.keys th { text-align: left; font-size: 11px; text-transform: uppercase; letter-spacing: 0.02em; color: var(--muted); border-bottom: 2px solid var(--border); padding: 6px 5px; white-space: nowrap; }
table.keys td { border-bottom: 1px solid var(--border); padding: 6px 5px; vertical-align: top; }
table.keys .badge { font-size: 0.88em; padding: 0 6px; }
table.keys td.n, table.keys th.n { text-align: right; white-space: nowrap; }
table.keys tr.flagged td:first-child { box-shadow: inset 3px 0 0 var(--crit-bd); }
table.keys .owner { color: var(--muted); font-size: 0.94em; overflow-wrap: anywhere; }
table.keys .errs { font-size: 0.96em; }
table.keys .errs div, .nw { white-space: nowrap; }
table.keys td:first-child { min-width: 150px; }
.scroll { overflow-x: auto; }
.up { color: #b54708; }
.down { color: #175cd3; }
.overdue { color: var(--crit); font-weight: 600; }
.soon { color: var(--warn); font-weight: 600; }
.dim { color: var(--muted); }
figure { margin: 0 0 8px; }
figcaption { color: var(--muted); font-size: 12.5px; margin: 2px 0 8px; }
svg { display: block; max-width: 100%; height: auto; }
svg.chart { width: 100%; height: auto; }
svg.spark { max-width: none; }
svg.spark.fluid { width: 100%; height: 44px; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: #57606a; }
svg text.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; fill: #1f2328; }
svg .grid { stroke: #eaeef2; stroke-width: 1; }
svg .axis { stroke: #8c959f; stroke-width: 1; }
svg .line { fill: none; stroke: var(--c); stroke-width: 2; stroke-linejoin: round; }
svg .dashed { stroke-dasharray: 6 3; }
svg .seg { fill: var(--c); }
svg.spark .req { fill: none; stroke: #0969da; stroke-width: 1.4; }
svg.spark .area { fill: #ddf4ff; stroke: none; }
svg.spark .err { fill: none; stroke: #cf222e; stroke-width: 1.2; }
svg.spark .base { stroke: #d0d7de; stroke-width: 1; }
.k0 { --c: #0072b2; } .k1 { --c: #e69f00; } .k2 { --c: #009e73; } .k3 { --c: #cc79a7; }
.k4 { --c: #0072b2; } .k5 { --c: #e69f00; } .k6 { --c: #009e73; } .k7 { --c: #cc79a7; }
.e0 { --c: #d55e00; } .e1 { --c: #0072b2; } .e2 { --c: #e69f00; } .e3 { --c: #009e73; }
.e4 { --c: #cc79a7; } .e5 { --c: #56b4e9; } .e6 { --c: #b8a100; } .eo { --c: #a0a7b0; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 18px; list-style: none; padding: 0; margin: 4px 0 0; font-size: 12.5px; }
.legend li { display: flex; align-items: center; gap: 6px; }
.legend .sw { display: inline-block; width: 12px; height: 12px; border-radius: 2px; background: var(--c); }
.legend svg { display: inline-block; }
.legend .count { color: var(--muted); }
.empty { color: var(--muted); font-style: italic; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--border); padding-top: 8px; }
svg, .badge, .env, .tile, .sw, .card { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
@page { margin: 12mm; }
@media (max-width: 900px) { .tiles { grid-template-columns: repeat(2, minmax(0, 1fr)); } .cards { grid-template-columns: 1fr; } .facts { grid-template-columns: repeat(3, auto); } }
@media print {
  body { font-size: 9.5pt; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; page-break-after: avoid; margin-top: 18pt; }
  .tiles { grid-template-columns: repeat(5, minmax(0, 1fr)); }
  .tile { background: #fff; }
  .cards { display: block; }
  .card { margin-bottom: 10pt; }
  figure { break-inside: avoid; page-break-inside: avoid; }
  table.keys { font-size: 8pt; }
  table.keys th, table.keys td { padding: 3pt 4pt; }
  table.keys thead { display: table-header-group; }
  table.keys tr { break-inside: avoid; page-break-inside: avoid; }
  .scroll { overflow: visible; }
  table.keys td:first-child { min-width: 0; }
  table.keys td:first-child code { white-space: nowrap; }
  table.keys .errs div, table.keys .badge, .nw { white-space: normal; }
  table.keys .badge { border-radius: 4px; }
  table.keys .trend svg { width: 64px; height: auto; }
  .tile.alert { background: #fff; }
}
</style>
</head>
<body>
<main>
<header>
<h1>{{.Title}}</h1>
<p class="sub"><span>{{.Span}}</span><span>previous period {{.PrevSpan}}</span></p>
<p class="sub"><span>generated {{.Generated}}</span><span>database <code>{{.Database}}</code></span><span>keys are shown as masked hints</span></p>
</header>

<section class="tiles" aria-label="Totals">
{{- range .Tiles}}
<div class="tile{{if .Class}} {{.Class}}{{end}}"><div class="label">{{.Label}}</div><div class="value">{{.Value}}</div><div class="note">{{.Note}}</div></div>
{{- end}}
</section>

<section id="attention">
<h2>Needs attention ({{len .Flagged}})</h2>
{{- if not .Flagged}}
<p class="empty">No key is flagged in this period.</p>
{{- else}}
<div class="cards">
{{- range .Flagged}}
<article class="card {{.Level}}" aria-labelledby="card-{{.ID}}">
<header>
<h3 id="card-{{.ID}}"><code title="key id {{.KeyID}}">{{.Label}}</code></h3>
<span class="env {{.Env}}">{{.Env}}</span>
{{- if .Owner}}<span class="owner">{{.Owner}}</span>{{end}}
<div class="badges">{{range .Badges}}<span class="badge {{.Level}}" title="{{.Flag}}">{{.Text}}</span>{{end}}</div>
</header>
<dl class="facts">
<div><dt>Requests</dt><dd>{{.Requests}} <span class="{{.ChangeClass}}">{{.Change}}</span></dd></div>
<div><dt>Success</dt><dd>{{.Success}}</dd></div>
<div><dt>p50/p95 ms</dt><dd>{{.Latency}}</dd></div>
<div><dt>IPs</dt><dd>{{.IPs}}</dd></div>
<div><dt>Last seen</dt><dd title="{{.LastSeenAt}}">{{.LastSeen}}</dd></div>
<div><dt>Rotation</dt><dd class="{{.RotClass}}">{{.Rotation}}</dd></div>
</dl>
<ul>
{{- range .Sentences}}
<li><strong>{{.Title}}:</strong> {{.Text}}</li>
{{- end}}
</ul>
{{- if .Findings}}
<div class="section"><div class="h">Alerted findings</div>
<table class="findings">
{{- range .Findings}}
<tr><td><span class="sev {{.Severity}}">{{.Severity}}</span></td><td><code>{{.Rule}}</code></td><td>{{.Summary}}</td><td class="dim">{{.Time}}</td></tr>
{{- end}}
</table></div>
{{- end}}
{{- if .Signals}}
<div class="section signals"><div class="h">Signals · recorded, not alerted</div>
<table class="findings">
{{- range .Signals}}
<tr><td><span class="sev {{.Severity}}">{{.Severity}}</span></td><td><code>{{.Rule}}</code> {{.Count}}</td><td>{{.Summary}}</td><td class="dim">latest {{.Latest}}</td></tr>
{{- end}}
</table></div>
{{- end}}
{{- if .Outside}}
<div class="section"><div class="h">Outside the allowlist · {{.OutsideN}}</div>
<div class="chips">{{range .Outside}}<code>{{.}}</code>{{end}}</div>
<div class="dim">allowlist: {{.Allowed}}</div></div>
{{- end}}
{{- if .ErrorList}}
<div class="section"><div class="h">Errors</div><div class="chips">{{range .ErrorList}}<code>{{.}}</code>{{end}}</div></div>
{{- end}}
{{- if .Paths}}
<div class="section"><div class="h">Top paths</div><div class="chips">{{range .Paths}}<code>{{.}}</code>{{end}}</div></div>
{{- end}}
<div class="section"><div class="h">Requests over the period</div>{{template "spark" .Big}}</div>
</article>
{{- end}}
</div>
{{- end}}
</section>

{{- with .Signals}}
<section id="signals">
<h2>Signals — recorded, not alerted ({{.Total}})</h2>
<p class="dim">Findings of info or low severity: never alerted on their own, listed here for review. {{.Keys}}</p>
<div class="chips">{{range .Rules}}<code>{{.}}</code>{{end}}</div>
{{- if .Top}}
<table class="signals">
<thead><tr><th>Key / owner</th><th>Signals</th><th>Rules</th><th>Latest</th></tr></thead>
<tbody>
{{- range .Top}}
<tr><td><code title="key id {{.KeyID}}">{{.Label}}</code>{{if .Owner}} <span class="dim">{{.Owner}}</span>{{end}}</td><td>{{.Count}}</td><td>{{.Rules}}</td><td>{{.Latest}}</td></tr>
{{- end}}
</tbody>
</table>
{{- if .Hidden}}<p class="dim">and {{.Hidden}} more keys with signals, flagged in the table below.</p>{{end}}
{{- end}}
</section>
{{- end}}

<section id="charts">
<h2>Requests over time</h2>
{{- with .Lines}}
<figure>
<svg class="chart" viewBox="0 0 {{.W}} {{.H}}" width="{{.W}}" height="{{.H}}" role="img" aria-labelledby="lines-title lines-desc">
<title id="lines-title">{{.Title}}</title>
<desc id="lines-desc">{{.Desc}}</desc>
{{- range .YTicks}}
<line class="grid" x1="{{.X1}}" y1="{{.Y1}}" x2="{{.X2}}" y2="{{.Y2}}"/><text x="{{.TX}}" y="{{.TY}}" text-anchor="end">{{.Label}}</text>
{{- end}}
{{- range .XTicks}}
<line class="grid" x1="{{.X1}}" y1="{{.Y1}}" x2="{{.X2}}" y2="{{.Y2}}"/><text x="{{.TX}}" y="{{.TY}}" text-anchor="middle">{{.Label}}</text>{{if .Label2}}<text x="{{.TX}}" y="{{.TY}}" dy="13" text-anchor="middle">{{.Label2}}</text>{{end}}
{{- end}}
<line class="axis" x1="{{.Left}}" y1="{{.Bottom}}" x2="{{.Right}}" y2="{{.Bottom}}"/>
<line class="axis" x1="{{.Left}}" y1="{{.Top}}" x2="{{.Left}}" y2="{{.Bottom}}"/>
<text x="{{.AxisLabelX}}" y="{{.AxisLabelY}}" text-anchor="middle">time (UTC)</text>
{{- range .Lines}}
<polyline class="line {{.Class}}" points="{{.Points}}"><title>{{.Label}}: {{.Total}} requests</title></polyline>
{{- end}}
</svg>
<figcaption>{{.Title}}.</figcaption>
<ul class="legend" aria-label="Legend">
{{- range .Lines}}
<li><svg width="28" height="10" viewBox="0 0 28 10" aria-hidden="true"><line class="line {{.Class}}" x1="1" y1="5" x2="27" y2="5"/></svg><code>{{.Label}}</code>{{if .Owner}} <span class="dim">{{.Owner}}</span>{{end}} <span class="count">{{.Total}}</span></li>
{{- end}}
</ul>
</figure>
{{- else}}
<p class="empty">No requests in this period.</p>
{{- end}}

<h2>Error mix</h2>
{{- with .Errors}}
<figure>
<svg class="chart" viewBox="0 0 {{.W}} {{.H}}" width="{{.W}}" height="{{.H}}" role="img" aria-labelledby="errors-title errors-desc">
<title id="errors-title">{{.Title}}</title>
<desc id="errors-desc">{{.Desc}}</desc>
{{- range .XTicks}}
<line class="grid" x1="{{.X1}}" y1="{{.Y1}}" x2="{{.X2}}" y2="{{.Y2}}"/><text x="{{.TX}}" y="{{.TY}}" text-anchor="middle">{{.Label}}</text>
{{- end}}
{{- range .Rows}}
<g><text class="mono" x="{{.LabelX}}" y="{{.LabelY}}" text-anchor="end">{{.Label}}</text>
{{- range .Segs}}<rect class="seg {{.Class}}" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}"><title>{{.Title}}</title></rect>{{end}}
<text x="{{.TotalX}}" y="{{.TotalY}}">{{.Total}}</text></g>
{{- end}}
</svg>
<figcaption>{{.Title}}{{if .Hidden}}; {{.Hidden}} more keys with fewer failures are not shown{{end}}.</figcaption>
<ul class="legend" aria-label="Legend">
{{- range .Legend}}
<li><span class="sw {{.Class}}"></span><code>{{.Label}}</code> <span class="count">{{.Count}}</span></li>
{{- end}}
</ul>
</figure>
{{- else}}
<p class="empty">No failed requests in this period.</p>
{{- end}}
</section>

<section id="keys">
<h2>All keys ({{len .Rows}})</h2>
{{- if .Rows}}
<div class="scroll">
<table class="keys">
<thead><tr><th>Key / owner</th><th>Env</th><th class="n">Requests</th><th class="n">Change</th><th class="n">Success</th><th>Top errors</th><th class="n">IPs</th><th class="n">Outside</th><th class="n">p50/p95 ms</th><th>Last seen</th><th>Rotation</th><th>Flags</th><th>Trend</th></tr></thead>
<tbody>
{{- range .Rows}}
<tr id="{{.ID}}"{{if .Flagged}} class="flagged"{{end}}>
<td><code title="key id {{.KeyID}}">{{.Label}}</code>{{if .Owner}}<div class="owner">{{.Owner}}</div>{{end}}</td>
<td><span class="env {{.Env}}">{{.Env}}</span></td>
<td class="n">{{.Requests}}</td>
<td class="n {{.ChangeClass}}">{{.Change}}</td>
<td class="n">{{.Success}}</td>
<td class="errs">{{range .Errors}}<div>{{.}}</div>{{else}}<span class="dim">—</span>{{end}}</td>
<td class="n">{{.IPs}}</td>
<td class="n">{{.Outside}}</td>
<td class="n">{{.Latency}}</td>
<td class="nw" title="{{.LastSeenAt}}">{{.LastSeen}}</td>
<td class="nw {{.RotClass}}">{{.Rotation}}</td>
<td>{{range .Badges}}<span class="badge {{.Level}}" title="{{.Flag}}">{{.Text}}</span>{{else}}<span class="dim">—</span>{{end}}</td>
<td class="trend">{{template "spark" .Spark}}</td>
</tr>
{{- end}}
</tbody>
</table>
</div>
{{- else}}
<p class="empty">No keys in this period.</p>
{{- end}}
</section>

<footer>auditwatch · {{.Title}} · {{.Span}} · generated {{.Generated}}. Full keys are never shown; text from the logs is masked and escaped.</footer>
</main>
</body>
</html>
{{define "spark"}}{{if .Empty}}<span class="dim">no data</span>{{else}}<svg class="spark{{if .Fluid}} fluid{{end}}" viewBox="0 0 {{.W}} {{.H}}" width="{{.W}}" height="{{.H}}"{{if .Fluid}} preserveAspectRatio="none"{{end}} role="img"><title>{{.Title}}</title><polygon class="area" points="{{.Area}}"/><polyline class="req" points="{{.Req}}" vector-effect="non-scaling-stroke"/>{{if .Err}}<polyline class="err" points="{{.Err}}" vector-effect="non-scaling-stroke"/>{{end}}</svg>{{end}}{{end}}
`
