package alerts

import (
	"fmt"
	"strings"
	"time"

	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/rules"
)

// InvestigateQuery returns a ClickHouse query an analyst can paste to see
// the events behind findings of r: the window, the rule's filter and the
// groups, as literals (escaped).
func InvestigateQuery(db string, r *rules.Rule, fs []detect.Finding) string {
	if len(fs) == 0 {
		return ""
	}
	from, to := fs[0].WindowStart, fs[0].WindowEnd
	if r != nil && (r.Type == rules.TypeKeyRotation || r.Type == rules.TypeStaleKey || (r.Type == rules.TypeIPAllowlist && r.Mode == "missing")) {
		// Registry rules: show the keys' recent traffic.
		from = to.Add(-7 * 24 * time.Hour)
	}
	if !from.Before(to) {
		from = to.Add(-time.Hour)
	}
	var conds []string
	conds = append(conds, fmt.Sprintf("ts >= toDateTime('%s') AND ts < toDateTime('%s')", from.UTC().Format("2006-01-02 15:04:05"), to.UTC().Format("2006-01-02 15:04:05")))
	if r != nil && r.Type != rules.TypeSQL {
		for _, c := range r.Filter {
			if s := conditionSQL(c); s != "" {
				conds = append(conds, s)
			}
		}
	}
	// The groups: key ids and client IPs of the findings listed.
	keys, ips := map[string]bool{}, map[string]bool{}
	var keyList, ipList []string
	for _, f := range fs {
		if f.KeyID != "" && !keys[f.KeyID] {
			keys[f.KeyID] = true
			keyList = append(keyList, quote(f.KeyID))
		}
		if f.Group["client_ip"] != "" && !ips[f.Group["client_ip"]] {
			ips[f.Group["client_ip"]] = true
			ipList = append(ipList, quote(f.Group["client_ip"]))
		}
	}
	if len(keyList) > 0 {
		conds = append(conds, "key_id IN ("+strings.Join(keyList, ", ")+")")
	}
	if len(ipList) > 0 {
		conds = append(conds, "client_ip IN ("+strings.Join(ipList, ", ")+")")
	}
	return "SELECT ts, request_id, key_id, key_hint, client_ip, method, path, status, error_code, clock_offset_s, user_agent\n" +
		"FROM " + db + ".access_log\nWHERE " + strings.Join(conds, "\n  AND ") + "\nORDER BY ts\nLIMIT 200"
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
