package gen

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// noisyConfig is three days of traffic with noise and no scenarios, so
// every error and odd address beyond normal traffic is noise.
func noisyConfig(seed int64, noise float64) Config {
	cfg := smallConfig(seed)
	cfg.Duration = 72 * time.Hour
	cfg.Noise = noise
	return cfg
}

func TestNoiseDeterministic(t *testing.T) {
	g := mustNew(t, noisyConfig(5, 1))
	a, n := digest(t, g)
	b, m := digest(t, mustNew(t, noisyConfig(5, 1)))
	if a != b || n != m {
		t.Fatalf("same noisy config gave different events (%d vs %d)", n, m)
	}
	quiet, q := digest(t, mustNew(t, noisyConfig(5, 0)))
	if quiet == a || q >= n {
		t.Fatalf("noise 1 gave %d events, noise 0 %d: want more with noise", n, q)
	}
}

// maxIn returns the most timestamps (sorted, unix ms) within any window of
// length d.
func maxIn(ts []int64, d time.Duration) int {
	best, lo := 0, 0
	for hi := range ts {
		for ts[hi]-ts[lo] >= d.Milliseconds() {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// maxDistinctIn returns the most distinct values within any window of
// length d over events sorted by time.
func maxDistinctIn(ts []int64, vals []string, d time.Duration) int {
	best, lo := 0, 0
	seen := map[string]int{}
	for hi := range ts {
		seen[vals[hi]]++
		for ts[hi]-ts[lo] >= d.Milliseconds() {
			if seen[vals[lo]]--; seen[vals[lo]] == 0 {
				delete(seen, vals[lo])
			}
			lo++
		}
		best = max(best, len(seen))
	}
	return best
}

// TestNoiseBelowThresholds generates noisy traffic for several seeds and
// checks the noise is there, at its documented rates, and stays below the
// default rules' thresholds per address and per key; moved keys stay moved,
// and nothing from outside an allowlist is let through.
func TestNoiseBelowThresholds(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		t.Run(sprintf("seed %d", seed), func(t *testing.T) {
			cfg := noisyConfig(seed, 1)
			g := mustNew(t, cfg)
			keys := keyIndex(g)
			type series struct {
				ts   []int64
				vals []string
			}
			authFail := map[string]*series{} // per address: 401/403
			guesses := map[string]*series{}  // per address: invalid_api_key with a key
			badSig := map[string]*series{}   // per key: invalid_signature, clock within 300 s
			notListed := map[string]*series{}
			add := func(m map[string]*series, k string, tms int64, v string) {
				s := m[k]
				if s == nil {
					s = &series{}
					m[k] = s
				}
				s.ts, s.vals = append(s.ts, tms), append(s.vals, v)
			}
			var n, outside, unavailable int
			var last Event
			retried := 0
			run(t, g, func(e Event) {
				n++
				tms := e.TS.UnixMilli()
				if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
					add(authFail, e.ClientIP, tms, "")
				}
				if e.ErrorCode == CodeInvalidAPIKey && e.APIKey != "" {
					add(guesses, e.ClientIP, tms, e.APIKey)
				}
				if d := e.SignatureTS - e.TS.Unix(); e.ErrorCode == CodeInvalidSignature && d > -300 && d < 300 {
					add(badSig, e.KeyID, tms, "")
				}
				if e.ErrorCode == CodeIPNotWhitelisted {
					add(notListed, e.KeyID, tms, "")
				}
				if e.ErrorCode == CodeServiceUnavailable {
					unavailable++
				}
				if k, ok := keys[e.KeyID]; ok && len(k.AllowedCIDRs) > 0 && !allowed(t, k.AllowedCIDRs, e.ClientIP) {
					outside++
					if e.ErrorCode != CodeIPNotWhitelisted {
						t.Errorf("key %s let through from %s outside its allowlist: %d %s", k.ID, e.ClientIP, e.Status, e.ErrorCode)
					}
				}
				if (last.Status == http.StatusTooManyRequests || last.Status == http.StatusServiceUnavailable) &&
					e.KeyID == last.KeyID && e.Path == last.Path && e.ClientIP == last.ClientIP && e.TS.Sub(last.TS) < 5*time.Second {
					retried++
				}
				last = e
			})
			limits := []struct {
				what string
				m    map[string]*series
				d    time.Duration
				max  int
				dist bool
			}{
				{"auth failures per address in 10 min (auth-failure-burst-ip: >20)", authFail, 10 * time.Minute, 20, false},
				{"distinct invalid keys per address in 5 min (key-enumeration: ≥10)", guesses, 5 * time.Minute, 9, true},
				{"invalid signatures per key in 5 min (invalid-signature-burst: 20)", badSig, 5 * time.Minute, 19, false},
				{"ip_not_whitelisted per key in 10 min (ip-not-whitelisted-burst: 10)", notListed, 10 * time.Minute, 9, false},
			}
			for _, l := range limits {
				worst, who := 0, ""
				for k, s := range l.m {
					c := maxIn(s.ts, l.d)
					if l.dist {
						c = maxDistinctIn(s.ts, s.vals, l.d)
					}
					if c > worst {
						worst, who = c, k
					}
				}
				if worst > l.max {
					t.Errorf("%s: %d (at %s), want ≤ %d", l.what, worst, who, l.max)
				}
			}
			if outside == 0 || unavailable == 0 || retried == 0 || len(guesses) < 100 {
				t.Errorf("noise missing: %d outside the allowlist, %d service_unavailable, %d retries, %d guessing addresses",
					outside, unavailable, retried, len(guesses))
			}
			quiet := 0
			run(t, mustNew(t, noisyConfig(seed, 0)), func(Event) { quiet++ })
			keyDays := float64(len(g.noiseKeys())) * cfg.Duration.Hours() / 24
			if per := float64(n-quiet) / keyDays; per < 10 || per > 40 {
				t.Errorf("%.1f noise events per key-day, want 10–40", per)
			}
		})
	}
}

// TestNoiseMoves checks that keys that move hosts move for good: from the
// move on, every request comes from the new addresses, which lie inside the
// key's allowlist when it has one.
func TestNoiseMoves(t *testing.T) {
	cfg := noisyConfig(3, 1)
	cfg.Duration = 21 * 24 * time.Hour
	cfg.EventsPerSecond = 0.5
	g := mustNew(t, cfg)
	keys := keyIndex(g)
	moved := map[string]*keyInfo{}
	for i := range g.info {
		if ki := &g.info[i]; ki.moveAt < g.end {
			moved[ki.id] = ki
		}
	}
	if len(moved) < 2 {
		t.Fatalf("%d keys moved over 21 days, want a few", len(moved))
	}
	after := map[string]int{}
	run(t, g, func(e Event) {
		ki := moved[e.KeyID]
		if ki == nil || e.TS.UnixMilli() < ki.moveAt || e.ErrorCode == CodeIPNotWhitelisted {
			return
		}
		after[e.KeyID]++
		if !slices.Contains(ki.movedIPs, e.ClientIP) {
			t.Fatalf("key %s used from %s after its move to %v", e.KeyID, e.ClientIP, ki.movedIPs)
		}
	})
	for id, ki := range moved {
		if after[id] == 0 {
			t.Errorf("key %s: no traffic after its move", id)
		}
		if k := keys[id]; len(k.AllowedCIDRs) > 0 {
			for _, ip := range ki.movedIPs {
				if !allowed(t, k.AllowedCIDRs, ip) {
					t.Errorf("key %s moved to %s outside its allowlist", id, ip)
				}
			}
		}
	}
}
