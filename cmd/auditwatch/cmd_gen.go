package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/ingest/gen"
	"github.com/auditwatch/auditwatch/rules"
)

func runGen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("gen", "Generate synthetic gateway access logs (one JSON event per line or message) with\nnamed incidents injected. Seeded: the same flags give the same events.\n\nScenarios:\n"+scenarioHelp()+"\n\n"+noiseHelp(), stdout, stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML); kafka.brokers and kafka.topic are used with --out kafka")
	seed := fs.Int64("seed", 1, "random seed")
	start := fs.String("start", "-24h", "window start: RFC 3339 time, or a duration relative to now such as -24h")
	duration := fs.Duration("duration", 24*time.Hour, "window length")
	events := fs.Int("events", 0, "exact number of normal events (overrides --rate)")
	rate := fs.Float64("rate", 25, "average normal events per second over the window")
	keys := fs.Int("keys", 50, "number of API keys")
	scenarios := fs.String("scenarios", "all", "comma-separated scenarios to inject, all, or none")
	noise := fs.String("noise", "auto", "scale of the benign background noise described above: 0 off, 1 the documented rates, 2 double; auto = 1 with scenarios, 0 with --scenarios none")
	malformed := fs.Int("malformed", 0, "also emit this many malformed messages (cycled from the built-in bad cases), spread through the stream")
	out := fs.String("out", "stdout", "stdout or kafka")
	partitions := fs.Int("partitions", 4, "with --out kafka: partitions of the topic if it must be created")
	incidents := fs.String("incidents", "", "write the injected incidents (ground truth) as JSON to this file")
	registry := fs.String("registry", "", "write the key registry, as the dashboard exports it (full keys: a secret file), to this YAML file for `auditwatch keys import`")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	startT, err := parseStart(*start, time.Now())
	if err != nil {
		return err
	}
	gcfg := gen.Config{Seed: *seed, Start: startT, Duration: *duration, Keys: *keys, EventsPerSecond: *rate, Events: *events}
	switch *scenarios {
	case "none", "":
	default:
		gcfg.Scenarios = strings.Split(*scenarios, ",")
	}
	if gcfg.Noise, err = parseNoise(*noise, len(gcfg.Scenarios) > 0); err != nil {
		return err
	}
	g, err := gen.New(gcfg)
	if err != nil {
		return err
	}
	if *incidents != "" {
		if err := writeJSONFile(*incidents, g.Incidents()); err != nil {
			return err
		}
	}
	if *registry != "" {
		f, err := os.OpenFile(*registry, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("write registry: %w", err)
		}
		err = gen.WriteRegistryYAML(f, g.RegistryExport())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}

	var sink eventSink
	switch *out {
	case "stdout":
		sink = newLineSink(stdout)
	case "kafka":
		if err := ensureTopic(ctx, cfg.Kafka, cfg.Kafka.Topic, *partitions, newLogger(cfg.Log, stderr)); err != nil {
			return err
		}
		s, err := newKafkaSink(cfg.Kafka)
		if err != nil {
			return err
		}
		sink = s
	default:
		return fmt.Errorf("--out %q: want stdout or kafka", *out)
	}

	bad := gen.MalformedLines(*seed)
	var n, nBad int
	began := time.Now()
	every := 0
	if *malformed > 0 {
		expected := *events
		if expected <= 0 {
			expected = int(*rate * duration.Seconds())
		}
		every = max(1, expected/(*malformed+1))
	}
	err = g.Run(ctx, func(e gen.Event) error {
		n++
		if every > 0 && nBad < *malformed && n%every == 0 {
			if err := sink.add(bad[nBad%len(bad)], ""); err != nil {
				return err
			}
			nBad++
		}
		return sink.add(e.AppendJSON(nil), partitionKey(&e))
	})
	for err == nil && nBad < *malformed {
		err = sink.add(bad[nBad%len(bad)], "")
		nBad++
	}
	if cerr := sink.close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	el := time.Since(began)
	fmt.Fprintf(stderr, "generated %d events and %d malformed messages in %s (%.0f events/s), %d incidents\n",
		n, nBad, el.Round(time.Millisecond), float64(n+nBad)/el.Seconds(), len(g.Incidents()))
	return nil
}

// partitionKey keeps one key's (or one address's) events in one partition,
// in order.
func partitionKey(e *gen.Event) string {
	if e.KeyID != "" {
		return e.KeyID
	}
	return e.ClientIP
}

func scenarioHelp() string {
	var b strings.Builder
	for _, s := range gen.Scenarios() {
		fmt.Fprintf(&b, "  %-24s %s\n", s.Name, s.Description)
	}
	return strings.TrimRight(b.String(), "\n")
}

// parseNoise reads --noise: a non-negative scale, or auto (1 when scenarios
// are injected, 0 for clean traffic).
func parseNoise(s string, scenarios bool) (float64, error) {
	if s == "auto" {
		if scenarios {
			return 1, nil
		}
		return 0, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v != v {
		return 0, fmt.Errorf("--noise %q: want auto or a non-negative number such as 0, 1 or 2", s)
	}
	return v, nil
}

func noiseHelp() string {
	r := gen.DefaultNoiseRates()
	return fmt.Sprintf(`Noise (--noise 1; benign, below every rule's threshold, must not alert):
  per key and day, %.1f addresses trying 1–4 invalid keys over up to 30 min; %.1f single
  invalid_signature from the key's own address; %.1f single request from outside its allowlist,
  rejected ip_not_whitelisted; %.0f retried 429/503 failures (1–3 retries ~1 s apart, by traffic);
  and a key moving to a new host (inside its allowlist, or a new network) every %.0f key-days.`,
		r.Guessers, r.BadSignatures, r.OutsideAllowlist, r.Retries, 100/r.Moves)
}

// parseStart accepts an RFC 3339 time or a duration relative to now, with
// days allowed ("-24h", "-7d", "0s").
func parseStart(s string, now time.Time) (time.Time, error) {
	neg := strings.HasPrefix(s, "-")
	if d, err := rules.ParseDuration(strings.TrimPrefix(s, "-")); err == nil {
		if neg {
			d = -d
		}
		return now.Add(d).UTC().Truncate(time.Second), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: want RFC 3339 or a duration relative to now such as -24h or -7d", s)
	}
	return t, nil
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

type eventSink interface {
	add(value []byte, key string) error
	close(ctx context.Context) error
}

type lineSink struct{ w *bufio.Writer }

func newLineSink(w io.Writer) *lineSink { return &lineSink{w: bufio.NewWriterSize(w, 1<<20)} }

func (s *lineSink) add(v []byte, _ string) error {
	s.w.Write(v)
	return s.w.WriteByte('\n')
}

func (s *lineSink) close(context.Context) error { return s.w.Flush() }

// kafkaSink produces in chunks of synchronous batches: WriteMessages returns
// once the broker acknowledged them, so an error is never lost.
type kafkaSink struct {
	w    *kafka.Writer
	buf  []kafka.Message
	ctx  context.Context
	sent int
}

const kafkaChunk = 10_000

func newKafkaSink(cfg KafkaConfig) (*kafkaSink, error) {
	tr, err := kafkaTransport(cfg)
	if err != nil {
		return nil, err
	}
	return &kafkaSink{
		w: &kafka.Writer{
			Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.Topic, Transport: tr,
			Balancer: &kafka.Hash{}, BatchSize: kafkaChunk, BatchBytes: 3 << 20,
			BatchTimeout: 20 * time.Millisecond, RequiredAcks: kafka.RequireAll,
			AllowAutoTopicCreation: true,
		},
		buf: make([]kafka.Message, 0, kafkaChunk),
		ctx: context.Background(),
	}, nil
}

func (s *kafkaSink) add(v []byte, key string) error {
	s.buf = append(s.buf, kafka.Message{Key: []byte(key), Value: v})
	if len(s.buf) == cap(s.buf) {
		return s.flush(s.ctx)
	}
	return nil
}

func (s *kafkaSink) flush(ctx context.Context) error {
	if len(s.buf) == 0 {
		return nil
	}
	if err := s.w.WriteMessages(ctx, s.buf...); err != nil {
		return fmt.Errorf("produce to %s: %w", s.w.Topic, kafkaError(err))
	}
	s.sent += len(s.buf)
	s.buf = s.buf[:0]
	return nil
}

func (s *kafkaSink) close(ctx context.Context) error {
	err := s.flush(context.WithoutCancel(ctx))
	if cerr := s.w.Close(); err == nil {
		err = cerr
	}
	return err
}
