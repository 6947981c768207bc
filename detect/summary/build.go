package summary

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/detect/keys"
)

// KeyRegistry lists the registered keys.
type KeyRegistry interface {
	All(ctx context.Context) ([]keys.Key, error)
}

// Builder computes reports from the key_usage rollup, the key registry and
// the findings; it never reads the raw
// access log, so a month's report costs about the same as a day's.
type Builder struct {
	conn driver.Conn
	db   string
	keys KeyRegistry
	// RotationDays is the rotation period (90).
	RotationDays int
	// StaleDays flags keys unused for this long (45).
	StaleDays int
}

// NewBuilder returns a Builder for database db.
func NewBuilder(conn driver.Conn, db string, reg KeyRegistry) *Builder {
	return &Builder{conn: conn, db: db, keys: reg, RotationDays: 90, StaleDays: 45}
}

// Periods are the report periods.
var Periods = map[string]time.Duration{"24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}

// Options select a report.
type Options struct {
	Period string    // 24h, 7d or 30d
	To     time.Time // end of the period (rounded down to the hour)
	KeyID  string    // only this key (id or fingerprint), when set
}

// Build computes the report.
func (b *Builder) Build(ctx context.Context, o Options) (*Report, error) {
	d, ok := Periods[o.Period]
	if !ok {
		return nil, fmt.Errorf("period %q: want 24h, 7d or 30d", o.Period)
	}
	to := o.To.UTC().Truncate(time.Hour)
	r := &Report{Period: o.Period, From: to.Add(-d), To: to, PrevFrom: to.Add(-2 * d), PrevTo: to.Add(-d),
		GeneratedAt: time.Now().UTC().Truncate(time.Second), Database: b.db, Bucket: time.Hour,
		Totals: Totals{Errors: map[string]uint64{}, Signals: map[string]uint64{}}}
	if o.Period == "30d" {
		r.Bucket = 24 * time.Hour
	}
	reg, err := b.keys.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("read key registry: %w", err)
	}
	byID := map[string]*keys.Key{}
	for i := range reg {
		k := &reg[i]
		byID[k.ID] = k
		if k.Fingerprint != "" {
			byID[k.Fingerprint] = k
		}
	}
	sums := map[string]*KeySummary{}
	get := func(id string) *KeySummary {
		if k := byID[id]; k != nil {
			id = k.ID
		}
		s := sums[id]
		if s == nil {
			s = &KeySummary{KeyID: id, Errors: map[string]uint64{}}
			sums[id] = s
		}
		return s
	}
	// A registered key may appear in traffic under its id and under its
	// fingerprint (when the gateway did not know it): fold fingerprints into
	// ids in SQL, so distinct counts and quantiles merge exactly.
	kid := keys.FoldExpr(reg, "key_id")
	keyCond, keyArgs := "", []any{}
	if o.KeyID != "" {
		ids := []string{o.KeyID}
		if k := byID[o.KeyID]; k != nil {
			ids = []string{k.ID}
			if k.Fingerprint != "" {
				ids = append(ids, k.Fingerprint)
			}
		}
		keyCond = " AND key_id IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ") + ")"
		for _, id := range ids {
			keyArgs = append(keyArgs, id)
		}
	}
	span := func(from, to time.Time) []any {
		return append([]any{uint32(from.Unix()), uint32(to.Unix())}, keyArgs...)
	}
	hourly := b.db + ".key_usage"

	// Counts by key and error code.
	if err := b.each(ctx, "SELECT "+kid+" AS kid, error_code, anyMerge(key_hint), anyMerge(env), anyMerge(account_id), countMerge(requests), countIfMerge(successes), sumMerge(bytes_in), sumMerge(bytes_out), minMerge(first_seen) FROM "+
		hourly+" WHERE hour >= toDateTime(?) AND hour < toDateTime(?) AND key_id != ''"+keyCond+" GROUP BY kid, error_code", span(r.From, r.To), func(sc scanner) error {
		var id, code, hint, env, acct string
		var n, ok, bin, bout uint64
		var first time.Time
		if err := sc.Scan(&id, &code, &hint, &env, &acct, &n, &ok, &bin, &bout, &first); err != nil {
			return err
		}
		s := get(id)
		s.Hint, s.Env, s.AccountID = firstNonEmpty(s.Hint, hint), firstNonEmpty(s.Env, env), firstNonEmpty(s.AccountID, acct)
		s.Requests += n
		s.Successes += ok
		s.BytesIn += bin
		s.BytesOut += bout
		if code != "" {
			s.Errors[code] += n
			r.Totals.Errors[code] += n
		}
		if s.FirstSeen == nil || first.Before(*s.FirstSeen) {
			f := first.UTC()
			s.FirstSeen = &f
		}
		return nil
	}); err != nil {
		return nil, err
	}
	// Per key: distinct IPs, latency, routes.
	if err := b.each(ctx, "SELECT "+kid+" AS kid, uniqExact(client_ip), quantilesTDigestMerge(0.5, 0.95)(latency_ms), topKMerge(10)(routes) FROM "+
		hourly+" WHERE hour >= toDateTime(?) AND hour < toDateTime(?) AND key_id != ''"+keyCond+" GROUP BY kid", span(r.From, r.To), func(sc scanner) error {
		var id string
		var ips uint64
		var q []float32
		var routes []string
		if err := sc.Scan(&id, &ips, &q, &routes); err != nil {
			return err
		}
		s := get(id)
		s.DistinctIPs += ips
		if len(q) == 2 {
			s.P50LatencyMS, s.P95LatencyMS = round1(float64(q[0])), round1(float64(q[1]))
		}
		for _, rt := range routes {
			s.TopPaths = append(s.TopPaths, Count{Value: rt})
		}
		return nil
	}); err != nil {
		return nil, err
	}
	// Previous period.
	if err := b.each(ctx, "SELECT "+kid+" AS kid, countMerge(requests) FROM "+hourly+" WHERE hour >= toDateTime(?) AND hour < toDateTime(?) AND key_id != ''"+keyCond+" GROUP BY kid",
		span(r.PrevFrom, r.PrevTo), func(sc scanner) error {
			var id string
			var n uint64
			if err := sc.Scan(&id, &n); err != nil {
				return err
			}
			get(id).PrevRequests += n
			return nil
		}); err != nil {
		return nil, err
	}
	// Last seen, as far as the rollup goes back.
	if err := b.each(ctx, "SELECT "+kid+" AS kid, maxMerge(last_seen) FROM "+hourly+" WHERE hour >= toDateTime(?) AND hour < toDateTime(?) AND key_id != ''"+keyCond+" GROUP BY kid",
		span(time.Unix(0, 0), r.To), func(sc scanner) error {
			var id string
			var t time.Time
			if err := sc.Scan(&id, &t); err != nil {
				return err
			}
			if k := byID[id]; k != nil || sums[id] != nil || o.KeyID != "" {
				s := get(id)
				if s.LastSeen == nil || t.After(*s.LastSeen) {
					tt := t.UTC()
					s.LastSeen = &tt
				}
			}
			return nil
		}); err != nil {
		return nil, err
	}
	// Series.
	// Hourly rows, bucketed in Go from r.From (a 30-day report's day
	// buckets start at the report's hour, not at midnight).
	series := map[string]map[int64]*Point{}
	if err := b.each(ctx, "SELECT "+kid+" AS kid, hour, countMerge(requests), countIfMerge(successes) FROM "+hourly+" WHERE hour >= toDateTime(?) AND hour < toDateTime(?) AND key_id != ''"+keyCond+" GROUP BY kid, hour",
		span(r.From, r.To), func(sc scanner) error {
			var id string
			var t time.Time
			var n, ok uint64
			if err := sc.Scan(&id, &t, &n, &ok); err != nil {
				return err
			}
			s := get(id)
			if series[s.KeyID] == nil {
				series[s.KeyID] = map[int64]*Point{}
			}
			t = r.From.Add(t.Sub(r.From) / r.Bucket * r.Bucket)
			p := series[s.KeyID][t.Unix()]
			if p == nil {
				p = &Point{T: t.UTC()}
				series[s.KeyID][t.Unix()] = p
			}
			p.Requests += n
			p.Errors += n - ok
			return nil
		}); err != nil {
		return nil, err
	}
	// Client addresses per key in the period, for allowlist checks.
	ipsByKey := map[string]map[string]uint64{}
	if err := b.each(ctx, "SELECT "+kid+" AS kid, client_ip, countMerge(requests) FROM "+hourly+" WHERE hour >= toDateTime(?) AND hour < toDateTime(?)"+keyCond+" GROUP BY kid, client_ip",
		span(r.From, r.To), func(sc scanner) error {
			var id, ip string
			var n uint64
			if err := sc.Scan(&id, &ip, &n); err != nil {
				return err
			}
			k := byID[id]
			if k == nil {
				return nil
			}
			if ipsByKey[k.ID] == nil {
				ipsByKey[k.ID] = map[string]uint64{}
			}
			ipsByKey[k.ID][ip] += n
			return nil
		}); err != nil {
		return nil, err
	}
	// Findings in the period, alerted (status new) and signals (info or low
	// severity, recorded but never alerted) in one read; suppressed repeats
	// never show.
	if err := b.readFindings(ctx, r, o, byID, get); err != nil {
		return nil, err
	}
	// Registry keys without traffic are part of the review too.
	for i := range reg {
		k := &reg[i]
		if o.KeyID != "" && k.ID != o.KeyID && k.Fingerprint != o.KeyID {
			continue
		}
		if k.Status == "active" || sums[k.ID] != nil {
			get(k.ID)
		}
	}
	var prevTotal uint64
	for _, s := range sums {
		prevTotal += s.PrevRequests
	}
	for _, s := range sums {
		if byID[s.KeyID] == nil && s.Successes == 0 && o.KeyID == "" {
			// Never a working key: a typo, a guess, enumeration.
			if s.Requests > 0 {
				r.Totals.UnknownKeys++
				r.Totals.UnknownRequests += s.Requests
			}
			continue
		}
		b.complete(r, s, byID[s.KeyID], ipsByKey[s.KeyID], series[s.KeyID], prevTotal > 0)
		r.Keys = append(r.Keys, *s)
	}
	sort.SliceStable(r.Keys, func(i, j int) bool {
		a, c := r.Keys[i], r.Keys[j]
		if a.Priority != c.Priority {
			return a.Priority > c.Priority
		}
		if a.Requests != c.Requests {
			return a.Requests > c.Requests
		}
		return a.KeyID < c.KeyID
	})
	for _, s := range r.Keys {
		r.Totals.Keys++
		if s.Requests > 0 {
			r.Totals.ActiveKeys++
		}
		if len(s.Flags) > 0 {
			r.Totals.FlaggedKeys++
		}
		if len(s.Signals) > 0 {
			r.Totals.SignalKeys++
		}
		r.Totals.Requests += s.Requests
		r.Totals.PrevRequests += s.PrevRequests
	}
	return r, nil
}

// complete fills the registry facts, derived figures, flags and priority.
//
// baseline says whether the previous period has any traffic at all; without
// it a change is not unusual, just the start of the data.
func (b *Builder) complete(r *Report, s *KeySummary, k *keys.Key, ips map[string]uint64, pts map[int64]*Point, baseline bool) {
	if k != nil {
		s.Registered = true
		s.Hint = firstNonEmpty(k.Hint, s.Hint)
		s.Env = firstNonEmpty(k.Env, s.Env)
		s.AccountID = firstNonEmpty(k.AccountID, s.AccountID)
		s.Owner, s.Status = k.Owner, k.Status
		c := k.CreatedAt.UTC()
		lr := k.LastRotation().UTC()
		s.CreatedAt, s.LastRotation = &c, &lr
		s.KeyAgeDays = round1(r.To.Sub(lr).Hours() / 24)
		s.RotationDueDays = round1(float64(b.RotationDays) - s.KeyAgeDays)
		for _, p := range k.AllowedCIDRs {
			s.AllowedCIDRs = append(s.AllowedCIDRs, p.String())
		}
		if k.LastUsedAt != nil && (s.LastSeen == nil || k.LastUsedAt.After(*s.LastSeen)) {
			t := k.LastUsedAt.UTC()
			s.LastSeen = &t
		}
		if len(k.AllowedCIDRs) > 0 {
			var outside []string
			for ip, n := range ips {
				a, err := netip.ParseAddr(ip)
				if err == nil && !k.Allows(a) {
					outside = append(outside, ip)
					s.OutsideRequests += n
				}
			}
			sort.Strings(outside)
			s.OutsideIPs = outside
		}
	}
	if s.Requests > 0 {
		s.SuccessRate = float64(s.Successes) / float64(s.Requests)
	}
	switch {
	case s.PrevRequests > 0:
		s.Change = float64(s.Requests)/float64(s.PrevRequests) - 1
	case s.Requests > 0:
		s.Change = math.Inf(1)
	}
	for t := r.From; t.Before(r.To); t = t.Add(r.Bucket) {
		p := Point{T: t}
		if pts != nil && pts[t.Unix()] != nil {
			p = *pts[t.Unix()]
		}
		s.Series = append(s.Series, p)
	}

	flag := func(name string, weight int) {
		s.Flags = append(s.Flags, name)
		s.Priority += weight
	}
	worst := 0
	for _, f := range s.OpenFindings {
		switch f.Severity {
		case "critical":
			worst = max(worst, 100)
		case "high":
			worst = max(worst, 80)
		case "medium":
			worst = max(worst, 50)
		default:
			worst = max(worst, 20)
		}
	}
	if len(s.OpenFindings) > 0 {
		flag(FlagOpenFindings, worst)
	}
	if len(s.OutsideIPs) > 0 {
		flag(FlagOutsideAllowlist, 80)
	}
	if k != nil && k.Status != "active" && s.Requests > 0 {
		flag(FlagExpiredInUse, 80)
	}
	if k == nil {
		flag(FlagUnregistered, 50)
	}
	if k != nil && k.Status == "active" && k.Env == "live" && len(k.AllowedCIDRs) == 0 {
		flag(FlagNoAllowlist, 40)
	}
	if k != nil && k.Status == "active" && s.RotationDueDays < 0 {
		flag(FlagRotationOverdue, 30)
	}
	if s.Requests >= 50 && s.SuccessRate < 0.9 {
		flag(FlagHighErrorRate, 25)
	}
	if baseline && unusual(s.Requests, s.PrevRequests) {
		flag(FlagUnusualChange, 20)
	}
	if k != nil && k.Status == "active" && (s.LastSeen == nil || r.To.Sub(*s.LastSeen) >= time.Duration(b.StaleDays)*24*time.Hour) &&
		r.To.Sub(k.CreatedAt) >= time.Duration(b.StaleDays)*24*time.Hour {
		flag(FlagStale, 10)
	}
	if len(s.Signals) > 0 {
		// Worth a look in the review, never more urgent than any other flag.
		flag(FlagSignals, 5)
	}
}

// unusual: requests changed by a factor of 3 or more, with at least 100 on
// one side.
func unusual(cur, prev uint64) bool {
	if max(cur, prev) < 100 {
		return false
	}
	if prev == 0 || cur == 0 {
		return true
	}
	ratio := float64(cur) / float64(prev)
	return ratio >= 3 || ratio <= 1.0/3
}

type scanner interface{ Scan(dest ...any) error }

func (b *Builder) each(ctx context.Context, q string, args []any, fn func(scanner) error) error {
	rows, err := b.conn.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("summary query: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return fmt.Errorf("summary query: %w", err)
		}
	}
	return rows.Err()
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
