package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/robfig/cron/v3"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/detect/leader"
	"github.com/auditwatch/auditwatch/detect/summary"
	"github.com/auditwatch/auditwatch/rules"
)

func runDetect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("detect", "Run the rules of detect.rules_dir on their schedules until SIGINT/SIGTERM, storing\nfindings and runs in ClickHouse. Rule files are reloaded when they change; an\ninvalid change is reported with file:line:col and the running rules stay.", stdout, stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	dir := fs.String("rules", "", "rules directory (overrides detect.rules_dir)")
	once := fs.String("once", "", "evaluate every enabled rule once at this time (RFC 3339 or relative, e.g. 0s), store the findings, and exit")
	from := fs.String("from", "", "catch up: run every enabled rule at its ticks from this time (RFC 3339 or relative, e.g. -24h) to --to, store the findings (with cooldown), and exit")
	to := fs.String("to", "0s", "end of --from catch-up")
	step := fs.String("step", "schedule", "with --from: schedule, window or a duration")
	migrateFirst := fs.Bool("migrate", false, "apply schema migrations first")
	if err := parse(fs, args); err != nil {
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
	if *migrateFirst {
		admin, err := openMigrate(cfg.ClickHouse) // as aw_migrate, no session database (see cmd_migrate.go)
		if err != nil {
			return err
		}
		if err := waitClickHouse(ctx, admin, log); err != nil {
			return err
		}
		_, err = migrate(ctx, admin, cfg.ClickHouse.Database, log)
		admin.Close()
		if err != nil {
			return err
		}
	}
	conn, err := openClickHouseDB(cfg.ClickHouse.For("detect"), cfg.ClickHouse.Database)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := waitClickHouse(ctx, conn, log); err != nil {
		return err
	}
	db := cfg.ClickHouse.Database
	runner := &detect.Runner{
		Engine: detect.NewEngine(conn, db, keys.NewStore(conn, db), log),
		Store:  detect.NewStore(conn, db),
	}

	runner.Engine.RegistryTTL = 5 * time.Second // key changes take effect within seconds
	closeRules, err := boundSQLRules(cfg, runner.Engine)
	if err != nil {
		return err
	}
	defer closeRules()
	runner.MaxFindings = cfg.Detect.SQLRules.MaxFindings

	if *once != "" || *from != "" {
		return detectOnce(ctx, runner, cfg.Detect.RulesDir, *once, *from, *to, *step, stdout, stderr)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	w := &detectWork{cfg: cfg, conn: conn, runner: runner, log: log, metrics: detect.NewMetrics(reg), alertMetrics: alerts.NewMetrics(reg)}
	var el *leader.Elector
	if cfg.Detect.HA.Enabled {
		// A standby checks the rules now rather than when it takes over.
		if _, err := rules.LoadDir(cfg.Detect.RulesDir); err != nil {
			return fmt.Errorf("load rules from %s: %w", cfg.Detect.RulesDir, err)
		}
		if el, err = newElector(ctx, cfg, "detect", log, leader.NewMetrics(reg)); err != nil {
			return err
		}
	}
	stopHTTP := func() {}
	if cfg.Detect.HTTPListen != "" {
		srv, ln, err := listenHTTP(HTTPConfig{Listen: cfg.Detect.HTTPListen, Pprof: cfg.HTTP.Pprof}, reg, func() error { return w.ready(ctx, el) })
		if err != nil {
			return err
		}
		if el != nil {
			srv.Handler = leaderReadyz(srv.Handler, el, func() error { return w.ready(ctx, el) })
		}
		log.Info("serving metrics and health", "addr", ln.Addr().String())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server failed", "err", err)
			}
		}()
		stopHTTP = func() {
			sctx, c := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer c()
			_ = srv.Shutdown(sctx)
			<-done
		}
	}
	defer stopHTTP()
	if cfg.Alerts.Enabled {
		n, closeN, err := newNotifier(cfg.Alerts, stdout, log)
		if err != nil {
			return err
		}
		defer closeN()
		var fence func() error
		if el != nil {
			fence = el.Fence // no message unless this process leads with a fresh lease
		}
		w.dispatcher = newDispatcher(cfg, conn, n, w.lookup, log, w.alertMetrics, fence)
		runner.Stored = w.dispatcher.Wake // deliver as soon as an alert is stored
		log.Info("delivering alerts", "notifier", n.Name(), "default_channel", cfg.Alerts.DefaultChannel, "routes", len(cfg.Alerts.Routes))
	}
	if len(cfg.Summary.Schedules) > 0 {
		n, closeN, err := newNotifier(cfg.Alerts, stdout, log)
		if err != nil {
			return err
		}
		defer closeN()
		poster, _ := n.(alerts.ReportPoster)
		w.summaries = &summary.Deliverer{Builder: summary.NewBuilder(conn, db, keys.NewStore(conn, db)), Poster: poster, OutDir: cfg.Summary.OutDir, Log: log}
		for _, sc := range cfg.Summary.Schedules {
			if _, err := cronParser.Parse(sc.Cron); err != nil {
				return fmt.Errorf("summary schedule %q: %w", sc.Cron, err)
			}
		}
	}
	if el == nil {
		log.Info("detecting", "rules_dir", cfg.Detect.RulesDir, "database", db)
		if err := w.run(ctx); err != nil {
			return err
		}
		log.Info("detect stopped cleanly")
		return nil
	}
	// detect.ha: the work runs only while this process leads; a failure of
	// the work (rules that do not load) stops the process.
	log.Info("detecting when leading", "rules_dir", cfg.Detect.RulesDir, "database", db, "group", cfg.Detect.HA.GroupID, "topic", cfg.Detect.HA.Topic)
	rctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if err := el.Run(rctx, func(lctx context.Context) {
		if err := w.run(lctx); err != nil {
			stop(err)
		}
	}); err != nil {
		return err
	}
	if err := context.Cause(rctx); err != nil && ctx.Err() == nil {
		return err
	}
	log.Info("detect stopped cleanly")
	return nil
}

// detectWork is what `detect` does: the rule scheduler, alert delivery and
// the usage summary schedules. Without detect.ha it runs for the life of
// the process; with it, once per term of leadership (a fresh scheduler each
// time, which reads the cursors the previous leader persisted and replays
// the ticks it missed).
type detectWork struct {
	cfg          Config
	conn         driver.Conn
	runner       *detect.Runner
	log          *slog.Logger
	metrics      *detect.Metrics
	alertMetrics *alerts.Metrics
	dispatcher   *alerts.Dispatcher               // nil: alerts disabled
	summaries    *summary.Deliverer               // nil: none scheduled
	sched        atomic.Pointer[detect.Scheduler] // of the running term
}

// run runs the work until ctx ends (then stops it and waits), or until the
// scheduler fails to start.
func (w *detectWork) run(ctx context.Context) error {
	cfg, db := w.cfg, w.cfg.ClickHouse.Database
	sched := detect.NewScheduler(cfg.Detect.RulesDir, w.runner, w.log, w.metrics)
	sched.ReloadInterval = cfg.Detect.ReloadInterval
	progress := detect.NewProgress(w.conn, db)
	progress.IdleTimeout = cfg.Detect.IdleTimeout
	sched.Watermarks, sched.Runs, sched.Late = progress, w.runner.Store, detect.NewProgressLog(w.conn, db)
	sched.MaxWait, sched.ReplayLookback, sched.LateCheckInterval = cfg.Detect.MaxWait, cfg.Detect.ReplayLookback, cfg.Detect.LateCheckInterval
	w.sched.Store(sched)
	defer w.sched.Store(nil)

	dctx, stopDispatch := context.WithCancel(ctx)
	defer stopDispatch()
	defer startTriage(dctx, cfg, w.conn, w.log)() // Slack buttons and /auditwatch (alerts.slack.interactive), while this term runs
	dispatchDone := make(chan struct{})
	if w.dispatcher != nil {
		go func() {
			defer close(dispatchDone)
			_ = w.dispatcher.Run(dctx) // its own goroutine: a Slack outage never blocks detection
		}()
	} else {
		close(dispatchDone)
	}
	if w.summaries != nil {
		c := cron.New(cron.WithLocation(time.UTC), cron.WithParser(cronParser), cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger)))
		for _, sc := range cfg.Summary.Schedules {
			sc := sc
			if _, err := c.AddFunc(sc.Cron, func() {
				if _, err := w.summaries.Deliver(dctx, sc, time.Now()); err != nil {
					w.log.Error("scheduled usage summary failed", "period", sc.Period, "channel", sc.Channel, "err", err)
				}
			}); err != nil {
				return fmt.Errorf("summary schedule %q: %w", sc.Cron, err)
			}
		}
		c.Start()
		defer func() { <-c.Stop().Done() }()
		w.log.Info("usage summaries scheduled", "schedules", len(cfg.Summary.Schedules), "out_dir", cfg.Summary.OutDir)
	}
	err := sched.Run(ctx)
	// Stop delivering before the caller closes the notifier.
	stopDispatch()
	<-dispatchDone
	return err
}

// lookup returns the rule with an id from the running scheduler, for
// alert messages.
func (w *detectWork) lookup(id string) *rules.Rule {
	if s := w.sched.Load(); s != nil {
		if set := s.Rules(); set != nil {
			return set.Get(id)
		}
	}
	return nil
}

// ready is /readyz of detect: ClickHouse answers and, on a process that
// works (the leader, or any detect without detect.ha), the rules are loaded
// and alert delivery is not degraded; a standby is ready once it is a
// member of the leader group.
func (w *detectWork) ready(ctx context.Context, el *leader.Elector) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := w.conn.Ping(pctx); err != nil {
		return err
	}
	if el != nil && !el.Leading() {
		if st := el.Status(); !st.Joined {
			if st.Err != nil {
				return fmt.Errorf("not a member of the leader group yet: %w", st.Err)
			}
			return errors.New("not a member of the leader group yet")
		}
		return nil
	}
	s := w.sched.Load()
	if s == nil || s.Rules() == nil {
		return errors.New("rules not loaded")
	}
	return w.alertMetrics.DeliveryHealthy()
}

// detectOnce runs the enabled rules at one time (once) or at their ticks over
// a past range (from, to, step), storing findings as the daemon would, and
// prints the alerting findings.
func detectOnce(ctx context.Context, runner *detect.Runner, dir, once, from, to, step string, stdout, stderr io.Writer) error {
	set, err := rules.LoadDir(dir)
	if err != nil {
		return err
	}
	now := time.Now()
	ticks := func(r *rules.Rule) ([]time.Time, error) {
		if once != "" {
			t, err := parseStart(once, now)
			return []time.Time{t}, err
		}
		o, err := rangeOptions(from, to, step, now)
		if err != nil {
			return nil, err
		}
		return detect.Ticks(r, o), nil
	}
	var failed, alerts, signals, suppressed int
	for _, r := range set.Rules {
		if !r.IsEnabled() {
			continue
		}
		ts, err := ticks(r)
		if err != nil {
			return err
		}
		for _, t := range ts {
			res, err := runner.Run(ctx, r, detect.Tick{T: t, Trigger: detect.TriggerManual, Complete: true})
			if err != nil {
				failed++
				fmt.Fprintf(stderr, "%s at %s: %v\n", r.ID, t.Format(time.RFC3339), err)
				continue
			}
			alerts += res.Alerts
			suppressed += res.Suppressed
			signals += res.Signals
			for _, f := range res.Findings {
				if f.Status == detect.StatusNew {
					fmt.Fprintf(stdout, "%s  %-8s  %s\n", f.EvalTime.Format("2006-01-02 15:04"), f.Severity, f.Summary)
				}
			}
		}
	}
	fmt.Fprintf(stderr, "%d findings alerted, %d signals recorded, %d suppressed by cooldown, %d failed evaluations\n", alerts, signals, suppressed, failed)
	if failed > 0 {
		return fmt.Errorf("%d rule evaluations failed", failed)
	}
	return nil
}

// rangeOptions parses --from/--to/--step.
func rangeOptions(from, to, step string, now time.Time) (detect.BacktestOptions, error) {
	f, err := parseStart(from, now)
	if err != nil {
		return detect.BacktestOptions{}, err
	}
	t, err := parseStart(to, now)
	if err != nil {
		return detect.BacktestOptions{}, err
	}
	o := detect.BacktestOptions{From: f, To: t}
	switch step {
	case "schedule":
	case "window":
		o.StepWindow = true
	default:
		d, err := rules.ParseDuration(step)
		if err != nil || d <= 0 {
			return o, fmt.Errorf("--step %q: want schedule, window or a duration", step)
		}
		o.Step = d
	}
	return o, nil
}

// boundSQLRules sets up how eng runs `sql` rules: with the detect.sql_rules
// limits, and on a connection of their own as the rules user when
// clickhouse.users.rules is configured (else on the engine's connection).
// The returned func closes that connection.
func boundSQLRules(cfg Config, eng *detect.Engine) (func(), error) {
	lim := cfg.Detect.SQLRules
	eng.SQLLimits = detect.SQLLimits{MaxExecutionTime: lim.MaxExecutionTime, MaxMemoryUsage: lim.MaxMemoryUsage, MaxRowsToRead: lim.MaxRowsToRead, MaxResultRows: lim.MaxResultRows}
	if u, ok := cfg.ClickHouse.Users["rules"]; !ok || u.Username == "" {
		return func() {}, nil
	}
	conn, err := openClickHouseDB(cfg.ClickHouse.For("rules"), cfg.ClickHouse.Database)
	if err != nil {
		return nil, fmt.Errorf("open the sql-rules connection: %w", err)
	}
	eng.SQLConn = conn
	return func() { conn.Close() }, nil
}

// newElector creates the leader group's topic if it is missing (one
// partition) and returns an Elector on it (detect.ha), with the kafka.*
// connection settings. role names the process in the group's member ids
// ("detect", "alerts-flush").
func newElector(ctx context.Context, cfg Config, role string, log *slog.Logger, m *leader.Metrics) (*leader.Elector, error) {
	ha := cfg.Detect.HA
	if err := ensureTopic(ctx, cfg.Kafka, ha.Topic, 1, log); err != nil {
		return nil, fmt.Errorf("detect.ha: leader topic: %w", err)
	}
	dialer, err := kafkaDialer(cfg.Kafka)
	if err != nil {
		return nil, err
	}
	tr, err := kafkaTransport(cfg.Kafka)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	return leader.NewKafka(leader.KafkaConfig{Brokers: cfg.Kafka.Brokers, Dialer: dialer, Transport: tr, GroupID: ha.GroupID, Topic: ha.Topic,
		SessionTimeout: cfg.Kafka.SessionTimeout, ClientID: fmt.Sprintf("auditwatch-%s@%s/%d", role, host, os.Getpid())}, log, m)
}

// leaderReadyz wraps h so that /readyz of a detect with detect.ha says
// whether it leads: 200 "leader (member M, generation G)" or 200 "standby
// (leader: M)" — both are ready, so a load balancer or Kubernetes keeps
// every replica (none of them serves traffic; the metrics say who leads) —
// and 503 with the reasons while ready fails.
func leaderReadyz(h http.Handler, el *leader.Elector, ready func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			h.ServeHTTP(w, r)
			return
		}
		if err := ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, leaderStatus(el.Status()))
	})
}

// leaderStatus describes st in a line.
func leaderStatus(st leader.Status) string {
	switch {
	case st.Leading:
		return fmt.Sprintf("leader (member %s, generation %d, since %s)", st.MemberID, st.Generation, st.Since.UTC().Format(time.RFC3339))
	case st.Leader != "":
		return fmt.Sprintf("standby (leader: %s; this member %s, generation %d)", st.Leader, st.MemberID, st.Generation)
	default:
		return fmt.Sprintf("standby (leader: unknown yet; this member %s, generation %d)", st.MemberID, st.Generation)
	}
}
