package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/auditwatch/auditwatch/ingest"
	"github.com/auditwatch/auditwatch/ingest/chsink"
	"github.com/auditwatch/auditwatch/ingest/health"
	"github.com/auditwatch/auditwatch/ingest/retention"
)

func runIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ingest", "Consume gateway access logs from Kafka into ClickHouse until SIGINT/SIGTERM,\nthen flush, commit and exit.", stdout, stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	migrateFirst := fs.Bool("migrate", false, "apply schema migrations before consuming (also ingest.migrate_on_start)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	if cfg.Ingest.MemoryLimitBytes > 0 {
		debug.SetMemoryLimit(cfg.Ingest.MemoryLimitBytes)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := ingest.NewMetrics(reg)

	// The ingest user may be limited to the auditwatch database (it is on
	// 18.16, and with grants.sql), so that is its session database.
	conn, err := openClickHouseDB(cfg.ClickHouse.For("ingest"), cfg.ClickHouse.Database)
	if err != nil {
		return err
	}
	defer conn.Close()

	// Health and metrics are served before any dependency is reachable:
	// /readyz says what is missing instead of the port refusing.
	checker := health.New(5*time.Second, log,
		health.Probe{Name: "clickhouse", Check: conn.Ping},
		health.Probe{Name: "kafka", Check: kafkaProbe(cfg.Kafka)})
	var wg sync.WaitGroup
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		checker.Run(runCtx)
	}()
	stopHTTP := func() {}
	if cfg.HTTP.Listen != "" {
		srv, ln, err := listenHTTP(cfg.HTTP, reg, checker.Ready)
		if err != nil {
			return err
		}
		log.Info("serving metrics and health", "addr", ln.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server failed", "err", err)
			}
		}()
		stopHTTP = func() {
			sctx, c := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer c()
			_ = srv.Shutdown(sctx)
		}
	}
	defer func() {
		cancel()
		stopHTTP()
		wg.Wait()
	}()

	if *migrateFirst || cfg.Ingest.MigrateOnStart {
		// As the migrate user: the ingest user has no right to change the
		// schema (and the database may not exist yet).
		if err := migrateAs(ctx, cfg.ClickHouse, log); err != nil {
			return err
		}
	}
	if err := waitClickHouse(ctx, conn, log); err != nil {
		return err
	}

	reader, err := newReader(cfg.Kafka, log)
	if err != nil {
		return err
	}
	// Progress rows go through a connection of their own: in the data
	// connection's pool, their inserts would make a second pooled
	// connection that then grows the buffers of large batches too (more
	// live heap, more GC under ingest.memory_limit_bytes).
	progressConn, err := openClickHouseDB(cfg.ClickHouse.For("ingest"), cfg.ClickHouse.Database)
	if err != nil {
		return err
	}
	defer progressConn.Close()
	sink := chsink.New(conn, cfg.ClickHouse.Database)
	sink.SetMaxPartitions(cfg.Ingest.MaxPartitionsPerInsert)
	sink.SetCluster(cfg.ClickHouse.Cluster != "")
	in := ingest.New(reader, sink, ingest.Options{
		MaxRows:          cfg.Ingest.BatchMaxRows,
		MaxBytes:         cfg.Ingest.BatchMaxBytes,
		FlushInterval:    cfg.Ingest.FlushInterval,
		MaxMessageBytes:  cfg.Ingest.MaxMessageBytes,
		MaxFuture:        cfg.Ingest.MaxFutureSkew,
		MaxPast:          cfg.maxPast(),
		FingerprintKey:   cfg.Keys.fingerprintKey,
		MaxDeadLetterRaw: cfg.Ingest.DeadLetterRawBytes,
		ShutdownTimeout:  cfg.Ingest.ShutdownTimeout,
		RetryMax:         cfg.Ingest.RetryMax,
		Progress:         chsink.NewProgressWriter(progressConn, cfg.ClickHouse.Database),
		ProgressInterval: cfg.Ingest.ProgressInterval,
		Topic:            cfg.Kafka.Topic,
		Group:            cfg.Kafka.GroupID,
		Instance:         instanceName(),
	}, log, metrics)
	checker.Add(in.Ready)

	if cfg.Retention.InIngest {
		// Kept for single-process setups: by default retention runs as its
		// own job (`auditwatch retention --every`), so that the ingest user
		// needs no right to drop partitions. This connection is the
		// retention user's (clickhouse.users.retention, else the shared one).
		retConn, err := openClickHouseDB(cfg.ClickHouse.For("retention"), cfg.ClickHouse.Database)
		if err != nil {
			return err
		}
		defer retConn.Close()
		ret := retention.New(retConn, cfg.ClickHouse.Database, retentionPolicy(cfg.Retention), log)
		ret.SetCluster(cfg.ClickHouse.Cluster)
		log.Info("enforcing retention in the ingester (retention.in_ingest)", "every", cfg.Retention.CheckInterval)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ret.Loop(runCtx, cfg.Retention.CheckInterval)
		}()
	}

	cfg.Keys.logState(log)
	log.Info("ingesting", "brokers", cfg.Kafka.Brokers, "topic", cfg.Kafka.Topic, "group", cfg.Kafka.GroupID,
		"database", cfg.ClickHouse.Database, "batch_max_rows", cfg.Ingest.BatchMaxRows, "flush_interval", cfg.Ingest.FlushInterval,
		"max_past", cfg.maxPast())
	runErr := in.Run(ctx)
	if err := reader.Close(); err != nil {
		log.Warn("close kafka reader", "err", err)
	}
	if runErr != nil {
		return fmt.Errorf("ingest: %w", runErr)
	}
	log.Info("ingest stopped cleanly")
	return nil
}

// instanceName names this ingester in ingest_progress: host:pid.
func instanceName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return host + ":" + strconv.Itoa(os.Getpid())
}

// listenHTTP serves /metrics, /healthz (the process is up) and /readyz
// (ready() returns nil: dependencies reachable, writes and commits
// succeeding).
func listenHTTP(cfg HTTPConfig, reg *prometheus.Registry, ready func() error) (*http.Server, net.Listener, error) {
	addr := cfg.Listen
	mux := http.NewServeMux()
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln, nil
}
