package gen

import (
	"time"
)

// Scenario names.
const (
	ScenarioInvalidSignatureBurst    = "invalid_signature_burst"
	ScenarioClockSkew                = "clock_skew"
	ScenarioOutsideAllowlist         = "outside_allowlist"
	ScenarioOutsideAllowlistRejected = "outside_allowlist_rejected"
	ScenarioKeyEnumeration           = "key_enumeration"
	ScenarioExpiredKeyInUse          = "expired_key_in_use"
	ScenarioUsageSpike               = "usage_spike"
	ScenarioErrorRateJump            = "error_rate_jump"
	ScenarioDormantKeyReturns        = "dormant_key_returns"
	ScenarioBrowserExposedKey        = "browser_exposed_key"
	ScenarioAuthFailureBurstIP       = "auth_failure_burst_ip"
)

// ScenarioInfo describes an injectable incident.
type ScenarioInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Length is the nominal duration; windows shorter than twice this
	// compress the scenario to half the window, keeping its event count.
	Length time.Duration `json:"length"`
}

// Scenarios returns the injectable incidents in the order they are planned.
func Scenarios() []ScenarioInfo {
	return []ScenarioInfo{
		{ScenarioInvalidSignatureBurst, "~200 invalid_signature 401s on one key in 5 min from a few IPs, most outside its network (forgery/probing)", 5 * time.Minute},
		{ScenarioClockSkew, "one key's client clock runs 7–10 min ahead: its signed requests fail invalid_signature from its usual IP (benign)", 2 * time.Hour},
		{ScenarioOutsideAllowlist, "a key used from IPs outside its allowlist: mostly 401 ip_not_whitelisted, a handful wrongly let through with 200", 20 * time.Minute},
		{ScenarioOutsideAllowlistRejected, "a key tried a few times from one address outside its allowlist (a laptop at home), every request rejected 401 ip_not_whitelisted: a signal, not an alert", 20 * time.Minute},
		{ScenarioKeyEnumeration, "one IP tries well over 100 distinct random keys in a few minutes, all 401 invalid_api_key", 4 * time.Minute},
		{ScenarioExpiredKeyInUse, "a forgotten job keeps polling with an expired key, getting 401 expired_api_key", 2 * time.Hour},
		{ScenarioUsageSpike, "a normally quiet key runs at 12–20× its normal rate for 30 min, all successful", 30 * time.Minute},
		{ScenarioErrorRateJump, "one key's error rate jumps to ~40% (500/400/429) for an hour", time.Hour},
		{ScenarioDormantKeyReturns, "a key unused for 50–80 days is used again from a new network", 2 * time.Hour},
		{ScenarioBrowserExposedKey, "a live key used from browsers: Origin header, Mozilla user agents, many residential IPs", time.Hour},
		{ScenarioAuthFailureBurstIP, "one IP with 30–45 auth failures (mixed codes) across keys in 10 min", 10 * time.Minute},
	}
}

// ScenarioNames returns the names of Scenarios.
func ScenarioNames() []string {
	infos := Scenarios()
	names := make([]string, len(infos))
	for i, s := range infos {
		names[i] = s.Name
	}
	return names
}

// Incident is the ground truth of one injected scenario: every event it
// injected has a TS in [Start, End), and involves KeyID or comes from one of
// ClientIPs (usually both).
type Incident struct {
	Name string `json:"name"`
	// KeyID is the registry key the incident is about; empty when it is
	// about an address (key_enumeration, auth_failure_burst_ip).
	KeyID string `json:"key_id,omitempty"`
	// ClientIP is the main address involved; empty when there are many.
	ClientIP string `json:"client_ip,omitempty"`
	// ClientIPs lists every address the incident's events come from.
	ClientIPs []string  `json:"client_ips"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	// Events is how many events the scenario injected.
	Events      int    `json:"events"`
	Description string `json:"description"`
}

// plan is a scenario ready to run: n events spread with jitter over
// [start, start+length), each filled in by fill. fill must depend only on
// its arguments and values fixed at planning, so every Run repeats it.
type plan struct {
	start, length int64
	n             int
	stream        uint64
	fill          func(r *rng, i int, tms int64, ev *Event)
}

// planner builds a scenario's plan (n and fill) and incident (key, IPs and
// description) for the interval [start, start+length) chosen for it.
type planner func(g *Generator, r *rng, start, length int64) (plan, Incident)

func planners() map[string]planner {
	return map[string]planner{
		ScenarioInvalidSignatureBurst:    planInvalidSignatureBurst,
		ScenarioClockSkew:                planClockSkew,
		ScenarioOutsideAllowlist:         planOutsideAllowlist,
		ScenarioOutsideAllowlistRejected: planOutsideRejected,
		ScenarioKeyEnumeration:           planKeyEnumeration,
		ScenarioExpiredKeyInUse:          planExpiredKeyInUse,
		ScenarioUsageSpike:               planUsageSpike,
		ScenarioErrorRateJump:            planErrorRateJump,
		ScenarioDormantKeyReturns:        planDormantKeyReturns,
		ScenarioBrowserExposedKey:        planBrowserExposedKey,
		ScenarioAuthFailureBurstIP:       planAuthFailureBurstIP,
	}
}

// planScenarios plans the named scenarios. Each has its own RNG stream, so
// its placement does not depend on which other scenarios are enabled.
func (g *Generator) planScenarios(names []string) {
	all := planners()
	lengths := map[string]time.Duration{}
	for _, s := range Scenarios() {
		lengths[s.Name] = s.Length
	}
	for _, name := range names {
		stream := streamScenario ^ hashString(name)
		r := newRNG(g.cfg.Seed, stream)
		start, length := g.place(r, lengths[name])
		p, inc := all[name](g, r, start, length)
		p.start, p.length, p.stream = start, length, stream+1
		inc.Name = name
		inc.Start = time.UnixMilli(p.start).UTC()
		inc.End = time.UnixMilli(p.start + p.length).UTC()
		inc.Events = p.n
		if inc.ClientIP == "" && len(inc.ClientIPs) == 1 {
			inc.ClientIP = inc.ClientIPs[0]
		}
		g.plans = append(g.plans, p)
		g.incidents = append(g.incidents, inc)
	}
}

// place picks a scenario's interval: its nominal length, at most half the
// window, starting no earlier than a quarter into the window (or
// Config.ScenarioStart) when that leaves room, so detectors see a baseline
// first.
func (g *Generator) place(r *rng, nominal time.Duration) (start, length int64) {
	d := g.end - g.start
	length = max(1, min(nominal.Milliseconds(), d/2))
	lo, hi := g.start+d/4, g.end-length
	if !g.cfg.ScenarioStart.IsZero() {
		lo = g.cfg.ScenarioStart.UnixMilli()
	}
	if lo > hi {
		lo = g.start
	}
	return lo + r.int63n(hi-lo+1), length
}

// seconds converts a millisecond length to seconds.
func seconds(ms int64) float64 { return float64(ms) / 1000 }

// durationMs converts a millisecond length to a Duration.
func durationMs(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }
