package gen

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ScenarioAll in Config.Scenarios selects every scenario.
const ScenarioAll = "all"

// minKeys is the smallest registry that has room for every key role the
// scenarios and the registry checks need.
const minKeys = int(numRoles)

// Config controls a Generator. The zero values of Keys, Accounts and Duration
// take the defaults of DefaultConfig, as does the rate when both
// EventsPerSecond and Events are zero. Start is required.
type Config struct {
	// Seed selects the random sequence; the same Config gives the same output.
	Seed int64
	// Start is the first instant of the generated window. It is truncated to
	// the millisecond and converted to UTC.
	Start time.Time
	// Duration is the length of the window [Start, Start+Duration).
	Duration time.Duration
	// Keys is the number of API keys in the registry (at least 12).
	Keys int
	// Accounts is the number of customer accounts the keys belong to.
	Accounts int
	// EventsPerSecond is the average rate of normal traffic across all keys,
	// OAuth apps and unauthenticated clients; the actual rate follows the
	// keys' daily profiles.
	EventsPerSecond float64
	// Events, when positive, overrides EventsPerSecond: exactly this many
	// normal events are spread over the window, following the same daily
	// profiles with jitter. Scenario events come on top.
	Events int
	// Scenarios names the incidents to inject (see Scenarios), or ScenarioAll.
	// Empty means normal traffic only.
	Scenarios []string
	// ScenarioStart, when set, places every scenario at or after this
	// instant (which must lie inside the window) instead of from a quarter
	// into the window: a long window can then hold a quiet history first.
	ScenarioStart time.Time
	// Noise scales the benign background noise a good detector must not
	// alert on (see NoiseRates): 0 turns it off, 1 is the documented rate.
	// It never changes normal traffic or scenarios, only adds events to
	// them (and moves a few keys to new hosts).
	Noise float64
}

// DefaultConfig returns a one-day window starting 2026-11-27T00:00:00Z with
// 50 keys over 15 accounts, 25 events per second and every scenario.
func DefaultConfig() Config {
	return Config{
		Seed:            1,
		Start:           time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC),
		Duration:        24 * time.Hour,
		Keys:            50,
		Accounts:        15,
		EventsPerSecond: 25,
		Scenarios:       []string{ScenarioAll},
	}
}

// normalize fills defaults, validates cfg and resolves the scenario list to
// canonical names in the order of Scenarios. All problems are returned at once.
func (cfg Config) normalize() (Config, []string, error) {
	def := DefaultConfig()
	if cfg.Keys == 0 {
		cfg.Keys = def.Keys
	}
	if cfg.Accounts == 0 {
		cfg.Accounts = min(def.Accounts, max(1, cfg.Keys*3/10))
	}
	if cfg.Duration == 0 {
		cfg.Duration = def.Duration
	}
	if cfg.EventsPerSecond == 0 && cfg.Events == 0 {
		cfg.EventsPerSecond = def.EventsPerSecond
	}
	cfg.Start = cfg.Start.UTC().Truncate(time.Millisecond)

	var errs []error
	if cfg.Start.IsZero() {
		errs = append(errs, errors.New("start time is required"))
	}
	if cfg.Duration < time.Second {
		errs = append(errs, fmt.Errorf("duration %v: must be at least 1s", cfg.Duration))
	}
	if cfg.Keys < minKeys {
		errs = append(errs, fmt.Errorf("keys %d: must be at least %d", cfg.Keys, minKeys))
	}
	if cfg.Accounts < 1 {
		errs = append(errs, fmt.Errorf("accounts %d: must be at least 1", cfg.Accounts))
	}
	if cfg.EventsPerSecond < 0 || cfg.EventsPerSecond != cfg.EventsPerSecond {
		errs = append(errs, fmt.Errorf("events per second %v: must be a non-negative number", cfg.EventsPerSecond))
	}
	if cfg.Events < 0 {
		errs = append(errs, fmt.Errorf("events %d: must not be negative", cfg.Events))
	}
	if cfg.Noise < 0 || cfg.Noise != cfg.Noise || cfg.Noise > 100 {
		errs = append(errs, fmt.Errorf("noise %v: must be between 0 and 100", cfg.Noise))
	}
	if !cfg.ScenarioStart.IsZero() {
		cfg.ScenarioStart = cfg.ScenarioStart.UTC().Truncate(time.Millisecond)
		if cfg.ScenarioStart.Before(cfg.Start) || !cfg.ScenarioStart.Before(cfg.Start.Add(cfg.Duration)) {
			errs = append(errs, fmt.Errorf("scenario start %v: must lie inside the window [%v, %v)",
				cfg.ScenarioStart.Format(time.RFC3339), cfg.Start.Format(time.RFC3339), cfg.Start.Add(cfg.Duration).Format(time.RFC3339)))
		}
	}
	if cfg.Events == 0 && cfg.EventsPerSecond == 0 {
		errs = append(errs, errors.New("rate: either events per second or events must be positive"))
	}
	names, err := resolveScenarios(cfg.Scenarios)
	if err != nil {
		errs = append(errs, err)
	}
	return cfg, names, errors.Join(errs...)
}

// resolveScenarios expands ScenarioAll, drops duplicates and rejects unknown
// names, listing the valid ones.
func resolveScenarios(in []string) ([]string, error) {
	infos := Scenarios()
	want := make(map[string]bool, len(in))
	var unknown []string
	for _, raw := range in {
		name := strings.TrimSpace(raw)
		switch {
		case name == ScenarioAll:
			for _, s := range infos {
				want[s.Name] = true
			}
		case slices.ContainsFunc(infos, func(s ScenarioInfo) bool { return s.Name == name }):
			want[name] = true
		default:
			unknown = append(unknown, fmt.Sprintf("%q", raw))
		}
	}
	if len(unknown) > 0 {
		valid := ScenarioNames()
		valid = append(valid, ScenarioAll)
		return nil, fmt.Errorf("unknown scenario %s (valid: %s)", strings.Join(unknown, ", "), strings.Join(valid, ", "))
	}
	var out []string
	for _, s := range infos {
		if want[s.Name] {
			out = append(out, s.Name)
		}
	}
	return out, nil
}
