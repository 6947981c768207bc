package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/alerts/slack"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/detect/leader"
	"github.com/auditwatch/auditwatch/ingest/secret"
	"github.com/auditwatch/auditwatch/rules"
)

// newNotifier builds the configured notifier and checks the fallback
// routes (alerts.fallback) against it. alerts.notifier is:
//   - slack: the Slack bot token or webhook (the configuration requires one);
//   - auto: the same when a token or webhook is set, and otherwise a startup
//     error: alerts are never printed to standard output by accident;
//   - console: standard output or alerts.console_path, only when asked for.
//
// The returned closer closes a console file.
func newNotifier(cfg AlertsConfig, stdout io.Writer, log *slog.Logger) (alerts.Notifier, func(), error) {
	hasSlack := cfg.Slack.token != "" || cfg.Slack.webhookURL != ""
	var n alerts.Notifier
	closer := func() {}
	switch {
	case cfg.Notifier == "slack" && !hasSlack:
		return nil, nil, errors.New("alerts.notifier slack: set AUDITWATCH_SLACK_TOKEN or AUDITWATCH_SLACK_WEBHOOK_URL (or alerts.slack.token_file / webhook_url_file)")
	case cfg.Notifier == "slack" || (cfg.Notifier == "auto" && hasSlack):
		sn, err := slack.New(slack.Config{Token: cfg.Slack.token, WebhookURL: cfg.Slack.webhookURL, APIURL: cfg.Slack.APIURL, Timeout: cfg.Slack.Timeout, Logger: log,
			Interactive: cfg.Slack.Interactive.on(cfg.Slack)}) // triage buttons (cmd_triage.go)
		if err != nil {
			return nil, nil, err
		}
		n = sn
	case cfg.Notifier == "auto":
		return nil, nil, errors.New("alerts.notifier auto: no Slack credentials (AUDITWATCH_SLACK_TOKEN or AUDITWATCH_SLACK_WEBHOOK_URL, " +
			"or alerts.slack.token_file / webhook_url_file); alerts are not printed to standard output unless asked: " +
			"set alerts.notifier: console (and alerts.console_path for a file), or alerts.enabled: false")
	case cfg.ConsolePath == "":
		n = alerts.NewConsole(stdout)
	default:
		f, err := os.OpenFile(cfg.ConsolePath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("open alerts.console_path: %w", err)
		}
		n, closer = alerts.NewConsole(f), func() { f.Close() }
	}
	if n.Name() == "console" && hasSlack && log != nil {
		log.Warn("alerts.notifier console: Slack credentials are set but not used; set alerts.notifier: slack (or auto) to post to Slack")
	}
	if _, err := fallbackTargets(cfg, n); err != nil {
		closer()
		return nil, nil, err
	}
	return n, closer, nil
}

// fallbackTargets builds the fallback routes of alerts.fallback for the
// primary notifier n: a channel (through n, which must be a Slack bot), a
// second Slack incoming webhook, a JSON-lines file.
func fallbackTargets(cfg AlertsConfig, n alerts.Notifier) ([]alerts.FallbackTarget, error) {
	fb := cfg.Fallback
	var ts []alerts.FallbackTarget
	if fb.Channel != "" {
		sn, ok := n.(*slack.Notifier)
		if !ok || sn.Webhook() {
			return nil, fmt.Errorf("alerts.fallback.channel %q: needs the Slack notifier with a bot token (a webhook posts only to its own channel; the console has no channels)", fb.Channel)
		}
		ts = append(ts, alerts.FallbackTarget{Name: alerts.FallbackChannel, Notifier: n, Channel: fb.Channel, Where: fb.Channel})
	}
	if fb.webhookURL != "" {
		if fb.webhookURL == cfg.Slack.webhookURL {
			return nil, errors.New("alerts.fallback: the fallback webhook is the primary webhook; use another channel's webhook")
		}
		hn, err := slack.New(slack.Config{WebhookURL: fb.webhookURL, Timeout: cfg.Slack.Timeout})
		if err != nil {
			return nil, fmt.Errorf("alerts.fallback webhook: %w", err)
		}
		ts = append(ts, alerts.FallbackTarget{Name: alerts.FallbackWebhook, Notifier: hn, Where: "webhook"})
	}
	if fb.File != "" {
		fn, err := alerts.NewFileNotifier(fb.File)
		if err != nil {
			return nil, fmt.Errorf("alerts.fallback.file: %w", err)
		}
		ts = append(ts, alerts.FallbackTarget{Name: alerts.FallbackFile, Notifier: fn, Where: fb.File})
	}
	return ts, nil
}

// newDispatcher builds the dispatcher, with the fallback routes (checked
// by newNotifier; a route that fails now is logged and left out). fence,
// when not nil, is asked before each message (detect.ha: only the leader
// sends).
func newDispatcher(cfg Config, conn driver.Conn, n alerts.Notifier, lookup alerts.RuleLookup, log *slog.Logger, m *alerts.Metrics, fence func() error) *alerts.Dispatcher {
	a := cfg.Alerts
	fb, err := fallbackTargets(a, n)
	if err != nil {
		log.Error("alert fallback not usable; findings Slack refuses for good are only recorded and reported", "err", err)
	}
	names := make([]string, len(fb))
	for i, t := range fb {
		names[i] = t.Name + "=" + t.Where
	}
	switch {
	case len(fb) > 0:
		log.Info("alert fallback", "targets", strings.Join(names, ","))
	case n.Name() != "console":
		log.Warn("no alert fallback configured (alerts.fallback): findings Slack refuses for good or that expire are only recorded in alert_deliveries, counted and reported by /readyz")
	}
	return alerts.NewDispatcher(alerts.NewStore(conn, cfg.ClickHouse.Database), n, lookup, alerts.Options{
		Router: alerts.Router{Routes: a.Routes, DefaultChannel: a.DefaultChannel}, Database: cfg.ClickHouse.Database,
		PollInterval: a.PollInterval, Horizon: a.Horizon, IncidentTTL: a.IncidentTTL, MaxGroups: a.MaxGroups,
		Attempts: a.Attempts, SendResolved: a.SendResolved, CatchupAfter: a.CatchupAfter, Fallback: fb, Fence: fence,
	}, log, m)
}

// runAlerts implements `alerts flush`.
func runAlerts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "flush" {
		fmt.Fprintln(stdout, "Usage: auditwatch alerts flush [--config F] [--rules DIR] [--leader-wait D]\n\nDeliver the findings waiting for delivery (and resolution notes) once, then exit.\n`detect` does this continuously every alerts.poll_interval. With detect.ha, flush refuses\nwhile detect processes are in the leader group, and otherwise flushes only as its leader.")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return nil
		}
		return errUsage
	}
	fs := newFlags("alerts flush", "Deliver the findings waiting for delivery (and resolution notes) once, then exit.", stdout, stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	dir := fs.String("rules", "", "rules directory, for rule descriptions (default detect.rules_dir)")
	leaderWait := fs.Duration("leader-wait", 0, "with detect.ha: how long to wait to lead the group before giving up (default 3 × kafka.session_timeout)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *dir != "" {
		cfg.Detect.RulesDir = *dir
	}
	log := newLogger(cfg.Log, stderr)
	conn, err := openClickHouseDB(cfg.ClickHouse.For("detect"), cfg.ClickHouse.Database)
	if err != nil {
		return err
	}
	defer conn.Close()
	set, err := rules.LoadDir(cfg.Detect.RulesDir)
	if err != nil {
		log.Warn("rules not loaded; messages will lack rule descriptions", "err", err)
		set = &rules.Set{}
	}
	n, closeN, err := newNotifier(cfg.Alerts, stdout, log)
	if err != nil {
		return err
	}
	defer closeN()
	flush := func(ctx context.Context, fence func() error) error {
		d := newDispatcher(cfg, conn, n, set.Get, log, nil, fence)
		st, err := d.Cycle(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "%d messages sent for %d findings via %s (%d in catch-up messages, %d escalations); %d silenced, %d failed, %d to retry, %d incidents resolved; %d expired (past alerts.horizon); %d handed to the fallback, %d fallback failures\n",
			st.Messages, st.Sent, n.Name(), st.Folded, st.Escalations, st.Silenced, st.Failed, st.Retrying, st.Resolved, st.Expired, st.Fallback, st.FallbackFailed)
		// Expired findings (older than the horizon when this flush ran) are
		// reported above and recorded, not an error of this flush: a
		// `detect --from` catch-up reaches back to the horizon's edge.
		if st.Retrying > 0 || st.Failed > 0 || st.FallbackFailed > 0 {
			return fmt.Errorf("%d findings not delivered (%d failed for good, %d to retry, %d fallback failures; see alert_deliveries)", st.Retrying+st.Failed, st.Failed, st.Retrying, st.FallbackFailed)
		}
		return nil
	}
	if !cfg.Detect.HA.Enabled {
		return flush(ctx, nil)
	}
	wait := *leaderWait
	if wait <= 0 {
		wait = 3 * cfg.Kafka.SessionTimeout
	}
	return flushAsLeader(ctx, cfg, log, wait, flush)
}

// flushAsLeader runs flush as the leader of the detect.ha group, so that
// it never overlaps a detect's deliveries: while detect processes are
// members of the group (one of them leads and delivers) it refuses without
// joining (joining would interrupt the leader's term); otherwise it joins,
// flushes under the leader's fence once it leads, and leaves. It gives up
// when it does not lead within wait (a detect that started meanwhile won).
func flushAsLeader(ctx context.Context, cfg Config, log *slog.Logger, wait time.Duration, flush func(context.Context, func() error) error) error {
	ha := cfg.Detect.HA
	tr, err := kafkaTransport(cfg.Kafka)
	if err != nil {
		return err
	}
	client := &kafka.Client{Addr: kafka.TCP(cfg.Kafka.Brokers...), Transport: tr, Timeout: 10 * time.Second}
	members, err := leader.DescribeGroup(ctx, client, ha.GroupID, ha.Topic)
	if err != nil {
		return fmt.Errorf("detect.ha: %w", err)
	}
	if len(members) > 0 {
		lead := "none yet (rebalancing)"
		for _, m := range members {
			if m.Leads {
				lead = m.ID
			}
		}
		return fmt.Errorf("detect.ha: %d detect process(es) in leader group %s (leader: %s) deliver the alerts; not flushing (stop them first, or let the leader deliver)", len(members), ha.GroupID, lead)
	}
	el, err := newElector(ctx, cfg, "alerts-flush", log, nil)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	led := false
	var ferr error
	timer := time.AfterFunc(wait, func() {
		mu.Lock()
		defer mu.Unlock()
		if !led {
			cancel()
		}
	})
	defer timer.Stop()
	if err := el.Run(rctx, func(lctx context.Context) {
		mu.Lock()
		if led { // a second term: the first one flushed
			mu.Unlock()
			return
		}
		led = true
		mu.Unlock()
		log.Info("leading the detect.ha group: flushing")
		ferr = flush(lctx, el.Fence)
		cancel()
	}); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	if !led {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("detect.ha: did not become the leader of group %s within %s (a detect leads?); not flushing", ha.GroupID, wait)
	}
	return ferr
}

// runSilence implements `silence add|list|expire`.
func runSilence(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := "Usage: auditwatch silence add --rule R [--key K] [--ip IP|CIDR] --for 2h --reason \"…\" [--by NAME]\n" +
		"       auditwatch silence list [--all] [--format table|json]\n" +
		"       auditwatch silence expire ID\n\n" +
		"Silenced findings are still recorded (alert_deliveries outcome silenced), not sent."
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, usage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	sub, rest := args[0], args[1:]
	fs := newFlags("silence "+sub, usage, stdout, stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	var (
		rule, key, ip, reason, by, format *string
		dur                               *time.Duration
		all                               *bool
	)
	switch sub {
	case "add":
		rule = fs.String("rule", "", "rule id (empty: any rule)")
		key = fs.String("key", "", "key: registry id, fingerprint or hint (resolved through the key registry)")
		ip = fs.String("ip", "", "client IP or CIDR")
		dur = fs.Duration("for", time.Hour, "how long")
		reason = fs.String("reason", "", "why (required)")
		by = fs.String("by", os.Getenv("USER"), "who")
	case "list":
		all = fs.Bool("all", false, "include expired silences")
		format = fs.String("format", "table", "table or json")
	case "expire":
	default:
		fmt.Fprintf(stderr, "auditwatch silence: unknown subcommand %q\n", sub)
		return errUsage
	}
	var id string
	if sub == "expire" {
		got, err := dirArg(fs, rest)
		if err != nil {
			return usageErr(err, stderr)
		}
		id = got
	} else if err := parse(fs, rest); err != nil {
		return err
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	conn, err := openClickHouseDB(cfg.ClickHouse.For("detect"), cfg.ClickHouse.Database)
	if err != nil {
		return err
	}
	defer conn.Close()
	st := alerts.NewStore(conn, cfg.ClickHouse.Database)
	now := time.Now().UTC().Truncate(time.Second)
	switch sub {
	case "add":
		keyID := *key
		if keyID != "" {
			reg, err := keys.NewStore(conn, cfg.ClickHouse.Database).All(ctx)
			if err != nil {
				fmt.Fprintf(stderr, "warning: key registry not read (%v); the key is taken as given\n", secret.Redact(err.Error()))
			}
			id, k, err := alerts.ResolveSilenceKey(keyID, reg)
			if err != nil {
				return err
			}
			switch {
			case k != nil:
				fmt.Fprintf(stderr, "key %s is registry key %s (%s%s); the silence matches its id and its fingerprint\n",
					secret.Hint(keyID), k.ID, dash(k.Hint), ownerText(k))
			case reg != nil:
				fmt.Fprintf(stderr, "warning: key %s is not in the key registry; the silence matches findings whose key id or fingerprint is %s\n", secret.Hint(keyID), id)
			}
			keyID = id
		}
		s := alerts.Silence{ID: alerts.NewSilenceID(), RuleID: *rule, KeyID: keyID, ClientIP: *ip, Reason: *reason, CreatedBy: *by,
			CreatedAt: now, StartsAt: now, EndsAt: now.Add(*dur)}
		if err := st.AddSilence(ctx, s); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s until %s\n", s.ID, s.EndsAt.Format(time.RFC3339))
	case "list":
		since := now
		if *all {
			since = time.Time{}
		}
		ss, err := st.Silences(ctx, since)
		if err != nil {
			return err
		}
		if *format == "json" {
			return json.NewEncoder(stdout).Encode(ss)
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tRULE\tKEY\tIP\tUNTIL\tSTATE\tBY\tREASON")
		for _, s := range ss {
			state := "active"
			switch {
			case s.Expired:
				state = "expired"
			case !s.Active(now):
				state = "ended"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, dash(s.RuleID), dash(s.KeyID), dash(s.ClientIP), s.EndsAt.Format(time.RFC3339), state, s.CreatedBy, s.Reason)
		}
		tw.Flush()
	case "expire":
		if err := st.ExpireSilence(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s expired\n", id)
	}
	return nil
}

func ownerText(k *keys.Key) string {
	if k.Owner == "" {
		return ""
	}
	return ", " + k.Owner
}
