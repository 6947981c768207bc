package gen

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

var (
	secretPattern = regexp.MustCompile(`^bk_(live|test)_[A-Za-z0-9]{32}$`)
	keyIDPattern  = regexp.MustCompile(`^key_01[0-9A-HJKMNP-TV-Z]{24}$`)
)

func TestRegistry(t *testing.T) {
	for _, seed := range []int64{1, 2, 3, 4} {
		t.Run(sprintf("seed %d", seed), func(t *testing.T) {
			cfg := smallConfig(seed)
			g := mustNew(t, cfg)
			keys := g.Keys()
			now := cfg.Start
			count := map[string]int{}
			accounts := map[string]bool{}
			seen := map[string]bool{}
			minRate, maxRate := 1e9, 0.0
			for i, k := range keys {
				if i > 0 && keys[i-1].ID >= k.ID {
					t.Errorf("keys not sorted by id at %d", i)
				}
				if seen[k.ID] || seen[k.Secret] {
					t.Errorf("duplicate id or secret %s", k.ID)
				}
				seen[k.ID], seen[k.Secret] = true, true
				if !keyIDPattern.MatchString(k.ID) || !secretPattern.MatchString(k.Secret) || !strings.HasPrefix(k.Secret, "bk_"+k.Env+"_") {
					t.Errorf("key %s: bad id or secret format %q", k.ID, k.Secret)
				}
				if !k.CreatedAt.Before(now) || (!k.RotatedAt.IsZero() && (k.RotatedAt.Before(k.CreatedAt) || k.RotatedAt.After(now))) {
					t.Errorf("key %s: created %v rotated %v", k.ID, k.CreatedAt, k.RotatedAt)
				}
				if len(k.HomeIPs) == 0 || k.HomeNetwork == "" || k.Owner == "" || k.AccountID == "" || k.UserAgent == "" {
					t.Errorf("key %s: incomplete %+v", k.ID, k)
				}
				for _, ip := range k.HomeIPs {
					if len(k.AllowedCIDRs) > 0 && !allowed(t, k.AllowedCIDRs, ip) {
						t.Errorf("key %s: home IP %s outside allowlist %v", k.ID, ip, k.AllowedCIDRs)
					}
				}
				sum := 0.0
				for _, v := range k.HourlyProfile {
					sum += v
				}
				if sum < 23.99 || sum > 24.01 {
					t.Errorf("key %s: hourly profile sums to %v, want 24", k.ID, sum)
				}
				accounts[k.AccountID] = true
				count[k.Env]++
				count[k.Status]++
				if len(k.AllowedCIDRs) > 0 {
					count["allowlist"]++
					if slices.ContainsFunc(k.AllowedCIDRs, func(c string) bool { return strings.Contains(c, ":") }) {
						count["ipv6 allowlist"]++
					}
				} else if k.Env == EnvLive {
					count["live without allowlist"]++
				}
				if k.RotationDue(now) {
					count["rotation overdue"]++
				}
				if !k.RotatedAt.IsZero() && now.Sub(k.RotatedAt) < 60*day {
					count["rotated recently"]++
				}
				if k.Status == KeyActive && k.BaseRate == 0 {
					unused := now.Sub(k.LastUsedAt)
					switch {
					case unused >= 90*day:
						count["stale 90"]++
					case unused >= 45*day:
						count["stale 45"]++
					}
				}
				if k.Status == KeyExpired && k.ExpiresAt.Before(now) {
					count["expired in the past"]++
				}
				if k.BaseRate > 0 {
					minRate, maxRate = min(minRate, k.BaseRate), max(maxRate, k.BaseRate)
				}
			}
			wantAtLeast := map[string]int{
				EnvLive: 30, EnvTest: 3, "allowlist": 35, "ipv6 allowlist": 1, "live without allowlist": 4,
				"rotation overdue": 5, "rotated recently": 5, "stale 90": 1, "stale 45": 2,
				KeyRevoked: 1, KeyExpired: 1, "expired in the past": 1,
			}
			for name, want := range wantAtLeast {
				if count[name] < want {
					t.Errorf("%d keys %s, want at least %d (counts %v)", count[name], name, want, count)
				}
			}
			if len(keys) != cfg.Keys || len(accounts) > cfg.Accounts || len(accounts) < cfg.Accounts*2/3 {
				t.Errorf("%d keys over %d accounts", len(keys), len(accounts))
			}
			if maxRate < 30*minRate {
				t.Errorf("rates from %v to %v: want a wide spread", minRate, maxRate)
			}
		})
	}
}

func TestKeysIsACopy(t *testing.T) {
	g := mustNew(t, smallConfig(1))
	k := g.Keys()
	k[0].HomeIPs[0] = "changed"
	k[0].ID = "changed"
	if again := g.Keys(); again[0].HomeIPs[0] == "changed" || again[0].ID == "changed" {
		t.Error("Keys exposes the generator's registry")
	}
}

func TestRegistryIndependentOfScenarios(t *testing.T) {
	a := mustNew(t, smallConfig(9))
	b := mustNew(t, smallConfig(9, ScenarioAll))
	ka, kb := a.Keys(), b.Keys()
	for i := range ka {
		if ka[i].ID != kb[i].ID || ka[i].Secret != kb[i].Secret || ka[i].BaseRate != kb[i].BaseRate {
			t.Fatalf("key %d differs when scenarios are enabled", i)
		}
	}
}
