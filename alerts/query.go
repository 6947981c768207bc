package alerts

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/rules"
)

// registryLookback is how far back the query of a registry rule
// (key_rotation, stale_key, ip_allowlist missing) shows a key's traffic.
const registryLookback = 7 * 24 * time.Hour

// InvestigateQuery returns a ClickHouse query an analyst can paste to see
// the events behind findings of r (r may be nil: the findings' rule type is
// used then), with every value a literal (escaped). It is pure: same
// findings, same text.
//
// The events are the access_log rows of the findings' groups — a key by
// both its identities, key_id IN ('<registry id>', '<fingerprint>'), since
// rows where the gateway did not log the registry id carry the fingerprint
// — over the span of their windows, with the rule's filter:
//
//   - threshold: the window, the filter and each finding's group fields;
//   - new_value: the same, including the new value of the rule's field,
//     from the lookback's start, so the result shows that the value first
//     appears in the window;
//   - ip_allowlist outside: the window, the filter, the key and the
//     outside client IPs of the evidence;
//   - spike and dormant: the key over the whole hours the rule read;
//   - key_rotation, stale_key and ip_allowlist missing: the key's registry
//     entry and its requests over the last 7 days;
//   - sql: the rule's own query over the window, narrowed to the findings'
//     groups (it returns group, count and details, not access_log rows).
func InvestigateQuery(db string, r *rules.Rule, fs []detect.Finding) string {
	if len(fs) == 0 {
		return ""
	}
	typ, mode := fs[0].RuleType, ""
	if r != nil {
		typ, mode = r.Type, r.Mode
	}
	if typ == rules.TypeIPAllowlist && mode == "" {
		mode = "missing"
		if _, ok := fs[0].Evidence.Details["allowed_cidrs"]; ok {
			mode = "outside"
		}
	}
	from, to := fs[0].WindowStart, fs[0].WindowEnd
	for _, f := range fs[1:] {
		if f.WindowStart.Before(from) {
			from = f.WindowStart
		}
		if f.WindowEnd.After(to) {
			to = f.WindowEnd
		}
	}
	if typ == rules.TypeSQL && r != nil && strings.TrimSpace(r.Query) != "" {
		return sqlRuleQuery(db, r, fs, from, to)
	}

	filter := r != nil
	var groups []conj
	switch {
	case typ == rules.TypeKeyRotation || typ == rules.TypeStaleKey || (typ == rules.TypeIPAllowlist && mode == "missing"):
		// Registry rules are about the key's registry state (a stale key
		// has no traffic to show): its registry row and its use over the
		// last 7 days from the hourly rollup.
		return registryQuery(db, fs, to)
	case typ == rules.TypeSpike || typ == rules.TypeDormant:
		// Hourly rules: the whole hours they read from the rollup.
		from, filter = from.Truncate(time.Hour), false
		if t := to.Truncate(time.Hour); t.Before(to) {
			to = t.Add(time.Hour)
		}
		groups = keyGroups(fs)
	case typ == rules.TypeIPAllowlist:
		groups = outsideGroups(fs)
	case typ == rules.TypeNewValue:
		if r != nil && r.Lookback > 0 {
			from = from.Add(-r.Lookback.D())
		}
		groups = fieldGroups(fs)
	default:
		groups = fieldGroups(fs)
	}
	if !from.Before(to) {
		from = to.Add(-time.Hour)
	}
	conds := []string{"ts >= " + dateTime(from) + " AND ts < " + dateTime(to)}
	if filter && r.Type != rules.TypeSQL {
		for _, c := range r.Filter {
			if s := conditionSQL(c); s != "" {
				conds = append(conds, s)
			}
		}
	}
	if g := groupsSQL(groups); g != "" {
		conds = append(conds, g)
	}
	return "SELECT ts, request_id, key_id, key_hint, client_ip, method, path, status, error_code, clock_offset_s, user_agent\n" +
		"FROM " + db + ".access_log\nWHERE " + strings.Join(conds, "\n  AND ") + "\nORDER BY ts\nLIMIT 200"
}

// registryQuery shows the registry entries of the findings' keys with their
// requests in the 7 days before to (0 when unused).
func registryQuery(db string, fs []detect.Finding, to time.Time) string {
	var ids []string
	seen := map[string]bool{}
	for _, f := range fs {
		for _, id := range []string{f.KeyID, f.KeyFingerprint} {
			if id != "" && !seen[id] {
				seen[id] = true
				ids = append(ids, quote(id))
			}
		}
	}
	in := strings.Join(ids, ", ")
	return "SELECT k.key_id, k.key_hint, k.env, k.owner, k.status, k.created_at, k.rotated_at, k.allowed_cidrs, k.last_used_at, u.requests_7d\n" +
		"FROM (SELECT * FROM " + db + ".keys FINAL) AS k\n" +
		"LEFT JOIN (SELECT key_id, countMerge(requests) AS requests_7d FROM " + db + ".key_usage\n" +
		"  WHERE hour >= " + dateTime(to.Add(-registryLookback).Truncate(time.Hour)) + " AND hour < " + dateTime(to) + " AND key_id IN (" + in + ") GROUP BY key_id) AS u USING key_id\n" +
		"WHERE k.key_id IN (" + in + ") OR k.key_fingerprint IN (" + in + ")\nLIMIT 200"
}

// sqlRuleQuery is the query of an sql rule over [from, to), its result
// narrowed to the findings' groups.
func sqlRuleQuery(db string, r *rules.Rule, fs []detect.Finding, from, to time.Time) string {
	text := strings.NewReplacer("{from}", dateTime(from), "{to}", dateTime(to), "{db}", db).
		Replace(strings.TrimRight(strings.TrimSpace(r.Query), "; \n"))
	var vals []string
	seen := map[string]bool{}
	for _, f := range fs {
		g, ok := f.Group["group"]
		if ok && !seen[g] {
			seen[g] = true
			vals = append(vals, quote(g))
		}
	}
	q := "SELECT *\nFROM (\n" + text + "\n)"
	if len(vals) > 0 {
		q += "\nWHERE `group` IN (" + strings.Join(vals, ", ") + ")"
	}
	return q + "\nLIMIT 200"
}

// cond is one column condition: expr IN (values), values as literals.
type cond struct {
	expr string
	vals []string
}

// conj is the conditions of one finding's group, all of which hold.
type conj []cond

func (c conj) sql() string {
	parts := make([]string, len(c))
	for i, x := range c {
		parts[i] = x.expr + " IN (" + strings.Join(x.vals, ", ") + ")"
	}
	return strings.Join(parts, " AND ")
}

// groupsSQL is the condition selecting the rows of any of groups: a single
// IN when every group is one value of the same column, else one
// parenthesised conjunction per group, ORed. A group without conditions
// (a rule without group_by) selects everything, so none is returned.
func groupsSQL(groups []conj) string {
	if len(groups) == 0 {
		return ""
	}
	single := true
	for _, g := range groups {
		if len(g) == 0 {
			return ""
		}
		if len(g) != 1 || g[0].expr != groups[0][0].expr {
			single = false
		}
	}
	if single {
		var vals []string
		seen := map[string]bool{}
		for _, g := range groups {
			for _, v := range g[0].vals {
				if !seen[v] {
					seen[v] = true
					vals = append(vals, v)
				}
			}
		}
		return groups[0][0].expr + " IN (" + strings.Join(vals, ", ") + ")"
	}
	seen := map[string]bool{}
	var parts []string
	for _, g := range groups {
		s := g.sql()
		if !seen[s] {
			seen[s] = true
			parts = append(parts, "("+s+")")
		}
	}
	if len(parts) == 1 {
		return strings.TrimSuffix(strings.TrimPrefix(parts[0], "("), ")")
	}
	return "(" + strings.Join(parts, "\n    OR ") + ")"
}

// keyIdents returns the literals of f's key: its registry id and its
// fingerprint when that differs; nil when f is about no key.
func keyIdents(f *detect.Finding) []string {
	id := f.KeyID
	if id == "" {
		id = f.Group["key_id"]
	}
	var out []string
	if id != "" {
		out = append(out, quote(id))
	}
	if fp := f.KeyFingerprint; fp != "" && fp != id {
		out = append(out, quote(fp))
	}
	if len(out) == 0 {
		if _, ok := f.Group["key_id"]; ok {
			out = append(out, quote("")) // grouped by key, no key presented
		}
	}
	return out
}

// keyGroups selects each finding's key.
func keyGroups(fs []detect.Finding) []conj {
	out := make([]conj, len(fs))
	for i := range fs {
		if ids := keyIdents(&fs[i]); len(ids) > 0 {
			out[i] = conj{{"key_id", ids}}
		}
	}
	return out
}

// outsideGroups selects each finding's key and the client IPs outside its
// allowlist the evidence lists.
func outsideGroups(fs []detect.Finding) []conj {
	out := make([]conj, len(fs))
	for i := range fs {
		f := &fs[i]
		var c conj
		if ids := keyIdents(f); len(ids) > 0 {
			c = append(c, cond{"key_id", ids})
		}
		var ips []string
		seen := map[string]bool{}
		for _, ip := range append([]string{f.ClientIP}, f.Evidence.TopClientIPs...) {
			if ip != "" && !seen[ip] {
				seen[ip] = true
				ips = append(ips, quote(ip))
			}
		}
		if len(ips) > 0 {
			c = append(c, cond{"client_ip", ips})
		}
		out[i] = c
	}
	return out
}

// fieldGroups selects each finding's group: every group field that is an
// event field (the key by both identities), and the finding's key and
// client IP when the group does not name them.
func fieldGroups(fs []detect.Finding) []conj {
	out := make([]conj, len(fs))
	for i := range fs {
		f := &fs[i]
		names := make([]string, 0, len(f.Group))
		for k := range f.Group {
			names = append(names, k)
		}
		sort.Strings(names)
		var c conj
		hasKey, hasIP := false, false
		for _, k := range names {
			switch k {
			case "key_id":
				hasKey = true
				c = append(c, cond{"key_id", keyIdents(f)})
				continue
			case "client_ip":
				hasIP = true
			}
			fld, ok := rules.LookupField(k)
			if !ok {
				continue
			}
			c = append(c, cond{fld.Expr, []string{literal(fld, f.Group[k])}})
		}
		if !hasKey && f.KeyID != "" {
			c = append(c, cond{"key_id", keyIdents(f)})
		}
		if !hasIP && f.ClientIP != "" {
			c = append(c, cond{"client_ip", []string{quote(f.ClientIP)}})
		}
		out[i] = c
	}
	return out
}

// literal is v as a literal of field f's type.
func literal(f rules.Field, v string) string {
	switch f.Kind {
	case rules.Number:
		if _, err := strconv.ParseFloat(v, 64); err == nil {
			return v
		}
	case rules.Bool:
		switch v {
		case "true", "1":
			return "1"
		case "false", "0":
			return "0"
		}
	}
	return quote(v)
}

// dateTime is t as a DateTime literal, in UTC whatever the server's zone.
func dateTime(t time.Time) string {
	return fmt.Sprintf("toDateTime('%s', 'UTC')", t.UTC().Format("2006-01-02 15:04:05"))
}

func conditionSQL(c rules.Condition) string {
	f, ok := rules.LookupField(c.Field)
	if !ok || len(c.Values) == 0 {
		return ""
	}
	lit := func(v string) string {
		switch f.Kind {
		case rules.Number:
			return v
		case rules.Bool:
			if v == "true" {
				return "1"
			}
			return "0"
		}
		return quote(v)
	}
	lits := make([]string, len(c.Values))
	for i, v := range c.Values {
		lits[i] = lit(v)
	}
	switch c.Op {
	case "eq":
		return f.Expr + " = " + lits[0]
	case "ne":
		return f.Expr + " != " + lits[0]
	case "in":
		return f.Expr + " IN (" + strings.Join(lits, ", ") + ")"
	case "not_in":
		return f.Expr + " NOT IN (" + strings.Join(lits, ", ") + ")"
	case "prefix":
		return "startsWith(" + f.Expr + ", " + lits[0] + ")"
	case "gt":
		return f.Expr + " > " + lits[0]
	case "gte":
		return f.Expr + " >= " + lits[0]
	case "lt":
		return f.Expr + " < " + lits[0]
	case "lte":
		return f.Expr + " <= " + lits[0]
	}
	return ""
}

// quote returns s as a ClickHouse string literal.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
