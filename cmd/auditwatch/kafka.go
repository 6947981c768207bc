package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// kafkaDialer builds the dialer (used by readers, topic creation and the
// readiness probe) for the TLS and SASL settings.
func kafkaDialer(cfg KafkaConfig) (*kafka.Dialer, error) {
	tc, err := tlsConfig(cfg.TLS, cfg.TLSFiles)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	d := &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: tc}
	mech, err := saslMechanism(cfg.SASL)
	if err != nil {
		return nil, err
	}
	d.SASLMechanism = mech
	return d, nil
}

// kafkaTransport builds the transport of writers (gen) for the TLS and SASL
// settings: the same as kafkaDialer's.
func kafkaTransport(cfg KafkaConfig) (*kafka.Transport, error) {
	tc, err := tlsConfig(cfg.TLS, cfg.TLSFiles)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	t := &kafka.Transport{DialTimeout: 10 * time.Second, TLS: tc}
	mech, err := saslMechanism(cfg.SASL)
	if err != nil {
		return nil, err
	}
	t.SASL = mech
	return t, nil
}

// saslMechanism returns the SASL mechanism of cfg, nil for none. Its errors
// never contain the password.
func saslMechanism(cfg SASLConfig) (sasl.Mechanism, error) {
	switch cfg.Mechanism {
	case "":
		return nil, nil
	case "plain":
		return plain.Mechanism{Username: cfg.Username, Password: cfg.Password}, nil
	case "scram-sha-256", "scram-sha-512":
		algo := scram.SHA256
		if cfg.Mechanism == "scram-sha-512" {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, cfg.Username, cfg.Password)
		if err != nil {
			// The library's error quotes the password: not passed on.
			return nil, fmt.Errorf("kafka sasl %s: username or password rejected by SASLprep (RFC 4013: no control or unassigned characters)", cfg.Mechanism)
		}
		return m, nil
	}
	return nil, fmt.Errorf("kafka sasl mechanism %q not supported", cfg.Mechanism)
}

// newReader returns a consumer-group reader that commits only when told
// (CommitInterval 0: synchronous commits after each written batch).
func newReader(cfg KafkaConfig, log *slog.Logger) (*kafka.Reader, error) {
	dialer, err := kafkaDialer(cfg)
	if err != nil {
		return nil, err
	}
	start := kafka.FirstOffset
	if cfg.StartOffset == "latest" {
		start = kafka.LastOffset
	}
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:               cfg.Brokers,
		GroupID:               cfg.GroupID,
		GroupTopics:           []string{cfg.Topic},
		Dialer:                dialer,
		MinBytes:              cfg.MinBytes,
		MaxBytes:              cfg.MaxBytes,
		MaxWait:               cfg.MaxWait,
		QueueCapacity:         cfg.QueueCapacity,
		SessionTimeout:        cfg.SessionTimeout,
		HeartbeatInterval:     cfg.SessionTimeout / 5,
		RebalanceTimeout:      cfg.SessionTimeout * 3,
		CommitInterval:        0,
		StartOffset:           start,
		WatchPartitionChanges: true,
		ReadBackoffMin:        100 * time.Millisecond,
		ReadBackoffMax:        2 * time.Second,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			log.Warn("kafka: " + fmt.Sprintf(msg, args...))
		}),
	}), nil
}

// ensureTopic creates topic with the given partitions unless it exists, and
// waits until its partitions have leaders. It asks the controller to create
// the topic before anything reads its metadata: a broker with
// auto.create.topics.enable would otherwise create it with num.partitions.
// A creation refused for another reason (ACLs) is logged, and the topic is
// used if it exists; one with another partition count is used too, with a
// warning.
func ensureTopic(ctx context.Context, cfg KafkaConfig, topic string, partitions int, log *slog.Logger) error {
	dialer, err := kafkaDialer(cfg)
	if err != nil {
		return err
	}
	var conn *kafka.Conn
	for _, b := range cfg.Brokers {
		if conn, err = dialer.DialContext(ctx, "tcp", b); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("dial kafka %v: %w", cfg.Brokers, err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("find kafka controller: %w", err)
	}
	cc, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return fmt.Errorf("dial kafka controller: %w", err)
	}
	defer cc.Close()
	err = cc.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1})
	switch {
	case err == nil:
		log.Info("topic created", "topic", topic, "partitions", partitions)
	case errors.Is(err, kafka.TopicAlreadyExists):
	default:
		log.Warn("could not create the topic; using it if it exists", "topic", topic, "err", err)
	}
	var last error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		parts, err := conn.ReadPartitions(topic)
		if err == nil && len(parts) > 0 && allLed(parts) {
			if len(parts) != partitions {
				log.Warn("topic exists with another partition count", "topic", topic, "partitions", len(parts), "wanted", partitions)
			}
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
	}
	return fmt.Errorf("topic %s not ready after 30s: %v", topic, last)
}

func allLed(parts []kafka.Partition) bool {
	for _, p := range parts {
		if p.Leader.Host == "" {
			return false
		}
	}
	return true
}

// kafkaError shortens kafka-go's per-message write errors, which repeat one
// message thousands of times, to a count and the distinct causes.
func kafkaError(err error) error {
	var we kafka.WriteErrors
	if !errors.As(err, &we) {
		return err
	}
	seen := map[string]int{}
	var order []string
	for _, e := range we {
		if e == nil {
			continue
		}
		if seen[e.Error()] == 0 {
			order = append(order, e.Error())
		}
		seen[e.Error()]++
	}
	parts := make([]string, 0, len(order))
	for _, m := range order {
		parts = append(parts, fmt.Sprintf("%d× %s", seen[m], m))
	}
	return fmt.Errorf("%d of %d messages failed: %s", we.Count(), len(we), strings.Join(parts, "; "))
}

// kafkaProbe returns a readiness check: some broker answers and knows the
// topic.
func kafkaProbe(cfg KafkaConfig) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		dialer, err := kafkaDialer(cfg)
		if err != nil {
			return err
		}
		var errs []error
		for _, b := range cfg.Brokers {
			conn, err := dialer.DialContext(ctx, "tcp", b)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if dl, ok := ctx.Deadline(); ok {
				_ = conn.SetDeadline(dl)
			}
			_, err = conn.ReadPartitions(cfg.Topic)
			conn.Close()
			if err != nil {
				return fmt.Errorf("broker %s: topic %s: %w", b, cfg.Topic, err)
			}
			return nil
		}
		return fmt.Errorf("no broker reachable: %w", errors.Join(errs...))
	}
}
