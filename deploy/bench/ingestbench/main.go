// Command ingestbench is `make bench`: it preloads N generated events into a
// fresh 4-partition Kafka topic once, then drains them into an empty
// ClickHouse database with `auditwatch ingest` RUNS times (each run with a
// new consumer group and database), and reports per run and as median
// [min–max]: events/s from process start to the last row visible, the
// ingester's CPU seconds per million events and peak RSS, and the CPU the
// ClickHouse server and the Kafka broker spent meanwhile. With -alternate,
// runs alternate with and without the rollup's materialized view, to show
// what the rollup costs; with -baseline BIN, they alternate between -bin and
// BIN (e.g. a build of the previous commit), for an A/B on the same day.
//
// Rows are counted over one native connection every 100 ms: the poll loop
// costs no process start and next to no CPU. CPU comes from the kernel:
// the ingester's rusage when it exits, the servers' /proc/PID/stat.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

type run struct {
	Variant           string  `json:"variant"`
	Bin               string  `json:"bin"`
	Config            string  `json:"config,omitempty"`
	Rollup            bool    `json:"rollup"`
	Events            int     `json:"events"`
	Distinct          uint64  `json:"distinct_in_clickhouse"`
	Seconds           float64 `json:"seconds_from_start"`
	EventsPerSecond   float64 `json:"events_per_second"`
	IngesterCPUPerM   float64 `json:"ingester_cpu_seconds_per_million"`
	PeakRSSMiB        float64 `json:"peak_rss_mib"`
	ClickHouseCPUPerM float64 `json:"clickhouse_cpu_seconds_per_million"`
	KafkaCPUPerM      float64 `json:"kafka_cpu_seconds_per_million"`
}

type stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func main() {
	events := flag.Int("events", 1_000_000, "events to preload and drain")
	runs := flag.Int("runs", 5, "drains (with -alternate: of each kind)")
	alternate := flag.Bool("alternate", false, "alternate runs with and without the rollup's materialized view")
	noRollup := flag.Bool("no-rollup", false, "drop the rollup's materialized view in every run")
	bin := flag.String("bin", "bin/auditwatch", "the auditwatch binary")
	chAddr := flag.String("clickhouse", envOr("AUDITWATCH_CLICKHOUSE_ADDR", "127.0.0.1:19000"), "ClickHouse native address")
	brokers := flag.String("kafka", envOr("AUDITWATCH_KAFKA_BROKERS", "127.0.0.1:19092"), "Kafka brokers")
	state := flag.String("state", envOr("AW_STATE", ".state"), "service state directory (pid files)")
	out := flag.String("out", "out/bench.json", "JSON report")
	config := flag.String("config", "", "auditwatch configuration file for the ingester")
	baseline := flag.String("baseline", "", "a second auditwatch binary: runs alternate between -bin and it")
	baselineConfig := flag.String("baseline-config", "", "a second configuration file: runs alternate between -config and it (with -baseline's binary, if given)")
	flag.Parse()
	if *alternate && (*baseline != "" || *baselineConfig != "") {
		log.Fatal("-alternate and -baseline exclude each other")
	}
	log.SetFlags(0)
	ctx := context.Background()

	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{*chAddr}})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	stamp := time.Now().Unix()
	topic := fmt.Sprintf("auditwatch-bench-%d", stamp)
	env := append(os.Environ(),
		"AUDITWATCH_CLICKHOUSE_ADDR="+*chAddr, "AUDITWATCH_KAFKA_BROKERS="+*brokers,
		"AUDITWATCH_KAFKA_TOPIC="+topic, "AUDITWATCH_HTTP_LISTEN=127.0.0.1:0")
	fmt.Printf("preloading %d events into %s ...\n", *events, topic)
	gen := exec.Command(*bin, "gen", "--out", "kafka", "--seed", "99", "--events", strconv.Itoa(*events),
		"--scenarios", "none", "--start", "-24h", "--duration", "24h")
	gen.Env, gen.Stdout, gen.Stderr = env, os.Stdout, os.Stderr
	if err := gen.Run(); err != nil {
		log.Fatalf("gen: %v", err)
	}

	chPID := readPID(filepath.Join(*state, "clickhouse", "clickhouse.pid"))
	kPID := readPID(filepath.Join(*state, "kafka", "kafka.pid"))
	type variant struct {
		name, bin, config string
		rollup            bool
	}
	variants := []variant{{"with_rollup", *bin, *config, !*noRollup}}
	if *noRollup {
		variants[0].name = "without_rollup"
	}
	switch {
	case *alternate:
		variants = append(variants, variant{"without_rollup", *bin, *config, false})
	case *baseline != "" || *baselineConfig != "":
		variants[0].name = "current"
		variants = append(variants, variant{"baseline", cmp.Or(*baseline, *bin), cmp.Or(*baselineConfig, *config), !*noRollup})
	}
	var results []run
	for i := range *runs * len(variants) {
		v := variants[i%len(variants)]
		db := fmt.Sprintf("auditwatch_bench_%d", i)
		r, err := drain(ctx, conn, v.bin, v.config, env, db, fmt.Sprintf("%s-g%d", topic, i), *events, v.rollup, chPID, kPID)
		if err != nil {
			log.Fatalf("run %d: %v", i+1, err)
		}
		r.Variant, r.Bin, r.Config = v.name, v.bin, v.config
		_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
		fmt.Printf("run %2d %-14s: %8.0f events/s  ingester %5.2f s CPU/1M  RSS %5.1f MiB  ClickHouse %5.2f s/1M  Kafka %5.2f s/1M\n",
			i+1, v.name, r.EventsPerSecond, r.IngesterCPUPerM, r.PeakRSSMiB, r.ClickHouseCPUPerM, r.KafkaCPUPerM)
		results = append(results, r)
	}
	report := map[string]any{"events": *events, "runs": results}
	for _, v := range variants {
		var rs []run
		for _, r := range results {
			if r.Variant == v.name {
				rs = append(rs, r)
			}
		}
		s := map[string]stat{
			"events_per_second":                  summarize(rs, func(r run) float64 { return r.EventsPerSecond }),
			"ingester_cpu_seconds_per_million":   summarize(rs, func(r run) float64 { return r.IngesterCPUPerM }),
			"peak_rss_mib":                       summarize(rs, func(r run) float64 { return r.PeakRSSMiB }),
			"clickhouse_cpu_seconds_per_million": summarize(rs, func(r run) float64 { return r.ClickHouseCPUPerM }),
			"kafka_cpu_seconds_per_million":      summarize(rs, func(r run) float64 { return r.KafkaCPUPerM }),
		}
		report[v.name] = s
		fmt.Printf("%s (%s), %d runs, median [min–max]:\n", strings.ReplaceAll(v.name, "_", " "), v.bin, len(rs))
		for _, k := range []string{"events_per_second", "ingester_cpu_seconds_per_million", "peak_rss_mib", "clickhouse_cpu_seconds_per_million", "kafka_cpu_seconds_per_million"} {
			fmt.Printf("  %-36s %10.2f [%.2f–%.2f]\n", k, s[k].Median, s[k].Min, s[k].Max)
		}
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		log.Fatal(err)
	}
	b, _ := json.MarshalIndent(report, "", "  ")
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Println("->", *out)
}

// drain runs one ingester from a new consumer group into a new database
// until every event is visible, and measures it.
func drain(ctx context.Context, conn driver.Conn, bin, config string, env []string, db, group string, n int, rollup bool, chPID, kPID int) (run, error) {
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		return run{}, err
	}
	env = append(env, "AUDITWATCH_CLICKHOUSE_DATABASE="+db, "AUDITWATCH_KAFKA_GROUP_ID="+group)
	args := func(a ...string) []string {
		if config != "" {
			a = append(a, "--config", config)
		}
		return a
	}
	mig := exec.Command(bin, args("migrate")...)
	mig.Env = env
	if out, err := mig.CombinedOutput(); err != nil {
		return run{}, fmt.Errorf("migrate: %v\n%s", err, out)
	}
	if !rollup {
		if err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+db+".key_usage_mv"); err != nil {
			return run{}, err
		}
	}
	time.Sleep(2 * time.Second) // let the server settle after the DDL
	ch0, k0 := procCPU(chPID), procCPU(kPID)
	logf, err := os.Create(filepath.Join("out", "bench-ingest.log"))
	if err != nil {
		return run{}, err
	}
	defer logf.Close()
	ing := exec.Command(bin, args("ingest")...)
	ing.Env, ing.Stdout, ing.Stderr = env, logf, logf
	start := time.Now()
	if err := ing.Start(); err != nil {
		return run{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- ing.Wait() }()
	deadline := start.Add(10 * time.Minute)
	for {
		var c uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".access_log").Scan(&c); err != nil {
			return run{}, err
		}
		if c >= uint64(n) {
			break
		}
		select {
		case err := <-exited:
			return run{}, fmt.Errorf("ingest exited: %v (see out/bench-ingest.log)", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = ing.Process.Kill()
			return run{}, fmt.Errorf("timed out at %d of %d rows", c, n)
		}
	}
	elapsed := time.Since(start).Seconds()
	ch1, k1 := procCPU(chPID), procCPU(kPID)
	_ = ing.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return run{}, err
		}
	}
	ru, _ := ing.ProcessState.SysUsage().(*syscall.Rusage)
	var cpu, rss float64
	if ru != nil {
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		rss = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	var distinct uint64
	if err := conn.QueryRow(ctx, "SELECT uniqExact(request_id) FROM "+db+".access_log").Scan(&distinct); err != nil {
		return run{}, err
	}
	if distinct != uint64(n) {
		return run{}, fmt.Errorf("MISMATCH: %d of %d distinct events", distinct, n)
	}
	m := float64(n) / 1e6
	return run{Rollup: rollup, Events: n, Distinct: distinct, Seconds: round(elapsed), EventsPerSecond: round(float64(n) / elapsed),
		IngesterCPUPerM: round(cpu / m), PeakRSSMiB: round(rss), ClickHouseCPUPerM: round((ch1 - ch0) / m), KafkaCPUPerM: round((k1 - k0) / m)}, nil
}

func summarize(rs []run, f func(run) float64) stat {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return stat{Median: round(med), Min: v[0], Max: v[len(v)-1]}
}

// procCPU returns a process's user+system CPU seconds (0 when unknown).
func procCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	// Fields after the command name (which may contain spaces), from ')'.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func round(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
