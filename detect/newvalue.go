package detect

import (
	"context"
	"fmt"
	"time"

	"github.com/auditwatch/auditwatch/rules"
)

// newValue: values of a field seen in the window for a group that were not
// seen for that group in the lookback before it (a new IP or network for a
// key). Only groups active in the window are looked up in the lookback, and
// only groups with history before the window are reported (a brand-new
// group has nothing to compare with).
func (e *Engine) newValue(ctx context.Context, r *rules.Rule, w Window) ([]Finding, error) {
	if rollupable(r) {
		return e.newValueRollup(ctx, r, w)
	}
	fld, _ := rules.LookupField(r.Field)
	reg, err := e.registry(ctx)
	if err != nil {
		return nil, err
	}
	gsel, err := groupSelect(r.GroupBy, reg.kid)
	if err != nil {
		return nil, err
	}
	ga := groupAliases(len(r.GroupBy))
	lookFrom := w.From.Add(-r.Lookback.D())
	var q query
	q.add("SELECT " + gsel + ", toString(" + fld.Expr + ") AS v, min(ts) AS first_seen, uniqExact(request_id) AS n, groupArray(3)(request_id), any(key_hint), any(account_id), max(ts) FROM " + e.table("access_log") + " WHERE ")
	q.window(Window{From: lookFrom, To: w.To})
	if err := q.filter(r.Filter); err != nil {
		return nil, err
	}
	// Restrict the lookback scan to groups and values active in the window.
	q.add(" AND (" + ga + ", v) IN (SELECT " + gsel + ", toString(" + fld.Expr + ") AS v FROM " + e.table("access_log") + " WHERE ")
	q.window(w)
	if err := q.filter(r.Filter); err != nil {
		return nil, err
	}
	q.add(")")
	// A group with no history before the window is new itself, not using a
	// new value: only groups seen in the lookback count.
	q.add(" AND (" + ga + ") IN (SELECT " + gsel + " FROM " + e.table("access_log") + " WHERE ")
	q.window(Window{From: lookFrom, To: w.From})
	if err := q.filter(r.Filter); err != nil {
		return nil, err
	}
	q.add(")")
	q.add(" GROUP BY "+ga+", v HAVING first_seen >= toDateTime(?) AND n >= ? ORDER BY n DESC LIMIT ?", uint32(w.From.Unix()), r.MinThreshold(), uint64(e.MaxGroups))
	return e.newValueRows(ctx, r, w, &q)
}

// rollupable reports whether the history of r can come from key_usage:
// a new network or address per key, filtered on nothing the rollup lacks.
func rollupable(r *rules.Rule) bool {
	if len(r.GroupBy) != 1 || r.GroupBy[0] != "key_id" || (r.Field != "client_net" && r.Field != "client_ip") {
		return false
	}
	for _, c := range r.Filter {
		if c.Field != "has_key" || c.Op != "eq" || c.Values[0] != "true" {
			return false
		}
	}
	return true
}

// newValueRollup reads the window from access_log and the history from the
// key_usage rollup (whole hours before the window's hour) plus access_log
// for the window's hour up to the window, so the lookback costs little
// however long it is.
func (e *Engine) newValueRollup(ctx context.Context, r *rules.Rule, w Window) ([]Finding, error) {
	col := r.Field
	reg, err := e.registry(ctx)
	if err != nil {
		return nil, err
	}
	kid := reg.kid
	lookFrom := uint32(w.From.Add(-r.Lookback.D()).Unix())
	from := uint32(w.From.Unix())
	var q query
	q.add("SELECT " + kid + " AS g0, " + col + " AS v, min(ts) AS first_seen, uniqExact(request_id) AS n, groupArray(3)(request_id), any(key_hint), any(account_id), max(ts) FROM " + e.table("access_log") + " WHERE ")
	q.window(w)
	q.add(" AND key_id != ''")
	// Not seen for the key in the lookback: rollup days, then the partial day.
	q.add(" AND ("+kid+", "+col+") NOT IN (SELECT "+kid+", "+col+" FROM "+e.table("key_usage")+
		" WHERE hour >= toStartOfHour(toDateTime(?)) AND hour < toStartOfHour(toDateTime(?)))", lookFrom, from)
	q.add(" AND ("+kid+", "+col+") NOT IN (SELECT "+kid+", "+col+" FROM "+e.table("access_log")+
		" WHERE ts >= toStartOfHour(toDateTime(?)) AND ts < toDateTime(?))", from, from)
	// The key itself has history in the lookback.
	q.add(" AND ("+kid+" IN (SELECT "+kid+" FROM "+e.table("key_usage")+" WHERE hour >= toStartOfHour(toDateTime(?)) AND hour < toStartOfHour(toDateTime(?)))", lookFrom, from)
	q.add(" OR "+kid+" IN (SELECT "+kid+" FROM "+e.table("access_log")+" WHERE ts >= toStartOfHour(toDateTime(?)) AND ts < toDateTime(?)))", from, from)
	q.add(" GROUP BY g0, v HAVING n >= ? ORDER BY n DESC LIMIT ?", r.MinThreshold(), uint64(e.MaxGroups))
	return e.newValueRows(ctx, r, w, &q)
}

// newValueRows runs a new_value query and turns its rows into findings.
func (e *Engine) newValueRows(ctx context.Context, r *rules.Rule, w Window, q *query) ([]Finding, error) {
	rows, err := e.conn.Query(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Finding
	for rows.Next() {
		groups := make([]string, len(r.GroupBy))
		var (
			v, hint, account string
			first, last      time.Time
			n                uint64
			samples          []string
		)
		dest := make([]any, 0, len(groups)+7)
		for i := range groups {
			dest = append(dest, &groups[i])
		}
		dest = append(dest, &v, &first, &n, &samples, &hint, &account, &last)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		group := map[string]string{}
		for i, g := range r.GroupBy {
			group[g] = groups[i]
		}
		th := r.ThresholdFor(group)
		if float64(n) < th {
			continue
		}
		order := append(append([]string{}, r.GroupBy...), r.Field)
		group[r.Field] = v
		f := newFinding(r, w, group, order)
		if r.Field == "client_ip" {
			f.ClientIP = v
		}
		f.KeyHint, f.AccountID = hint, account
		f.Value, f.Threshold = float64(n), th
		fs, ls := first.UTC(), last.UTC()
		f.Evidence = Evidence{Requests: n, SampleRequestIDs: samples, FirstSeen: &fs, LastSeen: &ls,
			Details: map[string]any{"new_" + r.Field: v, "lookback": r.Lookback.String()}}
		f.Summary = fmt.Sprintf("%s: first %s %s for %s in %s (%d requests)", r.Name, r.Field, v, describe(groupKey(group, r.GroupBy)), r.Lookback, n)
		escalate(r, &f)
		out = append(out, f)
	}
	return out, rows.Err()
}
