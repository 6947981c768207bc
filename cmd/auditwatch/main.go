// Command auditwatch ingests API-gateway access logs from Kafka into
// ClickHouse and detects credential misuse. Run `auditwatch help` for the
// commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"ingest", "consume access logs from Kafka into ClickHouse", runIngest},
		{"migrate", "create or upgrade the ClickHouse schema", runMigrate},
		{"retention", "drop partitions older than the retention settings, once", runRetention},
		{"detect", "run detection rules on their schedules against ClickHouse", runDetect},
		{"rules", "rules validate DIR | rules test DIR", runRules},
		{"alerts", "alerts flush: deliver pending findings once", runAlerts},
		{"silence", "silence add | list | expire: mute findings for a while", runSilence},
		{"summary", "per-key usage review (table, md, csv, json, html)", runSummary},
		{"keys", "keys import FILE | keys list | keys consume: the API key registry", runKeys},
		{"backtest", "replay rules over stored history: what would have fired", runBacktest},
		{"gen", "generate synthetic gateway traffic with incidents, to Kafka or stdout", runGen},
		{"version", "print the version", runVersion},
	}
}

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				return 2
			}
			fmt.Fprintf(stderr, "auditwatch %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "auditwatch: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

var errUsage = errors.New("usage error")

func usage(w io.Writer) {
	fmt.Fprintln(w, "auditwatch — audit-log analyzer and anomaly detector for API gateways")
	fmt.Fprintln(w, "\nUsage: auditwatch <command> [flags]   (auditwatch <command> --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	cs := commands()
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
}

// newFlags returns a FlagSet whose --help prints the command's summary and
// flags to stdout.
func newFlags(name, summary string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fs.SetOutput(stdout)
		fmt.Fprintf(stdout, "Usage: auditwatch %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, turning a bad flag into errUsage (the flag package has
// already printed why).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return errUsage
	}
	return nil
}

func newLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	fmt.Fprintln(stdout, "auditwatch", version)
	return nil
}
