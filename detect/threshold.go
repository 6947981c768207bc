package detect

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/auditwatch/auditwatch/rules"
)

// groupSelect returns the select list for group_by fields, aliased g0, g1,
// …; kid is the expression for key_id (registered keys by registry id).
func groupSelect(groupBy []string, kid string) (string, error) {
	parts := make([]string, 0, len(groupBy))
	for i, g := range groupBy {
		f, ok := rules.LookupField(g)
		if !ok {
			return "", fmt.Errorf("unknown group_by field %q", g)
		}
		expr := f.Expr
		if g == "key_id" {
			expr = kid
		}
		parts = append(parts, fmt.Sprintf("toString(%s) AS g%d", expr, i))
	}
	return strings.Join(parts, ", "), nil
}

func groupAliases(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("g%d", i)
	}
	return strings.Join(parts, ", ")
}

// evidenceColumns are computed alongside every access-log aggregate.
const evidenceColumns = `uniqExact(request_id) AS requests, topK(5)(client_ip) AS top_ips,
	topK(3)(error_code) AS top_codes, groupArray(5)(request_id) AS samples,
	min(ts) AS first_seen, max(ts) AS last_seen, any(key_hint) AS hint, any(account_id) AS account,
	toFloat64(quantileExact(0.5)(ifNull(clock_offset_s, 0))) AS median_offset,
	toFloat64(max(ifNull(clock_offset_s, 0)) - min(ifNull(clock_offset_s, 0))) AS offset_spread`

// aggRow is one group of an access-log aggregate.
type aggRow struct {
	Groups       []string
	Value        float64
	Requests     uint64
	TopIPs       []string
	TopCodes     []string
	Samples      []string
	FirstSeen    time.Time
	LastSeen     time.Time
	Hint         string
	Account      string
	MedianOffset float64
	OffsetSpread float64
}

func (a aggRow) evidence() Evidence {
	first, last := a.FirstSeen.UTC(), a.LastSeen.UTC()
	ev := Evidence{Requests: a.Requests, TopClientIPs: a.TopIPs, SampleRequestIDs: a.Samples, FirstSeen: &first, LastSeen: &last}
	for _, c := range a.TopCodes {
		if c != "" {
			ev.TopErrorCodes = append(ev.TopErrorCodes, c)
		}
	}
	if a.MedianOffset != 0 || a.OffsetSpread != 0 {
		ev.Details = map[string]any{"median_clock_offset_s": a.MedianOffset, "clock_offset_spread_s": a.OffsetSpread}
	}
	return ev
}

// aggregate runs "SELECT groups, value, evidence FROM access_log WHERE
// window AND filter GROUP BY groups HAVING value >= min" and scans the rows.
func (e *Engine) aggregate(ctx context.Context, r *rules.Rule, w Window, valueExpr string, having float64) ([]aggRow, error) {
	var q query
	reg, err := e.registry(ctx)
	if err != nil {
		return nil, err
	}
	gsel, err := groupSelect(r.GroupBy, reg.kid)
	if err != nil {
		return nil, err
	}
	q.add("SELECT ")
	if gsel != "" {
		q.add(gsel + ", ")
	}
	q.add(valueExpr + " AS value, " + evidenceColumns + " FROM " + e.table("access_log") + " WHERE ")
	q.window(w)
	if err := q.filter(r.Filter); err != nil {
		return nil, err
	}
	if len(r.GroupBy) > 0 {
		q.add(" GROUP BY " + groupAliases(len(r.GroupBy)))
	}
	q.add(" HAVING value >= ? ORDER BY value DESC LIMIT ?", having, uint64(e.MaxGroups))
	rows, err := e.conn.Query(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []aggRow
	for rows.Next() {
		var a aggRow
		a.Groups = make([]string, len(r.GroupBy))
		dest := make([]any, 0, len(r.GroupBy)+12)
		for i := range a.Groups {
			dest = append(dest, &a.Groups[i])
		}
		var value, requests uint64
		dest = append(dest, &value, &requests, &a.TopIPs, &a.TopCodes, &a.Samples, &a.FirstSeen, &a.LastSeen, &a.Hint, &a.Account, &a.MedianOffset, &a.OffsetSpread)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		a.Value, a.Requests = float64(value), requests
		out = append(out, a)
	}
	return out, rows.Err()
}

// threshold: count (or distinct count) per group over the window against
// the threshold (with per-group overrides).
func (e *Engine) threshold(ctx context.Context, r *rules.Rule, w Window) ([]Finding, error) {
	value := "uniqExact(request_id)"
	what := "requests"
	if d := r.Metric.Distinct; d != "" {
		f, _ := rules.LookupField(d)
		value = "uniqExact(" + f.Expr + ")"
		what = "distinct " + d
	}
	rows, err := e.aggregate(ctx, r, w, value, r.MinThreshold())
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, a := range rows {
		group := map[string]string{}
		for i, g := range r.GroupBy {
			group[g] = a.Groups[i]
		}
		th := r.ThresholdFor(group)
		if a.Value < th {
			continue
		}
		f := newFinding(r, w, group, r.GroupBy)
		f.Value, f.Threshold = a.Value, th
		f.KeyHint, f.AccountID = a.Hint, a.Account
		f.Evidence = a.evidence()
		f.Summary = fmt.Sprintf("%s: %.0f %s in %s (threshold %.0f) for %s", r.Name, a.Value, what, r.Window, th, describe(f.GroupKey))
		escalate(r, &f)
		out = append(out, f)
	}
	return out, nil
}

func describe(groupKey string) string {
	if groupKey == "" {
		return "all traffic"
	}
	return groupKey
}
