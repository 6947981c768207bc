package detect

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/rules"
)

// outsideAllowlist: requests whose client IP is outside the allowlist the
// registry holds for their key (IPv4 and IPv6 CIDRs, matched in Go with
// net/netip). It catches requests the gateway let through too, so a
// misconfigured gateway allowlist shows up. One finding per key.
func (e *Engine) outsideAllowlist(ctx context.Context, r *rules.Rule, w Window) ([]Finding, error) {
	ks, err := e.activeKeys(ctx, r.Env)
	if err != nil {
		return nil, err
	}
	var listed []*keys.Key
	for _, k := range ks {
		if len(k.AllowedCIDRs) > 0 {
			listed = append(listed, k)
		}
	}
	ids := idents(listed)
	if len(ids) == 0 {
		return nil, nil
	}
	idx := indexKeys(derefKeys(listed))
	var q query
	q.add("SELECT key_id, client_ip, uniqExact(request_id), uniqExactIf(request_id, status < 400), groupArray(3)(request_id), min(ts), max(ts), any(key_hint), any(account_id), topK(3)(error_code) FROM " + e.table("access_log") + " WHERE ")
	q.window(w)
	if err := q.filter(r.Filter); err != nil {
		return nil, err
	}
	q.add(" AND key_id")
	q.in(ids)
	q.add(" GROUP BY key_id, client_ip")
	rows, err := e.conn.Query(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type outside struct {
		ip        string
		requests  uint64
		succeeded uint64
	}
	type acc struct {
		key       *keys.Key
		ips       []outside
		requests  uint64
		succeeded uint64
		samples   []string
		codes     map[string]bool
		first     time.Time
		last      time.Time
		hint, acc string
	}
	byKey := map[string]*acc{}
	for rows.Next() {
		var (
			keyID, ip, hint, account string
			n, ok                    uint64
			samples, codes           []string
			first, last              time.Time
		)
		if err := rows.Scan(&keyID, &ip, &n, &ok, &samples, &first, &last, &hint, &account, &codes); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		k := idx[keyID]
		addr, valid := parseIP(ip)
		if k == nil || !valid || k.Allows(addr) || r.ExceptedIP(addr) {
			continue
		}
		a := byKey[k.ID]
		if a == nil {
			a = &acc{key: k, codes: map[string]bool{}, first: first, last: last, hint: hint, acc: account}
			byKey[k.ID] = a
		}
		a.ips = append(a.ips, outside{ip, n, ok})
		a.requests += n
		a.succeeded += ok
		if len(a.samples) < 5 {
			a.samples = append(a.samples, samples...)
		}
		for _, c := range codes {
			if c != "" {
				a.codes[c] = true
			}
		}
		if first.Before(a.first) {
			a.first = first
		}
		if last.After(a.last) {
			a.last = last
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	ids = ids[:0]
	for id := range byKey {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []Finding
	for _, id := range ids {
		a := byKey[id]
		sort.Slice(a.ips, func(i, j int) bool { return a.ips[i].requests > a.ips[j].requests })
		f := keyFinding(r, w, a.key)
		if a.hint != "" {
			f.KeyHint = a.hint
		}
		if f.AccountID == "" {
			f.AccountID = a.acc
		}
		f.Value, f.Threshold = float64(a.requests), 1
		var top []string
		for i, o := range a.ips {
			if i == 5 {
				break
			}
			top = append(top, o.ip)
		}
		if len(top) > 0 {
			f.ClientIP = top[0]
		}
		first, last := a.first.UTC(), a.last.UTC()
		codes := make([]string, 0, len(a.codes))
		for c := range a.codes {
			codes = append(codes, c)
		}
		sort.Strings(codes)
		allow := make([]string, len(a.key.AllowedCIDRs))
		for i, p := range a.key.AllowedCIDRs {
			allow[i] = p.String()
		}
		f.Evidence = Evidence{Requests: a.requests, TopClientIPs: top, SampleRequestIDs: a.samples, TopErrorCodes: codes,
			FirstSeen: &first, LastSeen: &last, Details: map[string]any{
				"allowed_cidrs": allow, "outside_ips": len(a.ips), "succeeded": a.succeeded, "owner": a.key.Owner,
			}}
		f.Summary = fmt.Sprintf("%s: key %s used from %d address(es) outside its allowlist (%s): %d requests, %d succeeded",
			r.Name, f.KeyHint, len(a.ips), strings.Join(allow, ", "), a.requests, a.succeeded)
		if r.EscalateAt != nil && float64(a.succeeded) >= *r.EscalateAt {
			// Requests that got through mean the gateway's own allowlist is
			// wrong: escalate_at counts those.
			f.Severity = r.EscalateTo
		}
		out = append(out, f)
	}
	return out, nil
}
