package detect

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/auditwatch/auditwatch/rules"
)

// hourStats is one key's use in one hour, from key_usage.
type hourStats struct {
	requests, successes, ips, bytesOut float64
}

func (h hourStats) add(o hourStats) hourStats {
	return hourStats{h.requests + o.requests, h.successes + o.successes, h.ips + o.ips, h.bytesOut + o.bytesOut}
}

// measure returns the value of m; ok is false when it is undefined (an
// error rate without requests).
func (h hourStats) measure(m string) (float64, bool) {
	switch m {
	case "requests":
		return h.requests, true
	case "errors":
		return h.requests - h.successes, true
	case "error_rate":
		if h.requests == 0 {
			return 0, false
		}
		return (h.requests - h.successes) / h.requests, true
	case "distinct_ips":
		return h.ips, true
	case "bytes_out":
		return h.bytesOut, true
	}
	return 0, false
}

type keySeries struct {
	hours     map[int64]hourStats
	firstHour time.Time
	hint, acc string
}

// sum adds the hours of [from, to).
func (k *keySeries) sum(from, to time.Time) hourStats {
	var s hourStats
	for t := from; t.Before(to); t = t.Add(time.Hour) {
		s = s.add(k.hours[t.Unix()])
	}
	return s
}

// spike compares each key's measure over the window (whole hours, read
// from key_usage) with the same measure over baseline windows of its
// own history — the same hours of the previous days (seasonality daily) or
// every earlier window (none) — with a robust z-score,
// 0.6745·(x − median)/MAD. Keys with fewer than min_samples baseline
// windows since they first appeared are in warm-up and never fire.
func (e *Engine) spike(ctx context.Context, r *rules.Rule, w Window) ([]Finding, error) {
	end := w.To.Truncate(time.Hour)
	start := end.Add(-r.Window.D())
	from := start.Add(-time.Duration(r.BaselineDays+1) * 24 * time.Hour)
	series, err := e.hourly(ctx, from, end)
	if err != nil {
		return nil, err
	}
	th := r.ThresholdFor(nil)
	ids := make([]string, 0, len(series))
	for id := range series {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []Finding
	for _, id := range ids {
		ks := series[id]
		if r.ExceptedKey(id) {
			continue
		}
		sc, ok := spikeScore(r, ks, start, end)
		if !ok || !fires(r.Direction, sc.z, th) {
			continue
		}
		cur := ks.sum(start, end)
		vol := cur.requests
		if r.Direction == "down" {
			vol = sc.medianRequests
		}
		if vol < r.MinVolume {
			continue
		}
		// The episode: how many windows back the key has been anomalous.
		episode := start
		for i := 1; i <= 24; i++ {
			s := start.Add(-time.Duration(i) * r.Window.D())
			prev, ok := spikeScore(r, ks, s, s.Add(r.Window.D()))
			if !ok || !fires(r.Direction, prev.z, th) {
				break
			}
			episode = s
		}
		f := newFinding(r, Window{Eval: w.Eval, From: start, To: end}, map[string]string{"key_id": id}, []string{"key_id"})
		f.KeyHint, f.AccountID = ks.hint, ks.acc
		f.Value, f.Threshold = round3(sc.x), round3(sc.median)
		first, last := start, end
		f.Evidence = Evidence{Requests: uint64(cur.requests), FirstSeen: &first, LastSeen: &last, Details: map[string]any{
			"measure": r.Measure, "observed": round3(sc.x), "baseline_median": round3(sc.median), "baseline_mad": round3(sc.mad),
			"score": round3(sc.z), "score_threshold": th, "baseline_samples": sc.n, "seasonality": r.Seasonality,
			"episode_start": episode.UTC().Format(time.RFC3339),
		}}
		f.Summary = fmt.Sprintf("%s: %s %s %s in the %s to %s UTC against a usual %s (robust score %.1f over %d %s baseline windows; anomalous since %s)",
			r.Name, ks.hintOr(id), r.Measure, fmtMeasure(r.Measure, sc.x), r.Window, end.Format("15:04"), fmtMeasure(r.Measure, sc.median),
			sc.z, sc.n, r.Seasonality, episode.Format("01-02 15:04"))
		escalate(r, &f)
		out = append(out, f)
	}
	return out, nil
}

func (k *keySeries) hintOr(id string) string {
	if k.hint != "" {
		return k.hint
	}
	return id
}

type score struct {
	x, median, mad, z, medianRequests float64
	n                                 int
}

// spikeScore scores the window [start, end) of one key; ok is false in
// warm-up or when the measure is undefined.
func spikeScore(r *rules.Rule, ks *keySeries, start, end time.Time) (score, bool) {
	cur := ks.sum(start, end)
	x, ok := cur.measure(r.Measure)
	if !ok {
		return score{}, false
	}
	win := end.Sub(start)
	var samples, reqs []float64
	add := func(s time.Time) {
		if s.Before(ks.firstHour) {
			return // before the key existed: not a sample
		}
		h := ks.sum(s, s.Add(win))
		if v, ok := h.measure(r.Measure); ok {
			samples = append(samples, v)
			reqs = append(reqs, h.requests)
		}
	}
	if r.Seasonality == "none" {
		for s := start.Add(-win); !s.Before(start.Add(-time.Duration(r.BaselineDays) * 24 * time.Hour)); s = s.Add(-win) {
			add(s)
		}
	} else {
		for d := 1; d <= r.BaselineDays; d++ {
			add(start.Add(-time.Duration(d) * 24 * time.Hour))
		}
	}
	if len(samples) < r.MinSamples {
		return score{}, false
	}
	med := median(samples)
	dev := make([]float64, len(samples))
	for i, v := range samples {
		dev[i] = math.Abs(v - med)
	}
	mad := median(dev)
	// A flat history has MAD 0: floor the spread so that tiny absolute
	// changes of a steady key are not infinite scores.
	floor := 1.0
	if r.Measure == "error_rate" {
		floor = 0.01
	}
	spread := math.Max(mad, math.Max(0.05*math.Abs(med), floor))
	z := 0.6745 * (x - med) / spread
	return score{x: x, median: med, mad: mad, z: z, n: len(samples), medianRequests: median(reqs)}, true
}

func fires(direction string, z, th float64) bool {
	switch direction {
	case "down":
		return z <= -th
	case "both":
		return math.Abs(z) >= th
	}
	return z >= th
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func fmtMeasure(m string, v float64) string {
	if m == "error_rate" {
		return fmt.Sprintf("%.1f%%", 100*v)
	}
	return fmt.Sprintf("%.0f", v)
}

// hourly reads every key's hourly use in [from, to) from the rollup.
func (e *Engine) hourly(ctx context.Context, from, to time.Time) (map[string]*keySeries, error) {
	reg, err := e.registry(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := e.conn.Query(ctx, "SELECT "+reg.kid+" AS kid, hour, countMerge(requests), countIfMerge(successes), uniqExact(client_ip), sumMerge(bytes_out), anyMerge(key_hint), anyMerge(account_id) FROM "+
		e.table("key_usage")+" WHERE hour >= toDateTime(?) AND hour < toDateTime(?) AND key_id != '' GROUP BY kid, hour", uint32(from.Unix()), uint32(to.Unix()))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]*keySeries{}
	for rows.Next() {
		var id, hint, acc string
		var h time.Time
		var n, ok, ips, bytes uint64
		if err := rows.Scan(&id, &h, &n, &ok, &ips, &bytes, &hint, &acc); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		ks := out[id]
		if ks == nil {
			ks = &keySeries{hours: map[int64]hourStats{}, firstHour: h}
			out[id] = ks
		}
		ks.hours[h.Unix()] = hourStats{float64(n), float64(ok), float64(ips), float64(bytes)}
		if h.Before(ks.firstHour) {
			ks.firstHour = h
		}
		if hint != "" {
			ks.hint = hint
		}
		if acc != "" {
			ks.acc = acc
		}
	}
	return out, rows.Err()
}

// dormant: keys used in the window (whole hours, from key_usage) after at
// least dormant_for without use
// (by the rollups, or the registry's last use when the rollups do not reach
// back), escalated when the use comes from a network the key never used.
func (e *Engine) dormant(ctx context.Context, r *rules.Rule, w Window) ([]Finding, error) {
	// Whole hours of the rollup: the window ends at the last hour boundary.
	end := w.To.Truncate(time.Hour)
	w = Window{Eval: w.Eval, From: end.Add(-r.Window.D()).Truncate(time.Hour), To: end}
	type use struct {
		n         uint64
		first     time.Time
		hint, acc string
	}
	cur := map[string]*use{}
	reg, err := e.registry(ctx)
	if err != nil {
		return nil, err
	}
	kid := reg.kid
	rows, err := e.conn.Query(ctx, "SELECT "+kid+" AS kid, countMerge(requests), minMerge(first_seen), anyMerge(key_hint), anyMerge(account_id) FROM "+e.table("key_usage")+
		" WHERE hour >= toDateTime(?) AND hour < toDateTime(?) AND key_id != '' GROUP BY kid",
		uint32(w.From.Unix()), uint32(w.To.Unix()))
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id string
		u := &use{}
		if err := rows.Scan(&id, &u.n, &u.first, &u.hint, &u.acc); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan: %w", err)
		}
		cur[id] = u
	}
	rows.Close()
	if len(cur) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, len(cur))
	for id := range cur {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	// Last use before the window, as far back as the rollup goes.
	prev := map[string]time.Time{}
	var q query
	q.add("SELECT "+kid+" AS kid, maxMerge(last_seen) FROM "+e.table("key_usage")+" WHERE hour < toStartOfHour(toDateTime(?)) AND kid", uint32(w.From.Unix()))
	q.in(ids)
	q.add(" GROUP BY kid")
	if err := e.scanTimes(ctx, &q, prev); err != nil {
		return nil, err
	}
	// Networks used before the window, and in it.
	before, during := map[string]map[string]bool{}, map[string]map[string]bool{}
	var qn query
	qn.add("SELECT "+kid+" AS kid, client_net, hour >= toDateTime(?) AS in_window FROM "+e.table("key_usage")+" WHERE hour < toDateTime(?) AND kid", uint32(w.From.Unix()), uint32(w.To.Unix()))
	qn.in(ids)
	qn.add(" GROUP BY kid, client_net, in_window")
	nrows, err := e.conn.Query(ctx, qn.sql.String(), qn.args...)
	if err != nil {
		return nil, err
	}
	for nrows.Next() {
		var id, net string
		var inWin uint8
		if err := nrows.Scan(&id, &net, &inWin); err != nil {
			nrows.Close()
			return nil, fmt.Errorf("scan: %w", err)
		}
		m := before
		if inWin == 1 {
			m = during
		}
		if m[id] == nil {
			m[id] = map[string]bool{}
		}
		m[id][net] = true
	}
	nrows.Close()
	idx := reg.idx
	var out []Finding
	for _, id := range ids {
		u := cur[id]
		last, known := prev[id]
		source := "access log"
		if k := idx[id]; k != nil && k.LastUsedAt != nil && (!known || k.LastUsedAt.After(last)) {
			last, known, source = k.LastUsedAt.UTC(), true, "key registry"
		}
		if !known || w.From.Sub(last) < r.DormantFor.D() || r.ExceptedKey(id) {
			continue // a new key, or not silent long enough
		}
		var newNets []string
		for net := range during[id] {
			if !before[id][net] {
				newNets = append(newNets, net)
			}
		}
		sort.Strings(newNets)
		f := newFinding(r, w, map[string]string{"key_id": id}, []string{"key_id"})
		f.KeyHint, f.AccountID = u.hint, u.acc
		if k := idx[id]; k != nil {
			f.KeyHint = firstNonEmpty(f.KeyHint, k.Hint)
		}
		silent := w.From.Sub(last)
		f.Value, f.Threshold = days(silent), days(r.DormantFor.D())
		first := u.first.UTC()
		f.Evidence = Evidence{Requests: u.n, FirstSeen: &first, Details: map[string]any{
			"silent_days": days(silent), "last_use": last.Format(time.RFC3339), "last_use_source": source,
			"new_networks": newNets, "network_history": len(before[id]) > 0,
		}}
		where := "from its usual networks"
		switch {
		case len(before[id]) == 0:
			where = "(no network history to compare with)"
		case len(newNets) > 0:
			where = fmt.Sprintf("from new network(s) %v", newNets)
		}
		f.Summary = fmt.Sprintf("%s: key %s used again (%d requests) after %.0f days of silence %s", r.Name, f.KeyHint, u.n, days(silent), where)
		if len(before[id]) > 0 && r.EscalateAt != nil && float64(len(newNets)) >= *r.EscalateAt {
			f.Severity = r.EscalateTo
		}
		out = append(out, f)
	}
	return out, nil
}

func (e *Engine) scanTimes(ctx context.Context, q *query, out map[string]time.Time) error {
	rows, err := e.conn.Query(ctx, q.sql.String(), q.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var t time.Time
		if err := rows.Scan(&id, &t); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		out[id] = t.UTC()
	}
	return rows.Err()
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
