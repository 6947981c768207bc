package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/rules"
)

// runRules dispatches `rules validate` and `rules test`.
func runRules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, "Usage: auditwatch rules validate DIR   check every rule file, report every error as file:line:col")
		fmt.Fprintln(stdout, "       auditwatch rules test DIR       run the *.test.yaml cases against a scratch ClickHouse database")
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	switch args[0] {
	case "validate":
		return runRulesValidate(args[1:], stdout, stderr)
	case "test":
		return runRulesTest(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "auditwatch rules: unknown subcommand %q (validate, test)\n", args[0])
	return errUsage
}

// dirArg parses flags that may come before or after the one DIR argument.
func dirArg(fs interface {
	Parse([]string) error
	Args() []string
}, args []string) (string, error) {
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return "", err
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		rest = rest[1:]
	}
	if len(pos) != 1 {
		return "", fmt.Errorf("want exactly one rules directory, got %d arguments", len(pos))
	}
	return pos[0], nil
}

func runRulesValidate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rules validate", "Check every rule file in DIR. Prints every error as file:line:col and exits 1 if any.\n\nauditwatch rules validate DIR", stdout, stderr)
	dir, err := dirArg(fs, args)
	if err != nil {
		return usageErr(err, stderr)
	}
	set, err := rules.LoadDir(dir)
	if err != nil {
		var errs rules.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(stdout, e)
			}
			return fmt.Errorf("%d errors in %s", len(errs), dir)
		}
		return err
	}
	enabled := 0
	for _, r := range set.Rules {
		if r.IsEnabled() {
			enabled++
		}
	}
	fmt.Fprintf(stdout, "%s: %d files, %d rules (%d enabled): OK\n", dir, len(set.Files), len(set.Rules), enabled)
	return nil
}

func runRulesTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rules test", "Run the test cases (*.test.yaml) beside the rules in DIR against the configured\nClickHouse server, each in a scratch database that is dropped afterwards.\n\nauditwatch rules test [--config F] DIR", stdout, stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	verbose := fs.Bool("v", false, "print every test, not only failures")
	dir, err := dirArg(fs, args)
	if err != nil {
		return usageErr(err, stderr)
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	conn, err := openClickHouse(cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer conn.Close()
	d, _, err := serverDialect(ctx, conn)
	if err != nil {
		return err
	}
	tr := &detect.TestRunner{Conn: conn, Dialect: d, Log: log,
		Open: func(db string) (driver.Conn, error) { return openClickHouseDB(cfg.ClickHouse, db) }}
	results, err := tr.RunDir(ctx, dir)
	if err != nil {
		var errs rules.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(stdout, e)
			}
		}
		return err
	}
	failed := 0
	for _, r := range results {
		if r.Passed {
			if *verbose {
				fmt.Fprintf(stdout, "PASS %s:%d %s (rule %s, %d findings)\n", r.File, r.Line, r.Name, r.Rule, len(r.Got))
			}
			continue
		}
		failed++
		fmt.Fprintf(stdout, "FAIL %s:%d %s (rule %s)\n", r.File, r.Line, r.Name, r.Rule)
		for _, e := range r.Errors {
			fmt.Fprintf(stdout, "     %s\n", e)
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", len(results)-failed, failed)
	if failed > 0 {
		return fmt.Errorf("%d of %d rule tests failed", failed, len(results))
	}
	if len(results) == 0 {
		return fmt.Errorf("no tests found in %s (*.test.yaml)", dir)
	}
	return nil
}

// usageErr passes --help through and turns other argument errors into
// errUsage after printing them.
func usageErr(err error, stderr io.Writer) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if !strings.HasPrefix(err.Error(), "flag provided but not defined") {
		fmt.Fprintln(stderr, err)
	}
	return errUsage
}

func runBacktest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backtest", "Replay the rules' schedules over stored history and report what would have fired\nand how many alerts would have been sent after cooldown. Stores nothing.", stdout, stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	dir := fs.String("rules", "", "rules directory (default detect.rules_dir)")
	from := fs.String("from", "-24h", "start: RFC 3339 or a duration relative to now")
	to := fs.String("to", "0s", "end: RFC 3339 or a duration relative to now")
	step := fs.String("step", "schedule", "evaluation times: schedule (each rule's own), window (each rule's window), or a duration")
	only := fs.String("rule", "", "only this rule id")
	format := fs.String("format", "table", "table or json")
	keep := fs.Int("show", 5, "alerts to list per rule (table format)")
	postureAtEnd := fs.Bool("posture-at-end", false, "evaluate registry rules (rotation, stale keys, missing allowlists) once at --to when their schedule has no tick in the range")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *dir == "" {
		*dir = cfg.Detect.RulesDir
	}
	opts, err := rangeOptions(*from, *to, *step, time.Now())
	if err != nil {
		return err
	}
	opts.Keep = max(*keep, 20)
	opts.PostureAtEnd = *postureAtEnd
	f, t := opts.From, opts.To
	set, err := rules.LoadDir(*dir)
	if err != nil {
		return err
	}
	if *only != "" {
		r := set.Get(*only)
		if r == nil {
			return fmt.Errorf("no rule %q in %s", *only, *dir)
		}
		set = &rules.Set{Rules: []*rules.Rule{r}, Files: set.Files}
	}
	log := newLogger(cfg.Log, stderr)
	conn, err := openClickHouseDB(cfg.ClickHouse.For("detect"), cfg.ClickHouse.Database)
	if err != nil {
		return err
	}
	defer conn.Close()
	eng := detect.NewEngine(conn, cfg.ClickHouse.Database, keys.NewStore(conn, cfg.ClickHouse.Database), log)
	eng.RegistryTTL = time.Hour // the registry as it is now, read once
	closeRules, err := boundSQLRules(cfg, eng)
	if err != nil {
		return err
	}
	defer closeRules()
	res, err := detect.Backtest(ctx, eng, set, opts)
	if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"from": f, "to": t, "rules": res})
	}
	fmt.Fprintf(stdout, "backtest %s → %s (%s)\n\n", f.Format(time.RFC3339), t.Format(time.RFC3339), *step)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tSEVERITY\tEVALS\tMATCHES\tALERTS\tSIGNALS\tGROUPS\tERRORS\tAVG QUERY")
	for _, r := range res {
		avg := time.Duration(0)
		if r.Evaluations > 0 {
			avg = r.QueryTime / time.Duration(r.Evaluations)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", r.RuleID, r.Severity, r.Evaluations, r.Matches, r.Alerts, r.Signals, r.Groups, r.Errors, avg.Round(100*time.Microsecond))
	}
	tw.Flush()
	for _, r := range res {
		if r.NotDue {
			how := "not evaluated"
			if r.Evaluations > 0 {
				how = "evaluated once at --to (--posture-at-end)"
			}
			fmt.Fprintf(stdout, "\n%s: not due: its schedule has no tick in this range (next %s); %s", r.RuleID, r.NextTick.Format(time.RFC3339), how)
			if r.Evaluations == 0 && detect.IsPosture(set.Get(r.RuleID)) {
				fmt.Fprint(stdout, " — --posture-at-end evaluates it once at the end")
			}
			fmt.Fprintln(stdout)
		}
	}
	for _, r := range res {
		if r.FirstError != "" {
			fmt.Fprintf(stdout, "\n%s: first error: %s\n", r.RuleID, r.FirstError)
		}
		if len(r.Findings) == 0 || *keep == 0 {
			continue
		}
		fmt.Fprintf(stdout, "\n%s — first alerts:\n", r.RuleID)
		for i, f := range r.Findings {
			if i == *keep {
				break
			}
			fmt.Fprintf(stdout, "  %s  %s\n", f.EvalTime.Format("2006-01-02 15:04"), f.Summary)
		}
	}
	return nil
}
