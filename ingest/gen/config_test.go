package gen

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewConfig(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr []string // substrings; nil means success
		check   func(t *testing.T, g *Generator)
	}{
		{name: "default", mutate: func(*Config) {}, check: func(t *testing.T, g *Generator) {
			if got := len(g.Incidents()); got != len(Scenarios()) {
				t.Errorf("incidents = %d, want %d", got, len(Scenarios()))
			}
		}},
		{name: "zero fields take defaults", mutate: func(c *Config) { *c = Config{Start: c.Start} }, check: func(t *testing.T, g *Generator) {
			c := g.Config()
			if c.Keys != 50 || c.Accounts != 15 || c.Duration != 24*time.Hour || c.EventsPerSecond != 25 {
				t.Errorf("defaults not applied: %+v", c)
			}
			if len(g.Incidents()) != 0 {
				t.Errorf("no scenarios asked for, got %d incidents", len(g.Incidents()))
			}
		}},
		{name: "start required", mutate: func(c *Config) { c.Start = time.Time{} }, wantErr: []string{"start time is required"}},
		{name: "unknown scenario lists valid ones", mutate: func(c *Config) { c.Scenarios = []string{"clock_skew", "nope"} },
			wantErr: append([]string{`unknown scenario "nope"`, "valid:", "all"}, ScenarioNames()...)},
		{name: "too few keys", mutate: func(c *Config) { c.Keys = 5 }, wantErr: []string{"keys 5"}},
		{name: "negative events", mutate: func(c *Config) { c.Events = -1 }, wantErr: []string{"events -1"}},
		{name: "negative rate", mutate: func(c *Config) { c.EventsPerSecond = -2 }, wantErr: []string{"events per second -2"}},
		{name: "short duration", mutate: func(c *Config) { c.Duration = time.Millisecond }, wantErr: []string{"duration 1ms"}},
		{name: "negative noise", mutate: func(c *Config) { c.Noise = -1 }, wantErr: []string{"noise -1"}},
		{name: "scenario start outside the window", mutate: func(c *Config) { c.ScenarioStart = c.Start.Add(-time.Hour) },
			wantErr: []string{"scenario start 2026-11-26T23:00:00Z", "inside the window"}},
		{name: "scenarios after scenario start", mutate: func(c *Config) { c.ScenarioStart = c.Start.Add(20 * time.Hour) }, check: func(t *testing.T, g *Generator) {
			for _, inc := range g.Incidents() {
				if inc.Start.Before(g.Config().ScenarioStart) {
					t.Errorf("%s starts %v, before the scenario start", inc.Name, inc.Start)
				}
			}
		}},
		{name: "all errors at once", mutate: func(c *Config) { c.Start, c.Keys, c.Scenarios = time.Time{}, 3, []string{"x"} },
			wantErr: []string{"start time", "keys 3", `unknown scenario "x"`}},
		{name: "all and duplicates", mutate: func(c *Config) { c.Scenarios = []string{"clock_skew", "all", " clock_skew "} }, check: func(t *testing.T, g *Generator) {
			var names []string
			for _, inc := range g.Incidents() {
				names = append(names, inc.Name)
			}
			if !slices.Equal(names, ScenarioNames()) {
				t.Errorf("incidents %v, want %v", names, ScenarioNames())
			}
		}},
		{name: "subset in canonical order", mutate: func(c *Config) { c.Scenarios = []string{"usage_spike", "clock_skew"} }, check: func(t *testing.T, g *Generator) {
			incs := g.Incidents()
			if len(incs) != 2 || incs[0].Name != "clock_skew" || incs[1].Name != "usage_spike" {
				t.Errorf("incidents %+v", incs)
			}
		}},
		{name: "start normalised to UTC millis", mutate: func(c *Config) {
			c.Start = time.Date(2026, 11, 27, 11, 0, 0, 123456789, time.FixedZone("CET", 3600))
		}, check: func(t *testing.T, g *Generator) {
			if got, want := g.Config().Start, time.Date(2026, 11, 27, 10, 0, 0, 123e6, time.UTC); !got.Equal(want) || got.Location() != time.UTC {
				t.Errorf("start %v, want %v", got, want)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.EventsPerSecond = 1
			tt.mutate(&cfg)
			g, err := New(cfg)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if tt.check != nil {
					tt.check(t, g)
				}
				return
			}
			if err == nil {
				t.Fatal("New succeeded, want error")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestScenarioInfo(t *testing.T) {
	seen := map[string]bool{}
	plans := planners()
	for _, s := range Scenarios() {
		if seen[s.Name] {
			t.Errorf("duplicate scenario %q", s.Name)
		}
		seen[s.Name] = true
		if s.Description == "" || s.Length <= 0 {
			t.Errorf("scenario %q: empty description or length", s.Name)
		}
		if plans[s.Name] == nil {
			t.Errorf("scenario %q has no planner", s.Name)
		}
	}
	if len(plans) != len(seen) {
		t.Errorf("%d planners for %d scenarios", len(plans), len(seen))
	}
}
