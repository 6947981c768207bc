package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/robfig/cron/v3"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
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
	sched := detect.NewScheduler(cfg.Detect.RulesDir, runner, log, detect.NewMetrics(reg))
	sched.ReloadInterval = cfg.Detect.ReloadInterval
	progress := detect.NewProgress(conn, db)
	progress.IdleTimeout = cfg.Detect.IdleTimeout
	sched.Watermarks, sched.Runs, sched.Late = progress, runner.Store, detect.NewProgressLog(conn, db)
	sched.MaxWait, sched.ReplayLookback, sched.LateCheckInterval = cfg.Detect.MaxWait, cfg.Detect.ReplayLookback, cfg.Detect.LateCheckInterval
	alertMetrics := alerts.NewMetrics(reg) // also says whether alert delivery is degraded, for /readyz
	stopHTTP := func() {}
	if cfg.Detect.HTTPListen != "" {
		srv, ln, err := listenHTTP(HTTPConfig{Listen: cfg.Detect.HTTPListen, Pprof: cfg.HTTP.Pprof}, reg, func() error {
			if sched.Rules() == nil {
				return errors.New("rules not loaded")
			}
			return errors.Join(conn.Ping(ctx), alertMetrics.DeliveryHealthy())
		})
		if err != nil {
			return err
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
	dispatchDone := make(chan struct{})
	dctx, stopDispatch := context.WithCancel(ctx)
	defer stopDispatch()
	if cfg.Alerts.Enabled {
		n, closeN, err := newNotifier(cfg.Alerts, stdout, log)
		if err != nil {
			return err
		}
		defer closeN()
		lookup := func(id string) *rules.Rule {
			if set := sched.Rules(); set != nil {
				return set.Get(id)
			}
			return nil
		}
		d := newDispatcher(cfg, conn, n, lookup, log, alertMetrics)
		runner.Stored = d.Wake // deliver as soon as an alert is stored
		log.Info("delivering alerts", "notifier", n.Name(), "default_channel", cfg.Alerts.DefaultChannel, "routes", len(cfg.Alerts.Routes))
		go func() {
			defer close(dispatchDone)
			_ = d.Run(dctx) // its own goroutine: a Slack outage never blocks detection
		}()
	} else {
		close(dispatchDone)
	}
	if len(cfg.Summary.Schedules) > 0 {
		n, closeN, err := newNotifier(cfg.Alerts, stdout, log)
		if err != nil {
			return err
		}
		defer closeN()
		poster, _ := n.(alerts.ReportPoster)
		d := &summary.Deliverer{Builder: summary.NewBuilder(conn, db, keys.NewStore(conn, db)), Poster: poster, OutDir: cfg.Summary.OutDir, Log: log}
		c := cron.New(cron.WithLocation(time.UTC), cron.WithParser(cronParser), cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger)))
		for _, sc := range cfg.Summary.Schedules {
			sc := sc
			if _, err := c.AddFunc(sc.Cron, func() {
				if _, err := d.Deliver(dctx, sc, time.Now()); err != nil {
					log.Error("scheduled usage summary failed", "period", sc.Period, "channel", sc.Channel, "err", err)
				}
			}); err != nil {
				return fmt.Errorf("summary schedule %q: %w", sc.Cron, err)
			}
		}
		c.Start()
		defer func() { <-c.Stop().Done() }()
		log.Info("usage summaries scheduled", "schedules", len(cfg.Summary.Schedules), "out_dir", cfg.Summary.OutDir)
	}
	log.Info("detecting", "rules_dir", cfg.Detect.RulesDir, "database", db)
	err = sched.Run(ctx)
	// Stop delivering before the deferred calls close the notifier.
	stopDispatch()
	<-dispatchDone
	if err != nil {
		return err
	}
	log.Info("detect stopped cleanly")
	return nil
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
