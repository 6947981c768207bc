package detect

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"time"

	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/rules"
)

func parseIP(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(s)
	return ip.Unmap(), err == nil
}

// keyIndex finds registry keys by id or fingerprint (access_log.key_id is
// either).
type keyIndex map[string]*keys.Key

func indexKeys(ks []keys.Key) keyIndex {
	idx := make(keyIndex, 2*len(ks))
	for i := range ks {
		k := &ks[i]
		idx[k.ID] = k
		if k.Fingerprint != "" {
			idx[k.Fingerprint] = k
		}
	}
	return idx
}

// idents returns the access_log key_id values that may denote the keys.
func idents(ks []*keys.Key) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.ID)
		if k.Fingerprint != "" && k.Fingerprint != k.ID {
			out = append(out, k.Fingerprint)
		}
	}
	return out
}

// keyUse is a key's use seen in access_log over a span.
type keyUse struct {
	Requests  uint64
	FirstSeen time.Time
	LastSeen  time.Time
	Successes uint64
}

// usage returns, per registry key id, its use on the UTC days from from to
// to (only keys in ks), by whole hours. It reads the key_usage rollup, so its
// cost does not depend on traffic.
func (e *Engine) usage(ctx context.Context, ks []*keys.Key, from, to time.Time) (map[string]keyUse, error) {
	out := map[string]keyUse{}
	ids := idents(ks)
	if len(ids) == 0 {
		return out, nil
	}
	var q query
	q.add("SELECT key_id, countMerge(requests), minMerge(first_seen), maxMerge(last_seen), countIfMerge(successes) FROM "+e.table("key_usage")+
		" WHERE hour >= toStartOfHour(toDateTime(?)) AND hour < toDateTime(?) AND key_id", uint32(from.Unix()), uint32(to.Unix()))
	q.in(ids)
	q.add(" GROUP BY key_id")
	rows, err := e.conn.Query(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	idx := indexKeys(derefKeys(ks))
	for rows.Next() {
		var id string
		var u keyUse
		if err := rows.Scan(&id, &u.Requests, &u.FirstSeen, &u.LastSeen, &u.Successes); err != nil {
			return nil, fmt.Errorf("scan key use: %w", err)
		}
		k := idx[id]
		if k == nil {
			continue
		}
		prev := out[k.ID]
		if prev.Requests == 0 || u.LastSeen.After(prev.LastSeen) {
			prev.LastSeen = u.LastSeen
		}
		if prev.Requests == 0 || u.FirstSeen.Before(prev.FirstSeen) {
			prev.FirstSeen = u.FirstSeen
		}
		prev.Requests += u.Requests
		prev.Successes += u.Successes
		out[k.ID] = prev
	}
	return out, rows.Err()
}

func derefKeys(ks []*keys.Key) []keys.Key {
	out := make([]keys.Key, len(ks))
	for i, k := range ks {
		out[i] = *k
	}
	return out
}

func keyFinding(r *rules.Rule, w Window, k *keys.Key) Finding {
	f := newFinding(r, w, map[string]string{"key_id": k.ID}, []string{"key_id"})
	f.KeyHint, f.AccountID = k.Hint, k.AccountID
	return f
}

func days(d time.Duration) float64 { return math.Floor(d.Hours()/24*10) / 10 }

// registrySnapshot is the key registry as one evaluation sees it.
type registrySnapshot struct {
	all []keys.Key
	idx keyIndex
	// kid is the expression naming each request's key by its registry id
	// (fingerprints of registered keys folded into their ids).
	kid string
}

// registry returns the registry, cached for RegistryTTL.
func (e *Engine) registry(ctx context.Context) (*registrySnapshot, error) {
	if e.keys == nil {
		return &registrySnapshot{idx: keyIndex{}, kid: "key_id"}, nil
	}
	e.regMu.Lock()
	defer e.regMu.Unlock()
	if e.reg != nil && time.Since(e.regAt) < e.RegistryTTL {
		return e.reg, nil
	}
	all, err := e.keys.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("read key registry: %w", err)
	}
	e.reg, e.regAt = &registrySnapshot{all: all, idx: indexKeys(all), kid: keys.FoldExpr(all, "key_id")}, time.Now()
	return e.reg, nil
}

// activeKeys returns the registry's active keys, optionally of one env.
func (e *Engine) activeKeys(ctx context.Context, env string) ([]*keys.Key, error) {
	if e.keys == nil {
		return nil, fmt.Errorf("no key registry configured")
	}
	reg, err := e.registry(ctx)
	if err != nil {
		return nil, err
	}
	all := reg.all
	var out []*keys.Key
	for i := range all {
		k := &all[i]
		if k.Status != "active" || (env != "" && k.Env != env) {
			continue
		}
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// keyRotation: active keys whose last rotation (or creation) is older than
// max_age at t, with days overdue and whether still in use.
func (e *Engine) keyRotation(ctx context.Context, r *rules.Rule, w Window) ([]Finding, error) {
	ks, err := e.activeKeys(ctx, r.Env)
	if err != nil {
		return nil, err
	}
	var due []*keys.Key
	for _, k := range ks {
		if w.Eval.Sub(k.LastRotation()) > r.MaxAge.D() {
			due = append(due, k)
		}
	}
	inUse := r.InUseWindow.D()
	if inUse <= 0 {
		inUse = 7 * 24 * time.Hour
	}
	use, err := e.usage(ctx, due, w.To.Add(-inUse), w.To)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, k := range due {
		age := w.Eval.Sub(k.LastRotation())
		overdue := age - r.MaxAge.D()
		f := keyFinding(r, w, k)
		f.Value, f.Threshold = days(overdue), days(r.MaxAge.D())
		u := use[k.ID]
		f.Evidence = Evidence{Requests: u.Requests, Details: map[string]any{
			"last_rotation": k.LastRotation().UTC().Format(time.RFC3339), "age_days": days(age),
			"overdue_days": days(overdue), "in_use": u.Requests > 0, "in_use_window": rules.Duration(inUse).String(),
			"owner": k.Owner, "env": k.Env,
		}}
		state := "not used in the last " + rules.Duration(inUse).String()
		if u.Requests > 0 {
			state = fmt.Sprintf("still in use (%d requests in the last %s)", u.Requests, rules.Duration(inUse))
		}
		f.Summary = fmt.Sprintf("%s: key %s (%s, %s) last rotated %.0f days ago, %.0f days overdue; %s",
			r.Name, k.Hint, k.Env, k.Owner, days(age), days(overdue), state)
		escalateDays(r, &f)
		out = append(out, f)
	}
	return out, nil
}

// staleKey: active keys unused for unused_for (never used since creation
// counts too).
func (e *Engine) staleKey(ctx context.Context, r *rules.Rule, w Window) ([]Finding, error) {
	ks, err := e.activeKeys(ctx, r.Env)
	if err != nil {
		return nil, err
	}
	since := w.To.Add(-r.UnusedFor.D())
	var old []*keys.Key
	for _, k := range ks {
		if k.CreatedAt.Before(since) {
			old = append(old, k)
		}
	}
	// Use since the oldest creation date, from the daily rollup: the last
	// use before the cutoff is what the finding reports.
	earliest := since
	for _, k := range old {
		if k.CreatedAt.Before(earliest) {
			earliest = k.CreatedAt
		}
	}
	use, err := e.usage(ctx, old, earliest, w.To)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, k := range old {
		var lastUse *time.Time
		if u := use[k.ID]; u.Requests > 0 {
			t := u.LastSeen.UTC()
			lastUse = &t
		}
		if k.LastUsedAt != nil && (lastUse == nil || k.LastUsedAt.After(*lastUse)) {
			lastUse = k.LastUsedAt // the registry saw a later use (e.g. before our retention)
		}
		if lastUse != nil && !lastUse.Before(since) {
			continue
		}
		f := keyFinding(r, w, k)
		last := "never used since its creation on " + k.CreatedAt.UTC().Format("2006-01-02")
		idle := w.To.Sub(k.CreatedAt)
		if lastUse != nil {
			last = "last used " + lastUse.UTC().Format("2006-01-02")
			idle = w.To.Sub(*lastUse)
		}
		f.Value, f.Threshold = days(idle), days(r.UnusedFor.D())
		f.Evidence = Evidence{Details: map[string]any{"never_used": lastUse == nil, "idle_days": days(idle), "owner": k.Owner, "env": k.Env,
			"created_at": k.CreatedAt.UTC().Format(time.RFC3339)}}
		f.Summary = fmt.Sprintf("%s: key %s (%s, %s) unused for %s or more: %s", r.Name, k.Hint, k.Env, k.Owner, r.UnusedFor, last)
		escalateDays(r, &f)
		out = append(out, f)
	}
	return out, nil
}

func escalateDays(r *rules.Rule, f *Finding) { escalate(r, f) }

// missingAllowlist: active keys (of env, if set) with no IP allowlist.
func (e *Engine) missingAllowlist(ctx context.Context, r *rules.Rule, w Window) ([]Finding, error) {
	ks, err := e.activeKeys(ctx, r.Env)
	if err != nil {
		return nil, err
	}
	var bare []*keys.Key
	for _, k := range ks {
		if len(k.AllowedCIDRs) == 0 {
			bare = append(bare, k)
		}
	}
	inUse := r.InUseWindow.D()
	if inUse <= 0 {
		inUse = 7 * 24 * time.Hour
	}
	use, err := e.usage(ctx, bare, w.To.Add(-inUse), w.To)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, k := range bare {
		f := keyFinding(r, w, k)
		u := use[k.ID]
		f.Value, f.Threshold = float64(u.Requests), 0
		f.Evidence = Evidence{Requests: u.Requests, Details: map[string]any{"owner": k.Owner, "env": k.Env, "in_use": u.Requests > 0}}
		f.Summary = fmt.Sprintf("%s: %s key %s (%s) has no IP allowlist; %d requests in the last %s",
			r.Name, k.Env, k.Hint, k.Owner, u.Requests, rules.Duration(inUse))
		escalate(r, &f) // escalate_at counts requests in the in-use window
		out = append(out, f)
	}
	return out, nil
}
