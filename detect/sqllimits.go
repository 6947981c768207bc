package detect

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// SQLConn is the connection `sql` rules run on: the rules user's when one is
// configured, else the detector's. driver.Conn satisfies it.
type SQLConn interface {
	// Query runs a SELECT; settings travel in ctx (clickhouse.Context).
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
	// ServerVersion says which settings the protocol can carry.
	ServerVersion() (*driver.ServerVersion, error)
}

var _ SQLConn = (driver.Conn)(nil)

// SQLLimits bound what one `sql` rule query may cost ClickHouse. A zero
// field takes its value from DefaultSQLLimits.
type SQLLimits struct {
	MaxExecutionTime time.Duration // caps the rule's own timeout
	MaxMemoryUsage   int64         // bytes
	MaxRowsToRead    int64
	MaxResultRows    int64
}

// DefaultSQLLimits are the limits of detect.sql_rules by default.
var DefaultSQLLimits = SQLLimits{MaxExecutionTime: 30 * time.Second, MaxMemoryUsage: 1 << 30, MaxRowsToRead: 500_000_000, MaxResultRows: 100_000}

// DefaultMaxFindings caps the findings one run stores (Runner.MaxFindings).
const DefaultMaxFindings = 1000

// orDefault fills zero fields from DefaultSQLLimits.
func (l SQLLimits) orDefault() SQLLimits {
	d := DefaultSQLLimits
	if l.MaxExecutionTime > 0 {
		d.MaxExecutionTime = l.MaxExecutionTime
	}
	if l.MaxMemoryUsage > 0 {
		d.MaxMemoryUsage = l.MaxMemoryUsage
	}
	if l.MaxRowsToRead > 0 {
		d.MaxRowsToRead = l.MaxRowsToRead
	}
	if l.MaxResultRows > 0 {
		d.MaxResultRows = l.MaxResultRows
	}
	return d
}

// sqlReadonly is the readonly level sql rule queries run with: 2 forbids
// writes and DDL like 1 does, but lets the query carry the limits below
// (with 1 ClickHouse refuses them, or on 18.16 ignores them). A rule cannot
// raise them itself: rules.Parse refuses a SETTINGS clause.
const sqlReadonly = 2

// minStringSettingsRevision is the first protocol revision that carries
// string settings (result_overflow_mode); older servers such as 18.16 take
// integers only, and the overflow modes are checked instead of set there.
const minStringSettingsRevision = 54429

// settings returns the query settings of a sql rule with timeout (the rule's
// own, capped by the limit; at least 1s).
func (l SQLLimits) settings(timeout time.Duration, revision uint64) clickhouse.Settings {
	l = l.orDefault()
	if timeout <= 0 || timeout > l.MaxExecutionTime {
		timeout = l.MaxExecutionTime
	}
	s := clickhouse.Settings{
		"readonly":           sqlReadonly,
		"max_execution_time": max(int(timeout.Seconds()), 1),
		"max_memory_usage":   int(l.MaxMemoryUsage),
		"max_rows_to_read":   int(l.MaxRowsToRead),
		"max_result_rows":    int(l.MaxResultRows),
	}
	if revision > minStringSettingsRevision {
		s["result_overflow_mode"] = "throw"
		s["read_overflow_mode"] = "throw"
	}
	return s
}

// limitCodes are the ClickHouse error codes of the limits, by setting.
var limitCodes = map[int32]string{
	158: "max_rows_to_read",   // TOO_MANY_ROWS
	396: "max_result_rows",    // TOO_MANY_ROWS_OR_BYTES
	241: "max_memory_usage",   // MEMORY_LIMIT_EXCEEDED
	159: "max_execution_time", // TIMEOUT_EXCEEDED
	164: "readonly",           // READONLY
}

// limitError names the limit a ClickHouse error is about, if any.
func limitError(err error, s clickhouse.Settings) error {
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) {
		return err
	}
	name, ok := limitCodes[ex.Code]
	if !ok {
		return err
	}
	if name == "readonly" {
		return fmt.Errorf("sql rule refused: rules may only read (readonly = %d): %w", sqlReadonly, err)
	}
	return fmt.Errorf("sql rule exceeded %s = %v (detect.sql_rules.%s): %w", name, s[name], name, err)
}

// Codes of a probe refused for its settings.
const (
	codeReadonly                  = 164 // READONLY: "Cannot modify 'x' setting in readonly mode"
	codeSettingConstraintViolated = 452 // SETTING_CONSTRAINT_VIOLATION (current ClickHouse profiles)
)

// notInForceAdvice ends every "limits not in force" error.
const notInForceAdvice = "a profile with readonly = 1 ignores or refuses per-query settings: give the rules user readonly = 2"

// probeError explains a settings probe the server refused. Current
// ClickHouse refuses the settings of a readonly = 1 user outright (code
// 164) where 18.16 ignores them (which verify then sees in the effective
// values); both mean the limits are not in force, and get the same
// advice. A settings constraint below the limits (code 452) means the
// profile and detect.sql_rules disagree. Other errors are wrapped as they are.
func probeError(err error) error {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		switch {
		case ex.Code == codeReadonly && strings.Contains(ex.Message, "setting in readonly mode"):
			return fmt.Errorf("sql rule limits not in force for this ClickHouse user: the server refuses them as settings (%s): %w", notInForceAdvice, err)
		case ex.Code == codeSettingConstraintViolated:
			return fmt.Errorf("sql rule limits not in force for this ClickHouse user: its settings profile constrains them below detect.sql_rules (lower detect.sql_rules or raise the profile's constraints, together): %w", err)
		}
	}
	return fmt.Errorf("check sql rule limits: %w", err)
}

// limitsCheck verifies, once per connection user, that the limits are in
// force: a user whose profile has readonly = 1 makes ClickHouse refuse
// (current versions, code 164) or silently ignore (18.16) the settings, and
// a profile may set an overflow mode to break, which would truncate results
// silently.
type limitsCheck struct {
	mu sync.Mutex
	ok bool
}

const settingsProbe = "SELECT name, value FROM system.settings WHERE name IN ('readonly', 'max_execution_time', 'max_memory_usage', 'max_rows_to_read', 'max_result_rows', 'result_overflow_mode', 'read_overflow_mode')"

func (c *limitsCheck) verify(ctx context.Context, conn SQLConn, s clickhouse.Settings) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok {
		return nil
	}
	// The probe reads system.settings itself: it runs under row limits
	// large enough for that, which it checks the same way.
	probe := clickhouse.Settings{}
	for k, v := range s {
		probe[k] = v
	}
	probe["max_rows_to_read"] = max(probe["max_rows_to_read"].(int), 1_000_000)
	probe["max_result_rows"] = max(probe["max_result_rows"].(int), 1_000)
	s = probe
	rows, err := conn.Query(clickhouse.Context(ctx, clickhouse.WithSettings(s)), settingsProbe)
	if err != nil {
		return probeError(err)
	}
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return fmt.Errorf("check sql rule limits: %w", err)
		}
		got[name] = value
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check sql rule limits: %w", err)
	}
	want := map[string]string{"result_overflow_mode": "throw", "read_overflow_mode": "throw"}
	for k, v := range s {
		want[k] = fmt.Sprint(v)
	}
	for _, k := range []string{"readonly", "max_execution_time", "max_memory_usage", "max_rows_to_read", "max_result_rows", "result_overflow_mode", "read_overflow_mode"} {
		if got[k] != want[k] {
			return fmt.Errorf("sql rule limits not in force for this ClickHouse user: %s is %s, want %s (%s)", k, strconv.Quote(got[k]), want[k], notInForceAdvice)
		}
	}
	c.ok = true
	return nil
}
