package gen

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDeterminism(t *testing.T) {
	base := smallConfig(7, ScenarioAll)
	base.Duration = 3 * time.Hour
	base.EventsPerSecond = 10
	tests := []struct {
		name   string
		mutate func(*Config)
		same   bool
	}{
		{name: "same config", mutate: func(*Config) {}, same: true},
		{name: "other seed", mutate: func(c *Config) { c.Seed = 8 }},
		{name: "no scenarios", mutate: func(c *Config) { c.Scenarios = nil }},
		{name: "other start", mutate: func(c *Config) { c.Start = c.Start.Add(time.Hour) }},
		{name: "fixed count", mutate: func(c *Config) { c.Events = 50_000 }},
		{name: "with noise", mutate: func(c *Config) { c.Noise = 1 }},
		{name: "no noise is noise 0", mutate: func(c *Config) { c.Noise = 0 }, same: true},
	}
	g := mustNew(t, base)
	want, n := digest(t, g)
	if again, _ := digest(t, g); again != want {
		t.Fatal("two runs of one generator differ")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mutate(&cfg)
			got, m := digest(t, mustNew(t, cfg))
			if (got == want) != tt.same {
				t.Errorf("digest equal = %v (events %d vs %d), want %v", got == want, m, n, tt.same)
			}
		})
	}
}

var tsPattern = regexp.MustCompile(`^"ts":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"`)

// TestEventInvariants checks every event of a run with all scenarios:
// order, window, required fields, unique ids, JSON validity and the
// consistency of authentication fields with the registry.
func TestEventInvariants(t *testing.T) {
	cfg := smallConfig(11, ScenarioAll)
	cfg.Events = 200_000
	g := mustNew(t, cfg)
	keys := keyIndex(g)
	ids := make(map[string]struct{}, 210_000)
	var prev time.Time
	var buf []byte
	n := 0
	end := windowEnd(cfg)
	run(t, g, func(e Event) {
		n++
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("event %d %s: %s", n, e.AppendJSON(nil), sprintf(format, args...))
		}
		if e.TS.Before(prev) {
			fail("out of order after %v", prev)
		}
		prev = e.TS
		if e.TS.Before(cfg.Start) || !e.TS.Before(end) {
			fail("outside the window")
		}
		if e.RequestID == "" || e.Method == "" || e.Path == "" || e.Status == 0 || e.ClientIP == "" || e.AuthMethod == "" {
			fail("missing a required field")
		}
		if _, dup := ids[e.RequestID]; dup {
			fail("duplicate request_id")
		}
		ids[e.RequestID] = struct{}{}
		buf = e.AppendJSON(buf[:0])
		var m map[string]any
		if err := json.Unmarshal(buf, &m); err != nil {
			fail("invalid JSON: %v", err)
		}
		if !tsPattern.Match(buf[1:]) {
			fail("ts format")
		}
		if _, ok := m["status"].(float64); !ok {
			fail("status is not a number")
		}
		if (e.Status >= 400) != (e.ErrorCode != "") {
			fail("status and error_code disagree")
		}
		if e.Signed != (e.SignatureTS != 0) {
			fail("signed and signature_ts disagree")
		}
		switch e.AuthMethod {
		case AuthAPIKey:
			if !strings.HasPrefix(e.APIKey, "bk_live_") && !strings.HasPrefix(e.APIKey, "bk_test_") || len(e.APIKey) != 8+secretLength {
				fail("api key format")
			}
			if e.Env != "" && !strings.HasPrefix(e.APIKey, "bk_"+e.Env+"_") {
				fail("env does not match the key prefix")
			}
			if e.KeyID != "" {
				k, ok := keys[e.KeyID]
				if !ok || k.Secret != e.APIKey || k.AccountID != e.AccountID {
					fail("key_id does not match the registry")
				}
			} else if e.ErrorCode != CodeInvalidAPIKey || e.AccountID != "" {
				fail("an unknown key must fail invalid_api_key without account")
			}
		case AuthOAuth:
			if e.APIKey != "" || e.KeyID != "" || e.OAuthClientID == "" || e.AccountID == "" {
				fail("oauth fields")
			}
		case AuthNone:
			if e.APIKey != "" || e.KeyID != "" || e.Status != http.StatusUnauthorized || e.ErrorCode != CodeInvalidAPIKey {
				fail("unauthenticated request fields")
			}
		default:
			fail("auth method")
		}
	})
	want := cfg.Events
	for _, inc := range g.Incidents() {
		want += inc.Events
	}
	if n != want {
		t.Errorf("%d events, want %d normal + scenario events = %d", n, cfg.Events, want)
	}
}

// TestNormalTraffic checks the statistics and constraints of traffic
// without scenarios.
func TestNormalTraffic(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		t.Run(sprintf("seed %d", seed), func(t *testing.T) {
			cfg := smallConfig(seed)
			g := mustNew(t, cfg)
			keys := keyIndex(g)
			var n, ok, signed, oauth, none, noEnv, v6, badSig, keyEvents int
			perKey := map[string]int{}
			perHour := [24]int{}
			run(t, g, func(e Event) {
				n++
				perHour[e.TS.Hour()]++
				if e.Status < 400 {
					ok++
				}
				if e.Signed {
					signed++
					if d := e.SignatureTS - e.TS.Unix(); d < -2 || d > 2 {
						t.Fatalf("signature_ts off by %d s in normal traffic", d)
					}
				}
				if e.Origin != "" {
					t.Fatalf("origin in normal traffic: %q", e.Origin)
				}
				if strings.Contains(e.ClientIP, ":") {
					v6++
				}
				switch e.AuthMethod {
				case AuthOAuth:
					oauth++
				case AuthNone:
					none++
				case AuthAPIKey:
					keyEvents++
					if e.Env == "" {
						noEnv++
					}
					if e.ErrorCode == CodeInvalidSignature {
						badSig++
					}
					k := keys[e.KeyID]
					perKey[k.ID]++
					if k.Status != KeyActive || k.BaseRate == 0 {
						t.Fatalf("key %s (%s, rate %v) sent normal traffic", k.ID, k.Status, k.BaseRate)
					}
					if len(k.AllowedCIDRs) > 0 && !allowed(t, k.AllowedCIDRs, e.ClientIP) {
						t.Fatalf("key %s used from %s outside its allowlist %v", k.ID, e.ClientIP, k.AllowedCIDRs)
					}
					if e.ErrorCode == CodeIPNotWhitelisted || e.ErrorCode == CodeExpiredAPIKey {
						t.Fatalf("normal traffic with %s", e.ErrorCode)
					}
				}
			})
			share := func(x int) float64 { return float64(x) / float64(n) }
			checks := []struct {
				name   string
				v      float64
				lo, hi float64
			}{
				{"events per second", float64(n) / cfg.Duration.Seconds(), cfg.EventsPerSecond * 0.9, cfg.EventsPerSecond * 1.1},
				{"success share", share(ok), 0.97, 0.99},
				{"signed share of key traffic", float64(signed) / float64(keyEvents), 0.28, 0.52},
				{"oauth share", share(oauth), 0.03, 0.1},
				{"unauthenticated share", share(none), 0.001, 0.01},
				{"env omitted share", float64(noEnv) / float64(keyEvents), 0.03, 0.1},
				{"ipv6 share", share(v6), 0.0001, 0.5},
				{"invalid_signature noise share", share(badSig), 0.0003, 0.005},
			}
			for _, c := range checks {
				if c.v < c.lo || c.v > c.hi {
					t.Errorf("%s = %.4f, want in [%v, %v]", c.name, c.v, c.lo, c.hi)
				}
			}
			busiest, quietest := 0, math.MaxInt
			for _, c := range perKey {
				busiest, quietest = max(busiest, c), min(quietest, c)
			}
			if busiest < 20*quietest {
				t.Errorf("busiest key %d events, quietest %d: want a Zipf-like spread", busiest, quietest)
			}
			lo, hi := math.MaxInt, 0
			for _, c := range perHour {
				lo, hi = min(lo, c), max(hi, c)
			}
			if float64(hi) < 1.6*float64(lo) {
				t.Errorf("hourly counts %v: want daily seasonality", perHour)
			}
		})
	}
}

func TestEventsCountExact(t *testing.T) {
	tests := []struct {
		name     string
		duration time.Duration
		events   int
	}{
		{"day", 24 * time.Hour, 12_345},
		{"partial hours", 90*time.Minute + 17*time.Second, 7_777},
		{"one second", time.Second, 3},
		{"more events than milliseconds", 2 * time.Second, 5_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := smallConfig(5)
			cfg.Start = cfg.Start.Add(20*time.Minute + 333*time.Millisecond)
			cfg.Duration, cfg.Events = tt.duration, tt.events
			n := 0
			var prev time.Time
			run(t, mustNew(t, cfg), func(e Event) {
				n++
				if e.TS.Before(prev) || e.TS.Before(cfg.Start) || !e.TS.Before(windowEnd(cfg)) {
					t.Fatalf("event at %v out of order or outside the window", e.TS)
				}
				prev = e.TS
			})
			if n != tt.events {
				t.Errorf("%d events, want %d", n, tt.events)
			}
		})
	}
}

func TestRunStops(t *testing.T) {
	g := mustNew(t, smallConfig(1, ScenarioAll))
	boom := errors.New("boom")
	tests := []struct {
		name    string
		ctx     func() context.Context
		emitErr error
		want    error
		maxSeen int
	}{
		{name: "emit error", ctx: context.Background, emitErr: boom, want: boom, maxSeen: 1},
		{name: "cancelled", ctx: func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, want: context.Canceled, maxSeen: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := 0
			err := g.Run(tt.ctx(), func(Event) error {
				seen++
				return tt.emitErr
			})
			if !errors.Is(err, tt.want) {
				t.Errorf("Run = %v, want %v", err, tt.want)
			}
			if seen > tt.maxSeen {
				t.Errorf("emit called %d times, want at most %d", seen, tt.maxSeen)
			}
		})
	}
}
