// Package testenv gives tests the real services started by
// deploy/services/up.sh: a ClickHouse server and a Kafka broker, named by
// AUDITWATCH_TEST_CLICKHOUSE and AUDITWATCH_TEST_KAFKA.
//
// A test that needs a service and finds its variable unset is skipped when
// run by hand, and fails under CI (CI=true): CI must never skip integration
// tests. A configured but unreachable service always fails the test.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/deploy/migrations"
)

// Environment variables naming the services.
const (
	EnvClickHouse = "AUDITWATCH_TEST_CLICKHOUSE" // host:port of the native protocol
	EnvKafka      = "AUDITWATCH_TEST_KAFKA"      // comma-separated brokers
)

func need(tb testing.TB, name string) string {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CI") != "" {
			tb.Fatalf("%s is not set; CI must run integration tests (start services with deploy/services/up.sh)", name)
		}
		tb.Skipf("%s not set: start services with deploy/services/up.sh and use `make test`", name)
	}
	return v
}

// ClickHouseAddr returns the test ClickHouse address.
func ClickHouseAddr(tb testing.TB) string {
	tb.Helper()
	return need(tb, EnvClickHouse)
}

// Connect opens a connection to the ClickHouse server at addr and pings it,
// failing the test if it does not answer.
func Connect(tb testing.TB, addr string) driver.Conn {
	tb.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		Auth:        clickhouse.Auth{Database: "default", Username: "default"},
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		DialTimeout: 5 * time.Second,
		ReadTimeout: 2 * time.Minute,
	})
	if err != nil {
		tb.Fatalf("open clickhouse %s: %v", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Ping(ctx); err != nil {
		tb.Fatalf("clickhouse at %s (%s) unreachable: %v", addr, EnvClickHouse, err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// ClickHouse connects to the test server.
func ClickHouse(tb testing.TB) driver.Conn {
	tb.Helper()
	return Connect(tb, ClickHouseAddr(tb))
}

// RandomName returns prefix followed by 8 random hex digits.
func RandomName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// ScratchDB creates a fresh database with the full schema applied and drops
// it when the test ends (kept if the test failed and AUDITWATCH_TEST_KEEP is
// set, for inspection).
func ScratchDB(tb testing.TB, conn driver.Conn) string {
	tb.Helper()
	db := RandomName("aw_test_")
	ctx := context.Background()
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		tb.Fatalf("read version: %v", err)
	}
	d, err := migrations.DialectFor(v)
	if err != nil {
		tb.Fatal(err)
	}
	ms, err := migrations.Load(db, d)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := migrations.Apply(ctx, conn, db, ms, slog.New(slog.DiscardHandler)); err != nil {
		tb.Fatalf("migrate %s: %v", db, err)
	}
	tb.Cleanup(func() {
		if tb.Failed() && os.Getenv("AUDITWATCH_TEST_KEEP") != "" {
			tb.Logf("keeping database %s", db)
			return
		}
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
	})
	return db
}

// Brokers returns the test Kafka brokers.
func Brokers(tb testing.TB) []string {
	tb.Helper()
	return strings.Split(need(tb, EnvKafka), ",")
}

// Topic creates a new topic with the given partitions and returns its name.
// It fails the test if the broker does not answer.
func Topic(tb testing.TB, brokers []string, partitions int) string {
	tb.Helper()
	name := RandomName("aw-test-")
	conn, err := kafka.Dial("tcp", brokers[0])
	if err != nil {
		tb.Fatalf("kafka at %v (%s) unreachable: %v", brokers, EnvKafka, err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		tb.Fatalf("kafka controller: %v", err)
	}
	cc, err := kafka.Dial("tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		tb.Fatalf("dial kafka controller: %v", err)
	}
	defer cc.Close()
	if err := cc.CreateTopics(kafka.TopicConfig{Topic: name, NumPartitions: partitions, ReplicationFactor: 1}); err != nil {
		tb.Fatalf("create topic %s: %v", name, err)
	}
	// Wait until the broker serves the topic's partitions.
	Eventually(tb, 30*time.Second, func() (bool, string) {
		parts, err := conn.ReadPartitions(name)
		if err != nil {
			return false, err.Error()
		}
		for _, p := range parts {
			if p.Leader.ID == 0 && p.Leader.Host == "" {
				return false, "partition without leader"
			}
		}
		return len(parts) == partitions, fmt.Sprintf("%d of %d partitions", len(parts), partitions)
	})
	tb.Cleanup(func() {
		if c, err := kafka.Dial("tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port))); err == nil {
			_ = c.DeleteTopics(name)
			c.Close()
		}
	})
	return name
}

// Produce writes values to topic, keyed round-robin, and fails the test on
// error.
func Produce(tb testing.TB, brokers []string, topic string, values [][]byte) {
	tb.Helper()
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.RoundRobin{},
		BatchSize:    5000,
		BatchBytes:   16 << 20,
		BatchTimeout: 10 * time.Millisecond,
		RequiredAcks: kafka.RequireAll,
		// A transport of its own: the shared default caches metadata that
		// predates a topic just created.
		Transport: &kafka.Transport{},
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const chunk = 5000
	for i := 0; i < len(values); i += chunk {
		end := min(i+chunk, len(values))
		msgs := make([]kafka.Message, 0, end-i)
		for _, v := range values[i:end] {
			msgs = append(msgs, kafka.Message{Value: v})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			msg := err.Error()
			if len(msg) > 500 {
				msg = msg[:500] + "…"
			}
			tb.Fatalf("produce to %s: %s", topic, msg)
		}
	}
}

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// Eventually polls cond every 200ms until it returns true or timeout passes,
// then fails the test with the last message cond gave.
func Eventually(tb testing.TB, timeout time.Duration, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var msg string
	for {
		var ok bool
		ok, msg = cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met after %s: %s", timeout, msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Count runs a query returning one UInt64 and fails the test on error.
func Count(tb testing.TB, conn driver.Conn, query string, args ...any) uint64 {
	tb.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return n
}

// RollupMismatches compares the key_usage rollup with the access log it
// summarises: for every key and hour, countMerge(requests) must equal the
// distinct requests in access_log. It returns one line per difference.
func RollupMismatches(tb testing.TB, conn driver.Conn, db string) []string {
	tb.Helper()
	read := func(q string) map[string]uint64 {
		rows, err := conn.Query(context.Background(), q)
		if err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		out := make(map[string]uint64)
		for rows.Next() {
			var key string
			var hour time.Time
			var n uint64
			if err := rows.Scan(&key, &hour, &n); err != nil {
				tb.Fatalf("%s: %v", q, err)
			}
			out[key+" "+hour.UTC().Format(time.RFC3339)] = n
		}
		return out
	}
	rollup := read("SELECT key_id, hour, toUInt64(countMerge(requests)) FROM " + db + ".key_usage GROUP BY key_id, hour")
	log := read("SELECT key_id, toStartOfHour(ts) AS hour, toUInt64(uniqExact(request_id)) FROM " + db + ".access_log WHERE key_id != '' GROUP BY key_id, hour")
	var diff []string
	for k, n := range log {
		if rollup[k] != n {
			diff = append(diff, fmt.Sprintf("%s: rollup %d, access_log %d distinct requests", k, rollup[k], n))
		}
	}
	for k, n := range rollup {
		if _, ok := log[k]; !ok {
			diff = append(diff, fmt.Sprintf("%s: rollup %d, access_log none", k, n))
		}
	}
	sort.Strings(diff)
	return diff
}

// NeedChdb fails the test under CI when chdb (current ClickHouse,
// in-process; deploy/chdb/install.sh) cannot be imported, and skips it
// elsewhere.
func NeedChdb(tb testing.TB) {
	tb.Helper()
	out, err := exec.Command("python3", "-c", "import chdb").CombinedOutput()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("chdb not installed (deploy/chdb/install.sh): %v\n%s", err, out)
	}
	tb.Skip("chdb not installed: run deploy/chdb/install.sh")
}
