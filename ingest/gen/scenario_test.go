package gen

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// observed is what TestScenarios collects from one run.
type observed struct {
	g    *Generator
	keys map[string]Key
	// in holds, per scenario, the events inside its window that involve its
	// key or come from one of its addresses.
	in map[string][]Event
	// outside counts, per scenario key, events and errors outside the window.
	outside, outsideErrors map[string]int
	// firstSeen is each key's first event.
	firstSeen map[string]time.Time
	// origins counts events with an Origin header.
	origins int
}

func observe(t *testing.T, seed int64) *observed {
	t.Helper()
	cfg := smallConfig(seed, ScenarioAll)
	o := &observed{
		g: mustNew(t, cfg), in: map[string][]Event{}, outside: map[string]int{},
		outsideErrors: map[string]int{}, firstSeen: map[string]time.Time{},
	}
	o.keys = keyIndex(o.g)
	incs := o.g.Incidents()
	run(t, o.g, func(e Event) {
		if e.Origin != "" {
			o.origins++
		}
		if _, ok := o.firstSeen[e.KeyID]; !ok && e.KeyID != "" {
			o.firstSeen[e.KeyID] = e.TS
		}
		attributed := false
		for _, inc := range incs {
			involved := (inc.KeyID != "" && e.KeyID == inc.KeyID) || slices.Contains(inc.ClientIPs, e.ClientIP)
			if !involved {
				continue
			}
			if inWindow(&e, inc) {
				o.in[inc.Name] = append(o.in[inc.Name], e)
				attributed = true
			} else if e.KeyID == inc.KeyID {
				o.outside[inc.Name]++
				if e.Status >= 400 {
					o.outsideErrors[inc.Name]++
				}
			}
		}
		if k, ok := o.keys[e.KeyID]; ok && len(k.AllowedCIDRs) > 0 && !allowed(t, k.AllowedCIDRs, e.ClientIP) && !attributed {
			t.Fatalf("key %s used from %s outside its allowlist with no incident to explain it", k.ID, e.ClientIP)
		}
	})
	return o
}

// count returns how many events satisfy f.
func count(evs []Event, f func(*Event) bool) int {
	n := 0
	for i := range evs {
		if f(&evs[i]) {
			n++
		}
	}
	return n
}

func distinct(evs []Event, field func(*Event) string, f func(*Event) bool) int {
	set := map[string]bool{}
	for i := range evs {
		if f(&evs[i]) {
			set[field(&evs[i])] = true
		}
	}
	return len(set)
}

func TestScenarios(t *testing.T) {
	tests := []struct {
		name  string
		check func(t *testing.T, o *observed, inc Incident, evs []Event)
	}{
		{ScenarioInvalidSignatureBurst, func(t *testing.T, o *observed, inc Incident, evs []Event) {
			k := o.keys[inc.KeyID]
			bad := func(e *Event) bool { return e.KeyID == k.ID && e.ErrorCode == CodeInvalidSignature }
			expect(t, "invalid_signature on the key", count(evs, bad), 150, 300)
			expect(t, "IPs outside the key's network", distinct(evs, func(e *Event) string { return e.ClientIP },
				func(e *Event) bool { return bad(e) && !slices.Contains(k.HomeIPs, e.ClientIP) }), 2, 5)
			expect(t, "signature_ts more than 60 s off", count(evs, func(e *Event) bool {
				d := e.SignatureTS - e.TS.Unix()
				return bad(e) && (d < -61 || d > 61)
			}), 0, 0)
			expect(t, "window minutes", int(inc.End.Sub(inc.Start).Minutes()), 5, 5)
		}},
		{ScenarioClockSkew, func(t *testing.T, o *observed, inc Incident, evs []Event) {
			evs = onKey(evs, inc.KeyID)
			lo, hi := int64(1<<62), int64(-1<<62)
			for _, e := range evs {
				if e.ErrorCode != CodeInvalidSignature || e.ClientIP != inc.ClientIP {
					t.Fatalf("clock skew event %+v: want invalid_signature from %s", e, inc.ClientIP)
				}
				d := e.SignatureTS - e.TS.Unix()
				lo, hi = min(lo, d), max(hi, d)
			}
			expect(t, "events", len(evs), 100, 1<<30)
			expect(t, "minimum skew seconds", int(lo), 7*60-2, 10*60+2)
			expect(t, "skew spread seconds", int(hi-lo), 0, 3)
		}},
		{ScenarioOutsideAllowlist, func(t *testing.T, o *observed, inc Incident, evs []Event) {
			k := o.keys[inc.KeyID]
			outside := func(e *Event) bool { return e.KeyID == k.ID && !allowed(t, k.AllowedCIDRs, e.ClientIP) }
			expect(t, "ip_not_whitelisted from outside", count(evs, func(e *Event) bool {
				return outside(e) && e.ErrorCode == CodeIPNotWhitelisted
			}), 20, 100)
			expect(t, "let through from outside", count(evs, func(e *Event) bool { return outside(e) && e.Status < 400 }), 3, 10)
		}},
		{ScenarioOutsideAllowlistRejected, func(t *testing.T, o *observed, inc Incident, evs []Event) {
			k := o.keys[inc.KeyID]
			if len(k.AllowedCIDRs) == 0 || k.Env != EnvLive {
				t.Fatalf("key %s: env %s, allowlist %v", k.ID, k.Env, k.AllowedCIDRs)
			}
			outside := func(e *Event) bool { return e.KeyID == k.ID && !allowed(t, k.AllowedCIDRs, e.ClientIP) }
			expect(t, "rejected from outside", count(evs, func(e *Event) bool { return outside(e) && e.ErrorCode == CodeIPNotWhitelisted }), 5, 9)
			expect(t, "let through from outside", count(evs, func(e *Event) bool { return outside(e) && e.Status < 400 }), 0, 0)
		}},
		{ScenarioKeyEnumeration, func(t *testing.T, o *observed, inc Incident, evs []Event) {
			from := func(e *Event) bool { return e.ClientIP == inc.ClientIP }
			expect(t, "distinct keys tried", distinct(evs, func(e *Event) string { return e.APIKey }, from), 100, 1000)
			expect(t, "requests not failing invalid_api_key without key_id", count(evs, func(e *Event) bool {
				return from(e) && (e.ErrorCode != CodeInvalidAPIKey || e.KeyID != "")
			}), 0, 0)
			expect(t, "window minutes", int(inc.End.Sub(inc.Start).Minutes()), 1, 10)
		}},
		{ScenarioExpiredKeyInUse, func(t *testing.T, o *observed, inc Incident, evs []Event) {
			k := o.keys[inc.KeyID]
			if k.Status != KeyExpired || !k.ExpiresAt.Before(o.g.Config().Start) {
				t.Errorf("key %s: status %s expires %v", k.ID, k.Status, k.ExpiresAt)
			}
			expect(t, "expired_api_key", count(evs, func(e *Event) bool { return e.ErrorCode == CodeExpiredAPIKey }), 30, 1000)
			expect(t, "events outside the window", o.outside[inc.Name], 0, 0)
		}},
		{ScenarioUsageSpike, func(t *testing.T, o *observed, inc Incident, evs []Event) {
			evs = onKey(evs, inc.KeyID)
			cfg := o.g.Config()
			in := float64(len(evs)) / inc.End.Sub(inc.Start).Seconds()
			out := float64(o.outside[inc.Name]) / (cfg.Duration - inc.End.Sub(inc.Start)).Seconds()
			if in < 10*out {
				t.Errorf("rate in window %.3f/s, elsewhere %.3f/s: want ≥10×", in, out)
			}
			expect(t, "failed requests", count(evs, func(e *Event) bool { return e.Status >= 400 }), 0, len(evs)/20)
		}},
		{ScenarioErrorRateJump, func(t *testing.T, o *observed, inc Incident, evs []Event) {
			evs = onKey(evs, inc.KeyID)
			in := float64(count(evs, func(e *Event) bool { return e.Status >= 400 })) / float64(len(evs))
			out := float64(o.outsideErrors[inc.Name]) / float64(o.outside[inc.Name])
			if in < 0.3 || in > 0.55 || out > 0.05 {
				t.Errorf("error share %.3f in window, %.3f elsewhere", in, out)
			}
			expect(t, "5xx in window", count(evs, func(e *Event) bool { return e.Status >= 500 }), len(evs)/8, len(evs))
		}},
		{ScenarioDormantKeyReturns, func(t *testing.T, o *observed, inc Incident, evs []Event) {
			k := o.keys[inc.KeyID]
			cfg := o.g.Config()
			if cfg.Start.Sub(k.LastUsedAt) < 45*day {
				t.Errorf("key last used %v, want ≥45 days before %v", k.LastUsedAt, cfg.Start)
			}
			if first := o.firstSeen[k.ID]; first.Before(inc.Start) {
				t.Errorf("key first seen %v, before the incident at %v", first, inc.Start)
			}
			expect(t, "successful uses from a new network", count(evs, func(e *Event) bool {
				return e.Status < 400 && !allowed(t, []string{k.HomeNetwork}, e.ClientIP)
			}), 50, 1000)
		}},
		{ScenarioBrowserExposedKey, func(t *testing.T, o *observed, inc Incident, evs []Event) {
			browser := func(e *Event) bool {
				return strings.HasPrefix(e.Origin, "https://") && strings.HasPrefix(e.UserAgent, "Mozilla/5.0")
			}
			n := count(evs, browser)
			expect(t, "browser requests", n, 100, 1000)
			expect(t, "origins anywhere else", o.origins-n, 0, 0)
			expect(t, "browser addresses", distinct(evs, func(e *Event) string { return e.ClientIP }, browser), 10, 30)
			if k := o.keys[inc.KeyID]; k.Env != EnvLive {
				t.Errorf("exposed key env %s, want live", k.Env)
			}
		}},
		{ScenarioAuthFailureBurstIP, func(t *testing.T, o *observed, inc Incident, evs []Event) {
			fails := func(e *Event) bool { return e.ClientIP == inc.ClientIP && e.Status == http.StatusUnauthorized }
			expect(t, "auth failures", count(evs, fails), 21, 100)
			expect(t, "distinct codes", distinct(evs, func(e *Event) string { return e.ErrorCode }, fails), 2, 4)
			expect(t, "window minutes", int(inc.End.Sub(inc.Start).Minutes()), 0, 10)
		}},
	}
	for _, seed := range []int64{1, 2, 3} {
		o := observe(t, seed)
		incs := map[string]Incident{}
		cfg := o.g.Config()
		for _, inc := range o.g.Incidents() {
			incs[inc.Name] = inc
			if inc.Start.Before(cfg.Start) || inc.End.After(windowEnd(cfg)) || !inc.Start.Before(inc.End) {
				t.Errorf("seed %d %s: [%v, %v) outside the window", seed, inc.Name, inc.Start, inc.End)
			}
			if inc.Description == "" || inc.Events == 0 || len(inc.ClientIPs) == 0 {
				t.Errorf("seed %d %s: incomplete %+v", seed, inc.Name, inc)
			}
		}
		for _, tt := range tests {
			t.Run(sprintf("%s/seed %d", tt.name, seed), func(t *testing.T) {
				inc, ok := incs[tt.name]
				if !ok {
					t.Fatal("no incident")
				}
				evs := o.in[tt.name]
				if len(evs) < inc.Events {
					t.Errorf("%d events involved in the window, fewer than the %d injected", len(evs), inc.Events)
				}
				tt.check(t, o, inc, evs)
			})
		}
	}
}

// onKey returns the events of key id.
func onKey(evs []Event, id string) []Event {
	var out []Event
	for _, e := range evs {
		if e.KeyID == id {
			out = append(out, e)
		}
	}
	return out
}

// expect reports a count outside [lo, hi].
func expect(t *testing.T, what string, got, lo, hi int) {
	t.Helper()
	if got < lo || got > hi {
		t.Errorf("%s = %d, want in [%d, %d]", what, got, lo, hi)
	}
}

// TestShortWindow compresses every scenario into a ten-minute window.
func TestShortWindow(t *testing.T) {
	cfg := smallConfig(4, ScenarioAll)
	cfg.Duration, cfg.Events = 10*time.Minute, 6_000
	g := mustNew(t, cfg)
	keys := map[string]bool{}
	var enum Incident
	for _, inc := range g.Incidents() {
		if inc.Start.Before(cfg.Start) || inc.End.After(windowEnd(cfg)) || inc.End.Sub(inc.Start) > 5*time.Minute {
			t.Errorf("%s: [%v, %v) not compressed into the window", inc.Name, inc.Start, inc.End)
		}
		if inc.Name == ScenarioKeyEnumeration {
			enum = inc
		}
	}
	run(t, g, func(e Event) {
		if e.TS.Before(cfg.Start) || !e.TS.Before(windowEnd(cfg)) {
			t.Fatalf("event at %v outside the window", e.TS)
		}
		if e.ClientIP == enum.ClientIP {
			keys[e.APIKey] = true
		}
	})
	if len(keys) < 100 {
		t.Errorf("enumeration tried %d keys, want ≥100", len(keys))
	}
}
