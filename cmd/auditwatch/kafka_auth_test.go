package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/deploy/testenv"
)

// The SASL listeners deploy/services/kafka.sh adds to the test broker, and
// the test user it creates there (SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN).
const (
	envKafkaSASL = "AUDITWATCH_TEST_KAFKA_SASL" // SASL_PLAINTEXT listener, host:port
	envKafkaSSL  = "AUDITWATCH_TEST_KAFKA_SSL"  // SASL_SSL listener (client certificate required), host:port
	saslUser     = "aw_sasl"
	saslPassword = "aw_sasl_dev"
)

// needEnv returns the variable's value; unset, it skips the test when run
// by hand and fails it under CI, like deploy/testenv.
func needEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set; CI must run integration tests (make test sets it)", name)
		}
		t.Skipf("%s not set: start services with deploy/services/up.sh and use `make test`", name)
	}
	return v
}

// kafkaTLSDir is where deploy/services/kafka.sh keeps the test broker's CA
// and client certificate.
func kafkaTLSDir(t *testing.T) string {
	t.Helper()
	state := os.Getenv("AW_STATE")
	if state == "" {
		state = filepath.Join(testenv.RepoRoot(t), ".state")
	}
	dir := filepath.Join(state, "kafka", "tls")
	for _, f := range []string{"ca.pem", "client.pem", "client.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("test broker TLS files: %v (deploy/services/kafka.sh start makes them)", err)
		}
	}
	return dir
}

// authConfig is the product's Kafka configuration for a listener.
func authConfig(broker, topic, mech, password string) KafkaConfig {
	return KafkaConfig{
		Brokers: []string{broker}, Topic: topic, GroupID: testenv.RandomName("auth-"), StartOffset: "earliest",
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond, QueueCapacity: 100,
		SessionTimeout: 6 * time.Second,
		SASL:           SASLConfig{Mechanism: mech, Username: saslUser, Password: password},
	}
}

func withTLS(cfg KafkaConfig, files TLSFiles) KafkaConfig {
	cfg.TLS, cfg.TLSFiles = true, files
	return cfg
}

// roundTrip produces n messages with gen's writer and reads them back with
// the ingester's consumer-group reader, both built from cfg, after the
// readiness probe and topic check pass.
func roundTrip(t *testing.T, cfg KafkaConfig, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kafkaProbe(cfg)(ctx); err != nil {
		t.Fatalf("readiness probe: %v", err)
	}
	if err := ensureTopic(ctx, cfg, cfg.Topic, 2, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("ensure topic: %v", err)
	}
	sink, err := newKafkaSink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i := range n {
		v := fmt.Sprintf(`{"n":%d,"run":%q}`, i, cfg.GroupID)
		want[v] = true
		if err := sink.add([]byte(v), strconv.Itoa(i)); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	if err := sink.close(ctx); err != nil {
		t.Fatalf("produce: %v", err)
	}
	r, err := newReader(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for len(want) > 0 {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("consume: %v (%d of %d messages missing)", err, len(want), n)
		}
		delete(want, string(m.Value))
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
}

// authFails checks that every client built from cfg fails to connect, that
// the probe's error says why (wantErr), and that no error or log line holds
// the password.
func authFails(t *testing.T, cfg KafkaConfig, wantErr func(error) bool, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	secret := cfg.SASL.Password
	noSecret := func(what, s string) {
		t.Helper()
		if secret != "" && strings.Contains(s, secret) {
			t.Fatalf("%s contains the SASL password: %s", what, s)
		}
	}
	err := kafkaProbe(cfg)(ctx)
	if err == nil {
		t.Fatal("readiness probe: connected, want a failure")
	}
	if !wantErr(err) {
		t.Fatalf("readiness probe: %v; want %s", err, why)
	}
	noSecret("probe error", err.Error())
	t.Logf("probe error: %v", err)
	if err := ensureTopic(ctx, cfg, cfg.Topic, 2, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("ensure topic: connected, want a failure")
	} else {
		noSecret("ensure topic error", err.Error())
	}
	sink, err := newKafkaSink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sink.w.MaxAttempts = 2
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := sink.add([]byte(`{}`), ""); err != nil {
		t.Fatal(err)
	}
	if err := sink.flush(wctx); err == nil {
		t.Fatal("produce: succeeded, want a failure")
	} else {
		noSecret("produce error", err.Error())
	}
	_ = sink.w.Close()
	var logs bytes.Buffer
	r, err := newReader(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
	defer rcancel()
	if _, err := r.FetchMessage(rctx); err == nil {
		t.Fatal("consume: got a message, want a failure")
	} else {
		noSecret("consume error", err.Error())
	}
	r.Close()
	noSecret("reader log", logs.String())
}

func isSASLAuthFailed(err error) bool { return errors.Is(err, kafka.SASLAuthenticationFailed) }

func TestKafkaSASL(t *testing.T) {
	addr := needEnv(t, envKafkaSASL)
	topic := testenv.Topic(t, testenv.Brokers(t), 2)
	for _, mech := range []string{"scram-sha-256", "scram-sha-512", "plain"} {
		t.Run(mech, func(t *testing.T) {
			roundTrip(t, authConfig(addr, topic, mech, saslPassword), 200)
		})
		t.Run(mech+"/wrong password", func(t *testing.T) {
			authFails(t, authConfig(addr, topic, mech, "Wr0ng-"+testenv.RandomName("pw")), isSASLAuthFailed,
				"SASL authentication failed")
		})
	}
	t.Run("unknown user", func(t *testing.T) {
		cfg := authConfig(addr, topic, "scram-sha-512", saslPassword)
		cfg.SASL.Username = "nobody"
		authFails(t, cfg, isSASLAuthFailed, "SASL authentication failed")
	})
	t.Run("no sasl", func(t *testing.T) {
		authFails(t, authConfig(addr, topic, "", ""), func(err error) bool { return err != nil }, "an error")
	})
}

func TestKafkaTLS(t *testing.T) {
	addr := needEnv(t, envKafkaSSL)
	dir := kafkaTLSDir(t)
	topic := testenv.Topic(t, testenv.Brokers(t), 2)
	full := TLSFiles{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client.key")}
	other := newTestPKI(t)
	certErr := func(err error) bool {
		s := err.Error()
		return strings.Contains(s, "certificate") || strings.Contains(s, "x509")
	}
	t.Run("ca and client certificate, scram-sha-512", func(t *testing.T) {
		roundTrip(t, withTLS(authConfig(addr, topic, "scram-sha-512", saslPassword), full), 200)
	})
	t.Run("server name localhost, scram-sha-256", func(t *testing.T) {
		f := full
		f.ServerName = "localhost"
		roundTrip(t, withTLS(authConfig(addr, topic, "scram-sha-256", saslPassword), f), 50)
	})
	t.Run("wrong password over tls", func(t *testing.T) {
		authFails(t, withTLS(authConfig(addr, topic, "scram-sha-512", "Wr0ng-"+testenv.RandomName("pw")), full),
			isSASLAuthFailed, "SASL authentication failed")
	})
	t.Run("no client certificate", func(t *testing.T) {
		f := full
		f.CertFile, f.KeyFile = "", ""
		authFails(t, withTLS(authConfig(addr, topic, "scram-sha-512", saslPassword), f),
			func(err error) bool { return err != nil && !isSASLAuthFailed(err) }, "a TLS failure")
	})
	t.Run("client certificate of another CA", func(t *testing.T) {
		f := full
		f.CertFile, f.KeyFile = other.clientCert, other.clientKey
		authFails(t, withTLS(authConfig(addr, topic, "scram-sha-512", saslPassword), f),
			func(err error) bool { return err != nil && !isSASLAuthFailed(err) }, "a TLS failure")
	})
	t.Run("system roots only", func(t *testing.T) {
		f := full
		f.CAFile = ""
		authFails(t, withTLS(authConfig(addr, topic, "scram-sha-512", saslPassword), f), certErr, "a certificate error")
	})
	t.Run("wrong server name", func(t *testing.T) {
		f := full
		f.ServerName = "kafka.example.com"
		authFails(t, withTLS(authConfig(addr, topic, "scram-sha-512", saslPassword), f), certErr, "a certificate error")
	})
	t.Run("plaintext to the tls listener", func(t *testing.T) {
		authFails(t, authConfig(addr, topic, "scram-sha-512", saslPassword), func(err error) bool { return err != nil }, "an error")
	})
}

// TestKafkaTLSSCRAMThroughBinary runs `auditwatch gen --out kafka` and
// `auditwatch ingest` against the SASL_SSL listener with SCRAM-SHA-512 and a
// client certificate, configured in YAML with the password from the
// environment: every generated event arrives in ClickHouse. With a wrong
// password, ingest stays up, /readyz fails, and its log never holds the
// password.
func TestKafkaTLSSCRAMThroughBinary(t *testing.T) {
	addr := needEnv(t, envKafkaSSL)
	dir := kafkaTLSDir(t)
	chAddr := testenv.ClickHouseAddr(t)
	s := &stack{chAddr: chAddr, db: testenv.ScratchDB(t, testenv.Connect(t, chAddr)), brokers: []string{addr},
		topic: testenv.Topic(t, testenv.Brokers(t), 2), group: testenv.RandomName("e2e-tls-")}
	port := freePort(t)
	cfg := s.config(t, port, "") // then the kafka line gets the TLS and SASL settings
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kafkaLine := fmt.Sprintf("kafka: {brokers: [%s], topic: %s, group_id: %s, max_wait: 100ms, session_timeout: 6s, "+
		"tls: true, tls_ca_file: %q, tls_cert_file: %q, tls_key_file: %q, tls_server_name: localhost, "+
		"sasl: {mechanism: scram-sha-512, username: %s}}",
		addr, s.topic, s.group, filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key"), saslUser)
	lines := strings.Split(string(b), "\n")
	replaced := false
	for i, l := range lines {
		if strings.HasPrefix(l, "kafka:") {
			lines[i], replaced = kafkaLine, true
		}
	}
	if !replaced {
		t.Fatalf("no kafka line in the stack's config:\n%s", b)
	}
	if err := os.WriteFile(cfg, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Setenv("AUDITWATCH_KAFKA_SASL_PASSWORD", saslPassword)
	const n = 5000
	s.gen(t, cfg, 41, n)
	p := startIngest(t, cfg, port)
	waitRows(t, chAddr, s.db, n, 90*time.Second)
	testenv.Eventually(t, 20*time.Second, func() (bool, string) { return p.ready() == 200, "waiting for /readyz" })
	p.stop(t)

	wrong := "Wr0ng-" + testenv.RandomName("pw")
	t.Setenv("AUDITWATCH_KAFKA_SASL_PASSWORD", wrong)
	port2 := freePort(t)
	cfg2 := strings.Replace(strings.Join(lines, "\n"), fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port2), 1)
	path2 := filepath.Join(t.TempDir(), "wrong.yaml")
	if err := os.WriteFile(path2, []byte(cfg2), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := startIngest(t, path2, port2)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return bad.status("/healthz") == 200 && bad.ready() == 503, "waiting for /readyz to report Kafka failing"
	})
	time.Sleep(3 * time.Second) // let the reader retry and log
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port2))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), wrong) || !strings.Contains(string(body), "SASL Authentication Failed") {
		t.Fatalf("/readyz: want SASL Authentication Failed without the password, got: %s", body)
	}
	bad.stop(t)
	out := bad.log.String()
	if strings.Contains(out, wrong) || strings.Contains(out, saslPassword) {
		t.Fatalf("ingest log holds the SASL password:\n%s", tail(out, 3000))
	}
	if !strings.Contains(strings.ToLower(out), "sasl") && !strings.Contains(strings.ToLower(out), "authentication") {
		t.Fatalf("ingest log does not say authentication failed:\n%s", tail(out, 3000))
	}
	genOut, err := exec.Command(binary, "gen", "--config", path2, "--out", "kafka", "--events", "10", "--scenarios", "none").CombinedOutput()
	if err == nil {
		t.Fatalf("gen with a wrong password succeeded:\n%s", genOut)
	}
	if strings.Contains(string(genOut), wrong) || !strings.Contains(string(genOut), "SASL Authentication Failed") {
		t.Fatalf("gen's error: want SASL Authentication Failed without the password, got:\n%s", genOut)
	}
}
