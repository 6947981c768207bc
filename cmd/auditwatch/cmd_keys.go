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

	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/ingest/chsink"
)

const keysSummary = `Manage the API key registry (docs/key-registry.md).

  auditwatch keys import FILE [--format yaml|csv] [--replace] [--dry-run]
      import a registry export (a list of keys, or a mapping with a keys
      list); all or nothing: every problem is reported with its line and
      nothing is written if there is one; warnings (rotated_at before
      created_at) are printed on stderr and do not stop the import
  auditwatch keys list [--format table|json]
      print the current registry
  auditwatch keys consume [--topic T] [--group G]
      apply key lifecycle events from Kafka until SIGINT/SIGTERM

Every subcommand takes --config FILE.`

// runKeys dispatches the keys subcommands.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := stderr
		if len(args) > 0 {
			w = stdout
		}
		fmt.Fprintf(w, "Usage: auditwatch keys <import|list|consume> [flags]\n\n%s\n", keysSummary)
		if len(args) == 0 {
			return errUsage
		}
		return flag.ErrHelp
	}
	switch args[0] {
	case "import":
		return runKeysImport(ctx, args[1:], stdout, stderr)
	case "list":
		return runKeysList(ctx, args[1:], stdout, stderr)
	case "consume":
		return runKeysConsume(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "auditwatch keys: unknown subcommand %q (want import, list or consume)\n", args[0])
	return errUsage
}

// parseWithArgs parses flags that may come before, between or after
// positional arguments, and returns the positional arguments.
func parseWithArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func runKeysImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys import FILE", "Import the key registry from FILE (YAML or CSV, see docs/key-registry.md). Every key in\nthe file gets a new version; keys not in the file are left alone unless --replace is given.\nFull API keys in the file are fingerprinted and never stored. All or nothing: any\nproblem is reported with its line and nothing is imported.", stdout, stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	format := fs.String("format", "", "file format: yaml or csv (default: from the extension)")
	replace := fs.Bool("replace", false, "also revoke every key that is not in the file")
	dryRun := fs.Bool("dry-run", false, "check the file and report what would change, without writing")
	pos, err := parseWithArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "auditwatch keys import: want exactly one FILE")
		return errUsage
	}
	file := pos[0]
	switch *format {
	case "", keys.FormatYAML, keys.FormatCSV:
	default:
		return fmt.Errorf("--format %q: want yaml or csv", *format)
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.Keys.keyFileWarning != "" {
		fmt.Fprintf(stderr, "warning: %s\n", cfg.Keys.keyFileWarning)
	}
	fpr := cfg.Keys.fingerprinter()
	parsed, warns, err := keys.Parser{Fingerprinter: fpr}.ParseFileWithWarnings(file, *format)
	// Warnings do not stop the import; they go to stderr in file order,
	// before any error, so the output reads like the file.
	for _, w := range warns {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if err != nil {
		var list keys.ErrorList
		if errors.As(err, &list) {
			fmt.Fprintln(stderr, list.Error())
			return fmt.Errorf("%s: %s; nothing imported", file, plural(len(list), "problem", "problems"))
		}
		return err
	}
	conn, err := openClickHouseDB(cfg.ClickHouse.For("keys"), cfg.ClickHouse.Database)
	if err != nil {
		return err
	}
	defer conn.Close()
	store := keys.NewStore(conn, cfg.ClickHouse.Database)
	res, err := store.Import(ctx, parsed, keys.ImportOptions{Replace: *replace, DryRun: *dryRun})
	if err != nil {
		return err
	}
	verb := "imported"
	if *dryRun {
		verb = "would import"
	}
	fmt.Fprintf(stdout, "%s %d keys from %s: %d new, %d changed, %d unchanged", verb, len(parsed), file, res.New, res.Changed, res.Unchanged)
	if res.Merged > 0 {
		fmt.Fprintf(stdout, ", %d fingerprint-only entries merged", res.Merged)
	}
	if *replace {
		fmt.Fprintf(stdout, "; %d keys absent from the file revoked", res.Revoked)
	}
	if len(warns) > 0 {
		fmt.Fprintf(stdout, " (%s on stderr)", plural(len(warns), "warning", "warnings"))
	}
	if fpr.Keyed() {
		fmt.Fprintf(stdout, "; fingerprints keyed with keys.fingerprint_key_file (key check %s)", fpr.Check())
	}
	fmt.Fprintln(stdout)
	return nil
}

func runKeysList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys list", "Print the current key registry.", stdout, stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	format := fs.String("format", "table", "table or json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		return fmt.Errorf("--format %q: want table or json", *format)
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	conn, err := openClickHouseDB(cfg.ClickHouse.For("keys"), cfg.ClickHouse.Database)
	if err != nil {
		return err
	}
	defer conn.Close()
	all, err := keys.NewStore(conn, cfg.ClickHouse.Database).All(ctx)
	if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if all == nil {
			all = []keys.Key{}
		}
		return enc.Encode(all)
	}
	return writeKeyTable(stdout, all, time.Now())
}

// writeKeyTable prints keys as an aligned table.
func writeKeyTable(w io.Writer, all []keys.Key, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY ID\tHINT\tENV\tACCOUNT\tOWNER\tSTATUS\tCREATED\tLAST ROTATION\tEXPIRES\tALLOWLIST")
	day := func(t time.Time) string { return t.UTC().Format(time.DateOnly) }
	for _, k := range all {
		expires := "-"
		if k.ExpiresAt != nil {
			expires = day(*k.ExpiresAt)
		}
		rot := day(k.LastRotation()) + fmt.Sprintf(" (%dd)", int(now.Sub(k.LastRotation()).Hours()/24))
		allow := "any"
		if len(k.AllowedCIDRs) > 0 {
			s := make([]string, len(k.AllowedCIDRs))
			for i, p := range k.AllowedCIDRs {
				s[i] = p.String()
			}
			allow = strings.Join(s, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, dash(k.Hint), dash(k.Env), dash(k.AccountID),
			dash(k.Owner), k.Status, day(k.CreatedAt), rot, expires, allow)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d keys\n", len(all))
	return err
}

// plural returns "1 warning" or "3 warnings".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runKeysConsume(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys consume", "Apply key lifecycle events (JSON, see docs/key-registry.md) from a Kafka topic to the\nkey registry until SIGINT/SIGTERM, then write, commit and exit. Bad events go to ingest_errors.\nKafka connection settings (brokers, TLS, SASL, start_offset) come from the kafka section.", stdout, stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	topic := fs.String("topic", "", "Kafka topic of key lifecycle events (default kafka.keys_topic)")
	group := fs.String("group", "", "Kafka consumer group (default kafka.keys_group_id)")
	migrateFirst := fs.Bool("migrate", false, "apply schema migrations before consuming")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *topic == "" {
		*topic = cfg.Kafka.KeysTopic
	}
	if *group == "" {
		*group = cfg.Kafka.KeysGroupID
	}
	if *topic == "" || *group == "" {
		return errors.New("kafka.keys_topic and kafka.keys_group_id (or --topic and --group) must not be empty")
	}
	if cfg.Keys.fingerprinter().Keyed() {
		// The lifecycle consumer fingerprints full keys in events with
		// plain SHA-256 (keys.DecodeEvent): under a fingerprint secret they
		// would not join access_log. Refuse rather than store fingerprints
		// that silently match nothing.
		return errors.New("keys consume: keys.fingerprint_key_file is set, but the lifecycle consumer cannot key fingerprints yet; keep the registry current with keys import instead")
	}
	log := newLogger(cfg.Log, stderr)
	if *migrateFirst {
		// As the migrate user: the keys user has no right to change the schema.
		if err := migrateAs(ctx, cfg.ClickHouse, log); err != nil {
			return err
		}
	}
	conn, err := openClickHouseDB(cfg.ClickHouse.For("keys"), cfg.ClickHouse.Database)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := waitClickHouse(ctx, conn, log); err != nil {
		return err
	}
	kcfg := cfg.Kafka
	kcfg.Topic, kcfg.GroupID = *topic, *group
	kcfg.MinBytes = 1 // low volume: do not wait for min_bytes
	reader, err := newReader(kcfg, log)
	if err != nil {
		return err
	}
	c := keys.NewConsumer(reader, keys.NewStore(conn, cfg.ClickHouse.Database), chsink.New(conn, cfg.ClickHouse.Database),
		keys.ConsumerOptions{
			MaxMessageBytes:  cfg.Ingest.MaxMessageBytes,
			MaxDeadLetterRaw: cfg.Ingest.DeadLetterRawBytes,
			ShutdownTimeout:  cfg.Ingest.ShutdownTimeout,
		}, log)
	log.Info("consuming key events", "brokers", kcfg.Brokers, "topic", kcfg.Topic, "group", kcfg.GroupID, "database", cfg.ClickHouse.Database)
	runErr := c.Run(ctx)
	if err := reader.Close(); err != nil {
		log.Warn("close kafka reader", "err", err)
	}
	st := c.Stats()
	if runErr != nil {
		return fmt.Errorf("consume key events: %w", runErr)
	}
	log.Info("key event consumer stopped cleanly", "messages", st.Messages, "applied", st.Applied, "dead_letters", st.DeadLetters)
	return nil
}
