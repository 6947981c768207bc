package summary

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// The charts of the HTML report are drawn by the template from the geometry
// computed here; every number is in SVG user units, already rounded, and
// every string goes through html/template's escaping.

// sparkSVG is a small line of a key's requests (and failures) over the period.
type sparkSVG struct {
	W, H  float64
	Req   string // polyline points of requests
	Area  string // polygon points of the area under Req
	Err   string // polyline points of failed requests; "" when none failed
	Title string
	Empty bool // no points at all
	Fluid bool // stretched to the width of its box
}

// svgTick is one axis tick: a grid line from (X1,Y1) to (X2,Y2) and a label
// at (TX,TY), with an optional second line (a date under a time).
type svgTick struct {
	X1, Y1, X2, Y2 float64
	TX, TY         float64
	Label, Label2  string
}

// lineSeriesSVG is one key's line in the combined chart.
type lineSeriesSVG struct {
	Class  string // colour class (k0…k7), plus " dashed" for the second four
	Points string
	Label  string // key hint
	Owner  string
	Total  string // requests in the period
}

// lineChartSVG is requests over time of the busiest keys.
type lineChartSVG struct {
	W, H                     float64
	Left, Right, Top, Bottom float64 // plot box
	XTicks, YTicks           []svgTick
	Lines                    []lineSeriesSVG
	Title, Desc              string
	AxisLabelX, AxisLabelY   float64
}

// barSegSVG is one error code's part of a key's bar.
type barSegSVG struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

// barRowSVG is one key's stacked bar of failed requests by error code.
type barRowSVG struct {
	LabelX, LabelY float64
	Label          string
	Segs           []barSegSVG
	TotalX, TotalY float64
	Total          string
}

// legendItem names a colour class.
type legendItem struct {
	Class string
	Label string
	Count string
}

// barChartSVG is the error mix: a stacked bar per key with failures.
type barChartSVG struct {
	W, H        float64
	Rows        []barRowSVG
	XTicks      []svgTick
	Legend      []legendItem
	Title, Desc string
	Hidden      int // keys with failures left out
}

// r1 rounds to one decimal, for compact SVG.
func r1(v float64) float64 { return math.Round(v*10) / 10 }

// bucketOf is the report's bucket, guessed from a series when unset.
func bucketOf(r *Report) time.Duration {
	if r.Bucket > 0 {
		return r.Bucket
	}
	for _, k := range r.Keys {
		if len(k.Series) >= 2 {
			if d := k.Series[1].T.Sub(k.Series[0].T); d > 0 {
				return d
			}
		}
	}
	return time.Hour
}

// newSpark draws k's series (points bucket apart) in a w×h box.
func newSpark(k *KeySummary, bucket time.Duration, w, h float64) sparkSVG {
	s := sparkSVG{W: w, H: h, Title: fmt.Sprintf("Requests per %s of %s: %s in the period", fmtBucket(bucket), keyLabel(k), fmtCount(k.Requests))}
	n := len(k.Series)
	if n == 0 {
		s.Empty = true
		return s
	}
	var top uint64
	var anyErr bool
	for _, p := range k.Series {
		top = max(top, p.Requests, p.Errors)
		anyErr = anyErr || p.Errors > 0
	}
	const pad = 1.5
	x := func(i int) float64 {
		if n == 1 {
			return w / 2
		}
		return r1(pad + float64(i)*(w-2*pad)/float64(n-1))
	}
	y := func(v uint64) float64 {
		if top == 0 {
			return r1(h - pad)
		}
		return r1(h - pad - float64(v)/float64(top)*(h-2*pad))
	}
	var req, errs []byte
	for i, p := range k.Series {
		req = fmt.Appendf(req, "%g,%g ", x(i), y(p.Requests))
		errs = fmt.Appendf(errs, "%g,%g ", x(i), y(p.Errors))
	}
	s.Req = string(req)
	s.Area = fmt.Sprintf("%g,%g %s%g,%g", x(0), r1(h-pad), s.Req, x(n-1), r1(h-pad))
	if anyErr {
		s.Err = string(errs)
		s.Title += fmt.Sprintf(", %s failed", fmtCount(errorCount(k)))
	}
	return s
}

// newLineChart draws the requests of keys (up to eight) over [From, To).
func newLineChart(r *Report, keys []*KeySummary) lineChartSVG {
	c := lineChartSVG{W: 960, H: 300, Left: 58, Right: 944, Top: 14, Bottom: 252}
	c.AxisLabelX, c.AxisLabelY = r1((c.Left+c.Right)/2), c.Bottom+44
	bucket := bucketOf(r)
	from, to := r.From, r.To
	if !to.After(from) {
		to = from.Add(bucket)
	}
	span := to.Sub(from)
	var top uint64
	for _, k := range keys {
		for _, p := range k.Series {
			top = max(top, p.Requests)
		}
	}
	step, yMax := niceScale(float64(top), 4)
	xOf := func(t time.Time) float64 {
		return r1(c.Left + float64(t.Sub(from))/float64(span)*(c.Right-c.Left))
	}
	yOf := func(v float64) float64 { return r1(c.Bottom - v/yMax*(c.Bottom-c.Top)) }

	for v := 0.0; v <= yMax+step/2; v += step {
		y := yOf(v)
		c.YTicks = append(c.YTicks, svgTick{X1: c.Left, Y1: y, X2: c.Right, Y2: y, TX: c.Left - 8, TY: r1(y + 4), Label: fmtCompact(v)})
	}
	for _, t := range timeTicks(from, to, 8) {
		x := xOf(t.at)
		c.XTicks = append(c.XTicks, svgTick{X1: x, Y1: c.Top, X2: x, Y2: c.Bottom, TX: x, TY: c.Bottom + 16, Label: t.label, Label2: t.label2})
	}
	for i, k := range keys {
		var pts []byte
		for _, p := range k.Series {
			pts = fmt.Appendf(pts, "%g,%g ", xOf(p.T.Add(bucket/2)), yOf(float64(p.Requests)))
		}
		class := fmt.Sprintf("k%d", i%8)
		if i >= 4 {
			class += " dashed"
		}
		c.Lines = append(c.Lines, lineSeriesSVG{Class: class, Points: string(pts), Label: keyLabel(k),
			Owner: ownerLabel(k), Total: fmtCount(k.Requests)})
	}
	c.Title = fmt.Sprintf("Requests per %s of the %d busiest keys, %s", fmtBucket(bucket), len(keys), fmtSpan(from, to))
	c.Desc = fmt.Sprintf("Line chart; the vertical axis goes from 0 to %s requests per %s.", fmtCompact(yMax), fmtBucket(bucket))
	return c
}

func fmtBucket(d time.Duration) string {
	switch d {
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day"
	}
	return d.String()
}

// niceScale returns a round step and the axis maximum (a multiple of step
// at or above top) for about n intervals.
func niceScale(top float64, n int) (step, axisMax float64) {
	if top <= 0 || !isFinite(top) {
		return 1, 1
	}
	raw := top / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step = 10 * mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	if step < 1 {
		step = 1
	}
	return step, math.Ceil(top/step) * step
}

// timeTick is a labelled instant on a time axis.
type timeTick struct {
	at            time.Time
	label, label2 string
}

// timeTicks returns at most n round instants (UTC) in [from, to]: hours for
// short spans, days or weeks for longer ones. A time label gets the date as
// a second line at the first tick and at midnight.
func timeTicks(from, to time.Time, n int) []timeTick {
	span := to.Sub(from)
	steps := []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
		24 * time.Hour, 48 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour, 28 * 24 * time.Hour}
	step := steps[len(steps)-1]
	for _, s := range steps {
		if span/s <= time.Duration(n) {
			step = s
			break
		}
	}
	first := from.UTC().Truncate(step)
	if first.Before(from) {
		first = first.Add(step)
	}
	var out []timeTick
	for t := first; !t.After(to) && len(out) <= n; t = t.Add(step) {
		tk := timeTick{at: t}
		if step < 24*time.Hour {
			tk.label = t.Format("15:04")
			if len(out) == 0 || (t.Hour() == 0 && t.Minute() == 0) {
				tk.label2 = t.Format("Jan 2")
			}
		} else {
			tk.label = t.Format("Jan 2")
		}
		out = append(out, tk)
	}
	return out
}

// errorMixTop is how many error codes get a colour of their own.
const errorMixTop = 7

// errorMixRows is how many keys the error mix shows at most.
const errorMixRows = 16

// newErrorMix draws a stacked bar per key with failures, in the report's
// order: one segment per error code (the errorMixTop most frequent overall,
// then "other").
func newErrorMix(r *Report) barChartSVG {
	c := barChartSVG{W: 960}
	totals := r.Totals.Errors
	if len(totals) == 0 {
		totals = map[string]uint64{}
		for _, k := range r.Keys {
			for code, n := range k.Errors {
				totals[code] += n
			}
		}
	}
	codes := sortedCounts(totals)
	class := map[string]string{}
	for i, cn := range codes {
		if i < errorMixTop {
			class[cn.Value] = fmt.Sprintf("e%d", i)
			c.Legend = append(c.Legend, legendItem{Class: class[cn.Value], Label: cn.Value, Count: fmtCount(cn.N)})
		}
	}
	if len(codes) > errorMixTop {
		var rest uint64
		for _, cn := range codes[errorMixTop:] {
			rest += cn.N
		}
		c.Legend = append(c.Legend, legendItem{Class: "eo", Label: fmt.Sprintf("other (%d codes)", len(codes)-errorMixTop), Count: fmtCount(rest)})
	}

	// The keys with the most failures, shown in the report's order.
	var withErr []*KeySummary
	for i := range r.Keys {
		if keyErrors(&r.Keys[i]) > 0 {
			withErr = append(withErr, &r.Keys[i])
		}
	}
	shown := withErr
	if len(withErr) > errorMixRows {
		cut := slicesSortedByErrors(withErr)[errorMixRows-1]
		shown = nil
		for _, k := range withErr {
			if len(shown) < errorMixRows && keyErrors(k) >= keyErrors(cut) {
				shown = append(shown, k)
			}
		}
		c.Hidden = len(withErr) - len(shown)
	}
	var top uint64
	for _, k := range shown {
		top = max(top, keyErrors(k))
	}
	const left, right, rowH, barH, topPad = 176.0, 860.0, 26.0, 16.0, 6.0
	step, axisMax := niceScale(float64(top), 5)
	xOf := func(v float64) float64 { return r1(left + v/axisMax*(right-left)) }
	for i, k := range shown {
		y := topPad + float64(i)*rowH
		row := barRowSVG{LabelX: left - 10, LabelY: r1(y + barH/2 + 4), Label: ellipsize(keyLabel(k), 22)}
		var acc float64
		seg := func(cls, title string, n uint64) {
			x0, x1 := xOf(acc), xOf(acc+float64(n))
			acc += float64(n)
			row.Segs = append(row.Segs, barSegSVG{X: x0, Y: y, W: r1(max(x1-x0, 0.8)), H: barH, Class: cls, Title: title})
		}
		var other uint64
		for _, cn := range sortedCounts(k.Errors) {
			if cls, ok := class[cn.Value]; ok {
				seg(cls, fmt.Sprintf("%s: %s %s", keyLabel(k), cn.Value, fmtCount(cn.N)), cn.N)
			} else {
				other += cn.N
			}
		}
		if unexplained := keyErrors(k) - sumCounts(k.Errors); unexplained > 0 {
			other += unexplained
		}
		if other > 0 {
			seg("eo", fmt.Sprintf("%s: other errors %s", keyLabel(k), fmtCount(other)), other)
		}
		row.TotalX, row.TotalY = xOf(acc)+8, row.LabelY
		row.Total = fmtCount(keyErrors(k))
		if k.Requests > 0 {
			row.Total += " (" + fmtShare(keyErrors(k), k.Requests) + ")"
		}
		c.Rows = append(c.Rows, row)
	}
	axisY := topPad + float64(len(shown))*rowH + 2
	for v := 0.0; v <= axisMax+step/2; v += step {
		x := xOf(v)
		c.XTicks = append(c.XTicks, svgTick{X1: x, Y1: topPad - 4, X2: x, Y2: axisY, TX: x, TY: axisY + 14, Label: fmtCompact(v)})
	}
	c.H = axisY + 22
	c.Title = fmt.Sprintf("Failed requests by error code for %s", countNoun(len(shown), "key", "keys"))
	c.Desc = "Horizontal stacked bars, one per key; each segment is an error code, the label at the end gives the key's failed requests and their share of its requests."
	return c
}

// fmtShare formats n/total as a percentage: "2.5%", "<0.1%".
func fmtShare(n, total uint64) string {
	if total == 0 {
		return "—"
	}
	p := float64(n) / float64(total) * 100
	if p > 0 && p < 0.1 {
		return "<0.1%"
	}
	return strconv.FormatFloat(p, 'f', 1, 64) + "%"
}

// keyErrors is the key's failed requests: the larger of requests minus
// successes and the sum of its error counts.
func keyErrors(k *KeySummary) uint64 {
	return max(errorCount(k), sumCounts(k.Errors))
}

func sumCounts(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// slicesSortedByErrors returns a copy of keys, most failures first.
func slicesSortedByErrors(keys []*KeySummary) []*KeySummary {
	out := slices.Clone(keys)
	slices.SortStableFunc(out, func(a, b *KeySummary) int { return cmp.Compare(keyErrors(b), keyErrors(a)) })
	return out
}
