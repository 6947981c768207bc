package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/alerts/slack/slacktest"
	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/ingest/gen"
	"github.com/auditwatch/auditwatch/rules"
)

// The alert latency bench (make bench-alert-latency): real Kafka and
// ClickHouse, the built binary running `ingest` and `detect`, and a local
// Slack Web API server. Background traffic keeps some partitions busy and
// leaves one idle; bursts of invalid_signature events on fresh keys are then
// produced one at a time, and for each the time from the Kafka ack of its
// last event to the chat.postMessage naming its key is measured.
//
// Environment:
//
//	AUDITWATCH_BENCH_ALERT_LATENCY=1   run it (it never runs otherwise)
//	BURSTS (20), SEED (1)              number of bursts, seed of everything random
//	RULES (signatures)                 signatures: rules/pack/signatures.yaml only; pack: the whole pack
//	BG_RATE (5)                        background events per second
const (
	latencyBenchEnv  = "AUDITWATCH_BENCH_ALERT_LATENCY"
	latencyRule      = "invalid-signature-burst"
	latencyRuleName  = "Invalid signature burst"
	latencyToken     = "xoxb-4242424242-latencybenchlatencybenchab"
	latencyParts     = 4 // topic partitions; background traffic uses 0-2, partition 3 gets only the bursts that hash to it
	latencyIdlePart  = 3
	latencyBurstSize = 30
	latencyTimeout   = 60 * time.Second // a burst not alerted within this fails the bench
	latencyTargetP95 = 15 * time.Second
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// latencyBurst is one burst and what was measured about it.
type latencyBurst struct {
	N          int       `json:"n"`
	KeyID      string    `json:"key_id"`
	Partition  int       `json:"partition"`
	IdlePart   bool      `json:"idle_partition"` // the partition has no background traffic
	Events     int       `json:"events"`
	FirstAcked time.Time `json:"first_acked"`
	LastAcked  time.Time `json:"last_acked"`
	LastTS     time.Time `json:"last_event_ts"`
	SlackAt    time.Time `json:"slack_at,omitzero"`
	Alerted    bool      `json:"alerted"`
	LatencyS   float64   `json:"latency_s"`
	SlackKind  string    `json:"slack_kind,omitempty"`

	// Breakdown, in seconds after LastAcked (ClickHouse DateTime columns
	// have whole seconds, so stages read from them are ±1 s).
	StoredS      *float64 `json:"stored_s,omitempty"`      // ingest_progress row of the batch holding the last event (ns precision)
	DueS         float64  `json:"due_s"`                   // first tick whose window holds the last event (eval_time − query delay > its ts)
	DueThS       float64  `json:"due_threshold_s"`         // first tick whose window holds the threshold-th event: the earliest tick that can alert
	EvalTime     string   `json:"eval_time,omitempty"`     // tick of the alerted finding
	EvalTimeS    *float64 `json:"eval_time_s,omitempty"`   // … after LastAcked
	MissedTicks  int      `json:"missed_ticks"`            // ticks between the due one and the alerted one
	RunStartedS  *float64 `json:"run_started_s,omitempty"` // rule_runs.started_at of that run
	RunMS        uint32   `json:"run_ms,omitempty"`        // rule_runs.duration_ms
	RunWatermark string   `json:"run_watermark,omitempty"` // rule_runs.watermark
	RunComplete  *bool    `json:"run_complete,omitempty"`  // rule_runs.complete
	Trigger      string   `json:"trigger,omitempty"`       // findings.trigger
	CreatedS     *float64 `json:"finding_created_s,omitempty"`
	AttemptedS   *float64 `json:"delivery_attempted_s,omitempty"`

	due, dueTh time.Time
}

type latencyStats struct {
	N       int     `json:"n"`
	Alerted int     `json:"alerted"`
	P50     float64 `json:"p50_s"`
	P95     float64 `json:"p95_s"`
	Max     float64 `json:"max_s"`
	Mean    float64 `json:"mean_s"`
}

// pct is the nearest-rank percentile of sorted xs.
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

func statsOf(bs []*latencyBurst, keep func(*latencyBurst) bool) latencyStats {
	var xs []float64
	st := latencyStats{}
	for _, b := range bs {
		if !keep(b) {
			continue
		}
		st.N++
		if b.Alerted {
			st.Alerted++
			xs = append(xs, b.LatencyS)
		}
	}
	sort.Float64s(xs)
	if len(xs) > 0 {
		st.P50, st.P95, st.Max = pct(xs, 50), pct(xs, 95), xs[len(xs)-1]
		for _, x := range xs {
			st.Mean += x
		}
		st.Mean /= float64(len(xs))
	}
	return st
}

// kafkaWriter returns a writer that sends each WriteMessages call at once
// (BatchSize 1) and returns when every replica acknowledged it.
func latencyWriter(brokers []string, topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Hash{},
		BatchSize: 1, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll,
		Transport: &kafka.Transport{}, // its own: the shared one caches metadata older than the topic
	}
}

// partitionOf is the partition the production partitioner (kafka.Hash on
// the key id, as `gen` produces) puts key in.
func partitionOf(key string) int {
	parts := make([]int, latencyParts)
	for i := range parts {
		parts[i] = i
	}
	return (&kafka.Hash{}).Balance(kafka.Message{Key: []byte(key)}, parts...)
}

func alnum(r *rand.Rand, n int) string {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[r.Intn(len(chars))]
	}
	return string(b)
}

// startDetect starts `auditwatch detect` with the Slack token in its
// environment.
func startDetect(t *testing.T, cfg string, port int, logPath string) *proc {
	t.Helper()
	p := &proc{port: port, log: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary, "detect", "--config", cfg)
	p.cmd.Env = append(os.Environ(), "AUDITWATCH_SLACK_TOKEN="+latencyToken)
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
		_ = os.WriteFile(logPath, p.log.Bytes(), 0o644)
		if t.Failed() {
			t.Logf("detect log (port %d):\n%s", p.port, tail(p.log.String(), 4000))
		}
	})
	return p
}

// metricsText returns the /metrics page of a process.
func metricsText(port int) string {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricValue returns the first sample of name whose labels contain label.
func metricValue(page, name, label string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, name) && strings.Contains(line, label) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			return v
		}
	}
	return 0
}

func TestAlertLatencyBench(t *testing.T) {
	if os.Getenv(latencyBenchEnv) == "" {
		t.Skipf("set %s=1 (make bench-alert-latency) to run the alert latency bench", latencyBenchEnv)
	}
	nBursts, seed, bgRate := envInt("BURSTS", 20), envInt("SEED", 1), envInt("BG_RATE", 5)
	rulesMode := os.Getenv("RULES")
	if rulesMode == "" {
		rulesMode = "signatures"
	}
	rng := rand.New(rand.NewSource(int64(seed)))
	root := testenv.RepoRoot(t)
	outDir := filepath.Join(root, "out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}

	// Services: scratch database, topic, consumer group; Slack.
	s := newStack(t, testenv.ClickHouseAddr(t), latencyParts)
	conn := testenv.Connect(t, s.chAddr)
	srv := slacktest.NewServer(t)
	srv.RequireToken(latencyToken)

	// Rules: a copy of signatures.yaml (or of the whole pack).
	rulesDir := t.TempDir()
	files, err := filepath.Glob(filepath.Join(root, "rules", "pack", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		if strings.Contains(base, ".test.") || (rulesMode != "pack" && base != "signatures.yaml") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rulesDir, base), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// One configuration for both processes: the defaults (batching, flush
	// interval, Kafka waits, detect max_wait and idle_timeout, alert poll
	// interval) except where the services, ports and Slack are.
	ingestPort, detectPort := freePort(t), freePort(t)
	cfgBody := fmt.Sprintf(`log: {level: info, format: text}
clickhouse: {addr: [%q], database: %s}
kafka: {brokers: [%s], topic: %s, group_id: %s}
retention: {check_interval: 0s}
http: {listen: "127.0.0.1:%d"}
detect: {rules_dir: %q, http_listen: "127.0.0.1:%d"}
alerts:
  enabled: true
  notifier: auto   # slack in detect (the token is in its environment); ingest has no token and delivers nothing
  slack: {api_url: %q, allow_custom_api_url: true}
  default_channel: "#sec-alerts"
`, s.chAddr, s.db, strings.Join(s.brokers, ","), s.topic, s.group, ingestPort, rulesDir, detectPort, srv.APIURL())
	cfg := filepath.Join(t.TempDir(), "auditwatch.yaml")
	if err := os.WriteFile(cfg, []byte(cfgBody), 0o600); err != nil {
		t.Fatal(err)
	}

	ing := startIngest(t, cfg, ingestPort)
	t.Cleanup(func() {
		_ = os.WriteFile(filepath.Join(outDir, "bench-alert-latency-ingest.log"), ing.log.Bytes(), 0o644)
	})
	det := startDetect(t, cfg, detectPort, filepath.Join(outDir, "bench-alert-latency-detect.log"))
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		return ing.ready() == 200 && det.ready() == 200, fmt.Sprintf("readyz: ingest %d, detect %d", ing.ready(), det.ready())
	})
	if !strings.Contains(det.log.String(), "notifier=slack") {
		t.Fatalf("detect does not deliver to Slack:\n%s", tail(det.log.String(), 2000))
	}

	// Slack watcher: the first chat.postMessage of the rule naming each key,
	// seen within 5 ms of its arrival (requests are recorded on receipt).
	var mu sync.Mutex
	want := map[string]*latencyBurst{}
	seen := map[string]time.Time{}
	seenKind := map[string]string{}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		next := 0
		for watchCtx.Err() == nil {
			reqs := srv.Requests()
			now := time.Now()
			for ; next < len(reqs); next++ {
				r := reqs[next]
				if r.API != "chat.postMessage" {
					continue
				}
				text := r.Text + "\n" + r.BlocksText() + "\n" + string(r.Blocks)
				if !strings.Contains(text, latencyRuleName) && !strings.Contains(text, latencyRule) {
					continue
				}
				mu.Lock()
				for key := range want {
					if _, ok := seen[key]; !ok && strings.Contains(text, key) {
						seen[key] = now
						seenKind[key] = "message"
						if r.ThreadTS != "" {
							seenKind[key] = "thread reply"
						}
					}
				}
				mu.Unlock()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	defer func() { stopWatch(); <-watchDone }()

	// Background traffic: normal signed requests on 6 keys, 2 on each of
	// partitions 0-2, Poisson arrivals at BG_RATE/s; partition 3 gets none.
	type bgKey struct{ id, key, ip, acct string }
	var bg []bgKey
	perPart := map[int]int{}
	for i := 0; len(bg) < 6 && i < 10_000; i++ {
		id := fmt.Sprintf("key_bg%04d", i)
		p := partitionOf(id)
		if p == latencyIdlePart || perPart[p] >= 2 {
			continue
		}
		perPart[p]++
		bg = append(bg, bgKey{id: id, key: "bk_live_" + alnum(rng, 32), ip: fmt.Sprintf("198.51.100.%d", 10+len(bg)), acct: fmt.Sprintf("acct_%d", len(bg)%3)})
	}
	paths := []string{"/v1/orders", "/v1/positions", "/v1/quotes/EURUSD", "/v1/account/balance"}
	var reqSeq int64
	var seqMu sync.Mutex
	nextReqID := func(kind string) string {
		seqMu.Lock()
		defer seqMu.Unlock()
		reqSeq++
		return fmt.Sprintf("lat-%s-%d-%08d", kind, seed, reqSeq)
	}
	bgCtx, stopBG := context.WithCancel(context.Background())
	bgDone := make(chan struct{})
	var bgSent, bgErrs int
	go func() {
		defer close(bgDone)
		w := latencyWriter(s.brokers, s.topic)
		defer w.Close()
		br := rand.New(rand.NewSource(int64(seed) + 1000))
		for bgCtx.Err() == nil {
			k := bg[br.Intn(len(bg))]
			now := time.Now()
			ev := gen.Event{TS: now, RequestID: nextReqID("bg"), Method: "GET", Path: paths[br.Intn(len(paths))], Status: 200,
				ClientIP: k.ip, APIKey: k.key, KeyID: k.id, AuthMethod: gen.AuthAPIKey, Env: gen.EnvLive, Signed: true,
				SignatureTS: now.Unix(), UserAgent: "brokeret-go/1.4.0", LatencyMS: float64(5 + br.Intn(40)), BytesIn: 120, BytesOut: 900, AccountID: k.acct}
			ctx, cancel := context.WithTimeout(bgCtx, 10*time.Second)
			if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(k.id), Value: ev.AppendJSON(nil)}); err != nil {
				bgErrs++
			} else {
				bgSent++
			}
			cancel()
			d := time.Duration(br.ExpFloat64() / float64(bgRate) * float64(time.Second))
			select {
			case <-bgCtx.Done():
			case <-time.After(d):
			}
		}
	}()
	defer func() { stopBG(); <-bgDone }()

	// Warm-up: background stored, progress written, the rule evaluated on
	// complete windows a few times.
	testenv.Eventually(t, 90*time.Second, func() (bool, string) {
		var runs uint64
		_ = conn.QueryRow(context.Background(), "SELECT count() FROM "+s.db+".rule_runs WHERE rule_id = ? AND complete = 1 AND error = ''", latencyRule).Scan(&runs)
		var parts uint64
		_ = conn.QueryRow(context.Background(), "SELECT uniqExact(partition) FROM "+s.db+".ingest_progress WHERE partition >= 0").Scan(&parts)
		return runs >= 3 && parts >= 3, fmt.Sprintf("%d complete runs of %s, progress for %d partitions", runs, latencyRule, parts)
	})
	time.Sleep(5 * time.Second)
	t.Logf("warm: rules %s, background %d/s on %d keys (partitions 0-2), partition %d idle; %d bursts of %d events, seed %d",
		rulesMode, bgRate, len(bg), latencyIdlePart, nBursts, latencyBurstSize, seed)

	// Bursts.
	bw := latencyWriter(s.brokers, s.topic)
	defer bw.Close()
	bursts := make([]*latencyBurst, nBursts)
	set, err := rules.LoadDir(rulesDir)
	if err != nil {
		t.Fatal(err)
	}
	rule := set.Get(latencyRule)
	if rule == nil {
		t.Fatalf("rule %s not in %s", latencyRule, rulesDir)
	}
	threshold := math.Ceil(rule.ThresholdFor(map[string]string{}))
	if threshold > latencyBurstSize {
		t.Fatalf("threshold %v is above the %d events of a burst", threshold, latencyBurstSize)
	}
	for i := range nBursts {
		if i > 0 {
			time.Sleep(time.Duration((10 + rng.Float64()*10) * float64(time.Second)))
		}
		b := &latencyBurst{N: i + 1, KeyID: fmt.Sprintf("key_burst%02ds%d", i+1, seed)}
		b.Partition = partitionOf(b.KeyID)
		b.IdlePart = b.Partition == latencyIdlePart
		mu.Lock()
		want[b.KeyID] = b
		mu.Unlock()
		apiKey := "bk_live_" + alnum(rng, 32)
		ip := fmt.Sprintf("203.0.113.%d", 1+rng.Intn(250))
		gap := 2 * time.Second / (latencyBurstSize - 1)
		var thTS time.Time // ts of the event that reaches the threshold
		for j := range latencyBurstSize {
			if j > 0 {
				time.Sleep(time.Duration(float64(gap) * (0.5 + rng.Float64())))
			}
			now := time.Now()
			ev := gen.Event{TS: now, RequestID: nextReqID("burst"), Method: "POST", Path: paths[rng.Intn(2)], Status: 401,
				ErrorCode: gen.CodeInvalidSignature, ClientIP: ip, APIKey: apiKey, KeyID: b.KeyID, AuthMethod: gen.AuthAPIKey,
				Env: gen.EnvLive, Signed: true, SignatureTS: now.Unix() + int64(rng.Intn(61)-30), UserAgent: "python-requests/2.31",
				LatencyMS: float64(2 + rng.Intn(5)), BytesIn: 200, BytesOut: 60}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := bw.WriteMessages(ctx, kafka.Message{Key: []byte(b.KeyID), Value: ev.AppendJSON(nil)})
			cancel()
			if err != nil {
				t.Fatalf("burst %d: produce: %v", b.N, err)
			}
			acked := time.Now()
			if j == 0 {
				b.FirstAcked = acked
			}
			b.LastAcked, b.LastTS = acked, ev.TS.UTC().Truncate(time.Millisecond)
			b.Events++
			if float64(b.Events) == threshold {
				thTS = b.LastTS
			}
		}
		bursts[i] = b
		// The first tick whose window (ending query_delay before it) holds
		// the last event: ts is stored in whole seconds.
		sec := b.LastTS.Truncate(time.Second)
		due := rule.Sched().Next(sec.Add(rule.Delay().D()))
		b.due, b.DueS = due, due.Sub(b.LastAcked).Seconds()
		b.dueTh = rule.Sched().Next(thTS.Truncate(time.Second).Add(rule.Delay().D()))
		b.DueThS = b.dueTh.Sub(b.LastAcked).Seconds()
		t.Logf("burst %2d: key %s partition %d%s, %d events in %.2fs", b.N, b.KeyID, b.Partition,
			map[bool]string{true: " (idle)", false: ""}[b.IdlePart], b.Events, b.LastAcked.Sub(b.FirstAcked).Seconds())
	}

	// Wait for the last alerts (each burst has latencyTimeout from its ack).
	deadline := bursts[nBursts-1].LastAcked.Add(latencyTimeout)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == nBursts {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopWatch()
	<-watchDone
	stopBG()
	<-bgDone

	mu.Lock()
	var late []string
	for _, b := range bursts {
		if at, ok := seen[b.KeyID]; ok {
			b.SlackAt, b.SlackKind, b.Alerted = at, seenKind[b.KeyID], true
			b.LatencyS = math.Round(at.Sub(b.LastAcked).Seconds()*1000) / 1000
		}
		if !b.Alerted || b.LatencyS > latencyTimeout.Seconds() {
			late = append(late, fmt.Sprintf("burst %d (%s): %.1fs", b.N, b.KeyID, b.LatencyS))
		}
	}
	mu.Unlock()

	// Breakdown from ClickHouse.
	ctx := context.Background()
	rel := func(tm time.Time, b *latencyBurst) *float64 {
		if tm.IsZero() || tm.Unix() <= 0 {
			return nil
		}
		v := math.Round(tm.Sub(b.LastAcked).Seconds()*1000) / 1000
		return &v
	}
	for _, b := range bursts {
		var maxOff int64
		var part int32
		if err := conn.QueryRow(ctx, "SELECT kafka_partition, max(kafka_offset) FROM "+s.db+".access_log WHERE key_id = ? GROUP BY kafka_partition", b.KeyID).Scan(&part, &maxOff); err != nil {
			t.Logf("burst %d: access_log: %v", b.N, err)
			continue
		}
		var seq uint64
		if err := conn.QueryRow(ctx, "SELECT min(seq) FROM "+s.db+".ingest_progress WHERE partition = ? AND rows > 0 AND last_offset >= ?", part, maxOff).Scan(&seq); err == nil && seq > 0 {
			b.StoredS = rel(time.Unix(0, int64(seq)), b)
		}
		var evalTime, created time.Time
		var fid, trig string
		if err := conn.QueryRow(ctx, "SELECT eval_time, created_at, finding_id, trigger FROM "+s.db+".findings WHERE rule_id = ? AND key_id = ? AND status = 'new' ORDER BY created_at, eval_time LIMIT 1",
			latencyRule, b.KeyID).Scan(&evalTime, &created, &fid, &trig); err != nil {
			t.Logf("burst %d: no finding: %v", b.N, err)
			continue
		}
		b.EvalTime, b.Trigger = evalTime.UTC().Format(time.RFC3339), trig
		b.EvalTimeS, b.CreatedS = rel(evalTime, b), rel(created, b)
		b.MissedTicks = int(evalTime.Sub(b.dueTh) / rule.Sched().Next(b.dueTh).Sub(b.dueTh))
		var started, wm time.Time
		var dur uint32
		var complete uint8
		if err := conn.QueryRow(ctx, "SELECT started_at, duration_ms, watermark, complete FROM "+s.db+".rule_runs WHERE rule_id = ? AND eval_time = ? AND trigger = ? ORDER BY started_at LIMIT 1",
			latencyRule, evalTime, trig).Scan(&started, &dur, &wm, &complete); err == nil {
			b.RunStartedS, b.RunMS, b.RunWatermark = rel(started, b), dur, wm.UTC().Format(time.RFC3339)
			c := complete == 1
			b.RunComplete = &c
		}
		var attempted time.Time
		if err := conn.QueryRow(ctx, "SELECT min(attempted_at) FROM "+s.db+".alert_deliveries WHERE finding_id = ? AND outcome = 'sent'", fid).Scan(&attempted); err == nil {
			b.AttemptedS = rel(attempted, b)
		}
	}

	f := func(p *float64) string {
		if p == nil {
			return "   -  "
		}
		return fmt.Sprintf("%6.1f", *p)
	}
	t.Logf("breakdown, seconds after the last event's Kafka ack (ClickHouse DateTime columns: ±1s):")
	t.Logf("  n key                part  stored  due20 due30   tick missed run_start run_ms complete trig      created attempted  slack  kind")
	for _, b := range bursts {
		comp := "-"
		if b.RunComplete != nil {
			comp = strconv.FormatBool(*b.RunComplete)
		}
		t.Logf(" %2d %-18s %d%s %s %5.1f %5.1f %s %4d   %s  %5d  %-7s %-8s %s  %s  %6.2f %s", b.N, b.KeyID, b.Partition,
			map[bool]string{true: "i", false: " "}[b.IdlePart], f(b.StoredS), b.DueThS, b.DueS, f(b.EvalTimeS), b.MissedTicks, f(b.RunStartedS), b.RunMS, comp,
			b.Trigger, f(b.CreatedS), f(b.AttemptedS), b.LatencyS, b.SlackKind)
	}

	// How the ingester reported progress while the bursts ran: batch rows
	// (rows > 0) and heartbeats (rows = 0) per partition.
	var progress []map[string]any
	if rows, err := conn.Query(ctx, "SELECT partition, countIf(rows > 0), countIf(rows = 0), max(written_at) FROM "+s.db+
		".ingest_progress WHERE seq >= ? GROUP BY partition ORDER BY partition", uint64(bursts[0].FirstAcked.UnixNano())); err == nil {
		for rows.Next() {
			var part int32
			var batches, beats uint64
			var last time.Time
			if rows.Scan(&part, &batches, &beats, &last) == nil {
				progress = append(progress, map[string]any{"partition": part, "batch_rows": batches, "heartbeat_rows": beats})
				t.Logf("ingest_progress during the bursts: partition %2d: %5d batch rows, %5d heartbeat rows", part, batches, beats)
			}
		}
		rows.Close()
	}

	all := statsOf(bursts, func(*latencyBurst) bool { return true })
	active := statsOf(bursts, func(b *latencyBurst) bool { return !b.IdlePart })
	idle := statsOf(bursts, func(b *latencyBurst) bool { return b.IdlePart })
	page := metricsText(detectPort)
	wmSum := metricValue(page, "auditwatch_detect_watermark_wait_seconds_sum", latencyRule)
	wmCount := metricValue(page, "auditwatch_detect_watermark_wait_seconds_count", latencyRule)
	incomplete := metricValue(page, "auditwatch_detect_incomplete_runs_total", latencyRule)
	lateRuns := metricValue(page, "auditwatch_detect_late_reevaluations_total", latencyRule)
	meanWM := 0.0
	if wmCount > 0 {
		meanWM = wmSum / wmCount
	}
	t.Logf("detect: %.0f ticks waited for the watermark, mean %.2fs; %.0f incomplete runs; %.0f late re-evaluations; background %d events sent (%d errors)",
		wmCount, meanWM, incomplete, lateRuns, bgSent, bgErrs)
	t.Logf("active partitions: n=%d alerted=%d p50=%.2fs p95=%.2fs max=%.2fs | idle partition %d: n=%d alerted=%d p50=%.2fs p95=%.2fs max=%.2fs",
		active.N, active.Alerted, active.P50, active.P95, active.Max, latencyIdlePart, idle.N, idle.Alerted, idle.P50, idle.P95, idle.Max)

	report := map[string]any{
		"bench": "alert-latency", "time": time.Now().UTC().Format(time.RFC3339), "seed": seed, "rules": rulesMode,
		"bursts_n": nBursts, "burst_events": latencyBurstSize, "background_rate": bgRate, "partitions": latencyParts,
		"idle_partition": latencyIdlePart, "target_p95_s": latencyTargetP95.Seconds(), "timeout_s": latencyTimeout.Seconds(),
		"summary": all, "active_partitions": active, "idle_partition_bursts": idle, "p95_within_target": all.Alerted == all.N && all.P95 <= latencyTargetP95.Seconds(),
		"detect":          map[string]float64{"watermark_waits": wmCount, "watermark_wait_mean_s": meanWM, "incomplete_runs": incomplete, "late_reevaluations": lateRuns},
		"ingest_progress": progress, "bursts": bursts,
	}
	js, _ := json.MarshalIndent(report, "", "  ")
	jsonPath := filepath.Join(outDir, "bench-alert-latency.json")
	if err := os.WriteFile(jsonPath, append(js, '\n'), 0o644); err != nil {
		t.Error(err)
	}

	verdict := "OK"
	if all.P95 > latencyTargetP95.Seconds() {
		verdict = fmt.Sprintf("OVER TARGET (p95 %.2fs > %.0fs)", all.P95, latencyTargetP95.Seconds())
	}
	summary := fmt.Sprintf("bench-alert-latency: alerted %d/%d  p50 %.2fs  p95 %.2fs  max %.2fs  (target p95 <= %.0fs: %s)  -> %s",
		all.Alerted, all.N, all.P50, all.P95, all.Max, latencyTargetP95.Seconds(), verdict, jsonPath)
	fmt.Println(summary)
	t.Log(summary)
	if len(late) > 0 {
		t.Fatalf("%d of %d bursts not alerted within %s: %s", len(late), nBursts, latencyTimeout, strings.Join(late, "; "))
	}
	if all.P95 > latencyTargetP95.Seconds() {
		t.Logf("*** p95 %.2fs is above the %.0fs target (reported, not failed) ***", all.P95, latencyTargetP95.Seconds())
	}
}
