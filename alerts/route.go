package alerts

import (
	"slices"

	"github.com/auditwatch/auditwatch/detect"
)

// Route sends matching findings to a channel. Every condition set must hold;
// an empty Route matches everything.
type Route struct {
	Severities []string          `yaml:"severity"` // any of
	Rules      []string          `yaml:"rules"`    // rule ids, any of
	Labels     map[string]string `yaml:"labels"`   // all of
	Env        string            `yaml:"env"`      // live or test (the finding's key env, from its evidence or group)
	Channel    string            `yaml:"channel"`
	Mention    string            `yaml:"mention"` // e.g. "<!subteam^S0123ABC>" or "<!here>"
}

// Router picks the channel of a finding: the first matching route, else the
// default channel.
type Router struct {
	Routes         []Route
	DefaultChannel string
}

// Route returns the channel and mention for f.
func (r Router) Route(f *detect.Finding) (channel, mention string) {
	for _, rt := range r.Routes {
		if rt.matches(f) {
			return rt.Channel, rt.Mention
		}
	}
	return r.DefaultChannel, ""
}

func (rt Route) matches(f *detect.Finding) bool {
	if len(rt.Severities) > 0 && !slices.Contains(rt.Severities, f.Severity) {
		return false
	}
	if len(rt.Rules) > 0 && !slices.Contains(rt.Rules, f.RuleID) {
		return false
	}
	for k, v := range rt.Labels {
		if f.Labels[k] != v {
			return false
		}
	}
	if rt.Env != "" && findingEnv(f) != rt.Env {
		return false
	}
	return true
}

// findingEnv returns the env of a finding's key when known.
func findingEnv(f *detect.Finding) string {
	if e := f.Group["env"]; e != "" {
		return e
	}
	if e, ok := f.Evidence.Details["env"].(string); ok {
		return e
	}
	switch {
	case len(f.KeyHint) > 8 && f.KeyHint[:8] == "bk_live_":
		return "live"
	case len(f.KeyHint) > 8 && f.KeyHint[:8] == "bk_test_":
		return "test"
	}
	return ""
}
