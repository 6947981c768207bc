package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/testenv"
)

// binary is the auditwatch binary built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "auditwatch-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "auditwatch")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build auditwatch: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// stack is one test's services: a ClickHouse address and database, a Kafka
// topic and consumer group.
type stack struct {
	chAddr  string
	db      string
	brokers []string
	topic   string
	group   string
}

func newStack(t *testing.T, chAddr string, partitions int) *stack {
	t.Helper()
	return newStackOn(t, chAddr, testenv.Brokers(t), partitions)
}

func newStackOn(t *testing.T, chAddr string, brokers []string, partitions int) *stack {
	t.Helper()
	conn := testenv.Connect(t, chAddr)
	return &stack{
		chAddr: chAddr, db: testenv.ScratchDB(t, conn), brokers: brokers,
		topic: testenv.Topic(t, brokers, partitions), group: testenv.RandomName("e2e-"),
	}
}

// config writes a configuration file for this stack with the metrics
// endpoint on port.
func (s *stack) config(t *testing.T, port int, extra string) string {
	t.Helper()
	body := fmt.Sprintf(`log: {level: info, format: text}
clickhouse: {addr: [%q], database: %s}
kafka: {brokers: [%s], topic: %s, group_id: %s, max_wait: 100ms, session_timeout: 6s}
ingest: {batch_max_rows: 20000, flush_interval: 300ms, shutdown_timeout: 20s}
retention: {check_interval: 0s}
http: {listen: "127.0.0.1:%d"}
%s`, s.chAddr, s.db, strings.Join(s.brokers, ","), s.topic, s.group, port, extra)
	path := filepath.Join(t.TempDir(), "auditwatch.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// gen produces n normal events (seeded) to the stack's topic with the gen
// command.
func (s *stack) gen(t *testing.T, cfg string, seed, n int) {
	t.Helper()
	cmd := exec.Command(binary, "gen", "--config", cfg, "--out", "kafka", "--seed", strconv.Itoa(seed),
		"--events", strconv.Itoa(n), "--scenarios", "none", "--start", "-2h", "--duration", "2h")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen: %v\n%s", err, out)
	}
}

// proc is a running `auditwatch ingest`.
type proc struct {
	cmd  *exec.Cmd
	port int
	log  *bytes.Buffer
	done chan error
}

func startIngest(t *testing.T, cfg string, port int) *proc {
	t.Helper()
	p := &proc{port: port, log: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary, "ingest", "--config", cfg)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("ingest log (port %d):\n%s", p.port, tail(p.log.String(), 4000))
		}
	})
	return p
}

// stop sends SIGTERM and requires a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("ingest exited with %v after SIGTERM\n%s", err, tail(p.log.String(), 3000))
		}
	case <-time.After(40 * time.Second):
		t.Fatal("ingest did not exit within 40s of SIGTERM")
	}
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// metric returns the value of an unlabelled metric, or -1 when unreadable.
func (p *proc) metric(name string) float64 {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", p.port))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+" ") {
			v, _ := strconv.ParseFloat(strings.TrimPrefix(line, name+" "), 64)
			return v
		}
	}
	return -1
}

func (p *proc) ready() int {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", p.port))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// issuedPorts are the ports freePort has returned in this test binary.
var issuedPorts = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// freePort returns a port nothing listens on, never the same one twice:
// the kernel may hand a just-closed port out again, and a service given the
// same port for two listeners (native and HTTP) hangs its clients.
func freePort(t *testing.T) int {
	t.Helper()
	issuedPorts.Lock()
	defer issuedPorts.Unlock()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !issuedPorts.m[port] {
			issuedPorts.m[port] = true
			return port
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// waitRows waits until the database holds exactly want distinct requests.
func waitRows(t *testing.T, chAddr, db string, want int, timeout time.Duration) {
	t.Helper()
	conn := testenv.Connect(t, chAddr)
	testenv.Eventually(t, timeout, func() (bool, string) {
		var got uint64
		if err := conn.QueryRow(context.Background(), "SELECT uniqExact(request_id) FROM "+db+".access_log").Scan(&got); err != nil {
			return false, err.Error()
		}
		if got > uint64(want) {
			t.Fatalf("%d distinct requests, more than the %d produced", got, want)
		}
		return got == uint64(want), fmt.Sprintf("%d of %d requests", got, want)
	})
	final := testenv.Count(t, conn, "SELECT count() FROM "+db+".access_log FINAL")
	if final != uint64(want) {
		t.Fatalf("SELECT count() FINAL = %d, want %d: duplicates visible to analysts", final, want)
	}
	// Redelivered messages are not stored twice, so the rollup the usage
	// review and the anomaly baselines read is exact. An insert's rows are
	// visible in access_log a moment before its materialized view has
	// written them to key_usage: wait a little for the rollup to agree (a
	// double count never does).
	var diff []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if diff = testenv.RollupMismatches(t, conn, db); len(diff) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(diff) > 0 {
		t.Fatalf("key_usage differs from access_log in %d key-hours, e.g.\n%s", len(diff), strings.Join(diff[:min(5, len(diff))], "\n"))
	}
	if all, distinct := testenv.Count(t, conn, "SELECT count() FROM "+db+".ingest_errors"),
		testenv.Count(t, conn, "SELECT uniqExact(topic, partition, offset) FROM "+db+".ingest_errors"); all != distinct {
		t.Fatalf("ingest_errors holds %d rows for %d dead letters", all, distinct)
	}
}

// status returns the HTTP status of path on the ingester, 0 when refused.
func (p *proc) status(path string) int {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", p.port, path))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestSIGKILLMidStreamLosesNothing(t *testing.T) {
	s := newStack(t, testenv.ClickHouseAddr(t), 4)
	port := freePort(t)
	cfg := s.config(t, port, "")
	const n = 150_000
	s.gen(t, cfg, 7, n)

	p := startIngest(t, cfg, port)
	// Kill it once it has written some but not all.
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		w := p.metric("auditwatch_ingest_rows_written_total")
		return w >= 20_000, fmt.Sprintf("%v rows written", w)
	})
	written := p.metric("auditwatch_ingest_rows_written_total")
	p.kill(t)
	if written >= n {
		t.Fatalf("all %d rows were written before the kill; the test proves nothing", n)
	}
	p2 := startIngest(t, cfg, port)
	waitRows(t, s.chAddr, s.db, n, 90*time.Second)
	t.Logf("after the restart: %v redelivered messages skipped as already stored", p2.metric("auditwatch_ingest_redelivered_skipped_total"))
	p2.stop(t)
}

func TestTwoIngestersSharePartitions(t *testing.T) {
	s := newStack(t, testenv.ClickHouseAddr(t), 4)
	pa, pb := freePort(t), freePort(t)
	a := startIngest(t, s.config(t, pa, ""), pa)
	b := startIngest(t, s.config(t, pb, ""), pb)
	// Let both join the group before producing.
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return a.ready() == 200 && b.ready() == 200, "waiting for both to serve /readyz"
	})
	time.Sleep(8 * time.Second)
	const n = 60_000
	s.gen(t, s.config(t, 0, ""), 11, n)
	waitRows(t, s.chAddr, s.db, n, 90*time.Second)
	ra, rb := a.metric("auditwatch_ingest_messages_read_total"), b.metric("auditwatch_ingest_messages_read_total")
	if ra <= 0 || rb <= 0 {
		t.Fatalf("messages read: %v and %v; want both ingesters to take a share", ra, rb)
	}
	t.Logf("ingester A read %v, B read %v", ra, rb)
	a.stop(t)
	b.stop(t)
}

func TestClickHouseRestartMidStream(t *testing.T) {
	if _, err := exec.LookPath("clickhouse-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("clickhouse-server not installed")
		}
		t.Skip("clickhouse-server not installed")
	}
	testenv.Brokers(t) // skip or fail early without Kafka
	// A private ClickHouse server that this test may stop and start.
	chPort := freePort(t)
	ch := privateService(t, "clickhouse.sh", "AW_CH_PORT="+strconv.Itoa(chPort),
		"AW_CH_HTTP_PORT="+strconv.Itoa(freePort(t)), "AW_CH_INTERSERVER_PORT="+strconv.Itoa(freePort(t)))
	ch("start")
	t.Cleanup(func() { ch("stop") })
	addr := "127.0.0.1:" + strconv.Itoa(chPort)

	s := newStack(t, addr, 4)
	port := freePort(t)
	cfg := s.config(t, port, "")

	// Started while ClickHouse is down, the ingester serves health and
	// metrics at once and says it is not ready.
	ch("stop")
	p := startIngest(t, cfg, port)
	testenv.Eventually(t, 15*time.Second, func() (bool, string) {
		return p.status("/healthz") == 200 && p.status("/readyz") == http.StatusServiceUnavailable && p.metric("go_goroutines") > 0,
			fmt.Sprintf("healthz %d, readyz %d", p.status("/healthz"), p.status("/readyz"))
	})
	ch("start")
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return p.ready() == 200, "waiting for /readyz once ClickHouse is up" })

	const first, second = 40_000, 40_000
	s.gen(t, cfg, 21, first)
	waitRows(t, addr, s.db, first, 60*time.Second)

	ch("stop")
	s.gen(t, cfg, 22, second) // different seed: different request ids
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return p.ready() == http.StatusServiceUnavailable && p.metric("auditwatch_ingest_write_errors_total") > 0,
			"waiting for /readyz to report failing writes"
	})
	time.Sleep(20 * time.Second) // down long enough for an uncapped backoff to grow past 20s
	written := p.metric("auditwatch_ingest_rows_written_total")
	ch("start")
	back := time.Now()
	// Writes resume within a few seconds of ClickHouse's return (the retry
	// delay is capped at ingest.retry_max, 2s).
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return p.metric("auditwatch_ingest_rows_written_total") > written, "waiting for writes to resume"
	})
	t.Logf("writes resumed %.1fs after ClickHouse was back", time.Since(back).Seconds())
	waitRows(t, addr, s.db, first+second, 90*time.Second)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return p.ready() == 200, "waiting for /readyz to recover" })
	p.stop(t)
}

// privateService returns a function running deploy/services/<script> with a
// state directory of the test's own and the given port settings, so the
// test can stop and start that service without disturbing others.
func privateService(t *testing.T, script string, env ...string) func(action string) {
	t.Helper()
	path := filepath.Join(testenv.RepoRoot(t), "deploy", "services", script)
	env = append(append(os.Environ(), "AW_STATE="+t.TempDir()), env...)
	return func(action string) {
		t.Helper()
		cmd := exec.Command("bash", path, action)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", script, action, err, tail(string(out), 3000))
		}
	}
}

func TestKafkaRestartMidStream(t *testing.T) {
	chAddr := testenv.ClickHouseAddr(t)
	testenv.Brokers(t) // skip or fail early without the shared services
	kPort := freePort(t)
	kafka := privateService(t, "kafka.sh", "AW_KAFKA_PORT="+strconv.Itoa(kPort),
		"AW_KAFKA_CONTROLLER_PORT="+strconv.Itoa(freePort(t)), "AW_KAFKA_HEAP=-Xmx384m -Xms128m")
	kafka("install")
	kafka("start")
	t.Cleanup(func() { kafka("stop") })
	s := newStackOn(t, chAddr, []string{"127.0.0.1:" + strconv.Itoa(kPort)}, 4)
	port := freePort(t)
	cfg := s.config(t, port, "")
	p := startIngest(t, cfg, port)
	const first, second = 30_000, 30_000
	s.gen(t, cfg, 31, first)
	waitRows(t, s.chAddr, s.db, first, 60*time.Second)

	kafka("stop")
	// The ingester loses its broker and group coordinator: it stays up and
	// says it is not ready.
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		return p.ready() == http.StatusServiceUnavailable, "waiting for /readyz to report Kafka unreachable"
	})
	if p.cmd.ProcessState != nil {
		t.Fatal("ingest exited when Kafka went away")
	}
	kafka("start")
	s.gen(t, cfg, 32, second)
	waitRows(t, s.chAddr, s.db, first+second, 120*time.Second)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return p.ready() == 200, "waiting for /readyz to recover" })
	p.stop(t)
}
