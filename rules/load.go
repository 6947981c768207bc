package rules

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	yaml "go.yaml.in/yaml/v3"
)

// File is the top level of a rule file.
type File struct {
	Rules []*Rule `yaml:"rules"`
}

// Set is a validated set of rules, loaded all or nothing.
type Set struct {
	Rules []*Rule
	// Files lists the files read, for change detection.
	Files []string
	// Hashes maps each file read to the SHA-256 (hex) of its bytes.
	Hashes map[string]string
}

// Get returns the rule with id, or nil.
func (s *Set) Get(id string) *Rule {
	for _, r := range s.Rules {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// Errors is every problem found in a set of rule files, each as
// "file:line:col: rule "id": message".
type Errors []string

func (e Errors) Error() string { return strings.Join(e, "\n") }

// IsTestFile reports whether name is a rule test file (*.test.yaml), which
// LoadDir skips.
func IsTestFile(name string) bool {
	return strings.HasSuffix(name, ".test.yaml") || strings.HasSuffix(name, ".test.yml")
}

// RuleFiles lists the rule files of dir: *.yaml and *.yml, not tests, sorted.
func RuleFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read rules directory: %w", err)
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || IsTestFile(n) || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			continue
		}
		out = append(out, filepath.Join(dir, n))
	}
	sort.Strings(out)
	return out, nil
}

// LoadDir loads and validates every rule file in dir. It returns Errors
// listing every problem in every file, and no Set, if anything is wrong.
func LoadDir(dir string) (*Set, error) {
	files, err := RuleFiles(dir)
	if err != nil {
		return nil, err
	}
	return LoadFiles(files)
}

// LoadFiles loads and validates the given rule files together (rule ids
// must be unique across them).
func LoadFiles(files []string) (*Set, error) {
	set := &Set{Files: files, Hashes: map[string]string{}}
	if len(files) == 0 {
		// An empty directory is far more likely a mistake than a wish to
		// detect nothing; refuse it so the running rules stay.
		return nil, Errors{"no rule files (*.yaml) found"}
	}
	var errs Errors
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", f, err))
			continue
		}
		rs, ferrs := Parse(f, data)
		set.Hashes[f] = FileHash(data)
		errs = append(errs, ferrs...)
		set.Rules = append(set.Rules, rs...)
	}
	seen := map[string]*Rule{}
	for _, r := range set.Rules {
		if prev, ok := seen[r.ID]; ok && r.ID != "" {
			errs = append(errs, fmt.Sprintf("%s: rule %q: id already used at %s", r.Pos("id"), r.ID, prev.Pos("id")))
		}
		seen[r.ID] = r
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return set, nil
}

// FileHash is the SHA-256, in hex, of a rule file's bytes: Rule.Hash and
// Set.Hashes.
func FileHash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (?:column (\d+): )?(.*)$`)

// Parse parses and validates one rule file's content. It returns the rules
// and every error, positioned in file.
func Parse(file string, data []byte) ([]*Rule, Errors) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(&f)
	if errors.Is(err, io.EOF) {
		return nil, Errors{fmt.Sprintf("%s:1:1: empty rule file (want `rules:`)", file)}
	}
	var errs Errors
	hash := FileHash(data)
	if err != nil {
		var te *yaml.TypeError
		if !asTypeErr(err, &te) {
			return nil, Errors{positioned(file, strings.TrimPrefix(err.Error(), "yaml: "))}
		}
		for _, e := range te.Errors {
			errs = append(errs, positioned(file, e))
		}
	}
	for _, r := range f.Rules {
		if r == nil {
			continue
		}
		r.File, r.Hash = file, hash
		for _, e := range r.decodeErrs {
			errs = append(errs, positioned(file, e))
		}
		for _, e := range r.validate() {
			if r.badKeys[e.key] {
				continue
			}
			errs = append(errs, fmt.Sprintf("%s: rule %q: %s", r.Pos(e.key), r.ID, e.msg))
		}
	}
	if len(f.Rules) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Sprintf("%s:1:1: no rules (want `rules:` with a list)", file))
	}
	return f.Rules, errs
}

// positioned turns yaml's "line N: column C: msg" into "file:N:C: msg".
func positioned(file, e string) string {
	m := yamlLine.FindStringSubmatch(e)
	if m == nil {
		return file + ": " + e
	}
	col := m[2]
	if col == "" {
		col = "1"
	}
	return fmt.Sprintf("%s:%s:%s: %s", file, m[1], col, m[3])
}

type fieldErr struct{ key, msg string }

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,99}$`)

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// validate checks one rule, filling defaults and derived fields.
func (r *Rule) validate() []fieldErr {
	var errs []fieldErr
	bad := func(key, format string, args ...any) {
		errs = append(errs, fieldErr{key, fmt.Sprintf(format, args...)})
	}

	if !idPattern.MatchString(r.ID) {
		bad("id", "id must be lower-case letters, digits, '-', '_' or '.' (got %q)", r.ID)
	}
	if r.Name == "" {
		r.Name = r.ID
	}
	if !slices.Contains(Severities, r.Severity) {
		bad("severity", "severity %q: want one of %v", r.Severity, Severities)
	}
	if r.EscalateTo != "" && !slices.Contains(Severities, r.EscalateTo) {
		bad("escalate_to", "escalate_to %q: want one of %v", r.EscalateTo, Severities)
	}
	if (r.EscalateAt == nil) != (r.EscalateTo == "") {
		bad("escalate_at", "escalate_at and escalate_to go together")
	}
	if r.Schedule == "" {
		bad("schedule", "schedule is required (cron with optional seconds, or @every 1m)")
	} else if s, err := cronParser.Parse(r.Schedule); err != nil {
		bad("schedule", "schedule %q: %v", r.Schedule, err)
	} else if every, ok := s.(cron.ConstantDelaySchedule); ok {
		r.sched = alignedEvery{every.Delay}
	} else {
		r.sched = s
	}
	for _, c := range r.Filter {
		if err := c.validate(); err != nil {
			errs = append(errs, fieldErr{"filter", err.Error()})
		}
	}
	for _, g := range r.GroupBy {
		if _, ok := LookupField(g); !ok {
			bad("group_by", "group_by: unknown field %q (fields: %v)", g, fieldNames())
		}
	}
	if r.Metric.Distinct != "" {
		if _, ok := LookupField(r.Metric.Distinct); !ok {
			bad("metric", "metric distinct: unknown field %q", r.Metric.Distinct)
		}
	}
	groups := r.GroupBy
	if r.Type == TypeSQL {
		groups = []string{"group"} // the query's group column
	}
	for _, o := range r.Overrides {
		if o.Threshold <= 0 {
			bad("overrides", "override threshold must be above 0")
		}
		if len(o.Match) == 0 {
			bad("overrides", "override needs a match")
		}
		for k := range o.Match {
			if !slices.Contains(groups, k) {
				bad("overrides", "override matches %q, which is not in group_by %v", k, groups)
			}
		}
	}
	if r.Env != "" && r.Env != "live" && r.Env != "test" {
		bad("env", "env %q: want live or test", r.Env)
	}
	for _, s := range r.Exceptions.IPs {
		p, err := ParsePrefix(s)
		if err != nil {
			bad("exceptions", "exception %q: not an IP address or CIDR", s)
			continue
		}
		r.exceptIPs = append(r.exceptIPs, p)
	}
	if r.Runbook != "" {
		if u, err := url.Parse(r.Runbook); err != nil || u.Scheme == "" || u.Host == "" {
			bad("runbook", "runbook %q: want an absolute URL", r.Runbook)
		}
	}
	if r.Cooldown != nil && *r.Cooldown < 0 {
		bad("cooldown", "cooldown must not be negative")
	}
	if r.Window > Duration(31*24*3600e9) {
		bad("window", "window longer than 31 days")
	}

	needWindow := func() {
		if r.Window <= 0 {
			bad("window", "%s rule needs a window", r.Type)
		}
	}
	switch r.Type {
	case TypeThreshold:
		needWindow()
		if r.Threshold == nil || *r.Threshold <= 0 {
			bad("threshold", "threshold rule needs a threshold above 0")
		}
	case TypeIPAllowlist:
		switch r.Mode {
		case "":
			r.Mode = "outside"
			needWindow()
		case "outside":
			needWindow()
		case "missing":
		default:
			bad("mode", "mode %q: want outside or missing", r.Mode)
		}
	case TypeKeyRotation:
		if r.MaxAge <= 0 {
			bad("max_age", "key_rotation rule needs max_age (e.g. 90d)")
		}
	case TypeStaleKey:
		if r.UnusedFor <= 0 {
			bad("unused_for", "stale_key rule needs unused_for (e.g. 45d)")
		}
	case TypeNewValue:
		needWindow()
		if _, ok := LookupField(r.Field); !ok {
			bad("field", "new_value rule needs a field from %v", fieldNames())
		}
		if r.Lookback <= r.Window {
			bad("lookback", "lookback must be longer than the window")
		}
		if len(r.GroupBy) == 0 {
			bad("group_by", "new_value rule needs group_by (e.g. [key_id])")
		}
	case TypeSQL:
		needWindow()
		q := strings.TrimSpace(r.Query)
		uq := strings.ToUpper(q)
		switch {
		case q == "":
			bad("query", "sql rule needs a query")
		case !strings.HasPrefix(uq, "SELECT") && !strings.HasPrefix(uq, "WITH"):
			bad("query", "query must be a SELECT")
		case strings.Contains(strings.TrimRight(q, "; \n"), ";"):
			bad("query", "query must be a single statement")
		case !strings.Contains(q, "{from}") || !strings.Contains(q, "{to}"):
			bad("query", "query must use {from} and {to} to read only the window")
		default:
			if msg := sqlGuard(q); msg != "" {
				bad("query", "%s", msg)
			}
		}
		if r.Timeout == 0 {
			r.Timeout = Duration(30e9)
		}
		if r.Timeout < Duration(1e9) {
			bad("timeout", "timeout must be at least 1s")
		}
	case TypeSpike:
		if !slices.Contains(Measures, r.Measure) {
			bad("measure", "spike rule needs a measure from %v", Measures)
		}
		if r.Window <= 0 || r.Window%Duration(3600e9) != 0 {
			bad("window", "spike rule needs a window of whole hours (it reads the hourly rollup)")
		}
		switch r.Seasonality {
		case "":
			r.Seasonality = "daily"
		case "daily", "none":
		default:
			bad("seasonality", "seasonality %q: want daily or none", r.Seasonality)
		}
		switch r.Direction {
		case "":
			r.Direction = "up"
		case "up", "down", "both":
		default:
			bad("direction", "direction %q: want up, down or both", r.Direction)
		}
		if r.BaselineDays == 0 {
			r.BaselineDays = 14
		}
		if r.MinSamples == 0 {
			r.MinSamples = 7
		}
		if r.BaselineDays < 1 || r.BaselineDays > 90 || r.MinSamples < 3 {
			bad("baseline_days", "baseline_days must be 1 to 90 and min_samples at least 3")
		}
		if r.Threshold == nil {
			z := 3.5
			r.Threshold = &z
		}
		if len(r.GroupBy) > 0 && !(len(r.GroupBy) == 1 && r.GroupBy[0] == "key_id") {
			bad("group_by", "spike rules compare each key with itself: group_by is [key_id]")
		}
	case TypeDormant:
		needWindow()
		if r.DormantFor <= 0 {
			bad("dormant_for", "dormant rule needs dormant_for (e.g. 45d)")
		}
	case "":
		bad("type", "type is required: one of %v", Types)
	default:
		bad("type", "type %q: want one of %v", r.Type, Types)
	}
	if r.Type != TypeThreshold && (r.Threshold != nil || len(r.Overrides) > 0) && r.Type != TypeNewValue && r.Type != TypeSQL && r.Type != TypeSpike {
		bad("threshold", "threshold and overrides apply to threshold, new_value and sql rules")
	}
	return errs
}

// ParsePrefix parses an address or CIDR (IPv4 or IPv6) into a masked prefix;
// a bare address becomes a /32 or /128, an IPv4-mapped IPv6 address an IPv4 one.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// alignedEvery runs "@every d" on multiples of d since the epoch (every
// 5m: at :00, :05, …) rather than d after the process started, so that
// restarts and reloads do not shift the ticks and leave events between two
// windows unexamined.
type alignedEvery struct{ d time.Duration }

// Next implements cron.Schedule.
func (a alignedEvery) Next(t time.Time) time.Time { return t.Truncate(a.d).Add(a.d) }
