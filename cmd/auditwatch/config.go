package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	yaml "go.yaml.in/yaml/v3"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/detect/summary"
	"github.com/auditwatch/auditwatch/ingest/secret"
)

// Config is the whole auditwatch configuration file. Every field has a
// default; secrets come from the environment or from files (see envOverrides).
type Config struct {
	Log        LogConfig        `yaml:"log"`
	ClickHouse ClickHouseConfig `yaml:"clickhouse"`
	Kafka      KafkaConfig      `yaml:"kafka"`
	Ingest     IngestConfig     `yaml:"ingest"`
	Retention  RetentionConfig  `yaml:"retention"`
	HTTP       HTTPConfig       `yaml:"http"`
	Detect     DetectConfig     `yaml:"detect"`
	Alerts     AlertsConfig     `yaml:"alerts"`
	Summary    SummaryConfig    `yaml:"summary"`
	Keys       KeysConfig       `yaml:"keys"`
}

// KeysConfig holds what every component that fingerprints API keys
// (ingest, keys import, keys consume, alerts silence) must share.
type KeysConfig struct {
	// FingerprintKeyFile names a file holding a server-side secret (at
	// least 16 bytes, surrounding white space ignored). With it,
	// fingerprints are HMAC-SHA256 keyed with the secret instead of plain
	// SHA-256 (same format, different values); "" keeps them plain. Also
	// AUDITWATCH_FINGERPRINT_KEY_FILE.
	FingerprintKeyFile string `yaml:"fingerprint_key_file"`

	fingerprintKey []byte // the loaded secret; never logged
	keyFileWarning string // the file's permissions are too wide
}

// fingerprinter returns the Fingerprinter of the configured secret (plain
// without one).
func (k KeysConfig) fingerprinter() secret.Fingerprinter {
	return secret.NewFingerprinter(k.fingerprintKey)
}

// logState says, once at startup, whether fingerprints are keyed (with the
// secret's check value, so two components can be seen to agree, never the
// secret) and warns about a key file others may read.
func (k KeysConfig) logState(log *slog.Logger) {
	if k.keyFileWarning != "" {
		log.Warn(k.keyFileWarning)
	}
	if fp := k.fingerprinter(); fp.Keyed() {
		log.Info("key fingerprints are keyed (HMAC-SHA256)", "fingerprint_key_file", k.FingerprintKeyFile, "key_check", fp.Check())
	}
}

// SummaryConfig schedules usage reviews (run by `detect`).
type SummaryConfig struct {
	OutDir    string             `yaml:"out_dir"`   // where report files are written
	Schedules []summary.Schedule `yaml:"schedules"` // cron, period, formats, channel
}

// AlertsConfig configures delivery of findings (run by `detect` and
// `alerts flush`).
type AlertsConfig struct {
	Enabled        bool           `yaml:"enabled"`
	Notifier       string         `yaml:"notifier"`     // auto (slack when a token or webhook is set, else a startup error), slack or console (only when configured)
	ConsolePath    string         `yaml:"console_path"` // console notifier output file; "" = standard output
	Slack          SlackConfig    `yaml:"slack"`
	DefaultChannel string         `yaml:"default_channel"`
	Routes         []alerts.Route `yaml:"routes"`
	PollInterval   time.Duration  `yaml:"poll_interval"`
	Horizon        time.Duration  `yaml:"horizon"`      // findings older than this are not delivered any more
	IncidentTTL    time.Duration  `yaml:"incident_ttl"` // an incident not resolved within this is forgotten
	MaxGroups      int            `yaml:"max_groups"`   // findings listed per message
	Attempts       int            `yaml:"attempts"`     // delivery attempts per message and cycle
	SendResolved   bool           `yaml:"send_resolved"`
	// Fallback receives findings whose delivery failed permanently (a Slack
	// error no retry fixes, or past the horizon undelivered).
	Fallback FallbackConfig `yaml:"fallback"`
	// CatchupAfter: findings (and resolutions) older than this when they are
	// delivered — replayed after an outage, caught up with --from — are
	// folded into one message per rule instead of one each.
	CatchupAfter time.Duration `yaml:"catchup_after"`
}

// FallbackConfig is where alerts go when Slack refuses them for good: a
// channel (same token), a webhook, and/or a file (JSON lines). At least one
// is recommended; without any, such findings are recorded as failed and
// reported by metrics and /readyz only.
type FallbackConfig struct {
	Channel        string `yaml:"channel"`
	WebhookURLFile string `yaml:"webhook_url_file"` // or AUDITWATCH_FALLBACK_WEBHOOK_URL
	File           string `yaml:"file"`

	webhookURL string // loaded secret
}

// SlackConfig holds where the Slack credentials are; the credentials
// themselves come from the environment (AUDITWATCH_SLACK_TOKEN,
// AUDITWATCH_SLACK_WEBHOOK_URL) or these files, never from this file.
type SlackConfig struct {
	TokenFile      string `yaml:"token_file"`
	WebhookURLFile string `yaml:"webhook_url_file"`
	APIURL         string `yaml:"api_url"` // Web API base URL override (tests, proxies); needs allow_custom_api_url
	// AllowCustomAPIURL must be true for api_url to be used, so that a
	// typo cannot send the bot token to another host.
	AllowCustomAPIURL bool          `yaml:"allow_custom_api_url"`
	Timeout           time.Duration `yaml:"timeout"`
	// Interactive: triage buttons and /auditwatch over Socket Mode (cmd_triage.go).
	Interactive InteractiveConfig `yaml:"interactive"`

	token, webhookURL string // loaded secrets
}

// DetectConfig configures the rule scheduler.
type DetectConfig struct {
	RulesDir       string        `yaml:"rules_dir"`       // directory of rule files (*.yaml)
	ReloadInterval time.Duration `yaml:"reload_interval"` // how often rule files are checked for changes
	HTTPListen     string        `yaml:"http_listen"`     // metrics and health of `detect`; "" disables
	// MaxWait is how long after a window's end detect waits for the ingest
	// watermark to pass it before evaluating anyway (the run is recorded as
	// incomplete and counted).
	MaxWait time.Duration `yaml:"max_wait"`
	// IdleTimeout: a partition that had caught up and has not been written
	// for this long is idle and does not hold the watermark back.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ReplayLookback bounds how far back missed ticks are replayed on start
	// and windows are evaluated again for late data.
	ReplayLookback time.Duration `yaml:"replay_lookback"`
	// LateCheckInterval is how often detect looks for rows that arrived
	// after their window was evaluated.
	LateCheckInterval time.Duration `yaml:"late_check_interval"`
	// SQLRules bounds what one `sql` rule run may cost ClickHouse.
	SQLRules SQLRuleLimits `yaml:"sql_rules"`
	// HA runs several detect processes of which one leads (docs/ha.md).
	HA HAConfig `yaml:"ha"`
}

// HAConfig: leadership among detect processes through a Kafka consumer
// group (kafka.* connection settings and session_timeout apply).
type HAConfig struct {
	Enabled bool   `yaml:"enabled"`  // false: this detect always works (one per database)
	GroupID string `yaml:"group_id"` // consumer group of the detect processes
	Topic   string `yaml:"topic"`    // one-partition topic (created if missing); its owner leads
}

// SQLRuleLimits are the ClickHouse limits every `sql` rule query runs under
// (0 takes the default) and the most findings one run may produce.
type SQLRuleLimits struct {
	MaxExecutionTime time.Duration `yaml:"max_execution_time"` // 30s
	MaxMemoryUsage   int64         `yaml:"max_memory_usage"`   // bytes, 1 GiB
	MaxRowsToRead    int64         `yaml:"max_rows_to_read"`   // 500,000,000
	MaxResultRows    int64         `yaml:"max_result_rows"`    // 100,000
	MaxFindings      int           `yaml:"max_findings"`       // per rule run, 1,000
}

// LogConfig sets up slog.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or text
}

// ClickHouseConfig is the ClickHouse connection (native protocol).
type ClickHouseConfig struct {
	Addr         []string      `yaml:"addr"`
	Database     string        `yaml:"database"`
	Username     string        `yaml:"username"`
	Password     string        `yaml:"password"`      // prefer AUDITWATCH_CLICKHOUSE_PASSWORD or password_file
	PasswordFile string        `yaml:"password_file"` // file holding the password
	TLS          bool          `yaml:"tls"`
	TLSFiles     TLSFiles      `yaml:",inline"`
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	MaxOpenConns int           `yaml:"max_open_conns"`
	// Cluster names the ClickHouse cluster (<remote_servers> of the servers'
	// configuration) the schema lives on; "" (the default) is a single
	// server. With a cluster, migrations run ON CLUSTER and create
	// Replicated tables NAME_local under Distributed tables NAME, inserts
	// wait for the shards, retention drops partitions on every shard; see
	// docs/cluster.md.
	Cluster string `yaml:"cluster"`
	// Users gives components their own ClickHouse user (least privilege):
	// keys are the components in chComponents. A component without an
	// entry uses username/password above. Passwords also come from
	// AUDITWATCH_CLICKHOUSE_<COMPONENT>_PASSWORD or password_file.
	Users map[string]CHCredentials `yaml:"users"`
}

// TLSFiles are the optional files of a TLS connection (with tls: true): a CA
// bundle to verify the server with instead of the system roots, and a
// client certificate and key for mutual TLS.
type TLSFiles struct {
	CAFile     string `yaml:"tls_ca_file"`
	CertFile   string `yaml:"tls_cert_file"`
	KeyFile    string `yaml:"tls_key_file"`
	ServerName string `yaml:"tls_server_name"` // name verified in the server's certificate; "" = the host dialled
}

// CHCredentials are one component's ClickHouse user.
type CHCredentials struct {
	Username     string `yaml:"username"`
	Password     string `yaml:"password"` // prefer the environment or password_file
	PasswordFile string `yaml:"password_file"`
}

// chComponents are the components that may have their own ClickHouse user
// (clickhouse.users): what each does is in docs/security.md.
var chComponents = []string{"ingest", "detect", "rules", "keys", "retention", "migrate"}

// For returns the connection settings of component: the shared ones with
// the component's user, when clickhouse.users has one.
func (c ClickHouseConfig) For(component string) ClickHouseConfig {
	out := c
	if u, ok := c.Users[component]; ok && u.Username != "" {
		out.Username, out.Password = u.Username, u.Password
	}
	out.Users = nil
	return out
}

// KafkaConfig is the access-log topic and consumer group.
type KafkaConfig struct {
	Brokers        []string      `yaml:"brokers"`
	Topic          string        `yaml:"topic"`
	GroupID        string        `yaml:"group_id"`
	KeysTopic      string        `yaml:"keys_topic"`    // key lifecycle events, for `keys consume`
	KeysGroupID    string        `yaml:"keys_group_id"` // consumer group of `keys consume`
	StartOffset    string        `yaml:"start_offset"`  // earliest or latest, for a new group
	MinBytes       int           `yaml:"min_bytes"`
	MaxBytes       int           `yaml:"max_bytes"`
	MaxWait        time.Duration `yaml:"max_wait"`
	QueueCapacity  int           `yaml:"queue_capacity"`
	SessionTimeout time.Duration `yaml:"session_timeout"`
	TLS            bool          `yaml:"tls"`
	TLSFiles       TLSFiles      `yaml:",inline"`
	SASL           SASLConfig    `yaml:"sasl"`
}

// SASLConfig authenticates to Kafka.
type SASLConfig struct {
	Mechanism    string `yaml:"mechanism"` // "", plain, scram-sha-256, scram-sha-512
	Username     string `yaml:"username"`
	Password     string `yaml:"password"` // prefer AUDITWATCH_KAFKA_SASL_PASSWORD or password_file
	PasswordFile string `yaml:"password_file"`
}

// IngestConfig tunes batching and validation.
type IngestConfig struct {
	BatchMaxRows       int           `yaml:"batch_max_rows"`
	BatchMaxBytes      int           `yaml:"batch_max_bytes"`
	FlushInterval      time.Duration `yaml:"flush_interval"`
	MaxMessageBytes    int           `yaml:"max_message_bytes"`
	MaxFutureSkew      time.Duration `yaml:"max_future_skew"`
	DeadLetterRawBytes int           `yaml:"dead_letter_raw_bytes"`
	ShutdownTimeout    time.Duration `yaml:"shutdown_timeout"`
	MigrateOnStart     bool          `yaml:"migrate_on_start"`
	MemoryLimitBytes   int64         `yaml:"memory_limit_bytes"` // soft Go heap limit; 0 = none
	// ProgressInterval is how often an ingester with nothing in flight
	// writes a heartbeat to ingest_progress (batches write their own rows).
	ProgressInterval time.Duration `yaml:"progress_interval"`
	// RetryMax is the longest wait between attempts of a failing write,
	// so writes resume within about this long of ClickHouse's return.
	RetryMax time.Duration `yaml:"retry_max"`
	// MaxPartitionsPerInsert is the most access_log partitions (days) one
	// insert spans; keep it at or below the server's
	// max_partitions_per_insert_block (100 by default).
	MaxPartitionsPerInsert int `yaml:"max_partitions_per_insert"`
	// MaxPast dead-letters events timestamped further back than this
	// (reason too_old) instead of writing them into partitions retention
	// drops. 0 (the default) means retention.access_log_days; with
	// retention keeping access_log forever, no limit. See maxPast.
	MaxPast time.Duration `yaml:"max_past"`
}

// maxPast is the effective ingest.max_past: as set, else the access-log
// retention (0, no limit, when that keeps forever).
func (c Config) maxPast() time.Duration {
	if c.Ingest.MaxPast > 0 {
		return c.Ingest.MaxPast
	}
	return time.Duration(max(c.Retention.AccessLogDays, 0)) * 24 * time.Hour
}

// RetentionConfig says how long data is kept; 0 keeps it forever.
type RetentionConfig struct {
	AccessLogDays    int           `yaml:"access_log_days"`
	IngestErrorsDays int           `yaml:"ingest_errors_days"`
	RollupDays       int           `yaml:"rollup_days"`   // key_usage
	FindingsDays     int           `yaml:"findings_days"` // findings
	RuleRunsDays     int           `yaml:"rule_runs_days"`
	ProgressDays     int           `yaml:"ingest_progress_days"` // ingest_progress
	CheckInterval    time.Duration `yaml:"check_interval"`
	// InIngest makes every ingester enforce retention too, on a connection
	// as the retention user (clickhouse.users.retention, else the shared
	// one), which must be allowed to drop partitions. Off by default: run
	// `auditwatch retention --every` with the retention user instead.
	InIngest bool `yaml:"in_ingest"`
}

// HTTPConfig is the metrics and health endpoint.
type HTTPConfig struct {
	Listen string `yaml:"listen"` // "" disables it
	Pprof  bool   `yaml:"pprof"`  // serve /debug/pprof/ (profiling) too
}

// DefaultConfig returns the configuration used when no file is given: local
// services on the ports the project's scripts start them on.
func DefaultConfig() Config {
	return Config{
		Log: LogConfig{Level: "info", Format: "text"},
		ClickHouse: ClickHouseConfig{
			Addr: []string{"127.0.0.1:19000"}, Database: "auditwatch", Username: "default",
			DialTimeout: 5 * time.Second, ReadTimeout: 60 * time.Second, MaxOpenConns: 4,
		},
		Kafka: KafkaConfig{
			Brokers: []string{"127.0.0.1:19092"}, Topic: "gateway-access-logs", GroupID: "auditwatch-ingest",
			KeysTopic: "gateway-key-events", KeysGroupID: "auditwatch-keys",
			StartOffset: "earliest", MinBytes: 64 << 10, MaxBytes: 4 << 20, MaxWait: 250 * time.Millisecond,
			QueueCapacity: 2_000, SessionTimeout: 10 * time.Second,
		},
		Ingest: IngestConfig{
			BatchMaxRows: 50_000, BatchMaxBytes: 32 << 20, FlushInterval: time.Second,
			MaxMessageBytes: 1 << 20, MaxFutureSkew: 24 * time.Hour, DeadLetterRawBytes: 64 << 10,
			ShutdownTimeout: 30 * time.Second, MemoryLimitBytes: 160 << 20, ProgressInterval: time.Second,
			RetryMax: 2 * time.Second, MaxPartitionsPerInsert: 100,
		},
		Retention: RetentionConfig{AccessLogDays: 90, IngestErrorsDays: 30, RollupDays: 400, FindingsDays: 365, RuleRunsDays: 90, ProgressDays: 7, CheckInterval: time.Hour},
		HTTP:      HTTPConfig{Listen: "127.0.0.1:9464"},
		Detect: DetectConfig{RulesDir: "rules/pack", ReloadInterval: 5 * time.Second, HTTPListen: "127.0.0.1:9465",
			MaxWait: 2 * time.Minute, IdleTimeout: 30 * time.Second, ReplayLookback: 24 * time.Hour, LateCheckInterval: 5 * time.Second,
			SQLRules: SQLRuleLimits{MaxExecutionTime: 30 * time.Second, MaxMemoryUsage: 1 << 30, MaxRowsToRead: 500_000_000, MaxResultRows: 100_000, MaxFindings: 1_000},
			HA:       HAConfig{GroupID: "auditwatch-detect", Topic: "auditwatch-detect-leader"}},
		Summary: SummaryConfig{OutDir: "out/summaries"},
		Alerts: AlertsConfig{Enabled: true, Notifier: "auto", DefaultChannel: "#auditwatch", PollInterval: 10 * time.Second,
			Horizon: 24 * time.Hour, IncidentTTL: 7 * 24 * time.Hour, MaxGroups: 10, Attempts: 3, SendResolved: true, CatchupAfter: 10 * time.Minute,
			Slack: SlackConfig{Timeout: 10 * time.Second, Interactive: InteractiveConfig{MembershipTTL: 5 * time.Minute}}},
	}
}

// LoadConfig reads path over the defaults (no path: defaults only), then
// applies environment overrides. Unknown keys are errors, reported with
// their line.
//
// Without --config, the file named by AUDITWATCH_CONFIG is read, if set.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if path == "" {
		path = os.Getenv("AUDITWATCH_CONFIG")
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := cfg.envOverrides(os.Getenv); err != nil {
		return cfg, err
	}
	return cfg, cfg.validate()
}

// envOverrides applies AUDITWATCH_* variables. Secrets should be given this
// way (or through *_file settings) rather than in the file.
func (c *Config) envOverrides(getenv func(string) string) error {
	set := func(name string, f func(string)) {
		if v := getenv(name); v != "" {
			f(v)
		}
	}
	set("AUDITWATCH_CLICKHOUSE_ADDR", func(v string) { c.ClickHouse.Addr = splitList(v) })
	set("AUDITWATCH_CLICKHOUSE_DATABASE", func(v string) { c.ClickHouse.Database = v })
	set("AUDITWATCH_CLICKHOUSE_USERNAME", func(v string) { c.ClickHouse.Username = v })
	set("AUDITWATCH_CLICKHOUSE_PASSWORD", func(v string) { c.ClickHouse.Password = v })
	set("AUDITWATCH_KAFKA_BROKERS", func(v string) { c.Kafka.Brokers = splitList(v) })
	set("AUDITWATCH_KAFKA_TOPIC", func(v string) { c.Kafka.Topic = v })
	set("AUDITWATCH_KAFKA_GROUP_ID", func(v string) { c.Kafka.GroupID = v })
	set("AUDITWATCH_KAFKA_SASL_PASSWORD", func(v string) { c.Kafka.SASL.Password = v })
	set("AUDITWATCH_HTTP_LISTEN", func(v string) { c.HTTP.Listen = v })
	set("AUDITWATCH_DETECT_HTTP_LISTEN", func(v string) { c.Detect.HTTPListen = v })
	set("AUDITWATCH_RULES_DIR", func(v string) { c.Detect.RulesDir = v })
	set("AUDITWATCH_LOG_LEVEL", func(v string) { c.Log.Level = v })
	set("AUDITWATCH_HTTP_PPROF", func(v string) { c.HTTP.Pprof = v == "1" || v == "true" })
	set("AUDITWATCH_SLACK_TOKEN", func(v string) { c.Alerts.Slack.token = v })
	set("AUDITWATCH_SLACK_WEBHOOK_URL", func(v string) { c.Alerts.Slack.webhookURL = v })
	set("AUDITWATCH_SLACK_APP_TOKEN", func(v string) { c.Alerts.Slack.Interactive.appToken = v })
	set("AUDITWATCH_FINGERPRINT_KEY_FILE", func(v string) { c.Keys.FingerprintKeyFile = v })
	set("AUDITWATCH_FALLBACK_WEBHOOK_URL", func(v string) { c.Alerts.Fallback.webhookURL = v })
	type fileSecret struct {
		file string
		dst  *string
	}
	files := []fileSecret{{c.ClickHouse.PasswordFile, &c.ClickHouse.Password}, {c.Kafka.SASL.PasswordFile, &c.Kafka.SASL.Password},
		{c.Alerts.Slack.TokenFile, &c.Alerts.Slack.token}, {c.Alerts.Slack.WebhookURLFile, &c.Alerts.Slack.webhookURL},
		{c.Alerts.Fallback.WebhookURLFile, &c.Alerts.Fallback.webhookURL}, {c.Alerts.Slack.Interactive.AppTokenFile, &c.Alerts.Slack.Interactive.appToken}}
	for _, comp := range chComponents {
		u, ok := c.ClickHouse.Users[comp]
		env := "AUDITWATCH_CLICKHOUSE_" + strings.ToUpper(comp)
		if v := getenv(env + "_USERNAME"); v != "" {
			u.Username, ok = v, true
		}
		if v := getenv(env + "_PASSWORD"); v != "" {
			u.Password, ok = v, true
		}
		if !ok {
			continue
		}
		if c.ClickHouse.Users == nil {
			c.ClickHouse.Users = map[string]CHCredentials{}
		}
		c.ClickHouse.Users[comp] = u
	}
	for comp, u := range c.ClickHouse.Users {
		if u.PasswordFile != "" && u.Password == "" {
			b, err := os.ReadFile(u.PasswordFile)
			if err != nil {
				return fmt.Errorf("clickhouse.users.%s.password_file: %w", comp, err)
			}
			u.Password = strings.TrimRight(string(b), "\r\n")
			c.ClickHouse.Users[comp] = u
		}
	}
	for _, f := range files {
		if f.file == "" {
			continue
		}
		b, err := os.ReadFile(f.file)
		if err != nil {
			return fmt.Errorf("read password file: %w", err)
		}
		*f.dst = strings.TrimRight(string(b), "\r\n")
	}
	if c.Keys.FingerprintKeyFile != "" {
		key, warn, err := secret.LoadFingerprintKey(c.Keys.FingerprintKeyFile)
		if err != nil {
			return fmt.Errorf("keys.fingerprint_key_file: %w", err)
		}
		c.Keys.fingerprintKey, c.Keys.keyFileWarning = key, warn
	}
	return nil
}

func (c *Config) validate() error {
	var errs []error
	if len(c.ClickHouse.Addr) == 0 {
		errs = append(errs, errors.New("clickhouse.addr: at least one address is required"))
	}
	if c.ClickHouse.Database == "" {
		errs = append(errs, errors.New("clickhouse.database: required"))
	}
	if !clusterName.MatchString(c.ClickHouse.Cluster) {
		errs = append(errs, fmt.Errorf("clickhouse.cluster: %q: want letters, digits and underscores", c.ClickHouse.Cluster))
	}
	if len(c.Kafka.Brokers) == 0 || c.Kafka.Topic == "" || c.Kafka.GroupID == "" {
		errs = append(errs, errors.New("kafka: brokers, topic and group_id are required"))
	}
	switch c.Kafka.StartOffset {
	case "earliest", "latest":
	default:
		errs = append(errs, fmt.Errorf("kafka.start_offset: %q: want earliest or latest", c.Kafka.StartOffset))
	}
	switch c.Kafka.SASL.Mechanism {
	case "", "plain", "scram-sha-256", "scram-sha-512":
	default:
		errs = append(errs, fmt.Errorf("kafka.sasl.mechanism: %q: want plain, scram-sha-256 or scram-sha-512", c.Kafka.SASL.Mechanism))
	}
	switch c.Alerts.Notifier {
	case "auto", "console":
	case "slack":
		// Credentials are checked where alerts are delivered (newNotifier):
		// ingest, keys or retention, sharing this file, hold no token.
	default:
		errs = append(errs, fmt.Errorf("alerts.notifier: %q: want auto, slack or console", c.Alerts.Notifier))
	}
	for comp, u := range c.ClickHouse.Users {
		if !slices.Contains(chComponents, comp) {
			errs = append(errs, fmt.Errorf("clickhouse.users.%s: unknown component; want one of %s", comp, strings.Join(chComponents, ", ")))
		} else if u.Username == "" {
			errs = append(errs, fmt.Errorf("clickhouse.users.%s: username is required", comp))
		}
	}
	for name, t := range map[string]TLSFiles{"clickhouse": c.ClickHouse.TLSFiles, "kafka": c.Kafka.TLSFiles} {
		if (t.CertFile == "") != (t.KeyFile == "") {
			errs = append(errs, fmt.Errorf("%s: tls_cert_file and tls_key_file go together", name))
		}
		if on := map[string]bool{"clickhouse": c.ClickHouse.TLS, "kafka": c.Kafka.TLS}[name]; !on && t != (TLSFiles{}) {
			errs = append(errs, fmt.Errorf("%s: tls_* settings need tls: true (they never turn TLS on by themselves)", name))
		}
	}
	if l := c.Detect.SQLRules; l.MaxExecutionTime < 0 || l.MaxMemoryUsage < 0 || l.MaxRowsToRead < 0 || l.MaxResultRows < 0 || l.MaxFindings < 0 {
		errs = append(errs, errors.New("detect.sql_rules: limits must be 0 (the default) or more"))
	}
	if ha := c.Detect.HA; ha.Enabled {
		switch {
		case ha.GroupID == "" || ha.Topic == "":
			errs = append(errs, errors.New("detect.ha: group_id and topic are required"))
		case ha.GroupID == c.Kafka.GroupID || ha.GroupID == c.Kafka.KeysGroupID:
			errs = append(errs, fmt.Errorf("detect.ha.group_id %q: must differ from kafka.group_id and kafka.keys_group_id", ha.GroupID))
		case ha.Topic == c.Kafka.Topic || ha.Topic == c.Kafka.KeysTopic:
			errs = append(errs, fmt.Errorf("detect.ha.topic %q: a topic of its own, not kafka.topic or kafka.keys_topic", ha.Topic))
		}
		if c.Kafka.SessionTimeout < 6*time.Second {
			errs = append(errs, fmt.Errorf("kafka.session_timeout %s: detect.ha needs at least 6s (the broker's group.min.session.timeout.ms default)", c.Kafka.SessionTimeout))
		}
	}
	if c.Alerts.Slack.APIURL != "" && !c.Alerts.Slack.AllowCustomAPIURL {
		errs = append(errs, fmt.Errorf("alerts.slack.api_url %q: the bot token would be sent there; set alerts.slack.allow_custom_api_url: true if that is intended", c.Alerts.Slack.APIURL))
	}
	if c.Alerts.Slack.token != "" && c.Alerts.Slack.webhookURL != "" {
		errs = append(errs, errors.New("alerts.slack: set a bot token or a webhook URL, not both"))
	}
	errs = append(errs, c.Alerts.Slack.Interactive.validate(c.Alerts.Slack)...)
	for i, sc := range c.Summary.Schedules {
		if _, err := cronParser.Parse(sc.Cron); err != nil {
			errs = append(errs, fmt.Errorf("summary.schedules[%d].cron %q: %w", i, sc.Cron, err))
		}
		if _, ok := summary.Periods[sc.Period]; !ok {
			errs = append(errs, fmt.Errorf("summary.schedules[%d].period %q: want 24h, 7d or 30d", i, sc.Period))
		}
	}
	for i, r := range c.Alerts.Routes {
		if r.Channel == "" {
			errs = append(errs, fmt.Errorf("alerts.routes[%d]: channel is required", i))
		}
	}
	if min(c.Retention.AccessLogDays, c.Retention.IngestErrorsDays, c.Retention.RollupDays, c.Retention.FindingsDays, c.Retention.RuleRunsDays) < 0 {
		errs = append(errs, errors.New("retention: days must be 0 (keep forever) or more"))
	}
	retained := time.Duration(c.Retention.AccessLogDays) * 24 * time.Hour
	switch mp := c.Ingest.MaxPast; {
	case mp < 0:
		errs = append(errs, fmt.Errorf("ingest.max_past: %s: want 0 (the access-log retention) or a positive duration", mp))
	case mp > 0 && mp < time.Hour:
		errs = append(errs, fmt.Errorf("ingest.max_past: %s would dead-letter ordinary consumer lag; want 1h or more (durations have no d unit: 30 days is 720h)", mp))
	case mp > 0 && retained > 0 && mp > retained:
		errs = append(errs, fmt.Errorf("ingest.max_past: %s is longer than retention.access_log_days (%d days, %s): such events would be written into partitions retention drops", mp, c.Retention.AccessLogDays, retained))
	}
	return errors.Join(errs...)
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// policy returns the retention of every table.
func (r RetentionConfig) policy() map[string]int {
	return map[string]int{
		"access_log": r.AccessLogDays, "ingest_errors": r.IngestErrorsDays, "key_usage": r.RollupDays,
		"findings": r.FindingsDays, "rule_runs": r.RuleRunsDays,
	}
}

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
